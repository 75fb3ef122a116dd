//! The agent's command line, its optional YAML config file and the validated settings built from both, merged
//! by the loader the control plane uses too (`config_loader`: file < environment/flags).

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_protocol::policy::ApplyPolicy;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::identity::BootstrapToken;
use crate::logbuffer::{LogSettings, WhenFull};

/// Environment variable holding the install bundle's CA certificate as PEM text (alternative to `ca_file`).
pub const ENV_CA_PEM: &str = "EDGEFLEET_CA_PEM";
/// Environment variable holding the one-time bootstrap token (alternative to `bootstrap_token_file`).
pub const ENV_BOOTSTRAP_TOKEN: &str = "EDGEFLEET_BOOTSTRAP_TOKEN";

// Most of a task's time is spent waiting for a rollout (a read a second), so a slot is cheap; too few slots make
// one deploy's objects wait for another deploy's pods to start (see docs/benchmarks.md).
const DEFAULT_MAX_CONCURRENT_TASKS: u32 = 16;
const MAX_CONCURRENT_TASKS_LIMIT: u32 = 64;
const DEFAULT_LOG_BATCH_LINES: usize = 500;
const DEFAULT_LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(1000);
const DEFAULT_LOG_BUFFER_MAX_BYTES: u64 = 256 * 1024 * 1024;
const MIN_LOG_BUFFER_MAX_BYTES: u64 = 64 * 1024;
const DEFAULT_LOG_SEND_WINDOW: usize = 128;
/// Where the log buffers go when the state is a Secret (in a cluster): the install manifest mounts a volume there.
pub const IN_CLUSTER_LOG_BUFFER_DIR: &str = "/var/lib/edgefleet/log-buffer";
const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
const DEFAULT_RENEW_CHECK_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_OFFLINE_CHECK_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] config_loader::LoadError),
    #[error("`{key}` is required ({hint})")]
    Missing {
        key: &'static str,
        hint: &'static str,
    },
    #[error("`{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("`{key}`: cannot read {path}: {source}")]
    ReadReferencedFile {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("set only one of `{first}` and `{second}`")]
    Conflict {
        first: &'static str,
        second: &'static str,
    },
}

/// Edge agent of the edgefleet control plane.
#[derive(Debug, Parser)]
#[command(name = "node-agent", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol with the control plane (if needed) and run tasks for this cluster until stopped.
    Run(Box<RunArgs>),
    /// Print the agent version.
    Version,
}

