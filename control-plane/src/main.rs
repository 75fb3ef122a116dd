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
    /// Write a new Ed25519 task-signing key (PKCS#8 PEM, mode 0600) for `task_signing.key_file`.
    GenerateTaskKey {
        /// Where to write it; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(
    format: LogFormat,
    otlp: Option<&telemetry::OtlpExport>,
) -> anyhow::Result<telemetry::Telemetry> {
    control_plane::process_log::init(matches!(format, LogFormat::Json), otlp)
        .context("setting up the log and traces")
}

fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.as_deref(), std::env::vars()).context("invalid configuration")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => {
            let _log = init_tracing(cli.log_format, None)?;
            load(config)?;
            println!("configuration is valid");
            Ok(())
        }
        Command::GenerateTaskKey { out } => {
            let _log = init_tracing(cli.log_format, None)?;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let pem = agent_protocol::signing::SigningKey::generate_pem();
            let key = agent_protocol::signing::SigningKey::from_pem(&pem)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .and_then(|mut file| file.write_all(pem.as_bytes()))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote task-signing key {} to {}", key.id(), out.display());
            Ok(())
        }
        Command::Serve { config } => {
            let config = load(config)?;
            // Kept until the process ends: dropping it flushes the spans still buffered.
            let _telemetry = init_tracing(
                cli.log_format,
                config.telemetry.export(&config.instance_name).as_ref(),
            )?;
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
