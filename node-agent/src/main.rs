//! The `node-agent` binary: parses the command line, sets up logging and runs the agent library.

use anyhow::Context;
use clap::Parser;
use node_agent::config::{Cli, Command, LogFormat, Settings};
use node_agent::ownlog;
use tracing_subscriber::{EnvFilter, Layer};

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
    // Kept until the process ends: dropping it flushes the spans still buffered.
    let (own_log_layer, own_log) = ownlog::channel(ownlog::AgentLogSource::detect());
    let _telemetry = init_tracing(&settings, own_log_layer)?;
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
        result = node_agent::agent::run(settings, client, Some(own_log)) => match result? {},
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("shutting down; leases of running tasks expire and the control plane re-queues them");
            Ok(())
        }
    }
}

/// Logs to stderr and, through `own_log`, to the control plane (the agent's own log, next to its pods' logs).
fn init_tracing(
    settings: &Settings,
    own_log: ownlog::OwnLogLayer,
) -> anyhow::Result<telemetry::Telemetry> {
    let filter =
        EnvFilter::try_from_env("EDGEFLEET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let otlp = settings
        .otlp_endpoint
        .as_ref()
        .map(|endpoint| telemetry::OtlpExport {
            endpoint: endpoint.clone(),
            service_name: "edgefleet-agent".into(),
            // A pod's name (HOSTNAME) tells agents apart; the cluster is on every task span.
            instance: std::env::var("HOSTNAME")
                .unwrap_or_else(|_| format!("node-agent-{}", std::process::id())),
        });
    let installed = match settings.log_format {
        LogFormat::Json => telemetry::install(filter, log.json().and_then(own_log), otlp.as_ref()),
        LogFormat::Text => telemetry::install(filter, log.and_then(own_log), otlp.as_ref()),
    };
    installed.context("setting up the log and traces")
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
