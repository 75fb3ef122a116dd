//! Helpers shared by the emulator's integration tests: a `kube` client for an emulator and polling.

use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_emulator::Emulator;

/// A client using one context of the emulator's kubeconfig (the current one when `None`).
pub async fn client_for(emulator: &Emulator, context: Option<&str>) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(emulator.kubeconfig_yaml()).expect("kubeconfig parses");
    client_from(kubeconfig, context).await
}

/// A client from a parsed kubeconfig (e.g. one the emulator binary wrote).
pub async fn client_from(kubeconfig: Kubeconfig, context: Option<&str>) -> Client {
    let options = KubeConfigOptions {
        context: context.map(String::from),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client builds")
}

/// Polls `check` until it returns `Some`, failing after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
