//! An S3-compatible server on loopback that keeps buckets and objects in a directory (via `s3s-fs`).
//!
//! Requests are path-style (`http://127.0.0.1:PORT/<bucket>/<key>`) and must be signed (SigV4) with the
//! one access key / secret key pair it is started with. Buckets are directories under the root, made
//! by clients with CreateBucket. Used by tests (through `harness::s3()`) and the local quick start.
//!
//! ```no_run
//! # async fn example() -> Result<(), s3_server::Error> {
//! let server = s3_server::start(s3_server::Config {
//!     listen: "127.0.0.1:0".parse().expect("an address"),
//!     root: "/tmp/s3-data".into(),
//!     access_key: "test-access-key".into(),
//!     secret_key: "test-secret-key".into(),
//! })
//! .await?;
//! println!("S3 endpoint: {}", server.url());
//! // Dropping `server` stops it, including open connections.
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// What to serve, where, and which credentials to accept.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory holding the buckets (one subdirectory each); created if missing.
    pub root: PathBuf,
    /// The only access key accepted.
    pub access_key: String,
    /// Secret key of `access_key`.
    pub secret_key: String,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the data directory {path}: {source}")]
    CreateRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `s3s_fs::Error` implements neither `Display` nor `Error`, so only its debug text is kept.
    #[error("opening the data directory {path}: {detail}")]
    OpenRoot { path: PathBuf, detail: String },
    #[error("binding {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server. Dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl Server {
    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint URL clients use, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The loop owns the connection tasks, so aborting it ends them too.
        self.accept_loop.abort();
    }
}

/// Binds `config.listen` and serves S3 on it from a background task of the current Tokio runtime.
pub async fn start(config: Config) -> Result<Server, Error> {
    tokio::fs::create_dir_all(&config.root)
        .await
        .map_err(|source| Error::CreateRoot {
            path: config.root.clone(),
            source,
        })?;
    let file_system = FileSystem::new(&config.root).map_err(|error| Error::OpenRoot {
        path: config.root.clone(),
        detail: format!("{error:?}"),
    })?;
    let mut builder = S3ServiceBuilder::new(file_system);
    builder.set_auth(SimpleAuth::from_single(
        config.access_key,
        config.secret_key,
    ));
    // No host parser is set: every request is read as path-style, which is what all our clients send.
    let service = builder.build();

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            address: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| Error::Bind {
        address: config.listen,
        source,
    })?;
    tracing::info!(%local_addr, root = %config.root.display(), "S3 server listening");
    Ok(Server {
        local_addr,
        accept_loop: tokio::spawn(accept_loop(listener, service)),
    })
}

async fn accept_loop(listener: TcpListener, service: S3Service) {
    let http = ConnectionBuilder::new(TokioExecutor::new());
    // Dropped (aborting every connection) when this task is aborted.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let connection = http
                        .serve_connection(TokioIo::new(socket), service.clone())
                        .into_owned();
                    connections.spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%peer, error, "connection ended with an error");
                        }
                    });
                }
                // Running out of file descriptors is transient; a busy loop would make it worse.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            // Reaps finished connections so the set does not grow with every request.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
