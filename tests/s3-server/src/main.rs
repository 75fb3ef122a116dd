//! `s3-server` binary: serves S3 from a directory on loopback and prints where it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// S3-compatible server (path-style, SigV4) for tests and the local quick start.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory holding the buckets; created if missing.
    #[arg(long)]
    root: PathBuf,
    /// The access key clients must sign with.
    #[arg(long, env = "S3_SERVER_ACCESS_KEY")]
    access_key: String,
    /// Secret key of the access key.
    #[arg(long, env = "S3_SERVER_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// Write the base URL (e.g. http://127.0.0.1:41234) to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
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
    let server = s3_server::start(s3_server::Config {
        listen: args.listen,
        root: args.root,
        access_key: args.access_key,
        secret_key: args.secret_key,
    })
    .await
    .context("starting the S3 server")?;
    if let Some(path) = &args.port_file {
        // Write then rename so a harness polling the file never reads a partial URL.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, server.url())
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", server.url())?;
    stdout.flush()?;
    shutdown_signal().await
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
