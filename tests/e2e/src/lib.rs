//! Shared pieces of the end-to-end tests, the quick-start stack (`devstack`) and the agent-swarm benchmark:
//! a local stack of real processes, a small REST client, a steady task load for the fault tests, and a raw agent speaking the gRPC protocol.

pub mod api;
pub mod load;
pub mod otlp;
pub mod procfs;
pub mod raw_agent;
pub mod stack;

pub use api::Api;
pub use stack::{
    AgentState, ClusterHandle, PeerControlPlane, Stack, StackOptions, first_pod, kubectl,
    restart_container, write_container_log,
};

/// The value of environment variable `name`, or `default` when it is unset or does not parse: tests take their
/// figures from the issue by default and smaller ones for a quick local run.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