/// Flags of `node-agent run`; every flag also reads an `EDGEFLEET_*` variable and may be set in the YAML file
/// (flag/env wins over the file). `EDGEFLEET_CA_PEM` and `EDGEFLEET_BOOTSTRAP_TOKEN` are environment-only so
/// secrets never appear in a process listing.
#[derive(Debug, Default, Args, Serialize)]
pub struct RunArgs {
    /// YAML config file with the same keys as the flags, in snake_case.
    #[arg(long, env = "EDGEFLEET_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Control plane gRPC endpoint, `https://host:port`.
    #[arg(long, env = "EDGEFLEET_CONTROL_PLANE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
    /// TLS name to verify on the control plane certificate (default: the URL's host).
    #[arg(long, env = "EDGEFLEET_SERVER_NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Install bundle CA certificate (PEM) pinned for bootstrap.
    #[arg(long, env = "EDGEFLEET_CA_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// File holding the one-time bootstrap token.
    #[arg(long, env = "EDGEFLEET_BOOTSTRAP_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Directory for key.pem, cert.pem and ca.pem (outside a cluster).
    #[arg(long, env = "EDGEFLEET_STATE_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Kubernetes Secret `<namespace>/<name>` for tls.key, tls.crt and ca.crt (in a cluster).
    #[arg(long, env = "EDGEFLEET_STATE_SECRET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_secret: Option<String>,
    /// Kubeconfig file (default: in-cluster config, then ~/.kube/config).
    #[arg(long, env = "EDGEFLEET_KUBECONFIG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// How many tasks run at once.
    #[arg(long, env = "EDGEFLEET_MAX_CONCURRENT_TASKS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_tasks: Option<u32>,
    /// Heartbeat interval overriding the server's (e.g. `10s`).
    #[arg(long, env = "EDGEFLEET_HEARTBEAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// Log output format on stderr.
    #[arg(long, env = "EDGEFLEET_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Task log lines per batch before it is sent.
    #[arg(long, env = "EDGEFLEET_LOG_BATCH_LINES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_batch_lines: Option<usize>,
    /// Longest time a task log line waits before its batch is sent (e.g. `1s`, `250ms`).
    #[arg(long, env = "EDGEFLEET_LOG_FLUSH_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_flush_interval: Option<String>,
    /// Directory of the on-disk log buffers (default: `<state_dir>/log-buffer`, or
    /// `/var/lib/edgefleet/log-buffer` with `--state-secret`).
    #[arg(long, env = "EDGEFLEET_LOG_BUFFER_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_buffer_dir: Option<PathBuf>,
    /// Bytes each log buffer (task logs, pod logs) may take on disk (default 256 MiB).
    #[arg(long, env = "EDGEFLEET_LOG_BUFFER_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_buffer_max_bytes: Option<u64>,
    /// What a full pod log buffer does: `block` (stop reading pod logs until acks free space) or `drop-oldest`.
    #[arg(long, env = "EDGEFLEET_LOG_BUFFER_WHEN_FULL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_buffer_when_full: Option<WhenFull>,
    /// Log batches sent and not yet acknowledged, at most, per kind of log.
    #[arg(long, env = "EDGEFLEET_LOG_SEND_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_send_window: Option<usize>,
    /// First reconnect delay ceiling (doubles per failed attempt, full jitter).
    #[arg(long, env = "EDGEFLEET_BACKOFF_INITIAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_initial: Option<String>,
    /// Largest reconnect delay ceiling.
    #[arg(long, env = "EDGEFLEET_BACKOFF_MAX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
    /// How often the certificate is checked for renewal (at most `60s`).
    #[arg(long, env = "EDGEFLEET_RENEW_CHECK_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_check_interval: Option<String>,
    /// While the control plane is out of reach, how often the objects applied by tasks are checked and kept as
    /// applied (between `1s` and `1h`; default `10s`).
    #[arg(long, env = "EDGEFLEET_OFFLINE_CHECK_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_check_interval: Option<String>,
    /// An OTLP/HTTP collector beside the agent (`http://host:4318`) to export traces to; none by default.
    #[arg(long, env = "EDGEFLEET_OTLP_ENDPOINT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Namespaces no task may touch, besides the built-in ones (comma-separated; the control plane's
    /// `apply_policy.protected_namespaces` should list the same).
    #[arg(long, env = "EDGEFLEET_PROTECTED_NAMESPACES", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protected_namespaces: Vec<String>,
    /// Kinds tasks may apply besides the built-in ones, as `Kind.group` or `Kind.group=admin` (comma-separated;
    /// the control plane's `apply_policy.extra_kinds` should list the same).
    #[arg(long, env = "EDGEFLEET_ALLOW_KINDS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_kinds: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The config file and the flags merged: the file's keys are the flags' names in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Merged {
    control_plane: Option<String>,
    server_name: Option<String>,
    ca_file: Option<PathBuf>,
    bootstrap_token_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    state_secret: Option<String>,
    kubeconfig: Option<PathBuf>,
    max_concurrent_tasks: Option<u32>,
    #[serde(default, with = "config_loader::duration")]
    heartbeat: Option<Duration>,
    log_format: Option<LogFormat>,
    log_batch_lines: Option<usize>,
    #[serde(default, with = "config_loader::duration")]
    log_flush_interval: Option<Duration>,
    log_buffer_dir: Option<PathBuf>,
    log_buffer_max_bytes: Option<u64>,
    log_buffer_when_full: Option<WhenFull>,
    log_send_window: Option<usize>,
    #[serde(default, with = "config_loader::duration")]
    backoff_initial: Option<Duration>,
    #[serde(default, with = "config_loader::duration")]
    backoff_max: Option<Duration>,
    #[serde(default, with = "config_loader::duration")]
    renew_check_interval: Option<Duration>,
    #[serde(default, with = "config_loader::duration")]
    offline_check_interval: Option<Duration>,
    otlp_endpoint: Option<String>,
    protected_namespaces: Option<Vec<String>>,
    allow_kinds: Option<Vec<String>>,
}

/// Where the control plane is and which TLS name its certificate must carry.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    pub url: String,
    pub server_name: Option<String>,
}

/// Where the agent keeps its key and certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    Directory(PathBuf),
    Secret { namespace: String, name: String },
}

/// Bounds of the reconnect delay (exponential with full jitter, see `session::Backoff`).
#[derive(Debug, Clone, Copy)]
pub struct BackoffSettings {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Largest ceiling; reached after repeated failures.
    pub max: Duration,
}

