//! Starts the in-memory Kubernetes API emulator and a kube client for it (through its generated kubeconfig).

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The running emulator (dropping it stops the server) and a client talking to it over HTTPS.
pub async fn start() -> (kube_emulator::Emulator, kube::Client) {
    node_agent::transport::install_crypto_provider();
    let emulator = kube_emulator::Emulator::start(kube_emulator::Config::default())
        .await
        .unwrap();
    let kubeconfig = Kubeconfig::from_yaml(emulator.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    (emulator, kube::Client::try_from(config).unwrap())
}
