//! A local stack of real processes: private PostgreSQL and ClickHouse, a real Kubernetes cluster (`kube-cluster`:
//! the real control plane with simulated nodes; or a given kubeconfig), the control plane, and agents bootstrapped
//! through the real token flow.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use harness::{ClickHouse, KubeCluster, LinkProfile, Postgres, Process, Region, Relay, Wan};
use rand::RngCore;
use serde_json::{Value, json};

use crate::api::{Api, field};

#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Short leases make redelivery after an agent crash quick in tests.
    pub lease_seconds: u64,
    pub heartbeat_seconds: u32,
    pub poll_interval_ms: u64,
    pub certificate_ttl_seconds: u64,
    /// How long a renewed certificate keeps working.
    pub renewal_overlap_seconds: u64,
    /// How long after expiry an agent may recover its certificate with its key.
    pub recovery_grace_seconds: u64,
    /// Delay before simulated containers run and are ready.
    pub ready_delay_ms: u64,
    /// Use this cluster instead of starting one.
    pub kubeconfig: Option<PathBuf>,
    /// Start a cluster as the stack's own (clusters provisioned through Terraform bring their own).
    pub cluster: bool,
    /// Where process logs and files go; defaults to the harness's per-test directory.
    pub dir: Option<PathBuf>,
    /// A fixed REST API port (the quick start uses 8080); a free port by default.
    pub api_port: Option<u16>,
    /// Extra environment for every `node-agent` the stack starts (e.g. `EDGEFLEET_RENEW_CHECK_INTERVAL`).
    pub agent_env: Vec<(String, String)>,
    /// Image templates folder for the control plane to load at start.
    pub templates_dir: Option<PathBuf>,
    /// Enable Terraform provisioning: state in the harness's S3 server, the repository's stacks and modules,
    /// and `local` clusters that run agent pods as processes (`kube-cluster --run-image`).
    pub provisioning: bool,
    /// Merged into the provisioning configuration as a JSON merge patch (objects merge, other values
    /// replace), e.g. `allow_development_stacks` or `stack_defaults.local.state_dir`.
    pub provisioning_overrides: serde_json::Map<String, Value>,
    /// Export traces from the control plane and every agent the stack starts to this OTLP/HTTP endpoint.
    pub otlp_endpoint: Option<String>,
    /// How often the control plane samples the fleet for the console's charts.
    pub fleet_sample_seconds: u32,
    /// Put a [`Relay`] between the control plane and ClickHouse (`Stack::clickhouse_relay`), to cut it.
    pub clickhouse_relay: bool,
    /// Put a [`Relay`] between agents and the control plane's agent port (`Stack::agent_relay`), to cut them off.
    pub agent_relay: bool,
    /// Run agents in a region (a network namespace, `Stack::region`) whose link to the control plane has this
    /// latency, jitter and loss; the cluster's API server stays local to the region.
    pub wan_region: Option<LinkProfile>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            lease_seconds: 5,
            heartbeat_seconds: 1,
            poll_interval_ms: 500,
            certificate_ttl_seconds: 24 * 3600,
            renewal_overlap_seconds: 300,
            recovery_grace_seconds: 30 * 24 * 3600,
            ready_delay_ms: 300,
            kubeconfig: None,
            cluster: true,
            dir: None,
            api_port: None,
            agent_env: Vec::new(),
            provisioning: false,
            provisioning_overrides: serde_json::Map::new(),
            templates_dir: None,
            otlp_endpoint: None,
            fleet_sample_seconds: 60,
            clickhouse_relay: false,
            agent_relay: false,
            wan_region: None,
        }
    }
}

impl StackOptions {
    /// Loads the repository's image templates (`images/templates`), as demos need.
    pub fn with_templates(self) -> Self {
        Self {
            templates_dir: Some(harness::workspace_root().join("images/templates")),
            ..self
        }
    }
}

