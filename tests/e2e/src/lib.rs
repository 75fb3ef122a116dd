//! Shared pieces of the end-to-end tests, the quick-start stack (`devstack`) and the agent-swarm benchmark:
//! a local stack of real processes, a small REST client, a steady task load for the fault tests, and a raw agent speaking the gRPC protocol.

pub mod api;
pub mod load;
pub mod otlp;
pub mod raw_agent;
pub mod stack;

pub use api::Api;
pub use stack::{
    AgentState, ClusterHandle, PeerControlPlane, Stack, StackOptions, first_pod, kubectl,
    restart_container, write_container_log,
};
