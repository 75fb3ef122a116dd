//! Provisions clusters with Terraform: workers in every control-plane process lease Terraform tasks from the
//! queue and run plan / apply / destroy / drift checks on the cluster's root stack, then install the agent on a
//! new cluster and wait for it to connect.

mod artifacts;
mod bootstrap;
pub mod inputs;
mod terraform;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument;
use uuid::Uuid;
use zeroize::Zeroizing;

pub use artifacts::ArtifactStore;
pub use workspace::state_key;

use crate::agents::install::{self, InstallInputs};
use crate::config::ProvisioningConfig;
use crate::crypto::{BOOTSTRAP_TOKEN_PREFIX, OneTimeSecret, SecretBox};
use crate::domain::{ClusterStatus, DriftStatus, TaskKind, TaskState};
use crate::logs::TaskLogLine;
use crate::metrics::{Metrics, RunLabel};
use crate::pki::AgentCa;
use crate::store::{LeasedTask, ProvisioningTarget, Store, TaskCompletion, channels};
use terraform::{OutputLine, Stdout, Terraform, TerraformError};

/// `terraform init` against the rendered `backend.hcl` (re-run every time: the backend settings may change).
const INIT: &[&str] = &[
    "init",
    "-input=false",
    "-no-color",
    "-reconfigure",
    "-backend-config=backend.hcl",
];

/// What the agent install needs from the control plane's own configuration.
#[derive(Clone)]
pub struct AgentInstall {
    pub endpoint: String,
    pub image: String,
    pub token_ttl: Duration,
}

pub struct Provisioner {
    pub store: Store,
    pub sbox: SecretBox,
    pub ca: Arc<AgentCa>,
    pub artifacts: ArtifactStore,
    pub config: ProvisioningConfig,
    pub agent: AgentInstall,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub metrics: Metrics,
}

