//! What a container's environment and volumes are made of, read from the API server as a kubelet reads it:
//! Secret and ConfigMap keys, and service-account tokens from the TokenRequest API.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::ConfigError;

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

/// The lifetime a kubelet asks for; the API server extends such tokens (`--service-account-extend-token-expiration`),
/// so processes of a long quick-start run keep working without a refresh.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Reads Secrets, ConfigMaps and tokens through the API server.
#[derive(Clone)]
pub struct Objects {
    client: kube::Client,
}

impl Objects {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// The keys of a Secret (`data`) or ConfigMap (`data` and `binaryData`); a missing object is empty when
    /// `optional`, else an error.
    pub async fn data(
        &self,
        source: Source,
        namespace: &str,
        name: &str,
        optional: bool,
    ) -> Result<Data, ConfigError> {
        let not_found = || ConfigError::NotFound {
            object: source,
            name: name.to_string(),
        };
        let data = match source {
            Source::Secret => {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                match api.get_opt(name).await.map_err(ConfigError::api)? {
                    Some(secret) => secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(key, value)| (key, value.0))
                        .collect(),
                    None if optional => Data::new(),
                    None => return Err(not_found()),
                }
            }
            Source::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
                match api.get_opt(name).await.map_err(ConfigError::api)? {
                    Some(map) => {
                        let text = map
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(key, value)| (key, value.into_bytes()));
                        let binary = map
                            .binary_data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(key, value)| (key, value.0));
                        text.chain(binary).collect()
                    }
                    None if optional => Data::new(),
                    None => return Err(not_found()),
                }
            }
        };
        Ok(data)
    }

    /// A token for the pod's service account, bound to the pod (TokenRequest), as the kubelet writes into the
    /// projected `serviceAccountToken` volume source.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        pod: (&str, &str),
        audience: Option<&str>,
        expiration_seconds: Option<i64>,
    ) -> Result<String, ConfigError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        // An empty audience list means the API server's own audience, as for the default token volume.
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": audience.map(|a| vec![a]).unwrap_or_default(),
                "expirationSeconds": expiration_seconds.unwrap_or(TOKEN_EXPIRATION_SECONDS),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.0, "uid": pod.1},
            },
        }))
        .expect("a valid TokenRequest");
        let response = api
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
            .map_err(ConfigError::api)?;
        response
            .status
            .and_then(|status| status.token)
            .ok_or_else(|| ConfigError::Invalid("the TokenRequest answer has no token".into()))
    }
}