pub struct Stack {
    pub api: Api,
    pub admin_token: String,
    /// The console user `admin`'s password.
    pub admin_password: String,
    pub console_url: String,
    pub agent_endpoint: String,
    pub postgres: &'static Postgres,
    pub database_url: String,
    pub clickhouse: &'static ClickHouse,
    pub clickhouse_database: String,
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    pub control_plane: Process,
    /// The stack's own cluster, when it started one.
    pub cluster: Option<KubeCluster>,
    /// Between the control plane and ClickHouse, when asked for.
    pub clickhouse_relay: Option<Relay>,
    /// Between agents and the control plane, when asked for; `agent_endpoint` is its address then.
    pub agent_relay: Option<Relay>,
    /// With `StackOptions::wan_region`: the emulated WAN, holding the region [`Stack::region`].
    pub wan: Option<Wan>,
    /// Relays that make the region's own services (its API server) local to it; they live with the stack.
    _region_services: Vec<Relay>,
    agent_env: Vec<(String, String)>,
    config: Value,
    config_path: PathBuf,
}

/// A second control-plane process on the same database (and CA, key and admin token).
pub struct PeerControlPlane {
    pub process: Process,
    pub api: Api,
    pub agent_endpoint: String,
    /// Where its agent port listens, for a balancer in front of several replicas.
    pub agent_addr: SocketAddr,
}

