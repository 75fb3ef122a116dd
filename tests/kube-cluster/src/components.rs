//! The real control-plane processes: etcd, kube-apiserver, kube-controller-manager and kube-scheduler, each
//! started with the flags a kubeadm-style cluster uses (RBAC and Node authorization, the default admission
//! plugins plus NodeRestriction, service-account token signing), logging to `<state dir>/logs/<name>.log`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;
use crate::kubeconfig;
use crate::pki::Pki;

/// The service range; its first address is [`crate::pki::KUBERNETES_SERVICE_IP`].
const SERVICE_CIDR: &str = "10.96.0.0/16";
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Where the Go binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    fn path(&self, name: &str) -> Result<PathBuf, Error> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingBinary(path))
        }
    }
}

/// One running control-plane process; killed when dropped, and by the kernel when this process dies.
pub struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Component {
    fn spawn(
        name: &'static str,
        binary: PathBuf,
        args: Vec<String>,
        logs: &Path,
    ) -> Result<Self, Error> {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).map_err(|source| Error::Write {
            path: log.clone(),
            source,
        })?;
        let mut command = Command::new(&binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(|source| Error::Write {
                path: log.clone(),
                source,
            })?)
            .stderr(file)
            .process_group(0);
        let child =
            harness::spawn_tied_to_this_process(command, libc::SIGKILL).map_err(|source| {
                Error::Spawn {
                    binary: binary.clone(),
                    source,
                }
            })?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Self { name, child, log })
    }

    /// Fails with the end of the log when the process has exited.
    fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                name: self.name,
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail(&self.log),
            }),
            Err(source) => Err(Error::Spawn {
                binary: self.name.into(),
                source,
            }),
        }
    }

    /// SIGTERM, then SIGKILL when it outlives the grace period.
    pub async fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill only sends a signal.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(name = self.name, "ignored SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The running control plane, in start order.
pub struct ControlPlane {
    pub etcd: Component,
    pub apiserver: Component,
    pub controller_manager: Component,
    pub scheduler: Component,
}

impl ControlPlane {
    /// Stops everything, newest first, so the API server never runs without etcd.
    pub async fn stop(self) {
        self.scheduler.stop().await;
        self.controller_manager.stop().await;
        self.apiserver.stop().await;
        self.etcd.stop().await;
    }
}

/// Ports and paths of one control plane.
pub struct Layout<'a> {
    pub state_dir: &'a Path,
    pub apiserver_address: std::net::SocketAddr,
    pub binaries: &'a Binaries,
    pub pki: &'a Pki,
    /// The admin client, for readiness checks.
    pub client: &'a kube::Client,
}

