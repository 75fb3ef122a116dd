//! A TCP relay between a client and a server that a test can cut and heal, to take a dependency away (a
//! ClickHouse outage, an agent cut off from its control plane) without touching the processes on either side.
//!
//! While cut, open connections are shut down and new ones are accepted and closed at once, as a server that
//! crashed and came back on the same port would look to the client. Bytes are copied by plain threads, so the
//! relay does not depend on the test's async runtime.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    /// Both sides of every open connection by id, to shut them down on a cut.
    open: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next_id: AtomicU64,
    /// Bytes copied client -> server and server -> client.
    upstream_bytes: AtomicU64,
    downstream_bytes: AtomicU64,
}

/// Stops accepting when dropped (the listener thread ends with the test process).
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Listens on a free loopback port and relays every connection to `target`.
    pub fn start(target: SocketAddr) -> io::Result<Self> {
        Self::start_on(TcpListener::bind("127.0.0.1:0")?, target)
    }

    /// Relays every connection `listener` accepts to `target`. The listener may belong to another network
    /// namespace than the connections to `target` (see `Region::local_port`).
    pub fn start_on(listener: TcpListener, target: SocketAddr) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        thread::Builder::new()
            .name(format!("relay-{}", addr.port()))
            .spawn(move || accept_loop(&listener, target, &accepting))?;
        Ok(Self {
            addr,
            target,
            shared,
        })
    }

    /// Where clients connect, e.g. `127.0.0.1:40123`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every open connection and refuses new ones until [`Relay::heal`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let mut open = self
            .shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, streams) in open.drain() {
            for stream in streams {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Bytes relayed from clients to the server so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.shared.upstream_bytes.load(Ordering::Relaxed)
    }

    /// Bytes relayed from the server to clients so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.shared.downstream_bytes.load(Ordering::Relaxed)
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(target) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
            let mut open = shared.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.insert(id, [a, b]);
        }
        let up = shared.clone();
        thread::spawn(move || {
            copy(client, server, &up.upstream_bytes);
            up.forget(id);
        });
        let down = shared.clone();
        thread::spawn(move || {
            copy(server_copy, client_copy, &down.downstream_bytes);
            down.forget(id);
        });
    }
}

impl Shared {
    fn forget(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.remove(&id);
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream, counter: &AtomicU64) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                thread::spawn(move || {
                    let mut buf = [0; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(stream: &mut TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut back = vec![0; text.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn a_cut_closes_connections_and_refuses_new_ones_until_healed() {
        let relay = Relay::start(echo_server()).unwrap();
        let mut before = TcpStream::connect(relay.addr()).unwrap();
        assert_eq!(round_trip(&mut before, b"hello").unwrap(), b"hello");
        assert_eq!(relay.upstream_bytes(), 5);

        relay.cut();
        assert!(
            round_trip(&mut before, b"lost").is_err(),
            "the open connection is closed"
        );
        let mut during = TcpStream::connect(relay.addr()).unwrap();
        assert!(
            round_trip(&mut during, b"x").is_err(),
            "new connections are closed at once"
        );

        relay.heal();
        let mut after = TcpStream::connect(relay.addr()).unwrap();
        assert_eq!(round_trip(&mut after, b"again").unwrap(), b"again");
    }
}
