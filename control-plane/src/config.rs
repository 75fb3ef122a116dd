//! The control plane's configuration: one YAML file, overridable by `EDGEFLEET_CP_*` environment variables, read
//! with the loader the agent uses too (`config_loader`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::names;

/// Environment variables with this prefix override config keys; `__` separates nesting levels, so
/// `EDGEFLEET_CP_CLICKHOUSE__URL` sets `clickhouse.url`.
pub const ENV_PREFIX: &str = "EDGEFLEET_CP_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] config_loader::LoadError),
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the REST API, console, health and metrics endpoints listen.
    #[serde(default = "defaults::api_listen")]
    pub api_listen: SocketAddr,
    /// Where the agent gRPC service (mTLS) listens.
    #[serde(default = "defaults::agent_listen")]
    pub agent_listen: SocketAddr,
    /// The URL agents dial, written into install manifests (`https://host:port`).
    pub agent_endpoint: String,
    /// DNS names / IP addresses put into the agent service's TLS certificate.
    #[serde(default = "defaults::agent_tls_names")]
    pub agent_tls_names: Vec<String>,
    pub database_url: String,
    /// Connections for agent streams and background work.
    #[serde(default = "defaults::database_max_connections")]
    pub database_max_connections: u32,
    /// The REST API's and console's own connections, apart from the agents' so that a reconnect storm (every
    /// agent of a restarted replica opening its session at once) cannot make API requests queue behind it.
    #[serde(default = "defaults::database_api_connections")]
    pub database_api_connections: u32,
    pub clickhouse: ClickHouseConfig,
    /// Base64 of 32 random bytes; seals cloud credentials and the CA key at rest.
    #[serde(default)]
    pub encryption_key: Option<String>,
    /// File holding the encryption key (base64), used when `encryption_key` is not set; must be mode 0600.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// The Ed25519 keys that sign every task an agent runs; kept in files, never in the database.
    #[serde(default)]
    pub task_signing: Option<TaskSigningConfig>,
    /// An admin API token to register at start (for automation); when absent and no token exists yet, one is
    /// generated and printed once.
    #[serde(default)]
    pub admin_token: Option<String>,
    #[serde(default)]
    pub tasks: TaskConfig,
    #[serde(default)]
    pub agents: AgentConfig,
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Demos are published at `http://<demo>.<cluster>.<demos_domain>/` (the Ingress host).
    #[serde(default = "defaults::demos_domain")]
    pub demos_domain: String,
    /// Folder of image templates (`<name>/template.yaml` + Dockerfile) loaded into PostgreSQL at start.
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// What tasks may apply, on top of the built-in apply policy (docs/security.md).
    #[serde(default)]
    pub apply_policy: ApplyPolicyConfig,
    /// Terraform provisioning of clusters; without this section clusters can only be registered by hand.
    #[serde(default)]
    pub provisioning: Option<ProvisioningConfig>,
    /// Name of this process in logs and agent sessions (several control planes may share one database).
    #[serde(default = "defaults::instance_name")]
    pub instance_name: String,
    /// OpenTelemetry traces (docs/observability.md); off unless `otlp_endpoint` is set.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector beside the process, e.g. `http://127.0.0.1:4318`; spans are posted to
    /// `<endpoint>/v1/traces`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: defaults::service_name(),
        }
    }
}

