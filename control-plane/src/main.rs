//! The `control-plane` binary: parses the command line and runs the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use control_plane::config::Config;

#[derive(Parser)]
#[command(name = "control-plane", version, about = "Edgefleet control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log output format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "EDGEFLEET_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (REST API and agent service).
    Serve {
        /// YAML config file; `EDGEFLEET_CP_*` environment variables override its keys.
        #[arg(long, env = "EDGEFLEET_CP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration, then exit.
    CheckConfig {
        #[arg(long, env = "EDGEFLEET_CP_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    control_plane::process_log::init(matches!(format, LogFormat::Json));
}

fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.as_deref(), std::env::vars()).context("invalid configuration")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::CheckConfig { config } => {
            load(config)?;
            println!("configuration is valid");
            Ok(())
        }
        Command::Serve { config } => {
            let config = load(config)?;
            // Everything the control plane and its children write (Terraform's working files and plans, a local
            // cluster's kubeconfig) is readable by its own user only.
            // SAFETY: umask only swaps the process's file-creation mask; no memory is involved.
            unsafe { libc::umask(0o077) };
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("can install a SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("shutting down");
            };
            let running = control_plane::app::start(config, shutdown)
                .await
                .context("control plane failed to start")?;
            running.serve.await.map_err(anyhow::Error::msg)
        }
    }
}
