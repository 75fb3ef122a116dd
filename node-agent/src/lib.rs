//! The edgefleet node agent: enrols its cluster with the control plane, applies the tasks it pulls, and forwards
//! the logs of demo pods.

pub mod agent;
pub mod apply;
pub mod cluster;
pub mod config;
pub mod error;
pub mod identity;
pub mod logbuffer;
pub mod ownlog;
pub mod podlogs;
pub mod runner;
pub mod session;
pub mod tasklog;
pub mod transport;

/// The agent's version, reported in `Hello`, heartbeats and `Bootstrap`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
