//! The simulated kubelets' HTTPS endpoint, which the API server proxies `pods/log` to: `GET
//! /containerLogs/{namespace}/{pod}/{container}` with `follow`, `previous`, `timestamps`, `tailLines`,
//! `sinceSeconds`, `sinceTime` and `limitBytes`, read from the container's log files. Only clients with a
//! certificate of the cluster CA get in (the API server's kubelet client certificate).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::logs::{self, Options};
use super::pods::{Kubelet, LogState};
use crate::Error;
use crate::pki::Pki;

/// Binds 127.0.0.1 on a free port and serves until the returned task is aborted.
pub async fn serve(kubelet: Arc<Kubelet>, pki: &Pki) -> Result<(u16, JoinHandle<()>), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(pki)?));
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|source| Error::Bind { source })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Bind { source })?
        .port();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(kubelet);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // E.g. out of file descriptors: give connections time to close instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((port, task))
}

fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig, Error> {
    let tls = |reason: String| Error::Tls(reason);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| tls(e.to_string()))?)
            .map_err(|e| tls(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(pki.kubelet_serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(pki.kubelet_serving.key_pem.as_bytes())
        .map_err(|e| tls(e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(e.to_string()))
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn parse_options(query: &HashMap<String, String>) -> Result<Options, String> {
    let flag = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
    let number = |name: &str| -> Result<Option<i64>, String> {
        query
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| format!("{name}: not a number: {v:?}"))
            })
            .transpose()
    };
    let since_time = match (query.get("sinceTime"), number("sinceSeconds")?) {
        (Some(text), _) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|e| format!("sinceTime {text:?}: {e}"))?
                .with_timezone(&Utc),
        ),
        (None, Some(seconds)) => Some(Utc::now() - chrono::Duration::seconds(seconds)),
        (None, None) => None,
    };
    Ok(Options {
        follow: flag("follow"),
        previous: flag("previous"),
        timestamps: flag("timestamps"),
        tail_lines: number("tailLines")?.map(|n| n.max(0) as usize),
        since_time,
        limit_bytes: number("limitBytes")?.map(|n| n.max(0) as usize),
    })
}

async fn container_logs(
    State(kubelet): State<Arc<Kubelet>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let options = match parse_options(&query) {
        Ok(options) => options,
        Err(message) => return bad_request(message),
    };
    let (dir, state) = match kubelet.container_log(&namespace, &pod, Some(&container)) {
        Ok(found) => found,
        Err(message) => return (StatusCode::NOT_FOUND, message).into_response(),
    };
    let current = *state.borrow();
    let restart = if options.previous {
        match current.restart.checked_sub(1) {
            Some(previous) => previous,
            None => {
                return bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                ));
            }
        }
    } else {
        current.restart
    };
    let file = logs::file(&dir, restart);
    if !current.running && !options.previous && !file.exists() {
        return bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        ));
    }
    let follower = Follower {
        file,
        restart,
        state,
        options,
        offset: 0,
        sent: 0,
        first: true,
    };
    Body::from_stream(follower.into_stream()).into_response()
}

/// Reads a log file from the start and, with `follow`, keeps reading until that start of the container ends.
struct Follower {
    file: std::path::PathBuf,
    restart: u32,
    state: tokio::sync::watch::Receiver<LogState>,
    options: Options,
    offset: u64,
    sent: usize,
    /// `tailLines` applies to what exists when the request comes.
    first: bool,
}

impl Follower {
    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::unfold(Some(self), |follower| async move {
            let mut follower = follower?;
            loop {
                // Read the state before the file: lines written before the container ended are then read.
                let state = follower.state.borrow().to_owned();
                let still_writing = follower.state.has_changed().is_ok()
                    && state.restart == follower.restart
                    && state.running;
                let chunk = match follower.read_new() {
                    Ok(chunk) => chunk,
                    Err(error) => return Some((Err(error), None)),
                };
                if follower.limit_reached() {
                    return Some((Ok(chunk), None));
                }
                if !chunk.is_empty() {
                    return Some((Ok(chunk), Some(follower)));
                }
                if !follower.options.follow || follower.options.previous || !still_writing {
                    return None;
                }
                tokio::time::sleep(logs::FOLLOW_POLL).await;
            }
        })
    }

    fn limit_reached(&self) -> bool {
        self.options
            .limit_bytes
            .is_some_and(|limit| self.sent >= limit)
    }

    /// The complete lines written since the last read, filtered and rendered.
    fn read_new(&mut self) -> std::io::Result<Bytes> {
        let mut file = match std::fs::File::open(&self.file) {
            Ok(file) => file,
            // Not created yet: `tailLines` still applies to the first content read.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Bytes::new()),
            Err(error) => return Err(error),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut content = Vec::new();
        file.read_to_end(&mut content)?;
        let text = String::from_utf8_lossy(&content);
        let mut options = self.options.clone();
        if !self.first {
            options.tail_lines = None;
        }
        self.first = false;
        let (lines, consumed) = logs::select(&text, &options);
        self.offset += consumed as u64;
        let mut out = lines.concat().into_bytes();
        if let Some(limit) = self.options.limit_bytes {
            out.truncate(limit.saturating_sub(self.sent));
        }
        self.sent += out.len();
        Ok(Bytes::from(out))
    }
}