/// Validated settings of `node-agent run`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub control_plane: ControlPlane,
    /// The install bundle's CA (PEM), pinned for bootstrap; optional once credentials are stored.
    pub install_ca_pem: Option<String>,
    pub bootstrap_token: Option<BootstrapToken>,
    pub state: StateLocation,
    pub kubeconfig: Option<PathBuf>,
    pub max_concurrent_tasks: u32,
    /// Overrides the heartbeat interval the server announces in `Welcome`.
    pub heartbeat_override: Option<Duration>,
    pub log_format: LogFormat,
    pub logs: LogSettings,
    pub backoff: BackoffSettings,
    pub renew_check_interval: Duration,
    /// How often kept objects are checked while the control plane is out of reach (edge autonomy).
    pub offline_check_interval: Duration,
    /// The apply policy every task is checked against before anything is applied.
    pub policy: ApplyPolicy,
    /// Where traces go (`<endpoint>/v1/traces`); none when unset.
    pub otlp_endpoint: Option<String>,
}

impl Settings {
    /// Merges flags/env over the config file over defaults and validates the result.
    /// `env` looks up the environment-only variables (`EDGEFLEET_CA_PEM`, `EDGEFLEET_BOOTSTRAP_TOKEN`).
    pub fn load(args: &RunArgs, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut layers = config_loader::Layers::new();
        if let Some(path) = &args.config {
            layers = layers.file(path)?;
        }
        let merged: Merged = layers.overrides(args)?.extract()?;
        let control_plane = merged.control_plane.clone().ok_or(ConfigError::Missing {
            key: "control_plane",
            hint: "--control-plane or EDGEFLEET_CONTROL_PLANE",
        })?;
        validate_control_plane_url(&control_plane)?;
        let server_name = merged.server_name.clone();
        if server_name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "server_name",
                reason: "must not be empty".into(),
            });
        }

        let install_ca_pem = match (merged.ca_file.clone(), env(ENV_CA_PEM)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: "ca_file",
                    second: ENV_CA_PEM,
                });
            }
            (Some(path), None) => {
                let pem = read_referenced("ca_file", &path)?;
                Some(validate_ca_pem(
                    "ca_file",
                    &path.display().to_string(),
                    pem,
                )?)
            }
            (None, Some(pem)) => Some(validate_ca_pem(ENV_CA_PEM, "the variable", pem)?),
            (None, None) => None,
        };
        let bootstrap_token = match (
            merged.bootstrap_token_file.clone(),
            env(ENV_BOOTSTRAP_TOKEN),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: "bootstrap_token_file",
                    second: ENV_BOOTSTRAP_TOKEN,
                });
            }
            (Some(path), None) => Some(parse_token(
                "bootstrap_token_file",
                read_referenced("bootstrap_token_file", &path)?,
            )?),
            (None, Some(token)) => Some(parse_token(ENV_BOOTSTRAP_TOKEN, token)?),
            (None, None) => None,
        };

        let state = match (merged.state_dir.clone(), merged.state_secret.clone()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: "state_dir",
                    second: "state_secret",
                });
            }
            (Some(dir), None) => StateLocation::Directory(dir),
            (None, Some(secret)) => parse_state_secret(&secret)?,
            (None, None) => {
                return Err(ConfigError::Missing {
                    key: "state_dir",
                    hint: "--state-dir outside a cluster, or --state-secret <namespace>/<name> inside one",
                });
            }
        };

        let max_concurrent_tasks = merged
            .max_concurrent_tasks
            .unwrap_or(DEFAULT_MAX_CONCURRENT_TASKS);
        if !(1..=MAX_CONCURRENT_TASKS_LIMIT).contains(&max_concurrent_tasks) {
            return Err(ConfigError::Invalid {
                key: "max_concurrent_tasks",
                reason: format!(
                    "must be between 1 and {MAX_CONCURRENT_TASKS_LIMIT}, got {max_concurrent_tasks}"
                ),
            });
        }
        let heartbeat_override = merged.heartbeat;
        if heartbeat_override.is_some_and(|interval| interval < Duration::from_secs(1)) {
            return Err(ConfigError::Invalid {
                key: "heartbeat",
                reason: "must be at least 1s".into(),
            });
        }

        let logs = LogSettings {
            batch_lines: merged.log_batch_lines.unwrap_or(DEFAULT_LOG_BATCH_LINES),
            flush_interval: merged
                .log_flush_interval
                .unwrap_or(DEFAULT_LOG_FLUSH_INTERVAL),
            buffer_dir: match (&merged.log_buffer_dir, &state) {
                (Some(dir), _) => dir.clone(),
                (None, StateLocation::Directory(dir)) => dir.join("log-buffer"),
                (None, StateLocation::Secret { .. }) => IN_CLUSTER_LOG_BUFFER_DIR.into(),
            },
            buffer_max_bytes: merged
                .log_buffer_max_bytes
                .unwrap_or(DEFAULT_LOG_BUFFER_MAX_BYTES),
            when_full: merged.log_buffer_when_full.unwrap_or_default(),
            send_window: merged.log_send_window.unwrap_or(DEFAULT_LOG_SEND_WINDOW),
        };
        if logs.batch_lines == 0 {
            return Err(ConfigError::Invalid {
                key: "log_batch_lines",
                reason: "must be at least 1".into(),
            });
        }
        if logs.flush_interval < Duration::from_millis(10) {
            return Err(ConfigError::Invalid {
                key: "log_flush_interval",
                reason: "must be at least 10ms".into(),
            });
        }
        if logs.buffer_max_bytes < MIN_LOG_BUFFER_MAX_BYTES {
            return Err(ConfigError::Invalid {
                key: "log_buffer_max_bytes",
                reason: format!(
                    "must be at least {MIN_LOG_BUFFER_MAX_BYTES} bytes, got {}",
                    logs.buffer_max_bytes
                ),
            });
        }
        if logs.send_window == 0 {
            return Err(ConfigError::Invalid {
                key: "log_send_window",
                reason: "must be at least 1".into(),
            });
        }

        let backoff = BackoffSettings {
            initial: merged.backoff_initial.unwrap_or(DEFAULT_BACKOFF_INITIAL),
            max: merged.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX),
        };
        if backoff.initial.is_zero() {
            return Err(ConfigError::Invalid {
                key: "backoff_initial",
                reason: "must be greater than 0".into(),
            });
        }
        if backoff.max < backoff.initial {
            return Err(ConfigError::Invalid {
                key: "backoff_max",
                reason: format!("must be at least backoff_initial ({:?})", backoff.initial),
            });
        }
        let renew_check_interval = merged
            .renew_check_interval
            .unwrap_or(DEFAULT_RENEW_CHECK_INTERVAL);
        if renew_check_interval.is_zero() || renew_check_interval > DEFAULT_RENEW_CHECK_INTERVAL {
            return Err(ConfigError::Invalid {
                key: "renew_check_interval",
                reason: "must be greater than 0 and at most 60s".into(),
            });
        }
        let offline_check_interval = merged
            .offline_check_interval
            .unwrap_or(DEFAULT_OFFLINE_CHECK_INTERVAL);
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&offline_check_interval) {
            return Err(ConfigError::Invalid {
                key: "offline_check_interval",
                reason: "must be between 1s and 1h".into(),
            });
        }

        let extra_kinds = merged
            .allow_kinds
            .unwrap_or_default()
            .iter()
            .map(|kind| kind.parse())
            .collect::<Result<Vec<_>, String>>()
            .map_err(|reason| ConfigError::Invalid {
                key: "allow_kinds",
                reason,
            })?;
        let policy = ApplyPolicy::new(merged.protected_namespaces.unwrap_or_default(), extra_kinds);
        // The exporter is built without TLS: traces go to a collector beside the agent, which forwards them.
        if let Some(endpoint) = &merged.otlp_endpoint
            && !endpoint
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
        {
            return Err(ConfigError::Invalid {
                key: "otlp_endpoint",
                reason: "must be an http://host:port URL of an OTLP/HTTP collector".into(),
            });
        }

        Ok(Settings {
            control_plane: ControlPlane {
                url: control_plane,
                server_name,
            },
            install_ca_pem,
            bootstrap_token,
            state,
            kubeconfig: merged.kubeconfig,
            max_concurrent_tasks,
            heartbeat_override,
            log_format: merged.log_format.unwrap_or_default(),
            logs,
            backoff,
            renew_check_interval,
            offline_check_interval,
            policy,
            otlp_endpoint: merged.otlp_endpoint,
        })
    }
}

