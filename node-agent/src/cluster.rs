//! Facts about the agent's own cluster for heartbeats: Kubernetes version, node count, API server reachability.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::error::error_chain;

// Heartbeats must not stall behind an unresponsive API server; a probe that takes longer counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The latest observation of the cluster, as reported in heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub kubernetes_version: String,
    pub node_count: u32,
    pub reachable: bool,
    /// Why the API server is unreachable, or why part of the probe failed (e.g. listing nodes is forbidden).
    pub error: String,
}

impl ClusterStatus {
    fn not_probed() -> Self {
        Self {
            kubernetes_version: String::new(),
            node_count: 0,
            reachable: false,
            error: "not probed yet".into(),
        }
    }
}

/// Asks the API server for its version and counts nodes.
pub async fn probe(client: &kube::Client) -> ClusterStatus {
    let version = match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(info)) => info.git_version,
        Ok(Err(err)) => return unreachable(format!("GET /version: {}", error_chain(&err))),
        Err(_) => return unreachable(format!("GET /version: no answer within {PROBE_TIMEOUT:?}")),
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let (node_count, error) = match tokio::time::timeout(
        PROBE_TIMEOUT,
        nodes.list_metadata(&ListParams::default()),
    )
    .await
    {
        Ok(Ok(list)) => (
            u32::try_from(list.items.len()).unwrap_or(u32::MAX),
            String::new(),
        ),
        Ok(Err(err)) => (0, format!("listing nodes: {}", error_chain(&err))),
        Err(_) => (
            0,
            format!("listing nodes: no answer within {PROBE_TIMEOUT:?}"),
        ),
    };
    ClusterStatus {
        kubernetes_version: version,
        node_count,
        reachable: true,
        error,
    }
}

fn unreachable(error: String) -> ClusterStatus {
    ClusterStatus {
        kubernetes_version: String::new(),
        node_count: 0,
        reachable: false,
        error,
    }
}

/// Probes every `interval` in the background; the receiver always holds the latest status.
pub fn spawn_prober(client: kube::Client, interval: Duration) -> watch::Receiver<ClusterStatus> {
    let (sender, receiver) = watch::channel(ClusterStatus::not_probed());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let status = probe(&client).await;
            let previous = sender.send_replace(status.clone());
            if status.reachable != previous.reachable || status.error != previous.error {
                if status.reachable {
                    debug!(version = %status.kubernetes_version, nodes = status.node_count, "kubernetes API reachable");
                } else {
                    warn!(error = %status.error, "kubernetes API unreachable");
                }
            }
            if sender.is_closed() {
                return;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_api_server_is_reported_with_the_reason() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let status = probe(&client).await;
        assert!(!status.reachable);
        assert!(status.error.starts_with("GET /version"), "{}", status.error);
    }
}
