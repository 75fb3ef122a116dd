//! Secret and ConfigMap contents as a run container sees them, for env references and volumes.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

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
        let text = |v: &Value| v.as_str().map(|s| s.as_bytes().to_vec());
        // Admission only stores valid base64, so a value that does not decode cannot occur.
        let base64 = |v: &Value| {
            v.as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        };
        let fields: &[(&str, &dyn Fn(&Value) -> Option<Vec<u8>>)] = match source {
            Source::Secret => &[("data", &base64)],
            Source::ConfigMap => &[("data", &text), ("binaryData", &base64)],
        };
        let mut data = Data::new();
        for (field, decode) in fields {
            for (key, value) in object[*field].as_object().into_iter().flatten() {
                if let Some(bytes) = decode(value) {
                    data.insert(key.clone(), bytes);
                }
            }
        }
        Ok(data)
    }
}
