//! Installs the agent on a freshly provisioned cluster: server-side applies the install manifest through the
//! cluster's own API (kubeconfig from the Terraform outputs), as an operator would with kubectl.

use agent_protocol::apply::ApplyManifestError;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The field manager the control plane applies with (the agent uses its own).
pub const FIELD_MANAGER: &str = "edgefleet-control-plane";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the cluster's kubeconfig is not usable: {0}")]
    Kubeconfig(String),
    #[error("installing the agent: {0}")]
    Apply(#[from] ApplyManifestError),
}

pub async fn client_for(kubeconfig_yaml: &str) -> Result<Client, InstallError> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml)
        .map_err(|e| InstallError::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| InstallError::Kubeconfig(e.to_string()))?;
    Client::try_from(config).map_err(|e| InstallError::Kubeconfig(e.to_string()))
}

pub async fn apply_manifest(client: &Client, manifest: &str) -> Result<Vec<String>, InstallError> {
    Ok(agent_protocol::apply::apply_manifest(client, manifest, FIELD_MANAGER).await?)
}
