//! The `edgefleet` command-line client of the control plane's REST API: log in once, then manage clouds,
//! regions, clusters (joining the current kubeconfig context's cluster), templates, users and API tokens, apply
//! manifests to a cluster and follow the task, and deploy, change, watch and delete demos and read their logs.
//! Tables by default, `-o json|yaml` for scripts. See docs/cli.md.

mod client;
mod commands;
pub mod login;
pub mod output;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use client::Client;
use output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "edgefleet",
    version,
    about = "Command-line client of the Edgefleet control plane"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Control plane URL, e.g. `http://127.0.0.1:8080` (default: the saved login).
    #[arg(long, env = "EDGEFLEET_URL", global = true)]
    pub url: Option<String>,
    /// API token (default: the saved login).
    #[arg(long, env = "EDGEFLEET_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// Where `edgefleet login` keeps the URL and token (default: `~/.config/edgefleet/login.yaml`).
    #[arg(long, env = "EDGEFLEET_CLI_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save the control plane's URL and an API token (read from standard input or `--token`) for later commands.
    Login {
        /// Read the token from standard input (so it stays out of the shell history).
        #[arg(long)]
        token_stdin: bool,
    },
    /// Cloud accounts.
    Clouds {
        #[command(subcommand)]
        action: CloudAction,
    },
    /// Regions.
    Regions {
        #[command(subcommand)]
        action: RegionAction,
    },
    /// Image templates.
    Templates {
        #[command(subcommand)]
        action: TemplateAction,
    },
    /// Clusters and their agents.
    Clusters {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Apply manifests to a cluster and follow the task.
    Tasks {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// One-click demos.
    Demos {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Console users (admin).
    Users {
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens for scripts (admin).
    Tokens {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print a shell completion script, e.g. `edgefleet completions bash > ~/.local/share/bash-completion/completions/edgefleet`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum CloudAction {
    List,
    /// One cloud account by name or id.
    Get {
        cloud: String,
    },
    /// Register a cloud account; its credentials come from a file, never from the command line.
    Create {
        name: String,
        /// tencentcloud, aws, local or existing.
        #[arg(long)]
        provider: String,
        /// A YAML or JSON map of credential fields (aws: access_key_id, secret_access_key; tencentcloud:
        /// secret_id, secret_key; existing: kubeconfig), or `-` for standard input.
        #[arg(long, value_name = "FILE")]
        credentials_file: Option<PathBuf>,
        /// `KEY=value`, repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Remove a cloud account no region uses.
    Delete {
        cloud: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegionAction {
    List,
    /// One region by code or id.
    Get {
        region: String,
    },
    /// Add a region to a cloud account.
    Create {
        /// The provider's region code, e.g. `ap-shanghai` or `us-east-1`.
        code: String,
        /// Cloud account name or id.
        #[arg(long)]
        cloud: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Add it disabled: it takes no demos until enabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Let the region take new demos.
    Enable {
        region: String,
    },
    /// Stop placing new demos in the region (running ones stay).
    Disable {
        region: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateAction {
    List,
    /// One template with every revision.
    Get {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    List,
    /// One cluster by name or id.
    Get {
        cluster: String,
    },
    /// Register an existing cluster by hand (then `clusters token` or `clusters join` installs its agent).
    Create {
        name: String,
        /// Region code or id.
        #[arg(long)]
        region: String,
        #[arg(long, value_enum, default_value_t = ClusterRole::User)]
        role: ClusterRole,
        /// The cluster's Kubernetes API address, for the record.
        #[arg(long)]
        api_endpoint: Option<String>,
    },
    /// Mint a one-time bootstrap token and print the agent's install manifest (`| kubectl apply --server-side -f -`).
    Token {
        cluster: String,
        /// How long the token is valid, e.g. `30m` or `2h` (1 minute to 7 days; default 1 hour).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Print the commands that run the agent outside a cluster instead of the manifest.
        #[arg(long)]
        command: bool,
    },
    /// Register the cluster of the current kubeconfig context and install its agent there, as `clusteradm join` does.
    Join {
        name: String,
        /// Region code or id.
        #[arg(long)]
        region: String,
        /// The kubeconfig (default: `$KUBECONFIG`, then `~/.kube/config`).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// A context of the kubeconfig other than its current one.
        #[arg(long)]
        context: Option<String>,
        /// Wait until the agent is connected.
        #[arg(long)]
        wait: bool,
    },
    /// Revoke the cluster's agent and unused bootstrap tokens (streams close, reconnects fail).
    RevokeAgent {
        cluster: String,
    },
    /// Deregister the cluster: its agent is revoked and its open tasks cancelled.
    Delete {
        cluster: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClusterRole {
    User,
    Management,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Apply a multi-document Kubernetes YAML file to a cluster.
    Apply {
        /// The manifest file, or `-` for standard input.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Cluster name or id.
        #[arg(long)]
        cluster: String,
        /// Wait until the task finished; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        /// Take over fields other managers own.
        #[arg(long)]
        force_conflicts: bool,
        /// The same key on the same cluster returns the first task instead of a new one.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    List {
        /// Only this cluster's tasks (name or id).
        #[arg(long)]
        cluster: Option<String>,
    },
    Get {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// The task's log lines; `--follow` keeps reading until the task finished.
    Logs {
        id: String,
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DemoAction {
    List,
    /// Deploy a template (and image) to a region in one click.
    Deploy {
        name: String,
        #[arg(long)]
        template: String,
        /// Region code or id, or `auto`.
        #[arg(long, default_value = "auto")]
        region: String,
        #[arg(long)]
        image: Option<String>,
        /// `NAME=value`, repeatable.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        #[arg(long, default_value_t = 1)]
        replicas: i32,
        /// Follow the steps until the demo is online (or a step failed: exit 1).
        #[arg(long)]
        wait: bool,
    },
    /// The demo's current deploy and its steps; `--watch` prints each step as it changes until the deploy ends.
    Status {
        name: String,
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// Roll out a new version with another image, environment or replica count.
    Update {
        name: String,
        #[arg(long)]
        image: Option<String>,
        /// `NAME=value`, repeatable; replaces the whole environment.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        #[arg(long)]
        replicas: Option<i32>,
        #[arg(long)]
        wait: bool,
    },
    /// Roll out an earlier version's template, image and configuration again.
    Rollback {
        name: String,
        /// The version to go back to (`demos versions NAME` lists them).
        #[arg(long)]
        to_version: i32,
        #[arg(long)]
        wait: bool,
    },
    /// Scale to zero: the demo goes offline and loses its URL.
    Stop {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// Scale back to the replica count it last had.
    Start {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// Resume the current deploy at its failed step.
    Retry {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// The demo's version history, newest first.
    Versions {
        name: String,
    },
    /// The demo's pod logs; `--follow` keeps printing new lines as they are stored.
    Logs {
        name: String,
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines from this long ago on, e.g. `10m` (default: all kept).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// This level and more severe ones.
        #[arg(long, value_enum)]
        level: Option<LogLevel>,
        /// Only lines containing this text (case-insensitive).
        #[arg(long)]
        grep: Option<String>,
        /// Only this pod's lines.
        #[arg(long)]
        pod: Option<String>,
    },
    /// Delete the demo's objects from its cluster, then close it.
    Delete {
        name: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    List,
    /// Add a console user; the password is read from standard input.
    Create {
        username: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Change a user's role, disable or enable them, or set a new password (read from standard input); their
    /// sessions end.
    Update {
        username: String,
        #[arg(long, value_enum)]
        role: Option<Role>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
        /// Read a new password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    List,
    /// Create an API token; it is printed this once.
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Expiry in days (default: none).
        #[arg(long)]
        ttl_days: Option<i64>,
    },
    /// Revoke a token by name or id.
    Revoke {
        // Not `token`: that is the global `--token` flag's id, and clap would fill both from one value.
        #[arg(value_name = "TOKEN")]
        name: String,
    },
}

/// Why a command failed; the exit code says what kind of failure it was.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{}", api_text(message, details))]
    Api {
        status: u16,
        code: String,
        message: String,
        details: Vec<(String, String)>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("cannot reach the control plane at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Failed(String),
}

fn api_text(message: &str, details: &[(String, String)]) -> String {
    let mut text = message.to_owned();
    for (field, problem) in details {
        text.push_str(&format!("\n  {field}: {problem}"));
    }
    text
}

impl CliError {
    /// 1 failed, 2 usage or invalid input, 3 not found, 4 conflict, 5 not allowed (unauthenticated or forbidden).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::NotFound(_) => 3,
            Self::Conflict(_) => 4,
            Self::Api { status, .. } => match status {
                400 | 415 | 422 => 2,
                404 => 3,
                409 => 4,
                401 | 403 => 5,
                _ => 1,
            },
            Self::Unreachable { .. } | Self::Failed(_) => 1,
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let config = match &cli.global.config {
        Some(path) => path.clone(),
        None => login::default_path()?,
    };
    let overrides = login::Overrides {
        url: cli.global.url.clone(),
        token: cli.global.token.clone(),
    };
    match cli.command {
        Command::Login { token_stdin } => {
            return commands::login(&config, overrides, token_stdin).await;
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "edgefleet", &mut std::io::stdout());
            return Ok(());
        }
        _ => {}
    }
    let saved = login::resolve(&config, &overrides)?;
    let client = Client::new(&saved.url, &saved.token)?;
    let format = cli.global.output;
    match cli.command {
        Command::Login { .. } | Command::Completions { .. } => unreachable!("handled above"),
        Command::Clouds { action } => commands::clouds(&client, format, action).await,
        Command::Regions { action } => commands::regions(&client, format, action).await,
        Command::Templates { action } => commands::templates(&client, format, action).await,
        Command::Clusters { action } => commands::clusters(&client, format, action).await,
        Command::Tasks { action } => commands::tasks(&client, format, action).await,
        Command::Demos { action } => commands::demos(&client, format, action).await,
        Command::Users { action } => commands::users(&client, format, action).await,
        Command::Tokens { action } => commands::tokens(&client, format, action).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn a_positional_argument_never_lands_in_a_global_flag() {
        let cli = Cli::try_parse_from(["edgefleet", "tokens", "revoke", "ci-reader"]).unwrap();
        assert_ne!(cli.global.token.as_deref(), Some("ci-reader"));
        assert!(matches!(
            cli.command,
            Command::Tokens {
                action: TokenAction::Revoke { name }
            } if name == "ci-reader"
        ));
        let cli = Cli::try_parse_from(["edgefleet", "clusters", "get", "edge-1"]).unwrap();
        assert_ne!(cli.global.url.as_deref(), Some("edge-1"));
        assert!(matches!(
            cli.command,
            Command::Clusters {
                action: ClusterAction::Get { cluster }
            } if cluster == "edge-1"
        ));
    }
}