fn read_referenced(key: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadReferencedFile {
        key,
        path: path.to_owned(),
        source,
    })
}

fn validate_control_plane_url(url: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "control_plane",
        reason,
    };
    let uri: tonic::transport::Uri = url
        .parse()
        .map_err(|err| invalid(format!("{url:?} is not a URL: {err}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid(format!(
            "{url:?} must use https:// (the agent only talks TLS)"
        )));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(format!("{url:?} has no host")));
    }
    Ok(())
}

/// Accepts PEM only when it holds at least one parsable certificate, because an unusable CA would otherwise
/// surface much later as an opaque TLS handshake failure.
fn validate_ca_pem(key: &'static str, origin: &str, pem: String) -> Result<String, ConfigError> {
    let count =
        crate::identity::count_certificates(&pem).map_err(|reason| ConfigError::Invalid {
            key,
            reason: format!("{origin} holds a certificate that does not parse: {reason}"),
        })?;
    if count == 0 {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{origin} contains no PEM certificate"),
        });
    }
    Ok(pem)
}

fn parse_token(key: &'static str, raw: String) -> Result<BootstrapToken, ConfigError> {
    let token = raw.trim();
    if token.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            reason: "the bootstrap token is empty".into(),
        });
    }
    Ok(BootstrapToken::new(token.to_owned()))
}

