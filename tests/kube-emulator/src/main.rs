//! `kube-emulator` binary: starts the in-memory Kubernetes API emulator and prints where it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube_emulator::{Config, Emulator, RunImage, Settings};

/// In-memory Kubernetes API server for tests and the local quick start.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Serve HTTPS with a generated CA; clients authenticate with the bearer token or the client certificate
    /// written to the kubeconfig.
    #[arg(long)]
    tls: bool,
    /// Bearer token to require (generated in --tls mode when not given; plain HTTP without it is open).
    #[arg(long, env = "KUBE_EMULATOR_TOKEN")]
    token: Option<String>,
    /// Write a kubeconfig for the emulator to this path.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Write the base URL (e.g. https://127.0.0.1:41234) to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Milliseconds from pod creation until it is Running and Ready.
    #[arg(long, default_value_t = 300)]
    ready_delay_ms: u64,
    /// Pods whose container image contains this text never become ready.
    #[arg(long, default_value = "never-ready")]
    never_ready_marker: String,
    /// Number of fake Nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Watch events kept for resuming watches (older resourceVersions get 410 Gone).
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Run containers whose image starts with IMAGE_PREFIX as local processes of the binary at PATH, with the
    /// container's args and env, its Secret/ConfigMap volumes as files and KUBECONFIG for this emulator
    /// (repeatable; the longest matching prefix wins).
    #[arg(long = "run-image", value_name = "IMAGE_PREFIX=PATH")]
    run_images: Vec<RunImage>,
    /// Milliseconds before restarting an exited run-image container; doubles per restart, up to 30 times this.
    #[arg(long, default_value_t = 1000)]
    restart_backoff_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        tls: args.tls,
        token: args.token,
        kubeconfig_path: args.kubeconfig,
        watch_history: args.watch_history,
        cluster: Settings {
            ready_delay: Duration::from_millis(args.ready_delay_ms),
            never_ready_marker: args.never_ready_marker,
            nodes: args.nodes,
            run_images: args.run_images,
            restart_backoff: Duration::from_millis(args.restart_backoff_ms),
        },
    };
    let emulator = Emulator::start(config)
        .await
        .context("starting the emulator")?;
    if let Some(path) = &args.port_file {
        // Write then rename so a harness polling the file never reads a partial URL.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, emulator.url())
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", emulator.url())?;
    stdout.flush()?;
    shutdown_signal().await?;
    emulator.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