/// Where an agent keeps its key and certificate.
#[derive(Debug, Clone, Copy)]
pub enum AgentState<'a> {
    /// A directory, as outside a cluster.
    Dir(&'a Path),
    /// A Kubernetes Secret `namespace/name`, as in a cluster (the install manifest creates it).
    Secret(&'a str),
}

/// The cloud account, region and cluster a test registered.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    pub cloud_id: String,
    pub region_id: String,
    pub cluster_id: String,
    pub name: String,
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let dir = options.dir.clone().unwrap_or_else(harness::test_dir);
        std::fs::create_dir_all(&dir)?;
        let (postgres, clickhouse) = harness::postgres_and_clickhouse();
        let database_url = postgres.create_database("control_plane");
        let clickhouse_database = clickhouse.create_database("logs");

        let (cluster, kubeconfig) = match &options.kubeconfig {
            Some(path) => (None, path.clone()),
            None if !options.cluster => (None, dir.join("kubeconfig")),
            None => {
                let args = [
                    "--nodes".to_string(),
                    "2".into(),
                    "--ready-delay-ms".into(),
                    options.ready_delay_ms.to_string(),
                    "--run-image".into(),
                    agent_run_image()?,
                ];
                let cluster = KubeCluster::start("kube-cluster", &args).await?;
                let kubeconfig = cluster.kubeconfig().to_path_buf();
                (Some(cluster), kubeconfig)
            }
        };

        let api_port = options.api_port.unwrap_or_else(harness::free_port);
        let agent_port = harness::free_port();
        let admin_token = format!("efa_{}", random_b64(24).replace(['+', '/', '='], "x"));
        let agent_relay = options
            .agent_relay
            .then(|| Relay::start(([127, 0, 0, 1], agent_port).into()))
            .transpose()?;
        let wan = options
            .wan_region
            .map(|profile| -> anyhow::Result<Wan> {
                anyhow::ensure!(
                    agent_relay.is_none(),
                    "wan_region and agent_relay both stand between agents and the control plane; choose one"
                );
                let mut wan = Wan::new()?;
                wan.add_region(REGION, profile)?;
                Ok(wan)
            })
            .transpose()?;
        let region = wan.as_ref().and_then(|wan| wan.region(REGION));
        let (agent_listen, agent_endpoint) = match (&agent_relay, region) {
            (Some(relay), _) => (
                format!("127.0.0.1:{agent_port}"),
                format!("https://{}", relay.addr()),
            ),
            // Agents in the region reach the host only over the link.
            (None, Some(region)) => (
                format!("0.0.0.0:{agent_port}"),
                format!("https://{}:{agent_port}", region.host_addr()),
            ),
            (None, None) => (
                format!("127.0.0.1:{agent_port}"),
                format!("https://127.0.0.1:{agent_port}"),
            ),
        };
        // The cluster's API server is the region's own: reachable there without crossing the link.
        let region_services = match region {
            Some(region) => vec![region.local_port(api_server_port(&kubeconfig)?)?],
            None => Vec::new(),
        };
        let clickhouse_relay = options
            .clickhouse_relay
            .then(|| Relay::start(([127, 0, 0, 1], clickhouse.http_port()).into()))
            .transpose()?;
        let clickhouse_url = match &clickhouse_relay {
            Some(relay) => format!("http://{}", relay.addr()),
            None => clickhouse.http_url(),
        };
        let admin_password = random_b64(18).replace(['+', '/', '='], "x");
        let admin_password_file = dir.join("admin-password");
        write_private(&admin_password_file, &admin_password)?;
        let task_key_file = dir.join("task-key.pem");
        write_private(
            &task_key_file,
            &agent_protocol::signing::SigningKey::generate_pem(),
        )?;
        let config = json!({
            "api_listen": format!("127.0.0.1:{api_port}"),
            "instance_name": "control-plane-1",
            "agent_listen": agent_listen,
            "agent_endpoint": agent_endpoint,
            "database_url": database_url,
            "clickhouse": {"url": clickhouse_url, "database": clickhouse_database},
            "encryption_key": random_b64(32),
            "task_signing": {"key_file": task_key_file},
            "admin_token": admin_token,
            "tasks": {"lease_seconds": options.lease_seconds, "poll_interval_ms": options.poll_interval_ms},
            "agents": {"heartbeat_interval_seconds": options.heartbeat_seconds,
                       "certificate_ttl_seconds": options.certificate_ttl_seconds,
                       "renewal_overlap_seconds": options.renewal_overlap_seconds,
                       "recovery_grace_seconds": options.recovery_grace_seconds},
            // Plain HTTP on loopback: a Secure cookie would not come back.
            "console": {"secure_cookies": false, "admin_password_file": admin_password_file,
                        "sample_interval_seconds": options.fleet_sample_seconds},
        });
        let mut config = config;
        if let Some(endpoint) = &options.otlp_endpoint {
            config["telemetry"] = json!({"otlp_endpoint": endpoint});
        }
        if let Some(templates) = &options.templates_dir {
            config["templates_dir"] = json!(templates);
        }
        if options.provisioning {
            let mut provisioning = provisioning_config(&dir).await?;
            merge(
                &mut provisioning,
                &Value::Object(options.provisioning_overrides.clone()),
            );
            config["provisioning"] = provisioning;
        }
        let config_path = dir.join("control-plane.yaml");
        write_private(&config_path, &serde_json::to_string_pretty(&config)?)?;
        let control_plane = spawn_control_plane("control-plane", &config_path).await?;
        Ok(Self {
            api: Api::new(
                format!("http://127.0.0.1:{api_port}/api/v1"),
                admin_token.clone(),
            ),
            admin_token,
            admin_password,
            console_url: format!("http://127.0.0.1:{api_port}/console/"),
            agent_endpoint,
            postgres,
            database_url,
            clickhouse,
            clickhouse_database,
            kubeconfig,
            dir,
            control_plane,
            cluster,
            clickhouse_relay,
            agent_relay,
            wan,
            _region_services: region_services,
            agent_env: options
                .agent_env
                .into_iter()
                .chain(
                    options
                        .otlp_endpoint
                        .map(|endpoint| ("EDGEFLEET_OTLP_ENDPOINT".to_owned(), endpoint)),
                )
                .collect(),
            config,
            config_path,
        })
    }

    /// Starts another control-plane process sharing this stack's database, on its own ports.
    pub async fn start_peer_control_plane(&self, name: &str) -> anyhow::Result<PeerControlPlane> {
        let api_port = harness::free_port();
        let agent_port = harness::free_port();
        let agent_addr = SocketAddr::from(([127, 0, 0, 1], agent_port));
        let agent_endpoint = format!("https://{agent_addr}");
        let mut config = self.config.clone();
        config["api_listen"] = json!(format!("127.0.0.1:{api_port}"));
        config["agent_listen"] = json!(format!("127.0.0.1:{agent_port}"));
        config["agent_endpoint"] = json!(agent_endpoint);
        config["instance_name"] = json!(name);
        let path = self.dir.join(format!("{name}.yaml"));
        write_private(&path, &serde_json::to_string_pretty(&config)?)?;
        Ok(PeerControlPlane {
            process: spawn_control_plane(name, &path).await?,
            api: Api::new(
                format!("http://127.0.0.1:{api_port}/api/v1"),
                self.admin_token.clone(),
            ),
            agent_endpoint,
            agent_addr,
        })
    }

    /// Stops the control plane (SIGTERM) and starts it again on the same ports and database.
    pub async fn restart_control_plane(&mut self) -> anyhow::Result<()> {
        self.control_plane
            .terminate(Duration::from_secs(10))
            .await?;
        self.control_plane = spawn_control_plane("control-plane", &self.config_path).await?;
        Ok(())
    }

    /// Registers a `local` cloud account, a region and a cluster named `name`.
    pub async fn register_cluster(&self, name: &str) -> anyhow::Result<ClusterHandle> {
        let (cloud_id, region_id) = self
            .register_region(&format!("{name}-cloud"), &format!("{name}-region"))
            .await?;
        let cluster = self
            .api
            .post("/clusters", &json!({"region_id": region_id, "name": name}))
            .await?;
        Ok(ClusterHandle {
            cloud_id,
            region_id,
            cluster_id: field(&cluster, "id")?,
            name: name.to_string(),
        })
    }

    /// Registers a `local` cloud account named `cloud` with one region `code`; returns (cloud id, region id).
    pub async fn register_region(
        &self,
        cloud: &str,
        code: &str,
    ) -> anyhow::Result<(String, String)> {
        let cloud = self
            .api
            .post("/clouds", &json!({"name": cloud, "provider": "local"}))
            .await?;
        let cloud_id = field(&cloud, "id")?;
        let region = self
            .api
            .post(
                "/regions",
                &json!({"cloud_account_id": cloud_id, "code": code, "display_name": format!("Region {code}")}),
            )
            .await?;
        Ok((cloud_id, field(&region, "id")?))
    }

    /// Registers a cluster, starts its agent (state in the stack's directory) and waits until it is connected.
    pub async fn connected_cluster(&self, name: &str) -> anyhow::Result<(ClusterHandle, Process)> {
        let cluster = self.register_cluster(name).await?;
        let state = self.dir.join(format!("agent-{name}"));
        let agent = self
            .start_agent(
                &format!("agent-{name}"),
                &cluster.cluster_id,
                AgentState::Dir(&state),
            )
            .await?;
        self.wait_agent_connected(&cluster.cluster_id, Duration::from_secs(60))
            .await?;
        Ok((cluster, agent))
    }

    /// Submits a task to the cluster and waits for its final state.
    pub async fn run_task(&self, cluster_id: &str, body: &Value) -> anyhow::Result<Value> {
        let task = self
            .api
            .post(&format!("/clusters/{cluster_id}/tasks"), body)
            .await?;
        self.wait_task(&field(&task, "id")?, Duration::from_secs(60))
            .await
    }

    /// Mints a bootstrap token; the response holds `token` and `install.{manifest,command,ca_pem}`.
    pub async fn bootstrap_token(&self, cluster_id: &str) -> anyhow::Result<Value> {
        self.api
            .post(
                &format!("/clusters/{cluster_id}/bootstrap-tokens"),
                &json!({}),
            )
            .await
    }

    /// Starts `node-agent` for the cluster with a fresh token, as the install command would (reusing the
    /// credentials of an earlier run when `state` holds them).
    pub async fn start_agent(
        &self,
        name: &str,
        cluster_id: &str,
        state: AgentState<'_>,
    ) -> anyhow::Result<Process> {
        let bundle = self.bootstrap_token(cluster_id).await?;
        let token = field(&bundle, "token")?;
        let ca_pem = field(&bundle["install"], "ca_pem")?;
        self.spawn_agent(name, &token, &ca_pem, state).await
    }

    /// Starts `node-agent` with the given token and CA, without minting anything. Its CA and token files go
    /// into the stack's directory.
    pub async fn spawn_agent(
        &self,
        name: &str,
        token: &str,
        ca_pem: &str,
        state: AgentState<'_>,
    ) -> anyhow::Result<Process> {
        let ca_file = self.dir.join(format!("{name}-ca.crt"));
        let token_file = self.dir.join(format!("{name}-token"));
        std::fs::write(&ca_file, ca_pem)?;
        write_private(&token_file, token)?;
        let agent = harness::workspace_bin("node-agent")?;
        let mut command = match self.region() {
            Some(region) => region.command(agent),
            None => Command::new(agent),
        };
        command
            .arg("run")
            .arg("--control-plane")
            .arg(&self.agent_endpoint)
            .arg("--server-name")
            .arg("localhost")
            .arg("--ca-file")
            .arg(&ca_file)
            .arg("--bootstrap-token-file")
            .arg(&token_file)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("EDGEFLEET_LOG", "info,node_agent::podlogs=debug")
            .envs(self.agent_env.iter().map(|(k, v)| (k, v)));
        match state {
            AgentState::Dir(dir) => command.arg("--state-dir").arg(dir),
            AgentState::Secret(secret) => command.arg("--state-secret").arg(secret),
        };
        Process::spawn(name, command)
    }

    /// Destroys a provisioned cluster (`DELETE /clusters/{id}` must answer 202 with the destroy task) and returns
    /// that task once it finished.
    pub async fn destroy_cluster(
        &self,
        cluster_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let (status, task) = self
            .api
            .call(
                reqwest::Method::DELETE,
                &format!("/clusters/{cluster_id}"),
                None,
            )
            .await?;
        if status != reqwest::StatusCode::ACCEPTED {
            bail!("destroying cluster {cluster_id} answered {status}: {task}");
        }
        self.wait_task(&field(&task, "id")?, timeout).await
    }

    /// Polls a task until it reaches a final state.
    pub async fn wait_task(&self, task_id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            last = self.api.get(&format!("/tasks/{task_id}")).await?;
            if matches!(
                last["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("task {task_id} did not finish within {timeout:?}; last seen: {last}")
    }

    /// The region agents run in, with `StackOptions::wan_region`.
    pub fn region(&self) -> Option<&Region> {
        self.wan.as_ref().and_then(|wan| wan.region(REGION))
    }

    /// Polls the API until the cluster's agent is connected and has sent a heartbeat.
    pub async fn wait_agent_connected(
        &self,
        cluster_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            last = self.api.get(&format!("/clusters/{cluster_id}")).await?;
            if last["agent"]["connected"] == json!(true) && last["status"] == json!("ready") {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("agent of cluster {cluster_id} did not connect within {timeout:?}; last seen: {last}")
    }

    /// Polls the API until it says the cluster's agent is disconnected, as during a partition.
    pub async fn wait_agent_disconnected(
        &self,
        cluster_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            last = self.api.get(&format!("/clusters/{cluster_id}")).await?;
            if last["agent"]["connected"] == json!(false) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the API still says cluster {cluster_id}'s agent is connected after {timeout:?}: {last}"
        )
    }

    /// Runs `kubectl` against the stack's cluster and returns stdout; fails with stderr.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        kubectl(&self.kubeconfig, args, None)
    }

    /// The name of the first pod in `namespace` of the stack's cluster.
    pub fn first_pod(&self, namespace: &str) -> anyhow::Result<String> {
        first_pod(&self.kubeconfig, namespace)
    }

    /// Like [`Stack::kubectl`], feeding `input` on stdin.
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> anyhow::Result<String> {
        kubectl(&self.kubeconfig, args, Some(input))
    }

    /// Runs a query in the stack's ClickHouse database.
    pub fn clickhouse_query(&self, sql: &str) -> anyhow::Result<String> {
        self.clickhouse
            .query(&sql.replace("{db}", &self.clickhouse_database))
    }

    /// Runs SQL in the control plane's PostgreSQL database (tests use it to simulate time passing).
    pub fn postgres_query(&self, sql: &str) -> anyhow::Result<String> {
        self.postgres.query(&self.database_url, sql)
    }
}