impl TelemetryConfig {
    /// The export settings, when traces are on; `instance` tells replicas apart.
    pub fn export(&self, instance: &str) -> Option<telemetry::OtlpExport> {
        self.otlp_endpoint
            .as_ref()
            .map(|endpoint| telemetry::OtlpExport {
                endpoint: endpoint.clone(),
                service_name: self.service_name.clone(),
                instance: instance.to_owned(),
            })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let url = url::Url::parse(endpoint)
                .map_err(|e| invalid("telemetry.otlp_endpoint", format!("not a URL: {e}")))?;
            // The exporter is built without TLS: traces go to a collector beside the process (a sidecar or a
            // node's collector), which forwards them on.
            if url.scheme() != "http" || url.host_str().is_none() {
                return Err(invalid(
                    "telemetry.otlp_endpoint",
                    "must be an http://host:port URL of an OTLP/HTTP collector",
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(invalid("telemetry.service_name", "must not be empty"));
        }
        Ok(())
    }
}

/// Where the task-signing keys are (docs/security.md#signed-tasks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSigningConfig {
    /// PKCS#8 PEM Ed25519 private key that signs new tasks, mode 0600; `control-plane generate-task-key` writes one.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The same key as PEM text, instead of `key_file`: for containers, where a Secret can be given as
    /// `EDGEFLEET_CP_TASK_SIGNING__KEY` but a mounted one cannot be both 0600 and readable by a non-root user.
    #[serde(default)]
    pub key: Option<String>,
    /// Keys being rotated out. They still sign the key set handed to agents at certificate renewal, so an agent
    /// that pins only an old key learns the new one; tasks they signed still run.
    #[serde(default)]
    pub previous_key_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    pub url: String,
    #[serde(default = "defaults::clickhouse_database")]
    pub database: String,
    #[serde(default = "defaults::clickhouse_user")]
    pub user: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub retention: LogRetention,
}

/// Days each log table keeps its rows (by the line's date); 0 keeps them for ever.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogRetention {
    pub task_logs_days: u16,
    pub demo_logs_days: u16,
    pub dead_letters_days: u16,
}

impl Default for LogRetention {
    fn default() -> Self {
        Self {
            task_logs_days: 90,
            demo_logs_days: 30,
            dead_letters_days: 90,
        }
    }
}