fn parse_state_secret(value: &str) -> Result<StateLocation, ConfigError> {
    match value.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(StateLocation::Secret {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => Err(ConfigError::Invalid {
            key: "state_secret",
            reason: format!("expected <namespace>/<name>, got {value:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            control_plane: Some("https://cp.example:8443".into()),
            state_dir: Some("/tmp/agent".into()),
            ..RunArgs::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_apply_when_nothing_else_is_set() {
        let settings = Settings::load(&args(), no_env).unwrap();
        assert_eq!(settings.max_concurrent_tasks, DEFAULT_MAX_CONCURRENT_TASKS);
        assert_eq!(settings.logs.batch_lines, DEFAULT_LOG_BATCH_LINES);
        assert_eq!(settings.backoff.max, DEFAULT_BACKOFF_MAX);
        assert_eq!(
            settings.state,
            StateLocation::Directory("/tmp/agent".into())
        );
        assert!(settings.bootstrap_token.is_none());
    }

    #[test]
    fn flags_override_the_file_and_unknown_file_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            "max_concurrent_tasks: 9\nheartbeat: 3s\nlog_format: json\n",
        )
        .unwrap();
        let mut args = args();
        args.config = Some(path.clone());
        args.max_concurrent_tasks = Some(2);
        let settings = Settings::load(&args, no_env).unwrap();
        assert_eq!(settings.max_concurrent_tasks, 2);
        assert_eq!(settings.heartbeat_override, Some(Duration::from_secs(3)));
        assert_eq!(settings.log_format, LogFormat::Json);

        std::fs::write(&path, "max_concurent_tasks: 9\n").unwrap();
        let err = Settings::load(&args, no_env).unwrap_err().to_string();
        assert!(err.contains("max_concurent_tasks"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let mut bad_url = args();
        bad_url.control_plane = Some("http://cp:80".into());
        let err = Settings::load(&bad_url, no_env).unwrap_err().to_string();
        assert!(
            err.contains("`control_plane`") && err.contains("https"),
            "{err}"
        );

        let mut no_state = args();
        no_state.state_dir = None;
        assert!(
            Settings::load(&no_state, no_env)
                .unwrap_err()
                .to_string()
                .contains("`state_dir`")
        );

        let mut bad_secret = args();
        bad_secret.state_dir = None;
        bad_secret.state_secret = Some("just-a-name".into());
        assert!(
            Settings::load(&bad_secret, no_env)
                .unwrap_err()
                .to_string()
                .contains("`state_secret`")
        );

        let mut bad_duration = args();
        bad_duration.heartbeat = Some("10 parsecs".into());
        assert!(
            Settings::load(&bad_duration, no_env)
                .unwrap_err()
                .to_string()
                .contains("`heartbeat`")
        );

        let mut missing_ca = args();
        missing_ca.ca_file = Some("/nonexistent/ca.pem".into());
        let err = Settings::load(&missing_ca, no_env).unwrap_err().to_string();
        assert!(
            err.contains("`ca_file`") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn ca_pem_must_hold_a_certificate() {
        let env = |key: &str| (key == ENV_CA_PEM).then(|| "not a certificate".to_owned());
        let err = Settings::load(&args(), env).unwrap_err().to_string();
        assert!(err.contains(ENV_CA_PEM), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "hello").unwrap();
        let mut with_file = args();
        with_file.ca_file = Some(path.clone());
        let err = Settings::load(&with_file, no_env).unwrap_err().to_string();
        let expected = format!(
            "`ca_file` is invalid: {} contains no PEM certificate",
            path.display()
        );
        assert_eq!(err, expected);
    }

    #[test]
    fn token_comes_from_env_and_is_trimmed() {
        let env = |key: &str| (key == ENV_BOOTSTRAP_TOKEN).then(|| " secret-token\n".to_owned());
        let settings = Settings::load(&args(), env).unwrap();
        assert_eq!(settings.bootstrap_token.unwrap().expose(), "secret-token");
    }
}
