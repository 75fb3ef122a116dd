//! TLS on the agent port, with a bound on handshakes in progress and a deadline for each.
//!
//! tonic's own TLS starts a handshake for every accepted connection at once and waits for each without end, so a
//! reconnect storm (every agent of a restarted replica at once) could take the CPU from the API, and connections
//! that never finish a handshake would pile up. Here at most `max_in_progress` handshakes run; further
//! connections wait in the kernel's listen backlog until one finishes, and a handshake not done within
//! `timeout` is dropped.
//!
//! Handshakes run on threads of their own ([`HandshakeRuntime`]) with a lower CPU priority: a handshake is a few
//! milliseconds of pure CPU, and on the API's runtime a reconnect storm's handshakes were queued ahead of API
//! requests. On their own threads the kernel gives the API and the running streams the CPU first.

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
const HANDSHAKE_NICE: libc::c_int = 10;

/// The threads that run the agent port's TLS handshakes. Connections are accepted on the caller's runtime, so
/// their sockets stay registered with its I/O driver: once a handshake is done the stream is served there, and
/// its I/O never waits for these threads.
pub struct HandshakeRuntime {
    // An `Option` only so that `Drop` can take it: a runtime dropped inside another runtime's task must be shut
    // down in the background.
    runtime: Option<tokio::runtime::Runtime>,
}

impl HandshakeRuntime {
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("agent-handshake")
            .on_thread_start(lower_this_threads_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
    }
}

impl Drop for HandshakeRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lower_this_threads_priority() {
    // On Linux the nice value belongs to the thread, so this leaves the process's other threads as they are.
    // Relative to the thread's own value (inherited from the process), as `nice` would do; 19 is the lowest.
    // SAFETY: plain system calls on the calling thread's id; no memory is passed.
    let result = unsafe {
        let thread = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, thread);
        libc::setpriority(
            libc::PRIO_PROCESS,
            thread,
            (current + HANDSHAKE_NICE).min(19),
        )
    };
    if result != 0 {
        warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the priority of an agent handshake thread; handshakes compete with the API for CPU"
        );
    }
}

/// Connections whose handshake finished, for `Server::serve_with_incoming`. Handshakes run on `on` (a
/// [`HandshakeRuntime`]'s handle); accepting runs on the caller's runtime (a socket belongs to the I/O driver of
/// the runtime that accepted it). The stream ends when the server stops taking connections. A stream
/// type tonic knows (`TlsStream<TcpStream>`) keeps the peer's certificates available to handlers
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

    fn this_threads_nice() -> libc::c_int {
        // SAFETY: plain system calls on the calling thread's id.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn handshakes_run_on_threads_of_lower_priority_than_the_rest_of_the_process() {
        let before = this_threads_nice();
        let handshakes = HandshakeRuntime::new(2).unwrap();
        let on_handshake_thread = handshakes
            .handle()
            .spawn(async {
                (
                    this_threads_nice(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap();
        assert_eq!(
            on_handshake_thread,
            (
                (before + HANDSHAKE_NICE).min(19),
                Some("agent-handshake".to_owned())
            )
        );
        assert_eq!(
            this_threads_nice(),
            before,
            "the caller's thread is left as it was"
        );
        // Dropped inside this runtime's task without panicking.
        drop(handshakes);
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
        let handshakes = HandshakeRuntime::new(1).unwrap();
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
