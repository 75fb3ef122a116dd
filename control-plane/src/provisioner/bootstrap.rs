//! Installs the agent on a freshly provisioned cluster: server-side applies the install manifest through the
//! cluster's own API (kubeconfig from the Terraform outputs), as an operator would with kubectl.

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Api, Client};

/// The field manager the control plane applies with (the agent uses its own).
pub const FIELD_MANAGER: &str = "edgefleet-control-plane";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the cluster's kubeconfig is not usable: {0}")]
    Kubeconfig(String),
    #[error("the install manifest is invalid: {0}")]
    Manifest(String),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub async fn client_for(kubeconfig_yaml: &str) -> Result<Client, InstallError> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml)
        .map_err(|e| InstallError::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| InstallError::Kubeconfig(e.to_string()))?;
    Client::try_from(config).map_err(|e| InstallError::Kubeconfig(e.to_string()))
}

/// Parses every document first (the YAML parser cannot live across an await), then applies them in order;
/// returns `kind/name` of each applied object.
pub async fn apply_manifest(client: &Client, manifest: &str) -> Result<Vec<String>, InstallError> {
    let mut objects = Vec::new();
    for parsed in agent_protocol::manifest::parse(manifest)
        .map_err(|error| InstallError::Manifest(error.to_string()))?
    {
        let gvk = GroupVersionKind::gvk(&parsed.group, &parsed.version, &parsed.kind);
        let document = parsed.reference();
        let object: DynamicObject = serde_json::from_value(parsed.object)
            .map_err(|error| InstallError::Manifest(format!("{document}: {error}")))?;
        objects.push((gvk, object));
    }
    let mut applied = Vec::new();
    for (gvk, object) in objects {
        let name = object.metadata.name.clone().unwrap_or_default();
        let apply_error = |source| InstallError::Apply {
            kind: gvk.kind.clone(),
            name: name.clone(),
            source,
        };
        let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
            .await
            .map_err(apply_error)?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = object
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                Api::namespaced_with(client.clone(), &namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(apply_error)?;
        applied.push(format!("{}/{}", gvk.kind, name));
    }
    Ok(applied)
}
