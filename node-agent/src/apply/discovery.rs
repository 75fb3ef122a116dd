//! Resolves a manifest's kinds to API resources, caching each group/version and refreshing it on an unknown kind.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{ApiResource, GroupVersionKind};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiGroup};

/// Discovery results shared by all tasks; a group/version is fetched once and again only when a kind is missing
/// from it (a CRD applied since, possibly earlier in the same task).
pub struct DiscoveryCache {
    client: kube::Client,
    groups: Mutex<HashMap<String, ApiGroup>>,
}

impl DiscoveryCache {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok(None)` when the API server does not serve the kind.
    pub async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, kube::Error> {
        let api_version = gvk.api_version();
        if let Some(found) = self.cached(&api_version, &gvk.kind) {
            return Ok(Some(found));
        }
        let group_version = GroupVersion::gv(&gvk.group, &gvk.version);
        let group = match kube::discovery::pinned_group(&self.client, &group_version).await {
            Ok(group) => group,
            // The whole group/version is not served (yet): the kind is unknown, not an error of the call.
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(err) => return Err(err),
        };
        let found = group.recommended_kind(&gvk.kind);
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(api_version, group);
        Ok(found)
    }

    fn cached(&self, api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        groups
            .get(api_version)
            .and_then(|group| group.recommended_kind(kind))
    }
}
