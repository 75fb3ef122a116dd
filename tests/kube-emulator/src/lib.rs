//! In-memory Kubernetes API server emulator for tests: serves the REST API over HTTP or HTTPS (token or
//! client-certificate auth), simulates workload controllers and pod logs, runs the containers of images mapped
//! to local binaries as host processes, and writes a kubeconfig for it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_emulator::StartError> {
//! let emulator = kube_emulator::Emulator::start(kube_emulator::Config::default()).await?;
//! println!("{} {}", emulator.url(), emulator.kubeconfig_yaml());
//! # Ok(()) }
//! ```

mod admission;
mod api;
mod apply;
mod controllers;
mod discovery;
mod error;
mod kubeconfig;
mod kubelet;
mod logs;
mod meta;
mod patch;
mod resources;
mod selectors;
mod server;
mod store;
mod tls;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use controllers::Settings;
pub use error::{ApiError, RunImageError, StartError};
pub use kubeconfig::{CERT_CONTEXT, CONTEXT};
pub use kubelet::RunImage;

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA (bearer token and client certificates accepted).
    pub tls: bool,
    /// Bearer token to require; generated in HTTPS mode when `None`. Plain HTTP without a token is open.
    pub token: Option<String>,
    /// Where to write the kubeconfig, if anywhere.
    pub kubeconfig_path: Option<PathBuf>,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// Simulated cluster behaviour.
    pub cluster: Settings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: None,
            kubeconfig_path: None,
            watch_history: 10_000,
            cluster: Settings {
                ready_delay: Duration::from_millis(300),
                never_ready_marker: "never-ready".into(),
                nodes: 1,
                run_images: Vec::new(),
                restart_backoff: Duration::from_secs(1),
            },
        }
    }
}

/// A running emulator; dropping it stops the server, its connections and the controllers, and kills the
/// processes of run images at once ([`Emulator::shutdown`] gives them their grace period).
pub struct Emulator {
    url: String,
    kubeconfig: String,
    kubeconfig_path: Option<PathBuf>,
    token: Option<String>,
    state: Arc<server::AppState>,
    kubelet: Option<Arc<kubelet::Kubelet>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds, bootstraps the cluster (namespaces, nodes), starts serving and writes the kubeconfig.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if local.is_ipv6() {
            format!("[{}]", local.ip())
        } else {
            local.ip().to_string()
        };
        let server_address = format!("{host}:{}", local.port());

        let store = Arc::new(store::Store::new(config.watch_history));
        let api = Arc::new(api::Api::new(store.clone()));
        let logs = Arc::new(logs::LogStore::default());

        let tls = if config.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let token = match (&config.token, config.tls) {
            (Some(token), _) => Some(token.clone()),
            (None, true) => Some(uuid::Uuid::new_v4().simple().to_string()),
            (None, false) => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{server_address}");
        let kubeconfig = kubeconfig::render(&kubeconfig::Credentials {
            server: &url,
            ca_pem: tls.as_ref().map(|t| t.ca_pem.as_str()),
            token: token.as_deref(),
            client_cert: tls
                .as_ref()
                .map(|t| (t.client_cert_pem.as_str(), t.client_key_pem.as_str())),
        })?;
        if let Some(path) = &config.kubeconfig_path {
            std::fs::write(path, &kubeconfig).map_err(|source| StartError::Write {
                path: path.clone(),
                source,
            })?;
        }
        let kubelet = if config.cluster.run_images.is_empty() {
            None
        } else {
            Some(Arc::new(kubelet::Kubelet::new(
                api.clone(),
                logs.clone(),
                &config.cluster,
                &kubeconfig,
            )?))
        };
        let controllers =
            controllers::Controllers::new(api.clone(), config.cluster.clone(), kubelet.clone());
        controllers
            .bootstrap(local.port())
            .expect("bootstrapping an empty store cannot fail");

        let state = Arc::new(server::AppState {
            api: api.clone(),
            logs: logs.clone(),
            token: token.clone(),
            server_address,
        });
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config));
        let tasks = vec![
            tokio::spawn(server::serve(listener, acceptor, state.clone())),
            tokio::spawn(controllers.run()),
            tokio::spawn(logs.clone().forget_deleted_pods(store)),
        ];
        tracing::info!(%url, "kube-emulator listening");
        Ok(Self {
            url,
            kubeconfig,
            kubeconfig_path: config.kubeconfig_path,
            token,
            state,
            kubelet,
            tasks,
        })
    }

    /// Base URL, e.g. `https://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig (also written to [`Config::kubeconfig_path`] when set).
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig
    }

    pub fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig_path.as_deref()
    }

    /// The bearer token clients must send, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Appends lines (one per line of `text`) to a pod container's log, like the test-only HTTP endpoint.
    /// `container` may be omitted for single-container pods.
    pub fn append_log(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        text: &str,
    ) -> Result<(), ApiError> {
        self.state.append_log(namespace, pod, container, text)
    }

    /// Ends the pod's open `follow` log reads, as a container restart does.
    pub fn end_log_streams(&self, namespace: &str, pod: &str) -> Result<(), ApiError> {
        self.state.end_log_streams(namespace, pod)
    }

    /// Stops the processes of run images with SIGTERM and their pods' grace periods (SIGKILL after it), waits
    /// until they are gone, then stops the emulator.
    pub async fn shutdown(self) {
        if let Some(kubelet) = &self.kubelet {
            kubelet.shutdown().await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
