//! A real Kubernetes cluster for a test: the workspace's `kube-cluster` binary (etcd, kube-apiserver,
//! controller-manager, scheduler and simulated nodes) as a child process of the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::{Process, test_dir, workspace_bin};

/// A cold start takes a few seconds; on a machine busy with other tests' clusters and builds, far more.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running cluster, stopped (with everything in it) when dropped.
pub struct KubeCluster {
    pub process: Process,
    url: String,
    kubeconfig: PathBuf,
    state_dir: PathBuf,
}

impl KubeCluster {
    /// Starts a cluster named `name` (its files go to `<test dir>/<name>/`), with `extra_args` for
    /// `kube-cluster` (e.g. `--nodes 2`, `--run-image prefix=path`).
    pub async fn start(name: &str, extra_args: &[String]) -> anyhow::Result<Self> {
        let state_dir = test_dir().join(name);
        let kubeconfig = state_dir.join("kubeconfig");
        let mut command = Command::new(workspace_bin("kube-cluster")?);
        command
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra_args);
        let mut process = Process::spawn(name, command)?;
        let line = process
            .wait_for_line("listening on ", START_TIMEOUT)
            .await?;
        let url = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .context("kube-cluster printed no URL")?
            .to_string();
        Ok(Self {
            process,
            url,
            kubeconfig,
            state_dir,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn kubeconfig_yaml(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))
    }

    /// Certificates, component logs (`logs/`) and pod directories (`pods/`).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}