/// Starts etcd and the API server, waits until the API server is ready, then starts the controller-manager
/// and the scheduler with kubeconfigs of their own identities.
pub async fn start(layout: Layout<'_>, timeout: Duration) -> Result<ControlPlane, Error> {
    let deadline = Instant::now() + timeout;
    let logs = layout.state_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| Error::Write {
        path: logs.clone(),
        source,
    })?;
    let pki = layout.pki;
    let (client_port, peer_port) = (harness::free_port(), harness::free_port());
    let etcd_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Component::spawn(
        "etcd",
        layout.binaries.path("etcd")?,
        vec![
            "--name=kube-cluster".into(),
            format!("--data-dir={}", layout.state_dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=kube-cluster={peer_url}"),
            // A test cluster's data is thrown away with it; fsync only costs time.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ],
        &logs,
    )?;

    let address = layout.apiserver_address;
    let file = |path: &Path| path.display().to_string();
    let mut apiserver = Component::spawn(
        "kube-apiserver",
        layout.binaries.path("kube-apiserver")?,
        vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--bind-address={}", address.ip()),
            format!("--advertise-address={}", address.ip()),
            // The `kubernetes` Service's endpoints may not be loopback; nothing routes to them here anyway
            // (no kube-proxy): pods reach the API server at its own address.
            "--endpoint-reconciler-type=none".into(),
            format!("--secure-port={}", address.port()),
            format!(
                "--cert-dir={}",
                layout.state_dir.join("apiserver").display()
            ),
            format!("--tls-cert-file={}", file(&pki.apiserver.cert_file)),
            format!("--tls-private-key-file={}", file(&pki.apiserver.key_file)),
            format!("--client-ca-file={}", file(&pki.ca_file)),
            "--authorization-mode=Node,RBAC".into(),
            // On top of the defaults (NamespaceLifecycle, ServiceAccount, PodSecurity, ResourceQuota, ...).
            "--enable-admission-plugins=NodeRestriction".into(),
            "--allow-privileged=true".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--service-account-key-file={}",
                file(&pki.service_account_public_key_file)
            ),
            format!(
                "--service-account-signing-key-file={}",
                file(&pki.service_account_key_file)
            ),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            format!(
                "--kubelet-client-certificate={}",
                file(&pki.apiserver_kubelet_client.cert_file)
            ),
            format!(
                "--kubelet-client-key={}",
                file(&pki.apiserver_kubelet_client.key_file)
            ),
            format!("--kubelet-certificate-authority={}", file(&pki.ca_file)),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--profiling=false".into(),
        ],
        &logs,
    )?;

    wait_ready(layout.client, &mut [&mut etcd, &mut apiserver], deadline).await?;

    let component_kubeconfig = |name: &str, pair: &crate::pki::Pair| -> Result<String, Error> {
        let path = layout.state_dir.join(format!("{name}.kubeconfig"));
        let yaml = kubeconfig::render(&format!("https://{address}"), &pki.ca_pem, name, pair);
        crate::pki::write(&path, yaml.as_bytes(), 0o600)?;
        Ok(file(&path))
    };
    let controller_manager = Component::spawn(
        "kube-controller-manager",
        layout.binaries.path("kube-controller-manager")?,
        vec![
            format!(
                "--kubeconfig={}",
                component_kubeconfig("controller-manager", &pki.controller_manager)?
            ),
            // Serves nothing: nobody scrapes it, and a port per cluster would only be one more to collide.
            "--secure-port=0".into(),
            "--leader-elect=false".into(),
            "--use-service-account-credentials=true".into(),
            format!(
                "--service-account-private-key-file={}",
                file(&pki.service_account_key_file)
            ),
            format!("--root-ca-file={}", file(&pki.ca_file)),
            format!("--cluster-signing-cert-file={}", file(&pki.ca_file)),
            format!("--cluster-signing-key-file={}", file(&pki.ca_key_file)),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--profiling=false".into(),
        ],
        &logs,
    )?;
    let scheduler = Component::spawn(
        "kube-scheduler",
        layout.binaries.path("kube-scheduler")?,
        vec![
            format!(
                "--kubeconfig={}",
                component_kubeconfig("scheduler", &pki.scheduler)?
            ),
            "--secure-port=0".into(),
            "--leader-elect=false".into(),
            "--profiling=false".into(),
        ],
        &logs,
    )?;
    Ok(ControlPlane {
        etcd,
        apiserver,
        controller_manager,
        scheduler,
    })
}

/// Polls `/readyz` until the API server answers `ok`, failing early when a process exits.
async fn wait_ready(
    client: &kube::Client,
    processes: &mut [&mut Component],
    deadline: Instant,
) -> Result<(), Error> {
    loop {
        for process in processes.iter_mut() {
            process.check_running()?;
        }
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a static request");
        let last = match client.request_text(request).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => body,
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                what: "kube-apiserver /readyz".into(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that every process is still running (after start-up, while waiting for nodes).
pub fn check_running(control_plane: &mut ControlPlane) -> Result<(), Error> {
    control_plane.etcd.check_running()?;
    control_plane.apiserver.check_running()?;
    control_plane.controller_manager.check_running()?;
    control_plane.scheduler.check_running()
}
