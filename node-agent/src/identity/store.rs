//! Where the agent keeps its key and certificates: a directory outside a cluster, a pre-created Secret inside one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use thiserror::Error;

use agent_protocol::signing::PinnedKeys;

use super::{Credentials, IdentityError};
use crate::config::StateLocation;

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";
const CA_FILE: &str = "ca.pem";
const TASK_KEYS_FILE: &str = "task-keys";
const SECRET_KEY: &str = "tls.key";
const SECRET_CERT: &str = "tls.crt";
const SECRET_CA: &str = "ca.crt";
const SECRET_TASK_KEYS: &str = "task-keys";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("credential store {store}: cannot read {path}: {source}")]
    ReadFile {
        store: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential store {store}: cannot write {path}: {source}")]
    WriteFile {
        store: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "credential store {store}: the Secret does not exist; the install manifest must create it (empty) because the agent may only get/update/patch it"
    )]
    SecretMissing { store: String },
    #[error("credential store {store}: Kubernetes API call failed: {source}")]
    Kube {
        store: String,
        #[source]
        source: kube::Error,
    },
    #[error("credential store {store}: key {key:?} is not UTF-8 PEM")]
    NotUtf8 { store: String, key: &'static str },
    #[error("credential store {store}: stored credentials are unusable: {source}")]
    Unusable {
        store: String,
        #[source]
        source: IdentityError,
    },
}

/// Key, certificate and CA (a store holds all three or none), and the pinned task keys.
type StoredParts = (String, String, String, Option<String>);

/// The credential store chosen by configuration.
#[derive(Clone)]
pub enum CredentialStore {
    Directory(PathBuf),
    Secret {
        api: Box<Api<Secret>>,
        namespace: String,
        name: String,
    },
}

impl fmt::Display for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "directory {}", dir.display()),
            Self::Secret {
                namespace, name, ..
            } => write!(f, "secret {namespace}/{name}"),
        }
    }
}

impl StoreError {
    /// I/O and API trouble can pass; a missing Secret or corrupt contents need an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::ReadFile { .. } | Self::WriteFile { .. } | Self::Kube { .. }
        )
    }
}

impl CredentialStore {
    pub fn new(location: &StateLocation, client: kube::Client) -> Self {
        match location {
            StateLocation::Directory(dir) => Self::Directory(dir.clone()),
            StateLocation::Secret { namespace, name } => Self::Secret {
                api: Box::new(Api::namespaced(client, namespace)),
                namespace: namespace.clone(),
                name: name.clone(),
            },
        }
    }

    /// Reads the stored credentials; `Ok(None)` when the store is (still) empty.
    pub async fn load(&self) -> Result<Option<Credentials>, StoreError> {
        let parts = match self {
            Self::Directory(dir) => self.read_dir(dir)?,
            Self::Secret { api, name, .. } => self.read_secret(api, name).await?,
        };
        let Some((key, cert, ca, task_keys)) = parts else {
            return Ok(None);
        };
        let unusable = |source| StoreError::Unusable {
            store: self.to_string(),
            source,
        };
        // Credentials stored without pinned keys (by an agent from before signed tasks) cannot verify any task:
        // the agent needs a new bootstrap, and says so.
        let task_keys = PinnedKeys::from_text(task_keys.as_deref().unwrap_or_default())
            .map_err(|error| unusable(IdentityError::TaskKeys(error)))?;
        Credentials::from_pem(key, cert, ca, task_keys)
            .map(Some)
            .map_err(unusable)
    }

