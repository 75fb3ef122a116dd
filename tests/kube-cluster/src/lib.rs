//! A real Kubernetes control plane on loopback for tests and the local quick start: etcd, kube-apiserver (RBAC
//! and Node authorization, the default admission plugins plus NodeRestriction), kube-controller-manager and
//! kube-scheduler, built from their Go modules by `scripts/build-kube.sh`; plus the node simulator, which
//! stands in for the kubelet and container runtime (see [`node`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), kube_cluster::Error> {
//! let cluster = kube_cluster::Cluster::start(kube_cluster::Config::default()).await?;
//! let client = cluster.client().await?; // the admin (system:masters)
//! println!("{} ready in {:?}", cluster.url(), cluster.started_in());
//! cluster.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod components;
mod kubeconfig;
pub mod node;
mod pki;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::Api;
use tokio::time::Instant;

pub use components::Binaries;
pub use node::{ContainerControl, RunImage, Settings};

/// Environment variable naming the directory with the Go binaries (what `scripts/build-kube.sh` prints).
pub const BIN_DIR_ENV: &str = "EDGEFLEET_KUBE_BIN_DIR";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} is missing: run scripts/build-kube.sh (or point {BIN_DIR_ENV} at its output)", .0.display())]
    MissingBinary(PathBuf),
    #[error("scripts/build-kube.sh failed: {0}")]
    Build(String),
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited during start-up ({status}); the end of {}:\n{tail}", log.display())]
    Exited {
        name: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{what} not ready in time; last: {last}")]
    NotReady { what: String, last: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind the kubelet endpoint: {source}")]
    Bind { source: std::io::Error },
    #[error("kubelet TLS: {0}")]
    Tls(String),
    #[error("--run-image {value}: {reason}")]
    RunImage { value: String, reason: String },
    #[error("--listen {0}: expected IP:PORT")]
    Listen(String),
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        source: kube::Error,
    },
}

impl Error {
    fn kube(what: &'static str, source: kube::Error) -> Self {
        Self::Kube { what, source }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the API server listens; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Certificates, etcd data, component logs and pod directories; a fresh temporary directory (removed with
    /// the cluster) when `None`.
    pub state_dir: Option<PathBuf>,
    /// Also write the admin kubeconfig here.
    pub kubeconfig_path: Option<PathBuf>,
    /// The Go binaries; `$EDGEFLEET_KUBE_BIN_DIR`, else what `scripts/build-kube.sh` builds or finds cached.
    pub binaries: Option<Binaries>,
    pub nodes: Settings,
    /// Start-up limit (a cold API server takes a few seconds; more on a loaded machine).
    pub start_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            kubeconfig_path: None,
            binaries: None,
            nodes: Settings::default(),
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// A running cluster. Dropping it kills every process at once; [`Cluster::shutdown`] stops them in order.
pub struct Cluster {
    url: String,
    kubeconfig_yaml: String,
    state_dir: PathBuf,
    started_in: Duration,
    // Declared before the control plane: pods stop before the API server goes.
    nodes: Option<node::NodeSimulator>,
    control_plane: Option<components::ControlPlane>,
    _temp: Option<tempfile::TempDir>,
}

impl Cluster {
    pub async fn start(config: Config) -> Result<Self, Error> {
        let started = Instant::now();
        let deadline = started + config.start_timeout;
        let (state_dir, temp) = match &config.state_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("kube-cluster-")
                    .tempdir()
                    .map_err(|source| Error::Write {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        pki::create_private_dir(&state_dir)?;
        let binaries = match config.binaries.clone() {
            Some(binaries) => binaries,
            None => locate_binaries().await?,
        };
        let pki = pki::Pki::generate(&state_dir.join("pki"))?;
        let mut address = config.listen;
        if address.port() == 0 {
            address.set_port(harness::free_port());
        }
        let url = format!("https://{address}");
        let kubeconfig_yaml = kubeconfig::render(&url, &pki.ca_pem, "kube-cluster", &pki.admin);
        if let Some(path) = &config.kubeconfig_path {
            pki::write(path, kubeconfig_yaml.as_bytes(), 0o600)?;
        }
        let admin = kubeconfig::client(&kubeconfig_yaml).await?;
        let layout = components::Layout {
            state_dir: &state_dir,
            apiserver_address: address,
            binaries: &binaries,
            pki: &pki,
            client: &admin,
        };
        let mut control_plane =
            components::start(layout, deadline.saturating_duration_since(Instant::now())).await?;
        let simulator_config =
            kubeconfig::render(&url, &pki.ca_pem, "kube-cluster", &pki.node_simulator);
        let simulator_client = kubeconfig::client(&simulator_config).await?;
        let nodes =
            node::NodeSimulator::start(simulator_client, &config.nodes, &pki, address, &state_dir)
                .await?;
        wait_for_controllers(&admin, &mut control_plane, deadline).await?;
        let started_in = started.elapsed();
        tracing::info!(%url, ?started_in, "cluster ready");
        Ok(Self {
            url,
            kubeconfig_yaml,
            state_dir,
            started_in,
            nodes: Some(nodes),
            control_plane: Some(control_plane),
            _temp: temp,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig_yaml
    }

    /// A client with the admin identity.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        kubeconfig::client(&self.kubeconfig_yaml).await
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// From `start` until the API server was ready, nodes registered and the controllers working.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Stops pods with their grace periods, then the scheduler, controller-manager, API server and etcd.
    pub async fn shutdown(mut self) {
        if let Some(nodes) = self.nodes.take() {
            nodes.shutdown().await;
        }
        if let Some(control_plane) = self.control_plane.take() {
            control_plane.stop().await;
        }
    }
}

/// The Go binaries from `$EDGEFLEET_KUBE_BIN_DIR`, else from `scripts/build-kube.sh` (which builds them on first
/// use and prints where they are).
pub async fn locate_binaries() -> Result<Binaries, Error> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(Binaries { dir: dir.into() });
    }
    let script = harness::workspace_root().join("scripts/build-kube.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| Error::Build(format!("cannot run {}: {e}", script.display())))?;
    if !output.status.success() {
        return Err(Error::Build(format!("exit {}", output.status)));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok(Binaries { dir: dir.into() })
}

/// Waits until the controller-manager works: the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap
/// exist in `default`, which every pod's token volume needs.
async fn wait_for_controllers(
    client: &kube::Client,
    control_plane: &mut components::ControlPlane,
    deadline: Instant,
) -> Result<(), Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    loop {
        components::check_running(control_plane)?;
        let account = accounts.get_opt("default").await?;
        let root_ca = maps.get_opt("kube-root-ca.crt").await?;
        if account.is_some() && root_ca.is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                what: "controller-manager (default ServiceAccount and kube-root-ca.crt)".into(),
                last: format!(
                    "ServiceAccount: {}, ConfigMap: {}",
                    account.is_some(),
                    root_ca.is_some()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
