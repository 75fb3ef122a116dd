//! Edgefleet control plane: keeps clusters, tasks and agent identities in PostgreSQL, serves the REST API,
//! and talks to node agents over mutually authenticated gRPC.

pub mod agents;
pub mod api;
pub mod app;
pub mod config;
pub mod console;
pub mod crypto;
pub mod domain;
pub mod fleet;
pub mod logs;
pub mod metrics;
pub mod pki;
pub mod planner;
pub mod process_log;
pub mod provisioner;
pub mod runtime;
pub mod signing;
pub mod store;
pub mod supervisor;
pub mod templates;
