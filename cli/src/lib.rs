//! The `edgefleet` command-line client of the control plane's REST API: log in once, then list and inspect
//! clouds, regions, clusters and templates, apply manifests to a cluster and follow the task, and deploy, watch
//! and delete demos. Tables by default, `-o json|yaml` for scripts. See docs/cli.md.

mod client;
mod commands;
pub mod login;
pub mod output;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
        action: ListOnly,
    },
    /// Regions.
    Regions {
        #[command(subcommand)]
        action: ListOnly,
    },
    /// Image templates.
    Templates {
        #[command(subcommand)]
        action: ListOnly,
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
    /// Print a shell completion script, e.g. `edgefleet completions bash > ~/.local/share/bash-completion/completions/edgefleet`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum ListOnly {
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    List,
    /// One cluster by name or id.
    Get {
        cluster: String,
    },
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
    /// Delete the demo's objects from its cluster, then close it.
    Delete {
        name: String,
        #[arg(long)]
        wait: bool,
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
        Command::Clouds {
            action: ListOnly::List,
        } => commands::clouds(&client, format).await,
        Command::Regions {
            action: ListOnly::List,
        } => commands::regions(&client, format).await,
        Command::Templates {
            action: ListOnly::List,
        } => commands::templates(&client, format).await,
        Command::Clusters { action } => commands::clusters(&client, format, action).await,
        Command::Tasks { action } => commands::tasks(&client, format, action).await,
        Command::Demos { action } => commands::demos(&client, format, action).await,
    }
}
