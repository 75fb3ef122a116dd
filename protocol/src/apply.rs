//! Server-side apply of a whole manifest through a Kubernetes client, as `kubectl apply --server-side` does: the
//! control plane installs the agent on a cluster it provisioned with it, and the CLI's `clusters join` on the
//! current kubeconfig context. (The agent's own task apply adds policy, pruning and per-object results on top.)

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum ApplyManifestError {
    #[error("the manifest is invalid: {0}")]
    Manifest(String),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Parses every document first, so an invalid one changes nothing, then applies them in order as
/// `field_manager`, taking over conflicting fields; returns `Kind/name` of each applied object.
pub async fn apply_manifest(
    client: &Client,
    manifest: &str,
    field_manager: &str,
) -> Result<Vec<String>, ApplyManifestError> {
    let mut objects = Vec::new();
    for parsed in crate::manifest::parse(manifest)
        .map_err(|error| ApplyManifestError::Manifest(error.to_string()))?
    {
        let gvk = GroupVersionKind::gvk(&parsed.group, &parsed.version, &parsed.kind);
        let document = parsed.reference();
        let object: DynamicObject = serde_json::from_value(parsed.object)
            .map_err(|error| ApplyManifestError::Manifest(format!("{document}: {error}")))?;
        objects.push((gvk, object));
    }
    let mut applied = Vec::new();
    for (gvk, object) in objects {
        let name = object.metadata.name.clone().unwrap_or_default();
        let apply_error = |source| ApplyManifestError::Apply {
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
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(apply_error)?;
        applied.push(format!("{}/{}", gvk.kind, name));
    }
    Ok(applied)
}
