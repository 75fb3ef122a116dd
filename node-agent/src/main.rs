//! The `node-agent` binary: parses the command line, sets up logging and runs the agent library.

use anyhow::Context;
use clap::Parser;
use node_agent::config::{Cli, Command, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Version => {
            println!("node-agent {}", node_agent::AGENT_VERSION);
            return Ok(());
        }
        Command::Run(args) => args,
    };
    let settings =
        Settings::load(&args, |key| std::env::var(key).ok()).context("invalid configuration")?;
    init_tracing(settings.log_format);
    node_agent::transport::install_crypto_provider();

    let kube_config = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster config and no usable ~/.kube/config")?,
    };
    let client = kube::Client::try_from(kube_config).context("building the Kubernetes client")?;

    tokio::select! {
        result = node_agent::agent::run(settings, client) => match result? {},
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("shutting down; leases of running tasks expire and the control plane re-queues them");
            Ok(())
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("EDGEFLEET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