/// Why a run failed; each cause says whether running the task again may help.
#[derive(Debug, thiserror::Error)]
enum RunFailure {
    #[error(transparent)]
    Terraform(#[from] TerraformError),
    #[error("PostgreSQL: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("plan and state storage: {0}")]
    Artifacts(#[from] artifacts::ArtifactError),
    #[error("agent install: {0}")]
    Install(#[from] bootstrap::InstallError),
    #[error(transparent)]
    Workspace(#[from] workspace::WorkspaceError),
    #[error(transparent)]
    Stack(#[from] inputs::StackError),
    #[error("cloud credentials: {0}")]
    Credentials(String),
    #[error("reading {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Something about the cluster's stack, inputs or outputs that another attempt cannot change.
    #[error("{0}")]
    Invalid(String),
}

impl RunFailure {
    fn retryable(&self) -> bool {
        use agent_protocol::apply::ApplyManifestError;
        use bootstrap::InstallError;
        match self {
            Self::Terraform(error) => error.may_pass(),
            Self::Store(error) => error.is_transient(),
            Self::Artifacts(_) => true,
            // The new cluster's API may not be up yet; a broken kubeconfig or manifest stays broken.
            Self::Install(error) => {
                matches!(error, InstallError::Apply(ApplyManifestError::Apply { .. }))
            }
            Self::Workspace(_)
            | Self::Stack(_)
            | Self::Credentials(_)
            | Self::Read { .. }
            | Self::Invalid(_) => false,
        }
    }
}

impl Provisioner {
    /// Leases and runs Terraform tasks until the process stops.
    pub async fn run(self: Arc<Self>) {
        let worker_id = Uuid::new_v4();
        let permits = Arc::new(Semaphore::new(self.config.max_concurrent));
        let freed = Arc::new(tokio::sync::Notify::new());
        let mut listener = match self.store.listen(channels::PROVISIONER_WORK).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "provisioner cannot LISTEN; polling only");
                None
            }
        };
        loop {
            while let Ok(permit) = permits.clone().try_acquire_owned() {
                let leased = self
                    .store
                    .lease_control_plane_task(
                        TaskKind::TERRAFORM,
                        worker_id,
                        self.lease,
                        self.config.max_concurrent_per_cloud,
                    )
                    .await;
                match leased {
                    Ok(Some(task)) => {
                        let this = self.clone();
                        let freed = freed.clone();
                        // A span of the task's trace (the request that planned or applied the cluster).
                        let span = tracing::info_span!(
                            "terraform_task",
                            otel.name = format!("terraform {}", task.kind),
                            task_id = %task.id,
                            cluster_id = %task.cluster_id,
                            kind = %task.kind,
                        );
                        if let Some(parent) = &task.trace_parent {
                            telemetry::set_parent(&span, parent);
                        }
                        tokio::spawn(
                            async move {
                                this.execute(task).await;
                                drop(permit);
                                freed.notify_one();
                            }
                            .instrument(span),
                        );
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "cannot lease Terraform tasks");
                        break;
                    }
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listener) => {
                        let _ = listener.try_recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = freed.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    async fn execute(&self, task: LeasedTask) {
        tracing::info!(attempt = task.attempts, reason = %task.reason, "Terraform task started");
        self.metrics.terraform_runs_active.inc();
        let log = TaskLog::new(self.store.clone(), task.cluster_id, task.id);
        log.line(
            "info",
            &format!(
                "{} started (attempt {}): {}",
                task.kind, task.attempts, task.reason
            ),
        )
        .await;
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        let guard = tokio::spawn(watch_task(
            self.store.clone(),
            task.clone(),
            self.lease,
            cancel_tx,
        ));
        let result = match task.kind {
            TaskKind::TerraformPlan => self.plan(&task, &log, &mut cancel_rx).await,
            TaskKind::TerraformApply => self.apply(&task, &log, &mut cancel_rx).await,
            TaskKind::TerraformDestroy => self.destroy(&task, &log, &mut cancel_rx).await,
            TaskKind::TerraformDrift => self.drift(&task, &log, &mut cancel_rx).await,
            agent_kind @ (TaskKind::Apply | TaskKind::Delete) => Err(RunFailure::Invalid(format!(
                "{agent_kind} tasks run on agents, not in the provisioner"
            ))),
        };
        guard.abort();
        let completion = match &result {
            Ok(()) => {
                log.line("info", &format!("{} succeeded", task.kind)).await;
                TaskCompletion {
                    success: true,
                    error: None,
                    objects: Vec::new(),
                    retryable: false,
                    fails_cluster: None,
                }
            }
            Err(failure) => {
                log.line("error", &format!("{} failed: {failure}", task.kind))
                    .await;
                TaskCompletion {
                    success: false,
                    error: Some(failure.to_string()),
                    objects: Vec::new(),
                    retryable: failure.retryable(),
                    fails_cluster: task
                        .kind
                        .failure_fails_cluster()
                        .then(|| format!("{} failed: {failure}", task.kind)),
                }
            }
        };
        log.flush().await;
        self.metrics.terraform_runs_active.dec();
        let recorded = self
            .store
            .complete_task(task.cluster_id, task.id, task.lease_id, &completion)
            .await;
        let outcome = match &recorded {
            Ok(Some(state)) if state.is_final() => state.as_str(),
            Ok(Some(_)) => "retrying",
            Ok(None) => TaskState::Cancelled.as_str(),
            Err(_) => "unrecorded",
        };
        self.metrics
            .terraform_runs
            .get_or_create(&RunLabel {
                kind: task.kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        match recorded {
            Ok(Some(state)) => tracing::info!(state = state.as_str(), "Terraform task finished"),
            Ok(None) => tracing::info!(
                "Terraform task was cancelled or taken over meanwhile; result dropped"
            ),
            Err(error) => tracing::error!(%error, "cannot record the Terraform task result"),
        }
    }

    /// Everything for one Terraform invocation on the cluster: workspace, environment, runner.
    async fn terraform(
        &self,
        target: &ProvisioningTarget,
    ) -> Result<(Terraform, workspace::Workspace), RunFailure> {
        let spec = target.provision_spec.clone().unwrap_or_else(|| json!({}));
        let stack = spec["stack"]
            .as_str()
            .unwrap_or(&target.provider)
            .to_string();
        // Checked again here: the variables may have been stored before the rules (or the configuration) changed.
        let inputs = inputs::offered(&self.config, &stack)?;
        let own = spec["variables"].as_object().cloned().unwrap_or_default();
        let problems = inputs.check(&own, "variables");
        if !problems.is_empty() {
            let listed: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
            return Err(RunFailure::Invalid(format!(
                "the cluster's Terraform variables are not allowed on stack {stack}: {}",
                listed.join("; ")
            )));
        }
        let mut variables: Map<String, Value> = self
            .config
            .stack_defaults
            .get(&stack)
            .cloned()
            .unwrap_or_default();
        variables.extend(own);
        variables.insert("cluster_name".into(), json!(target.cluster_name));
        if stack != "local" {
            variables.insert("region".into(), json!(target.region_code));
        }
        let ws = workspace::prepare(
            &self.config.source_dir,
            &self.config.work_dir,
            target.cluster_id,
            &stack,
            &self.config.state,
            self.config.provider_mirror.as_deref(),
            &variables,
        )?;
        let mut env = vec![
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                Zeroizing::new(self.config.state.access_key_id.clone()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                Zeroizing::new(self.config.state.secret_access_key.clone()),
            ),
        ];
        env.extend(
            self.config
                .terraform_env
                .iter()
                .map(|(name, value)| (name.clone(), Zeroizing::new(value.clone()))),
        );
        if let Some(cli_config) = &ws.cli_config {
            env.push((
                "TF_CLI_CONFIG_FILE".to_string(),
                Zeroizing::new(cli_config.to_string_lossy().into_owned()),
            ));
        }
        env.extend(self.cloud_env(target)?);
        Ok((
            Terraform {
                bin: self.config.terraform_bin.clone(),
                dir: ws.stack_dir.clone(),
                env,
                timeout: Duration::from_secs(self.config.timeout_seconds),
                grace: Duration::from_secs(self.config.cancel_grace_seconds),
            },
            ws,
        ))
    }

    /// Cloud credentials, decrypted into the child's environment only. For AWS clouds the account's keys replace
    /// the state store's `AWS_*` keys (provider and S3 backend read the same variables), so their state bucket
    /// must accept the account's keys (docs/provisioning.md, "Credentials").
    fn cloud_env(
        &self,
        target: &ProvisioningTarget,
    ) -> Result<Vec<(String, Zeroizing<String>)>, RunFailure> {
        let Some(sealed) = &target.credentials_sealed else {
            return Ok(Vec::new());
        };
        let plaintext = self
            .sbox
            .open(
                sealed,
                &crate::crypto::cloud_credentials_context(target.cloud_account_id),
            )
            .map_err(|error| RunFailure::Credentials(error.to_string()))?;
        let fields: std::collections::BTreeMap<String, String> = serde_json::from_slice(&plaintext)
            .map_err(|_| {
                RunFailure::Credentials(
                    "the stored credentials are not a JSON object of strings".into(),
                )
            })?;
        let mapping: &[(&str, &str)] = match target.provider.as_str() {
            "tencentcloud" => &[
                ("secret_id", "TENCENTCLOUD_SECRET_ID"),
                ("secret_key", "TENCENTCLOUD_SECRET_KEY"),
            ],
            "aws" => &[
                ("access_key_id", "AWS_ACCESS_KEY_ID"),
                ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                ("session_token", "AWS_SESSION_TOKEN"),
            ],
            _ => &[],
        };
        let mut env: Vec<(String, Zeroizing<String>)> = mapping
            .iter()
            .filter_map(|(field, var)| {
                fields
                    .get(*field)
                    .map(|v| (var.to_string(), Zeroizing::new(v.clone())))
            })
            .collect();
        if target.provider == "tencentcloud" {
            env.push((
                "TENCENTCLOUD_REGION".into(),
                Zeroizing::new(target.region_code.clone()),
            ));
        }
        Ok(env)
    }

    async fn init_and_plan(
        &self,
        task: &LeasedTask,
        tf: &Terraform,
        log: &TaskLog,
        cancel: &mut watch::Receiver<bool>,
        destroy: bool,
    ) -> Result<Value, RunFailure> {
        let lines = log.terraform_lines();
        tf.run_ok(INIT, Stdout::Log, &lines, cancel).await?;
        let mut plan_args = vec!["plan", "-input=false", "-no-color", "-out=plan.tfplan"];
        if destroy {
            plan_args.push("-destroy");
        }
        tf.run_ok(&plan_args, Stdout::Log, &lines, cancel).await?;
        let shown = tf
            .run_ok(
                &["show", "-json", "-no-color", "plan.tfplan"],
                Stdout::Capture,
                &lines,
                cancel,
            )
            .await?;
        let summary = plan_summary(&shown)?;
        let plan_bytes =
            std::fs::read(tf.dir.join("plan.tfplan")).map_err(|source| RunFailure::Read {
                what: "the saved plan",
                source,
            })?;
        let plan_key = format!("plans/{}/{}.tfplan", task.cluster_id, task.id);
        self.artifacts.put(&plan_key, plan_bytes).await?;
        log.line(
            "info",
            &format!(
                "plan saved to s3://{}/{plan_key}: {}",
                self.config.state.bucket,
                summary["text"].as_str().unwrap_or("")
            ),
        )
        .await;
        Ok(json!({"plan": summary, "plan_object": plan_key}))
    }

    async fn plan(
        &self,
        task: &LeasedTask,
        log: &TaskLog,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), RunFailure> {
        let target = self.store.provisioning_target(task.cluster_id).await?;
        let (tf, _) = self.terraform(&target).await?;
        let output = self.init_and_plan(task, &tf, log, cancel, false).await?;
        self.store
            .set_task_output(task.id, task.lease_id, &output)
            .await?;
        let cluster = self.store.cluster(task.cluster_id).await?;
        if cluster.status == ClusterStatus::Pending {
            self.store
                .set_cluster_status(
                    task.cluster_id,
                    ClusterStatus::Planned,
                    "plan ready for review; provision to apply it",
                )
                .await?;
        }
        Ok(())
    }

    /// Sets the cluster's status, then plans (a destroy plan with `destroy`) and applies exactly that plan.
    async fn plan_and_apply(
        &self,
        task: &LeasedTask,
        log: &TaskLog,
        cancel: &mut watch::Receiver<bool>,
        destroy: bool,
        status: ClusterStatus,
        message: &str,
    ) -> Result<(Terraform, workspace::Workspace, Value), RunFailure> {
        self.store
            .set_cluster_status(task.cluster_id, status, message)
            .await?;
        let target = self.store.provisioning_target(task.cluster_id).await?;
        let (tf, ws) = self.terraform(&target).await?;
        let output = self.init_and_plan(task, &tf, log, cancel, destroy).await?;
        let lines = log.terraform_lines();
        tf.run_ok(
            &["apply", "-input=false", "-no-color", "plan.tfplan"],
            Stdout::Log,
            &lines,
            cancel,
        )
        .await?;
        Ok((tf, ws, output))
    }

    async fn apply(
        &self,
        task: &LeasedTask,
        log: &TaskLog,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), RunFailure> {
        let (tf, ws, mut output) = self
            .plan_and_apply(
                task,
                log,
                cancel,
                false,
                ClusterStatus::Provisioning,
                "Terraform is applying the cluster's stack",
            )
            .await?;
        let lines = log.terraform_lines();
        let raw = tf
            .run_ok(
                &["output", "-json", "-no-color"],
                Stdout::Capture,
                &lines,
                cancel,
            )
            .await?;
        let outputs: Value = serde_json::from_str(&raw).map_err(|error| {
            RunFailure::Invalid(format!("`terraform output -json` is not JSON: {error}"))
        })?;
        let text = |name: &str| outputs[name]["value"].as_str().map(str::to_string);
        let (Some(endpoint), Some(ca), Some(kubeconfig)) = (
            text("api_endpoint"),
            text("ca_certificate"),
            text("kubeconfig"),
        ) else {
            return Err(RunFailure::Invalid(
                "the stack's outputs miss the cluster contract (api_endpoint, ca_certificate, kubeconfig)".into(),
            ));
        };
        let kubeconfig = Zeroizing::new(kubeconfig);
        let sealed = self.sbox.seal(
            kubeconfig.as_bytes(),
            &crate::crypto::cluster_kubeconfig_context(task.cluster_id),
        );
        self.store
            .record_cluster_outputs(task.cluster_id, &endpoint, &ca, &sealed)
            .await?;
        output["outputs"] = json!({"api_endpoint": endpoint, "state_key": ws.state_key});
        self.store
            .set_task_output(task.id, task.lease_id, &output)
            .await?;
        log.line(
            "info",
            &format!("cluster API at {endpoint}; installing the agent"),
        )
        .await;

        self.store
            .set_cluster_status(
                task.cluster_id,
                ClusterStatus::Bootstrapping,
                "installing the agent and waiting for it to connect",
            )
            .await?;
        self.install_agent(task, &kubeconfig, log).await?;
        self.wait_for_agent(task, log).await
    }

    /// Mints a one-time token and applies the install manifest through the new cluster's API.
    async fn install_agent(
        &self,
        task: &LeasedTask,
        kubeconfig: &str,
        log: &TaskLog,
    ) -> Result<(), RunFailure> {
        let token = OneTimeSecret::generate(BOOTSTRAP_TOKEN_PREFIX);
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.agent.token_ttl)
                .unwrap_or(chrono::Duration::hours(1));
        self.store
            .insert_bootstrap_token(
                task.cluster_id,
                &token.digest(),
                expires_at,
                &format!("provisioner:task:{}", task.id),
            )
            .await?;
        let bundle = install::bundle(&InstallInputs {
            token: token.expose(),
            ca_pem: self.ca.ca_pem(),
            agent_endpoint: &self.agent.endpoint,
            image: &self.agent.image,
        });
        let client = bootstrap::client_for(kubeconfig).await?;
        let applied = bootstrap::apply_manifest(&client, &bundle.manifest).await?;
        log.line(
            "info",
            &format!("agent install manifest applied: {}", applied.join(", ")),
        )
        .await;
        Ok(())
    }

    /// The cluster is ready only once its agent is connected and has sent a heartbeat.
    async fn wait_for_agent(&self, task: &LeasedTask, log: &TaskLog) -> Result<(), RunFailure> {
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.config.agent_connect_timeout_seconds);
        loop {
            let cluster = self.store.cluster(task.cluster_id).await?;
            if cluster.agent.connected
                && cluster.agent.last_heartbeat_at.is_some()
                && cluster.status == ClusterStatus::Ready
            {
                log.line(
                    "info",
                    &format!(
                        "agent {} connected; cluster ready",
                        cluster.agent.version.unwrap_or_default()
                    ),
                )
                .await;
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RunFailure::Invalid(format!(
                    "the agent did not connect within {} s of its install",
                    self.config.agent_connect_timeout_seconds
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn destroy(
        &self,
        task: &LeasedTask,
        log: &TaskLog,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), RunFailure> {
        let (_, _, output) = self
            .plan_and_apply(
                task,
                log,
                cancel,
                true,
                ClusterStatus::Destroying,
                "Terraform is destroying the cluster",
            )
            .await?;
        self.store
            .set_task_output(task.id, task.lease_id, &output)
            .await?;
        self.store
            .delete_cluster(task.cluster_id, Some(task.id))
            .await?;
        log.line("info", "cluster destroyed; its agent is revoked")
            .await;
        Ok(())
    }

    async fn drift(
        &self,
        task: &LeasedTask,
        log: &TaskLog,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), RunFailure> {
        let target = self.store.provisioning_target(task.cluster_id).await?;
        let (tf, _) = self.terraform(&target).await?;
        let lines = log.terraform_lines();
        tf.run_ok(INIT, Stdout::Log, &lines, cancel).await?;
        let finished = tf
            .run(
                &[
                    "plan",
                    "-input=false",
                    "-no-color",
                    "-detailed-exitcode",
                    "-lock=false",
                ],
                Stdout::Log,
                &lines,
                cancel,
            )
            .await?;
        let status = match finished.code {
            0 => DriftStatus::InSync,
            2 => DriftStatus::Drifted,
            code => {
                self.store
                    .record_drift(task.cluster_id, DriftStatus::Unknown)
                    .await?;
                return Err(RunFailure::Invalid(format!(
                    "drift check failed (exit {code}): {}",
                    finished.stdout.trim()
                )));
            }
        };
        self.store.record_drift(task.cluster_id, status).await?;
        self.store
            .set_task_output(task.id, task.lease_id, &json!({"drift": status}))
            .await?;
        log.line("info", &format!("drift check: {status}")).await;
        Ok(())
    }
}

/// Renews the task's lease while it runs and flips `cancel` when someone cancels the task.
async fn watch_task(store: Store, task: LeasedTask, lease: Duration, cancel: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match store.task(task.id).await {
            Ok(current) if current.state == TaskState::Cancelled => {
                let _ = cancel.send(true);
                return;
            }
            Ok(_) => {
                let _ = store
                    .renew_leases(task.cluster_id, &[(task.id, task.lease_id)], lease)
                    .await;
            }
            Err(error) => tracing::warn!(%error, "cannot check the task's state"),
        }
    }
}

/// Counts of planned actions from `terraform show -json`, and the changed resources.
fn plan_summary(show_json: &str) -> Result<Value, RunFailure> {
    let plan: Value = serde_json::from_str(show_json).map_err(|error| {
        RunFailure::Invalid(format!("`terraform show -json` is not JSON: {error}"))
    })?;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut changes = Vec::new();
    for change in plan["resource_changes"].as_array().into_iter().flatten() {
        let actions: Vec<&str> = change["change"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .collect();
        let action = match actions.as_slice() {
            ["no-op"] => continue,
            ["create"] => "create",
            ["delete"] => "delete",
            ["update"] => "update",
            ["read"] => "read",
            _ => "replace",
        };
        *counts.entry(action.to_string()).or_default() += 1;
        changes.push(json!({"address": change["address"], "action": action}));
    }
    let text = format!(
        "{} to add, {} to change, {} to destroy",
        counts.get("create").copied().unwrap_or(0) + counts.get("replace").copied().unwrap_or(0),
        counts.get("update").copied().unwrap_or(0),
        counts.get("delete").copied().unwrap_or(0) + counts.get("replace").copied().unwrap_or(0),
    );
    Ok(json!({"text": text, "counts": counts, "resource_changes": changes}))
}

/// Writes a task's log lines (the provisioner's own and Terraform's) to the PostgreSQL outbox, from which
/// `logs::outbox` moves them to ClickHouse: a ClickHouse outage delays them and loses none.
struct TaskLog {
    store: Store,
    cluster_id: String,
    task_id: String,
    forwarders: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl TaskLog {
    fn new(store: Store, cluster_id: Uuid, task_id: Uuid) -> Self {
        Self {
            store,
            cluster_id: cluster_id.to_string(),
            task_id: task_id.to_string(),
            forwarders: Default::default(),
        }
    }

    fn make(&self, level: &str, message: &str, source: &str, fields: Value) -> TaskLogLine {
        TaskLogLine::new(
            Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            self.cluster_id.clone(),
            self.task_id.clone(),
            level.to_string(),
            message.to_string(),
            fields.to_string(),
            source,
        )
    }

    async fn line(&self, level: &str, message: &str) {
        let line = self.make(level, message, "control-plane", json!({}));
        if let Err(error) = self.store.enqueue_task_log_lines(&[line]).await {
            tracing::warn!(%error, task_id = %self.task_id, "a task log line could not be queued");
        }
    }

    /// A channel whose lines are batched into the task's log as Terraform prints them.
    fn terraform_lines(&self) -> mpsc::UnboundedSender<OutputLine> {
        let (tx, mut rx) = mpsc::unbounded_channel::<OutputLine>();
        let store = self.store.clone();
        let template = self.make("info", "", "terraform", json!({}));
        let handle = tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                let next = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
                let closed = matches!(next, Ok(None));
                let timed_out = next.is_err();
                if let Ok(Some(line)) = next {
                    let mut row = template.clone();
                    row.ts_nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
                    row.level = if line.stderr {
                        "warn".into()
                    } else {
                        "info".into()
                    };
                    row.message = line.text;
                    batch.push(row);
                }
                if (!batch.is_empty() && (batch.len() >= 200 || timed_out))
                    || (closed && !batch.is_empty())
                {
                    let lines = std::mem::take(&mut batch);
                    if let Err(error) = store.enqueue_task_log_lines(&lines).await {
                        tracing::warn!(%error, lines = lines.len(), "Terraform output lines could not be queued");
                    }
                }
                if closed {
                    return;
                }
            }
        });
        self.forwarders.lock().expect("lock poisoned").push(handle);
        tx
    }

    /// Waits until every line written so far is in the outbox.
    async fn flush(&self) {
        let forwarders: Vec<_> =
            std::mem::take(&mut *self.forwarders.lock().expect("lock poisoned"));
        for forwarder in forwarders {
            let _ = forwarder.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_of_a_failed_run_says_whether_another_attempt_may_help() {
        let terraform = |summary: &str| {
            RunFailure::from(TerraformError::Failed {
                command: "apply".into(),
                code: 1,
                cause: terraform::FailureCause::of(summary),
                summary: summary.into(),
            })
        };
        assert!(
            terraform("Error: Error acquiring the state lock ... 412 PreconditionFailed")
                .retryable()
        );
        assert!(terraform("Error: dial tcp 10.0.0.1:443: i/o timeout").retryable());
        assert!(!terraform("Error: Invalid value for variable: Invalid cluster name").retryable());
        assert!(
            RunFailure::from(crate::store::StoreError::Database(
                sqlx::Error::PoolTimedOut
            ))
            .retryable()
        );
        assert!(
            !RunFailure::from(crate::store::StoreError::Database(sqlx::Error::RowNotFound))
                .retryable()
        );
        assert!(
            !RunFailure::from(crate::store::StoreError::not_found("cluster", "c-1")).retryable()
        );
        assert!(
            !RunFailure::from(bootstrap::InstallError::Kubeconfig("no cluster".into())).retryable()
        );
        assert!(!RunFailure::Invalid("outputs miss the contract".into()).retryable());
    }

    #[test]
    fn plan_summary_counts_actions_and_skips_no_ops() {
        let show = r#"{"resource_changes": [
            {"address": "a.x", "change": {"actions": ["create"]}},
            {"address": "a.y", "change": {"actions": ["delete", "create"]}},
            {"address": "a.z", "change": {"actions": ["no-op"]}}]}"#;
        let summary = plan_summary(show).unwrap();
        assert_eq!(summary["text"], "2 to add, 0 to change, 1 to destroy");
        assert_eq!(summary["resource_changes"].as_array().unwrap().len(), 2);
    }
}