/// Applies `patch` to `target` as RFC 7386 describes, without its null-deletes (no override needs them).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The name of the region `StackOptions::wan_region` makes.
const REGION: &str = "far";

/// The loopback port of the API server a kubeconfig points at.
fn api_server_port(kubeconfig: &Path) -> anyhow::Result<u16> {
    let text = std::fs::read_to_string(kubeconfig)
        .with_context(|| format!("read {}", kubeconfig.display()))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("server:"))
        .and_then(|url| {
            url.trim()
                .trim_matches('"')
                .strip_prefix("https://127.0.0.1:")
        })
        .and_then(|port| port.parse().ok())
        .with_context(|| format!("{} names no API server on 127.0.0.1", kubeconfig.display()))
}

/// `IMAGE_PREFIX=PATH` for `kube-cluster --run-image`: the agent's image runs as the workspace's `node-agent`.
fn agent_run_image() -> anyhow::Result<String> {
    let agent = harness::workspace_bin("node-agent")?;
    Ok(format!("ghcr.io/edgefleet/node-agent={}", agent.display()))
}

async fn provisioning_config(dir: &Path) -> anyhow::Result<Value> {
    let s3 = harness::s3();
    let cluster_bin = harness::workspace_bin("kube-cluster")?;
    // Terraform's environment is cleared, so the cluster learns where the Go binaries are from its arguments.
    let kube_bin_dir = kube_cluster::locate_binaries().await?.dir;
    Ok(json!({
        "source_dir": harness::workspace_root(),
        "work_dir": dir.join("terraform-work"),
        "timeout_seconds": 300,
        "cancel_grace_seconds": 10,
        "agent_connect_timeout_seconds": 60,
        "state": {
            "bucket": s3.create_bucket("tfstate"),
            "endpoint": s3.endpoint(),
            "region": s3.region(),
            "access_key_id": s3.access_key(),
            "secret_access_key": s3.secret_key(),
            "path_style": true,
        },
        "allow_development_stacks": true,
        "stack_defaults": {"local": {
            "cluster_bin": cluster_bin,
            "cluster_args": ["--run-image", agent_run_image()?, "--ready-delay-ms", "300",
                             "--bin-dir", kube_bin_dir],
        }},
    }))
}

