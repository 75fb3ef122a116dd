//! The edgefleet node agent: enrols its cluster with the control plane, applies the tasks it pulls, and forwards
//! the logs of demo pods.

pub mod agent;
pub mod apply;
pub mod cluster;
pub mod config;
pub mod desired;
pub mod error;
pub mod files;
pub mod identity;
pub mod logbuffer;
pub mod ownlog;
pub mod podlogs;
pub mod runner;
pub mod session;
pub mod tasklog;
pub mod transport;

/// This agent process's id. The lines it numbers (its own log, its task log) carry it, so a restarted agent's
/// numbers never collide with an earlier run's.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let started = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        format!("agent-{}-{started}", std::process::id())
    })
}

/// The agent's version, reported in `Hello`, heartbeats and `Bootstrap`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
