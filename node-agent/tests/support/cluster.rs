//! Starts a real Kubernetes cluster (`kube-cluster`: the real control plane with simulated nodes) and an admin
//! kube client for it.

/// The running cluster (dropping it stops every process) and a client with the admin identity.
pub async fn start() -> (kube_cluster::Cluster, kube::Client) {
    node_agent::transport::install_crypto_provider();
    let cluster = kube_cluster::Cluster::start(kube_cluster::Config::default())
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    (cluster, client)
}
