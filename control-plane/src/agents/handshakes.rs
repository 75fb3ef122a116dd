//! TLS on the agent port, with a bound on handshakes in progress and a deadline for each.
//!
//! tonic's own TLS starts a handshake for every accepted connection at once and waits for each without end, so a
//! reconnect storm (every agent of a restarted replica at once) could take the CPU from the API, and connections
//! that never finish a handshake would pile up. Here at most `max_in_progress` handshakes run; further
//! connections wait in the kernel's listen backlog until one finishes, and a handshake not done within
//! `timeout` is dropped.
//!
//! Handshakes run on threads of their own ([`crate::runtime::DedicatedRuntime`]) with a lower CPU priority: a
//! handshake is a few milliseconds of pure CPU, and on the main runtime a reconnect storm's handshakes were
//! queued ahead of API requests. On their own threads the kernel gives the API and the running streams the CPU
//! first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::metrics::{Metrics, RejectionLabel};

#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    pub max_in_progress: usize,
    pub timeout: Duration,
}

/// The nice value added to the handshake threads': the kernel runs them when the API and the streams leave CPU
/// free.
pub const HANDSHAKE_NICE: libc::c_int = 10;

/// Connections whose handshake finished, for `Server::serve_with_incoming`. Handshakes run on `on` (a
/// [`crate::runtime::DedicatedRuntime`]'s handle); accepting runs on the caller's runtime (a socket belongs to
/// the I/O driver of the runtime that accepted it), so once a handshake is done the stream is served there and
/// its I/O never waits for the handshake threads. The stream ends when the server stops taking connections. A
/// stream type tonic knows (`TlsStream<TcpStream>`) keeps the peer's certificates available to handlers
/// (`Request::peer_certs`).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: HandshakeLimits,
    metrics: Metrics,
    on: &tokio::runtime::Handle,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (ready, connections) = mpsc::channel(limits.max_in_progress);
    let acceptor = TlsAcceptor::from(tls);
    let places = Arc::new(Semaphore::new(limits.max_in_progress));
    let on = on.clone();
    tokio::spawn(async move {
        loop {
            let Ok(place) = places.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, typically: wait for some to be freed instead of spinning.
                        warn!(%error, "cannot accept an agent connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = ready.closed() => return,
            };
            let (acceptor, ready, metrics) = (acceptor.clone(), ready.clone(), metrics.clone());
            on.spawn(async move {
                metrics.agent_handshakes_in_progress.inc();
                let outcome = handshake(&acceptor, tcp, peer, limits.timeout).await;
                metrics.agent_handshakes_in_progress.dec();
                drop(place);
                match outcome {
                    Ok(stream) => {
                        let _ = ready.send(Ok(stream)).await;
                    }
                    Err(reason) => {
                        metrics
                            .agent_handshake_failures
                            .get_or_create(&RejectionLabel {
                                reason: reason.to_owned(),
                            })
                            .inc();
                    }
                }
            });
        }
    });
    ReceiverStream::new(connections)
}

/// The handshake of one connection, or why it failed (a metric label).
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, &'static str> {
    // Small frames (heartbeats, acknowledgements) go out at once.
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => {
            debug!(%peer, %error, "agent TLS handshake failed");
            Err("tls")
        }
        Err(_) => {
            debug!(%peer, ?timeout, "agent TLS handshake not finished in time; connection dropped");
            Err("timeout")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::AsyncReadExt;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::pki::AgentCa;
    use crate::runtime::DedicatedRuntime;

    /// A TLS client trusting the CA, as an agent before it has a certificate.
    async fn tls_client(
        addr: SocketAddr,
        ca: &AgentCa,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca.ca_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    #[tokio::test]
    async fn connections_that_never_finish_a_handshake_hold_their_places_only_until_the_timeout() {
        const TIMEOUT: Duration = Duration::from_millis(1500);
        let ca = AgentCa::for_tests();
        let tls = Arc::new(ca.agent_port_tls(&["localhost".into()]).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let limits = HandshakeLimits {
            max_in_progress: 2,
            timeout: TIMEOUT,
        };
        let handshakes = DedicatedRuntime::new("agent-handshake", 1, HANDSHAKE_NICE).unwrap();
        let mut connections = incoming(listener, tls, limits, metrics.clone(), handshakes.handle());

        // An agent alone: its handshake is done at once.
        let started = Instant::now();
        let first = tls_client(addr, &ca).await.unwrap();
        let served = connections.next().await.unwrap().unwrap();
        assert_eq!(served.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
        drop((first, served));

        // Two connections that send nothing take both places; an agent behind them waits until they time out,
        // then gets through.
        let mut silent = Vec::new();
        for _ in 0..2 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let stalled_at = Instant::now();
        let agent =
            tokio::spawn(async move { tls_client(addr, &ca).await.map(|_| Instant::now()) });
        let served = connections.next().await.unwrap().unwrap();
        let through_at = agent.await.unwrap().unwrap();
        drop(served);
        let waited = through_at - stalled_at;
        assert!(
            waited >= TIMEOUT - Duration::from_millis(100),
            "the agent got a place while both were held: {waited:?}"
        );
        assert!(waited < TIMEOUT * 3, "{waited:?}");
        let timeouts = metrics
            .agent_handshake_failures
            .get_or_create(&RejectionLabel {
                reason: "timeout".into(),
            })
            .get();
        assert_eq!(timeouts, 2);
        // The silent connections were closed by the server.
        for mut connection in silent {
            let mut byte = [0u8; 1];
            assert_eq!(connection.read(&mut byte).await.unwrap(), 0);
        }
        assert_eq!(metrics.agent_handshakes_in_progress.get(), 0);
    }
}
