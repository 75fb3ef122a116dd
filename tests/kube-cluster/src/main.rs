//! `kube-cluster`: starts a real Kubernetes control plane with simulated nodes on loopback, prints `listening on
//! <url>` once it is ready, and runs until SIGINT/SIGTERM, when it stops pods and components in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube_cluster::{Binaries, Cluster, Config, RunImage, Settings};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A real Kubernetes control plane with simulated nodes, on loopback"
)]
struct Args {
    /// Address of the API server; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the admin kubeconfig here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Write the API server's URL here (atomically) once the cluster is ready.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Certificates, etcd data, logs (`logs/`) and pod directories (`pods/`); a temporary directory otherwise.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Directory with etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
    #[arg(long, env = kube_cluster::BIN_DIR_ENV)]
    bin_dir: Option<PathBuf>,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// From a simulated container's creation until it runs and is ready.
    #[arg(long, default_value_t = 300)]
    ready_delay_ms: u64,
    /// Containers whose image contains this never become ready.
    #[arg(long, default_value = "never-ready")]
    never_ready_marker: String,
    /// IMAGE_PREFIX=PATH: run containers whose image starts with IMAGE_PREFIX as local processes of PATH
    /// (repeatable).
    #[arg(long = "run-image")]
    run_images: Vec<RunImage>,
    /// First delay before restarting an exited container; doubles per restart up to 30 times this.
    #[arg(long, default_value_t = 1000)]
    restart_backoff_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kube_cluster=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        state_dir: args.state_dir,
        kubeconfig_path: args.kubeconfig,
        binaries: args.bin_dir.map(|dir| Binaries { dir }),
        nodes: Settings {
            nodes: args.nodes,
            ready_delay: Duration::from_millis(args.ready_delay_ms),
            never_ready_marker: args.never_ready_marker,
            run_images: args.run_images,
            restart_backoff: Duration::from_millis(args.restart_backoff_ms),
        },
        ..Config::default()
    };
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let cluster = tokio::select! {
        cluster = Cluster::start(config) => cluster.context("starting the cluster")?,
        _ = terminate.recv() => return Ok(()),
        _ = interrupt.recv() => return Ok(()),
    };
    if let Some(path) = &args.port_file {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, cluster.url())
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "listening on {} (ready in {:.1} s; state in {})",
        cluster.url(),
        cluster.started_in().as_secs_f64(),
        cluster.state_dir().display()
    );
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    cluster.shutdown().await;
    Ok(())
}