impl LogRetention {
    /// Tables with a retention, and its days.
    pub fn tables(&self) -> impl Iterator<Item = (&'static str, u16)> {
        [
            ("task_logs", self.task_logs_days),
            ("demo_logs", self.demo_logs_days),
            ("log_dead_letters", self.dead_letters_days),
        ]
        .into_iter()
        .filter(|(_, days)| *days > 0)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// How long a delivered task stays leased to one agent stream without a heartbeat renewing it.
    pub lease_seconds: u64,
    /// Attempts before a task whose lease keeps expiring (or that fails retryably) is failed for good.
    pub default_max_attempts: i32,
    /// How often each agent stream re-checks the queue for redeliverable tasks, besides notifications.
    pub poll_interval_ms: u64,
    /// Days a finished task (with its events) is kept before it is deleted; its logs in ClickHouse follow their
    /// own retention (`clickhouse.retention`).
    pub retention_days: u32,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            lease_seconds: 30,
            default_max_attempts: 3,
            poll_interval_ms: 2000,
            retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub heartbeat_interval_seconds: u32,
    /// Lifetime of agent client certificates; agents renew them when a third is left.
    pub certificate_ttl_seconds: u64,
    pub bootstrap_token_ttl_seconds: u64,
    /// How long a certificate stays valid after the agent renewed it, for streams still open with it.
    pub renewal_overlap_seconds: u64,
    /// How long after its certificate expired an agent may still get a new one by proving it holds the expired
    /// certificate's key (`Recover`), instead of needing a new bootstrap token; 0 turns recovery off.
    pub recovery_grace_seconds: u64,
    /// TLS handshakes on the agent port at once; further connections wait in the listen backlog. Bounds what a
    /// reconnect storm (every agent of a restarted replica) or connections that never finish a handshake cost.
    pub max_concurrent_handshakes: usize,
    /// A handshake not finished within this long is dropped, freeing its place.
    pub handshake_timeout_seconds: u64,
    /// Container image of the agent, used in install manifests.
    pub image: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_seconds: 10,
            certificate_ttl_seconds: 24 * 3600,
            bootstrap_token_ttl_seconds: 3600,
            renewal_overlap_seconds: 300,
            recovery_grace_seconds: 30 * 24 * 3600,
            max_concurrent_handshakes: 64,
            handshake_timeout_seconds: 10,
            image: format!("ghcr.io/edgefleet/node-agent:{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The admin console's sign-in and sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Name of the admin created on a database without users.
    pub admin_username: String,
    /// File holding that admin's first password; without it one is generated and printed once.
    pub admin_password_file: Option<PathBuf>,
    /// Mark the session cookie `Secure` (and name it `__Host-...`). Keep on whenever the console is reached over
    /// TLS (also behind a TLS-terminating proxy); only a plain-HTTP loopback setup needs it off.
    pub secure_cookies: bool,
    /// A session ends after this long without a request (each request slides it).
    pub session_idle_minutes: u32,
    /// ... and after this long in any case.
    pub session_max_hours: u32,
    /// Sign-in attempts per account from one address (and, times four, from one address over all accounts)
    /// within 15 minutes before further attempts from that address are refused with 429. A success clears
    /// the account's count for its address; other addresses are never refused for it.
    pub max_failed_logins: u32,
    /// How often the overview's per-region charts get a point (agents, round trip, tasks, demos, log lines).
    pub sample_interval_seconds: u32,
    /// How long those points are kept in PostgreSQL.
    pub sample_retention_hours: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            admin_username: "admin".into(),
            admin_password_file: None,
            secure_cookies: true,
            session_idle_minutes: 30,
            session_max_hours: 12,
            max_failed_logins: 5,
            sample_interval_seconds: 60,
            sample_retention_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyPolicyConfig {
    /// Namespaces no task may touch, besides the built-in ones (the agent's, `kube-system`, `kube-public`,
    /// `kube-node-lease`).
    #[serde(default)]
    pub protected_namespaces: Vec<String>,
    /// Kinds tasks may apply besides the built-in ones, as `Kind.group` or `Kind.group=admin` (e.g. a custom
    /// resource installed out of band; the agent's RBAC and its `--allow-kinds` must grant the same).
    #[serde(default)]
    pub extra_kinds: Vec<String>,
}

impl ApplyPolicyConfig {
    /// The policy; the kinds were checked when the configuration was loaded.
    pub fn policy(&self) -> agent_protocol::policy::ApplyPolicy {
        agent_protocol::policy::ApplyPolicy::new(
            self.protected_namespaces.iter().cloned(),
            self.extra_kinds.iter().filter_map(|kind| kind.parse().ok()),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for kind in &self.extra_kinds {
            kind.parse::<agent_protocol::policy::ExtraKind>()
                .map_err(|e| invalid("apply_policy.extra_kinds", e))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    #[serde(default = "defaults::terraform_bin")]
    pub terraform_bin: PathBuf,
    /// Directory holding the `terraform/` root stacks and `modules/`.
    pub source_dir: PathBuf,
    /// Per-cluster working directories are created under this one.
    pub work_dir: PathBuf,
    /// Terraform runs at once in this process.
    #[serde(default = "defaults::max_concurrent_runs")]
    pub max_concurrent: usize,
    /// Terraform runs at once for one cloud account (across processes, best effort).
    #[serde(default = "defaults::max_concurrent_per_cloud")]
    pub max_concurrent_per_cloud: i64,
    /// A Terraform command running longer than this is interrupted and the task fails.
    #[serde(default = "defaults::terraform_timeout_seconds")]
    pub timeout_seconds: u64,
    /// After an interrupt (cancel or timeout), how long Terraform may take to stop before it is killed.
    #[serde(default = "defaults::cancel_grace_seconds")]
    pub cancel_grace_seconds: u64,
    /// How long a new cluster's agent may take to connect after the install manifest was applied.
    #[serde(default = "defaults::agent_connect_timeout_seconds")]
    pub agent_connect_timeout_seconds: u64,
    /// Where Terraform state and plan files live (one state key per cluster).
    pub state: StateStoreConfig,
    /// Offer stacks marked `development_only` (the `local` stack, which starts a cluster process on this
    /// host). Off by default: on a shared control plane an operator must not start processes here.
    #[serde(default)]
    pub allow_development_stacks: bool,
    /// Variables per root stack that only the configuration sets (e.g. `local: {cluster_bin: ...}`); a
    /// cluster's own variables, limited to what the stack's `inputs.yaml` allows, are added to them.
    #[serde(default)]
    pub stack_defaults:
        std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// A Terraform filesystem mirror (the directory `scripts/build-providers.sh` prints, or one made with
    /// `terraform providers mirror`). When set, every run takes its providers from it and never from a registry,
    /// so a control plane without internet access provisions the same way.
    #[serde(default)]
    pub provider_mirror: Option<PathBuf>,
    /// Settings for every Terraform run that are not secrets: a proxy (`HTTPS_PROXY`), or the endpoint of an
    /// AWS-compatible API (`AWS_ENDPOINT_URL`, which the tests point at an emulator). Names that look like secrets
    /// are refused: credentials belong to a cloud account, sealed in the database.
    #[serde(default)]
    pub terraform_env: std::collections::BTreeMap<String, String>,
}

/// Set by the provisioner itself for every run; `provisioning.terraform_env` may not replace them.
pub const RESERVED_TERRAFORM_ENV: &[&str] = &[
    "TF_CLI_CONFIG_FILE",
    "TF_IN_AUTOMATION",
    "TF_INPUT",
    "CHECKPOINT_DISABLE",
    "TENCENTCLOUD_REGION",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateStoreConfig {
    pub bucket: String,
    /// S3 endpoint URL for S3-compatible servers; AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "defaults::s3_region")]
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Bucket in the path instead of the host name (needed by most S3-compatible servers).
    #[serde(default)]
    pub path_style: bool,
}

mod defaults {
    pub fn terraform_bin() -> std::path::PathBuf {
        "terraform".into()
    }
    pub fn max_concurrent_runs() -> usize {
        4
    }
    pub fn max_concurrent_per_cloud() -> i64 {
        2
    }
    pub fn terraform_timeout_seconds() -> u64 {
        3600
    }
    pub fn cancel_grace_seconds() -> u64 {
        30
    }
    pub fn agent_connect_timeout_seconds() -> u64 {
        300
    }
    pub fn demos_domain() -> String {
        "demos.localhost".into()
    }
    pub fn s3_region() -> String {
        "us-east-1".into()
    }

    use std::net::SocketAddr;

    pub fn api_listen() -> SocketAddr {
        "127.0.0.1:8080".parse().expect("valid literal")
    }
    pub fn agent_listen() -> SocketAddr {
        "127.0.0.1:8443".parse().expect("valid literal")
    }
    pub fn agent_tls_names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }
    pub fn database_max_connections() -> u32 {
        20
    }
    pub fn database_api_connections() -> u32 {
        8
    }
    pub fn clickhouse_database() -> String {
        "edgefleet".into()
    }
    pub fn clickhouse_user() -> String {
        "default".into()
    }
    pub fn service_name() -> String {
        "edgefleet-control-plane".into()
    }
    pub fn instance_name() -> String {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("control-plane-{}", std::process::id()))
    }
}

impl Config {
    /// Loads the YAML file (if any), applies `EDGEFLEET_CP_*` overrides from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut layers = config_loader::Layers::new();
        if let Some(path) = path {
            layers = layers.file(path)?;
        }
        let config: Config = layers.env(ENV_PREFIX, env)?.extract()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let endpoint = url::Url::parse(&self.agent_endpoint)
            .map_err(|e| invalid("agent_endpoint", format!("not a URL: {e}")))?;
        if endpoint.scheme() != "https" || endpoint.host_str().is_none() {
            return Err(invalid(
                "agent_endpoint",
                "must be an https://host:port URL (agents only speak TLS)",
            ));
        }
        if self.agent_tls_names.is_empty() {
            return Err(invalid("agent_tls_names", "must name at least one host"));
        }
        self.apply_policy.validate()?;
        self.telemetry.validate()?;
        if !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return Err(invalid(
                "database_url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        url::Url::parse(&self.clickhouse.url)
            .map_err(|e| invalid("clickhouse.url", format!("not a URL: {e}")))?;
        if self.encryption_key.is_none() && self.encryption_key_file.is_none() {
            return Err(invalid(
                "encryption_key",
                "set encryption_key or encryption_key_file (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)",
            ));
        }
        match &self.task_signing {
            None
            | Some(TaskSigningConfig {
                key_file: None,
                key: None,
                ..
            }) => {
                return Err(invalid(
                    "task_signing.key_file",
                    "not set: every task is signed; create a key with `control-plane generate-task-key --out FILE` \
                     (or give its PEM text as task_signing.key)",
                ));
            }
            Some(TaskSigningConfig {
                key_file: Some(_),
                key: Some(_),
                ..
            }) => {
                return Err(invalid(
                    "task_signing.key",
                    "set either task_signing.key or task_signing.key_file, not both",
                ));
            }
            Some(_) => {}
        }
        if self.tasks.lease_seconds == 0 {
            return Err(invalid("tasks.lease_seconds", "must be at least 1"));
        }
        if !names::is_username(&self.console.admin_username) {
            return Err(invalid(
                "console.admin_username",
                "must be 1-64 letters, digits, '.', '_' or '-'",
            ));
        }
        if self.tasks.retention_days == 0 {
            return Err(invalid("tasks.retention_days", "must be at least 1"));
        }
        if self.console.sample_interval_seconds == 0 || self.console.sample_retention_hours == 0 {
            return Err(invalid(
                "console.sample_interval_seconds",
                "sample_interval_seconds and sample_retention_hours must be at least 1",
            ));
        }
        if self.console.session_idle_minutes == 0 || self.console.session_max_hours == 0 {
            return Err(invalid(
                "console.session_idle_minutes",
                "session_idle_minutes and session_max_hours must be at least 1",
            ));
        }
        if !(1..=20).contains(&self.tasks.default_max_attempts) {
            return Err(invalid(
                "tasks.default_max_attempts",
                "must be between 1 and 20",
            ));
        }
        if self.agents.heartbeat_interval_seconds == 0 {
            return Err(invalid(
                "agents.heartbeat_interval_seconds",
                "must be at least 1",
            ));
        }
        if u64::from(self.agents.heartbeat_interval_seconds) >= self.tasks.lease_seconds {
            return Err(invalid(
                "agents.heartbeat_interval_seconds",
                "must be shorter than tasks.lease_seconds, or leases expire between heartbeats",
            ));
        }
        for (field, connections) in [
            ("database_max_connections", self.database_max_connections),
            ("database_api_connections", self.database_api_connections),
        ] {
            if connections == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.agents.max_concurrent_handshakes == 0 {
            return Err(invalid(
                "agents.max_concurrent_handshakes",
                "must be at least 1",
            ));
        }
        if !(1..=300).contains(&self.agents.handshake_timeout_seconds) {
            return Err(invalid(
                "agents.handshake_timeout_seconds",
                "must be between 1 and 300",
            ));
        }
        if self.agents.certificate_ttl_seconds < 30 {
            return Err(invalid(
                "agents.certificate_ttl_seconds",
                "must be at least 30",
            ));
        }
        if let Some(p) = &self.provisioning {
            if p.max_concurrent == 0 {
                return Err(invalid("provisioning.max_concurrent", "must be at least 1"));
            }
            if p.max_concurrent_per_cloud < 1 {
                return Err(invalid(
                    "provisioning.max_concurrent_per_cloud",
                    "must be at least 1",
                ));
            }
            if !p.source_dir.join("terraform").is_dir() || !p.source_dir.join("modules").is_dir() {
                return Err(invalid(
                    "provisioning.source_dir",
                    format!(
                        "{} must contain terraform/ and modules/",
                        p.source_dir.display()
                    ),
                ));
            }
            if p.state.bucket.is_empty() {
                return Err(invalid("provisioning.state.bucket", "must not be empty"));
            }
            if let Some(mirror) = &p.provider_mirror
                && !mirror.is_dir()
            {
                return Err(invalid(
                    "provisioning.provider_mirror",
                    format!("{} is not a directory", mirror.display()),
                ));
            }
            for (name, value) in &p.terraform_env {
                let key = format!("provisioning.terraform_env.{name}");
                if !names::is_env_name(name) {
                    return Err(invalid(
                        &key,
                        "is not an environment variable name (letters, digits and '_')",
                    ));
                }
                if names::is_secret_env_name(name) {
                    return Err(invalid(
                        &key,
                        "looks like a secret: give credentials to the cloud account instead",
                    ));
                }
                if RESERVED_TERRAFORM_ENV.contains(&name.as_str()) {
                    return Err(invalid(&key, "is set by the provisioner itself"));
                }
                if value.contains('\0') {
                    return Err(invalid(&key, "contains a NUL byte"));
                }
            }
        }
        if self.agents.bootstrap_token_ttl_seconds < 60 {
            return Err(invalid(
                "agents.bootstrap_token_ttl_seconds",
                "must be at least 60",
            ));
        }
        Ok(())
    }

    /// Reads the encryption key from the config value or its file (checking the file is private).
    pub fn encryption_key_base64(&self) -> Result<String, ConfigError> {
        if let Some(key) = &self.encryption_key {
            return Ok(key.trim().to_string());
        }
        let path = self
            .encryption_key_file
            .as_ref()
            .ok_or_else(|| invalid("encryption_key", "not set"))?;
        Ok(read_private_file("encryption_key_file", path)?
            .trim()
            .to_string())
    }

    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.tasks.lease_seconds)
    }
}

/// Reads a file holding a secret, refusing one that group or others could read.
pub fn read_private_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(
            key,
            format!(
                "{} must not be readable by group or others (chmod 600)",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(read_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_env() -> Vec<(String, String)> {
        vec![
            (
                "EDGEFLEET_CP_AGENT_ENDPOINT".into(),
                "https://127.0.0.1:8443".into(),
            ),
            (
                "EDGEFLEET_CP_DATABASE_URL".into(),
                "postgres://localhost/x".into(),
            ),
            (
                "EDGEFLEET_CP_CLICKHOUSE__URL".into(),
                "http://127.0.0.1:8123".into(),
            ),
            ("EDGEFLEET_CP_ENCRYPTION_KEY".into(), "a2V5".into()),
            (
                "EDGEFLEET_CP_TASK_SIGNING__KEY_FILE".into(),
                "/etc/edgefleet/task-key.pem".into(),
            ),
        ]
    }

    #[test]
    fn a_missing_task_signing_key_names_the_key_and_how_to_make_one() {
        let env: Vec<_> = minimal_env()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("EDGEFLEET_CP_TASK_SIGNING"))
            .collect();
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(
            err.starts_with("config key `task_signing.key_file`: not set"),
            "{err}"
        );
        assert!(err.contains("control-plane generate-task-key"), "{err}");
    }

    #[test]
    fn the_task_signing_key_comes_from_a_file_or_its_text_never_both() {
        let mut env = minimal_env();
        env.push((
            "EDGEFLEET_CP_TASK_SIGNING__KEY".into(),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----\n".into(),
        ));
        let err = Config::load(None, env.clone()).unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
        env.retain(|(name, _)| name != "EDGEFLEET_CP_TASK_SIGNING__KEY_FILE");
        let config = Config::load(None, env).unwrap();
        let signing = config.task_signing.unwrap();
        assert!(
            signing
                .key
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        assert_eq!(signing.key_file, None);
    }

    #[test]
    fn env_overrides_nested_keys_and_keeps_types() {
        let mut env = minimal_env();
        env.push(("EDGEFLEET_CP_TASKS__LEASE_SECONDS".into(), "45".into()));
        env.push(("UNRELATED".into(), "1".into()));
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.clickhouse.url, "http://127.0.0.1:8123");
        assert_eq!(config.tasks.lease_seconds, 45);
        assert_eq!(config.tasks.default_max_attempts, 3);
    }

    #[test]
    fn task_retention_is_in_days_and_at_least_one() {
        let config = Config::load(None, minimal_env()).unwrap();
        assert_eq!(config.tasks.retention_days, 30);
        let mut env = minimal_env();
        env.push(("EDGEFLEET_CP_TASKS__RETENTION_DAYS".into(), "7".into()));
        assert_eq!(Config::load(None, env).unwrap().tasks.retention_days, 7);
        let mut env = minimal_env();
        env.push(("EDGEFLEET_CP_TASKS__RETENTION_DAYS".into(), "0".into()));
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(
            err.starts_with("config key `tasks.retention_days`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let mut env = minimal_env();
        env.push(("EDGEFLEET_CP_TASKS__LEASE_SECS".into(), "45".into()));
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("tasks"), "{err}");
        assert!(err.contains("lease_secs"), "{err}");
    }

    #[test]
    fn plain_http_agent_endpoint_is_refused() {
        let mut env = minimal_env();
        env[0].1 = "http://127.0.0.1:8443".into();
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.starts_with("config key `agent_endpoint`"), "{err}");
    }

    #[test]
    fn heartbeat_must_be_shorter_than_lease() {
        let mut env = minimal_env();
        env.push(("EDGEFLEET_CP_TASKS__LEASE_SECONDS".into(), "5".into()));
        env.push((
            "EDGEFLEET_CP_AGENTS__HEARTBEAT_INTERVAL_SECONDS".into(),
            "5".into(),
        ));
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("agents.heartbeat_interval_seconds"), "{err}");
    }

    #[test]
    fn handshake_limits_must_let_agents_in() {
        for (key, value) in [
            ("MAX_CONCURRENT_HANDSHAKES", "0"),
            ("HANDSHAKE_TIMEOUT_SECONDS", "0"),
            ("HANDSHAKE_TIMEOUT_SECONDS", "3600"),
        ] {
            let mut env = minimal_env();
            env.push((format!("EDGEFLEET_CP_AGENTS__{key}"), value.into()));
            let err = Config::load(None, env).unwrap_err().to_string();
            assert!(
                err.contains(&format!("agents.{}", key.to_lowercase())),
                "{err}"
            );
        }
        let mut env = minimal_env();
        env.push((
            "EDGEFLEET_CP_AGENTS__MAX_CONCURRENT_HANDSHAKES".into(),
            "8".into(),
        ));
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.agents.max_concurrent_handshakes, 8);
        assert_eq!(config.agents.handshake_timeout_seconds, 10);
    }

    #[test]
    fn terraform_env_takes_settings_and_refuses_secrets_and_reserved_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("terraform")).unwrap();
        std::fs::create_dir_all(dir.path().join("modules")).unwrap();
        let file = dir.path().join("control-plane.yaml");
        // Environment overrides lower-case their keys, so a variable's name is only given in the file.
        let with_env = |name: &str, value: &str| {
            let yaml = serde_json::json!({"provisioning": {
                "source_dir": dir.path(),
                "work_dir": dir.path().join("work"),
                "state": {"bucket": "tf", "access_key_id": "a", "secret_access_key": "b"},
                "terraform_env": {name: value},
            }});
            std::fs::write(&file, yaml.to_string()).unwrap();
            Config::load(Some(&file), minimal_env())
        };
        let config = with_env("AWS_ENDPOINT_URL", "http://127.0.0.1:5000").unwrap();
        assert_eq!(
            config.provisioning.unwrap().terraform_env["AWS_ENDPOINT_URL"],
            "http://127.0.0.1:5000"
        );
        for (name, expected) in [
            ("AWS_SECRET_ACCESS_KEY", "looks like a secret"),
            ("GITHUB_TOKEN", "looks like a secret"),
            ("TF_CLI_CONFIG_FILE", "set by the provisioner itself"),
            ("1ABC", "is not an environment variable name"),
        ] {
            let err = with_env(name, "value-4711").unwrap_err().to_string();
            assert!(
                err.contains(&format!("provisioning.terraform_env.{name}"))
                    && err.contains(expected),
                "{name}: {err}"
            );
            assert!(
                !err.contains("value-4711"),
                "the value stays out of the message: {err}"
            );
        }
    }
}
