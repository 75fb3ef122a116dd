//! Secret and ConfigMap contents as a run container sees them, for env references and volumes.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;

use super::ConfigError;
use crate::api::Api;
use crate::resources::ResourceInfo;

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Secret,
    ConfigMap,
}

impl Source {
    /// The resource name the kubelet uses in "not found" messages (`secret "x" not found`).
    pub fn resource(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configmap",
        }
    }

    /// The kind the kubelet uses in missing-key messages (`couldn't find key k in Secret ns/x`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        }
    }
}

/// Decoded keys of a Secret or ConfigMap.
pub type Data = BTreeMap<String, Vec<u8>>;

/// Reads Secrets and ConfigMaps from the store.
pub struct Objects {
    api: Arc<Api>,
    secrets: Arc<ResourceInfo>,
    config_maps: Arc<ResourceInfo>,
}

impl Objects {
    pub fn new(api: Arc<Api>) -> Self {
        let find = |plural: &str| api.resource("", "v1", plural).expect("built-in kind");
        Self {
            secrets: find("secrets"),
            config_maps: find("configmaps"),
            api,
        }
    }

    /// The keys of a Secret (`data`, base64) or ConfigMap (`data` and base64 `binaryData`); a missing object is
    /// empty when `optional`, else an error.
    pub fn data(
        &self,
        source: Source,
        namespace: &str,
        name: &str,
        optional: bool,
    ) -> Result<Data, ConfigError> {
        let res = match source {
            Source::Secret => &self.secrets,
            Source::ConfigMap => &self.config_maps,
        };
        let object = match self.api.get(res, namespace, name) {
            Ok(object) => object,
            Err(_) if optional => return Ok(Data::new()),
            Err(_) => {
                return Err(ConfigError::NotFound {
                    object: source,
                    name: name.to_string(),
                });
            }
        };
        let entries = |field: &str| {
            object[field]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?)))
                .collect::<Vec<_>>()
        };
        // Admission only stores valid base64, so nothing is lost by skipping values that do not decode.
        let decoded = |field: &str| {
            entries(field).into_iter().filter_map(|(key, value)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .ok()?;
                Some((key, bytes))
            })
        };
        let data = match source {
            Source::Secret => decoded("data").collect(),
            Source::ConfigMap => entries("data")
                .into_iter()
                .map(|(key, value)| (key, value.as_bytes().to_vec()))
                .chain(decoded("binaryData"))
                .collect(),
        };
        Ok(data)
    }
}
