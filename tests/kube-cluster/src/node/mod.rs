//! The node simulator: the one part of the cluster that is not real, because there is no container runtime. It
//! registers Nodes and keeps their Leases and Ready condition fresh, drives the status of the pods the real
//! scheduler binds to them, runs containers of mapped images as local processes with real in-cluster
//! credentials, and serves the kubelet's log endpoint the API server proxies `pods/log` to.

mod launch;
mod logs;
mod nodes;
mod objects;
mod pods;
mod process;
mod server;
mod volumes;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use objects::Source;
pub use pods::ContainerControl;

use crate::Error;
use crate::pki::Pki;

/// How simulated nodes and pods behave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Number of Nodes (`node-1` ...).
    pub nodes: usize,
    /// From a container's creation until it runs and is ready (simulated containers).
    pub ready_delay: Duration,
    /// Containers whose image contains this run but never become ready.
    pub never_ready_marker: String,
    /// Images that run as local processes.
    pub run_images: Vec<RunImage>,
    /// First restart delay of an exited container; doubles up to 30 times this (the kubelet's 10 s to 5 min).
    pub restart_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nodes: 1,
            ready_delay: Duration::from_millis(300),
            never_ready_marker: "never-ready".into(),
            run_images: Vec::new(),
            restart_backoff: Duration::from_secs(1),
        }
    }
}

/// Containers whose image starts with `prefix` run as processes of `binary` on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunImage {
    pub prefix: String,
    pub binary: PathBuf,
}

impl FromStr for RunImage {
    type Err = Error;

    /// Parses `IMAGE_PREFIX=PATH` (the image prefix cannot contain `=`, the path can).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((prefix, binary)) if !prefix.is_empty() && !binary.is_empty() => Ok(Self {
                prefix: prefix.to_string(),
                binary: PathBuf::from(binary),
            }),
            _ => Err(Error::RunImage {
                value: text.to_string(),
                reason: "expected IMAGE_PREFIX=PATH".into(),
            }),
        }
    }
}

impl RunImage {
    /// Absolute (each process starts in its own working directory) and executable.
    fn checked(&self) -> Result<Self, Error> {
        let invalid = |reason: String| Error::RunImage {
            value: format!("{}={}", self.prefix, self.binary.display()),
            reason,
        };
        let binary = std::path::absolute(&self.binary).map_err(|e| invalid(e.to_string()))?;
        let metadata = std::fs::metadata(&binary).map_err(|e| invalid(e.to_string()))?;
        if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
            return Err(invalid("not an executable file".into()));
        }
        Ok(Self {
            prefix: self.prefix.clone(),
            binary,
        })
    }
}

/// Why a container cannot be started (yet); shown in its `waiting` state and retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{} \"{name}\" not found", object.resource())]
    NotFound { object: Source, name: String },
    #[error("couldn't find key {key} in {} {namespace}/{name}", object.kind())]
    MissingKey {
        object: Source,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("{0} is not supported by the node simulator")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    Mount {
        volume: String,
        source: Box<ConfigError>,
    },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API server: {0}")]
    Api(String),
}

impl ConfigError {
    fn api(error: kube::Error) -> Self {
        Self::Api(error.to_string())
    }

    /// The waiting reason a real kubelet shows: volume problems keep a container in `ContainerCreating`.
    fn reason(&self) -> &'static str {
        match self {
            Self::Mount { .. } | Self::Io { .. } | Self::Api(_) => "ContainerCreating",
            _ => "CreateContainerConfigError",
        }
    }
}

/// Field access on pods as JSON (the launch code works on the pod as the API serves it).
mod meta {
    use serde_json::Value;

    pub fn name(object: &Value) -> &str {
        object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(object: &Value) -> &str {
        object["metadata"]["namespace"].as_str().unwrap_or_default()
    }

    pub fn uid(object: &Value) -> &str {
        object["metadata"]["uid"].as_str().unwrap_or_default()
    }
}

/// The running simulator; dropping it stops the heartbeats and kills every process it runs.
pub struct NodeSimulator {
    kubelet: Arc<pods::Kubelet>,
    tasks: Vec<JoinHandle<()>>,
    /// The names of the simulated nodes.
    pub node_names: Vec<String>,
}

impl NodeSimulator {
    /// Serves the kubelet endpoint, registers the nodes and starts driving pods.
    pub async fn start(
        client: kube::Client,
        settings: &Settings,
        pki: &Pki,
        apiserver: SocketAddr,
        state_dir: &Path,
    ) -> Result<Self, Error> {
        let run_images = settings
            .run_images
            .iter()
            .map(RunImage::checked)
            .collect::<Result<Vec<_>, _>>()?;
        let pods_dir = state_dir.join("pods");
        crate::pki::create_private_dir(&pods_dir)?;
        let node_names: Vec<String> = (1..=settings.nodes).map(|i| format!("node-{i}")).collect();
        let kubelet = Arc::new(pods::Kubelet::new(
            client.clone(),
            settings.clone(),
            run_images,
            pods_dir,
            apiserver,
            node_names.clone(),
        ));
        let (port, server) = server::serve(kubelet.clone(), pki).await?;
        let mut tasks = vec![server];
        for name in &node_names {
            nodes::register(&client, name, port).await?;
        }
        tasks.push(tokio::spawn(nodes::heartbeat(
            client.clone(),
            node_names.clone(),
            port,
        )));
        tasks.push(tokio::spawn(pods::Kubelet::run(kubelet.clone())));
        Ok(Self {
            kubelet,
            tasks,
            node_names,
        })
    }

    /// Stops every container with its pod's grace period and waits until all are gone.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.kubelet.shutdown().await;
    }
}

impl Drop for NodeSimulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.kubelet.abort_all();
    }
}
