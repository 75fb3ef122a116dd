//! The agent <-> control plane gRPC protocol (generated from `proto/agent.proto`).

pub mod v1 {
    tonic::include_proto!("edgefleet.agent.v1");
}

pub use v1::*;

#[cfg(feature = "kube")]
pub mod apply;
pub mod codec;
pub mod manifest;
pub mod policy;
pub mod signing;

/// The field manager and user-agent prefix the agent uses; also the certificate organisation for agent identities.
pub const AGENT_ORGANISATION: &str = "edgefleet-agent";

/// The label carrying a demo's id on every object the control plane renders for it: the agent follows the logs of
/// pods with it, and pruning selects by it.
pub const DEMO_LABEL: &str = "edgefleet.io/demo";

/// With the value [`LOGS_OPT_IN`] on a namespace or a pod: the agent collects the logs of its pods (demo pods are
/// always collected).
pub const LOGS_LABEL: &str = "edgefleet.io/logs";
pub const LOGS_OPT_IN: &str = "enabled";

/// Builds the subject common name that binds an agent certificate to one cluster.
pub fn agent_common_name(cluster_id: &str) -> String {
    format!("cluster:{cluster_id}")
}

/// Reads the cluster id back out of an agent certificate's common name.
pub fn cluster_id_from_common_name(common_name: &str) -> Option<&str> {
    common_name
        .strip_prefix("cluster:")
        .filter(|id| !id.is_empty())
}