    /// Replaces the stored credentials.
    pub async fn save(&self, credentials: &Credentials) -> Result<(), StoreError> {
        match self {
            Self::Directory(dir) => self.write_dir(dir, credentials),
            Self::Secret { api, name, .. } => {
                let encode = |pem: &str| ByteString(pem.as_bytes().to_vec());
                let data = BTreeMap::from([
                    (SECRET_KEY, encode(credentials.key_pem())),
                    (SECRET_CERT, encode(credentials.cert_pem())),
                    (SECRET_CA, encode(credentials.ca_pem())),
                    (SECRET_TASK_KEYS, encode(&credentials.task_keys().to_text())),
                ]);
                // A merge patch on the existing Secret: RBAC grants patch on this one name but never create.
                let patch = Patch::Merge(json!({ "data": data }));
                match api.patch(name, &PatchParams::default(), &patch).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        Err(StoreError::SecretMissing {
                            store: self.to_string(),
                        })
                    }
                    Err(source) => Err(self.kube_error(source)),
                }
            }
        }
    }

    fn read_dir(&self, dir: &Path) -> Result<Option<StoredParts>, StoreError> {
        let read = |file: &str| {
            let path = dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(StoreError::ReadFile {
                    store: self.to_string(),
                    path,
                    source,
                }),
            }
        };
        match (read(KEY_FILE)?, read(CERT_FILE)?, read(CA_FILE)?) {
            (Some(key), Some(cert), Some(ca)) => Ok(Some((key, cert, ca, read(TASK_KEYS_FILE)?))),
            _ => Ok(None),
        }
    }

    /// Writes each file to a temporary name and renames it into place so a crash never leaves a truncated file;
    /// a crash between two renames leaves a key/certificate mismatch that `load` detects.
    fn write_dir(&self, dir: &Path, credentials: &Credentials) -> Result<(), StoreError> {
        let write_error = |path: &Path, source| StoreError::WriteFile {
            store: self.to_string(),
            path: path.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| write_error(dir, source))?;
        let task_keys = credentials.task_keys().to_text();
        for (file, contents, mode) in [
            (CA_FILE, credentials.ca_pem(), 0o644),
            (TASK_KEYS_FILE, task_keys.as_str(), 0o644),
            (CERT_FILE, credentials.cert_pem(), 0o644),
            (KEY_FILE, credentials.key_pem(), 0o600),
        ] {
            let path = dir.join(file);
            let temp = dir.join(format!(".{file}.tmp"));
            // Remove a leftover temp file so `mode` applies to a freshly created file.
            let _ = std::fs::remove_file(&temp);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&temp)
                .and_then(|mut out| {
                    out.write_all(contents.as_bytes())?;
                    out.sync_all()
                })
                .map_err(|source| write_error(&temp, source))?;
            std::fs::rename(&temp, &path).map_err(|source| write_error(&path, source))?;
        }
        Ok(())
    }

    async fn read_secret(
        &self,
        api: &Api<Secret>,
        name: &str,
    ) -> Result<Option<StoredParts>, StoreError> {
        let secret = api
            .get_opt(name)
            .await
            .map_err(|source| self.kube_error(source))?
            .ok_or_else(|| StoreError::SecretMissing {
                store: self.to_string(),
            })?;
        let data = secret.data.unwrap_or_default();
        let field = |key: &'static str| -> Result<Option<String>, StoreError> {
            match data.get(key) {
                Some(bytes) if !bytes.0.is_empty() => String::from_utf8(bytes.0.clone())
                    .map(Some)
                    .map_err(|_| StoreError::NotUtf8 {
                        store: self.to_string(),
                        key,
                    }),
                _ => Ok(None),
            }
        };
        match (field(SECRET_KEY)?, field(SECRET_CERT)?, field(SECRET_CA)?) {
            (Some(key), Some(cert), Some(ca)) => {
                Ok(Some((key, cert, ca, field(SECRET_TASK_KEYS)?)))
            }
            _ => Ok(None),
        }
    }

    fn kube_error(&self, source: kube::Error) -> StoreError {
        StoreError::Kube {
            store: self.to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeyRequest;
    use crate::identity::testing::{self, TestCa};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn unreachable_client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn credentials(cluster: &str) -> Credentials {
        let ca = TestCa::new();
        let request = KeyRequest::generate(None).unwrap();
        let cert = ca.sign(
            request.csr_pem(),
            cluster,
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        request
            .into_credentials(cert, ca.pem.clone(), testing::task_key().1)
            .unwrap()
    }

    #[tokio::test]
    async fn directory_store_round_trips_with_private_key_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = CredentialStore::new(
            &StateLocation::Directory(state.clone()),
            unreachable_client(),
        );
        assert!(store.load().await.unwrap().is_none());

        store.save(&credentials("first")).await.unwrap();
        let second = credentials("second");
        store.save(&second).await.unwrap();
        let loaded = store.load().await.unwrap().unwrap();
        assert_eq!(loaded.cluster_id(), "second");
        assert_eq!(loaded.task_keys(), second.task_keys());

        let mode = |file: &str| {
            std::fs::metadata(state.join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[tokio::test]
    async fn secret_store_updates_the_pre_created_secret_and_never_creates_it() {
        crate::transport::install_crypto_provider();
        let cluster = kube_cluster::Cluster::start(kube_cluster::Config::default())
            .await
            .unwrap();
        let client = cluster.client().await.unwrap();
        let location = StateLocation::Secret {
            namespace: "default".into(),
            name: "agent-identity".into(),
        };
        let store = CredentialStore::new(&location, client.clone());

        let missing = store.load().await.unwrap_err();
        assert!(
            matches!(missing, StoreError::SecretMissing { .. }),
            "{missing}"
        );
        assert!(
            missing
                .to_string()
                .contains("secret default/agent-identity"),
            "{missing}"
        );
        let err = store.save(&credentials("c0")).await.unwrap_err();
        assert!(
            matches!(err, StoreError::SecretMissing { .. }),
            "save does not create the Secret: {err}"
        );

        let secrets: Api<Secret> = Api::namespaced(client, "default");
        let empty = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("agent-identity".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        secrets
            .create(&kube::api::PostParams::default(), &empty)
            .await
            .unwrap();
        assert!(
            store.load().await.unwrap().is_none(),
            "an empty Secret holds no credentials"
        );

        let saved = credentials("c1");
        store.save(&saved).await.unwrap();
        assert_eq!(store.load().await.unwrap().unwrap().cluster_id(), "c1");
        let data = secrets.get("agent-identity").await.unwrap().data.unwrap();
        assert_eq!(data[SECRET_KEY].0, saved.key_pem().as_bytes());
        assert_eq!(data[SECRET_CERT].0, saved.cert_pem().as_bytes());
        assert_eq!(data[SECRET_CA].0, saved.ca_pem().as_bytes());
        assert_eq!(
            data[SECRET_TASK_KEYS].0,
            saved.task_keys().to_text().as_bytes()
        );
    }

    #[tokio::test]
    async fn credentials_without_pinned_task_keys_are_unusable_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(
            &StateLocation::Directory(dir.path().into()),
            unreachable_client(),
        );
        store.save(&credentials("c1")).await.unwrap();
        std::fs::remove_file(dir.path().join(TASK_KEYS_FILE)).unwrap();
        let err = store.load().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Unusable {
                    source: IdentityError::TaskKeys(_),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("task-signing keys"), "{err}");
    }

    #[tokio::test]
    async fn directory_store_detects_a_key_that_does_not_match_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(
            &StateLocation::Directory(dir.path().into()),
            unreachable_client(),
        );
        store.save(&credentials("c1")).await.unwrap();
        let other = credentials("c2");
        std::fs::write(dir.path().join(KEY_FILE), other.key_pem()).unwrap();
        let err = store.load().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Unusable {
                    source: IdentityError::KeyMismatch,
                    ..
                }
            ),
            "{err}"
        );
    }
}