async fn spawn_control_plane(name: &str, config_path: &Path) -> anyhow::Result<Process> {
    let mut command = Command::new(harness::workspace_bin("control-plane")?);
    command
        .arg("serve")
        .arg("--config")
        .arg(config_path)
        .env("RUST_LOG", "info,sqlx=warn");
    let mut process = Process::spawn(name, command)?;
    process
        .wait_for_line("control plane started", Duration::from_secs(60))
        .await?;
    Ok(process)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// The name of the first pod in `namespace` of the cluster `kubeconfig` reaches.
pub fn first_pod(kubeconfig: &Path, namespace: &str) -> anyhow::Result<String> {
    let pods: Value = serde_json::from_str(&kubectl(
        kubeconfig,
        &["get", "pods", "-n", namespace, "-o", "json"],
        None,
    )?)?;
    pods["items"][0]["metadata"]["name"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no pod in namespace {namespace}"))
}

/// Runs `kubectl` with `kubeconfig` (feeding `stdin` when given) and returns stdout; fails with stderr.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .context("writing kubectl's stdin")?;
    }
    let output = child.wait_with_output().context("running kubectl")?;
    if !output.status.success() {
        bail!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Writes `text` to a container's log as if the container printed it, once the node simulator has started the
/// container (`cluster_state_dir` is the `kube-cluster` state directory).
pub async fn write_container_log(
    cluster_state_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    text: &str,
) -> anyhow::Result<()> {
    let what = format!("container {container} of pod {namespace}/{pod} started");
    harness::wait_until(
        &what,
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            kube_cluster::ContainerControl::locate(cluster_state_dir, namespace, pod, container)
                .and_then(|control| control.append_log(text))
                .is_ok()
        },
    )
    .await?;
    Ok(())
}

/// Ends a simulated container with `code`, as a crash would, and waits until it has started again (its pod's
/// `restartPolicy` must restart it).
pub async fn restart_container(
    cluster_state_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    code: i32,
) -> anyhow::Result<()> {
    let control =
        kube_cluster::ContainerControl::locate(cluster_state_dir, namespace, pod, container)?;
    let before = control.current_start()?;
    control.exit(code)?;
    let what = format!("container {container} of pod {namespace}/{pod} restarted");
    harness::wait_until(
        &what,
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async { control.current_start().is_ok_and(|now| now > before) },
    )
    .await?;
    Ok(())
}
