//! A TCP relay between a client and a server that a test can cut and heal, to take a dependency away (a
//! ClickHouse outage, an agent cut off from its control plane) without touching the processes on either side.
//!
//! While cut, open connections are shut down and new ones are accepted and closed at once, as a server that
//! crashed and came back on the same port would look to the client. Bytes are copied by plain threads, so the
//! relay does not depend on the test's async runtime.
//!
//! With more than one target ([`Relay::add_target`]) it is a least-connections TCP load balancer, as in front of
//! several control-plane replicas: each new connection goes to the target holding the fewest that accepts it, so
//! a dead target is skipped.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

/// Both sides of a relayed connection (client, server), and the index of its target.
type OpenConnection = ([Arc<TcpStream>; 2], usize);

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    /// Where connections go, each with the number of open connections it holds.
    targets: Mutex<Vec<(SocketAddr, usize)>>,
    /// Both sides of every open connection by id, with the index of its target, to shut them down on a cut.
    /// Shared with the two copy threads rather than duplicated: one descriptor per side keeps thousands of
    /// relayed agents within the process's open-file limit.
    open: Mutex<HashMap<u64, OpenConnection>>,
    next_id: AtomicU64,
    /// Bytes copied client -> server and server -> client.
    upstream_bytes: AtomicU64,
    downstream_bytes: AtomicU64,
}

/// Stops accepting when dropped (the listener thread ends with the test process).
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
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
        // std listens with a backlog of 128; thousands of agents connecting at once overflowed it, and a
        // dropped SYN is retried only after the kernel's doubling timeouts. Listening again on a listening
        // socket changes its backlog on Linux (the kernel caps it at net.core.somaxconn).
        if unsafe { libc::listen(listener.as_raw_fd(), 16384) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let shared = Arc::new(Shared {
            targets: Mutex::new(vec![(target, 0)]),
            ..Shared::default()
        });
        let accepting = shared.clone();
        thread::Builder::new()
            .name(format!("relay-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(Self { addr, shared })
    }

    /// Spreads new connections over `target` too (least connections first).
    pub fn add_target(&self, target: SocketAddr) {
        lock(&self.shared.targets).push((target, 0));
    }

    /// Open connections per target, in the order the targets were added.
    pub fn connections_per_target(&self) -> Vec<(SocketAddr, usize)> {
        lock(&self.shared.targets).clone()
    }

    /// Where clients connect, e.g. `127.0.0.1:40123`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first target.
    pub fn target(&self) -> SocketAddr {
        lock(&self.shared.targets)[0].0
    }

    /// Closes every open connection and refuses new ones until [`Relay::heal`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let drained: Vec<_> = lock(&self.shared.open).drain().collect();
        for (_, (streams, target)) in drained {
            self.shared.release(target);
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

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Some((server, target)) = shared.connect() else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client, server) = (Arc::new(client), Arc::new(server));
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&shared.open).insert(id, ([client.clone(), server.clone()], target));
        let up = shared.clone();
        let (from, to) = (client.clone(), server.clone());
        thread::spawn(move || {
            copy(&from, &to, &up.upstream_bytes);
            up.forget(id);
        });
        let down = shared.clone();
        thread::spawn(move || {
            copy(&server, &client, &down.downstream_bytes);
            down.forget(id);
        });
    }
}

impl Shared {
    /// Connects to the target with the fewest open connections that accepts, counting the new one.
    fn connect(&self) -> Option<(TcpStream, usize)> {
        let mut order: Vec<(usize, SocketAddr, usize)> = lock(&self.targets)
            .iter()
            .enumerate()
            .map(|(index, (addr, open))| (*open, *addr, index))
            .collect();
        order.sort_unstable();
        order.into_iter().find_map(|(_, addr, index)| {
            let server = TcpStream::connect(addr).ok()?;
            lock(&self.targets)[index].1 += 1;
            Some((server, index))
        })
    }

    fn release(&self, target: usize) {
        let mut targets = lock(&self.targets);
        targets[target].1 = targets[target].1.saturating_sub(1);
    }

    /// Called by both copy threads of a connection; the first one releases it.
    fn forget(&self, id: u64) {
        let removed = lock(&self.open).remove(&id);
        if let Some((_, target)) = removed {
            self.release(target);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn copy(mut from: &TcpStream, mut to: &TcpStream, counter: &AtomicU64) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Counted before it is passed on, so a reader that got the bytes back always sees them counted.
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
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

    #[test]
    fn connections_spread_over_targets_and_skip_a_dead_one() {
        let relay = Relay::start(echo_server()).unwrap();
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        relay.add_target(dead_addr);
        relay.add_target(echo_server());
        let mut clients: Vec<TcpStream> = (0..4)
            .map(|_| TcpStream::connect(relay.addr()).unwrap())
            .collect();
        for client in &mut clients {
            assert_eq!(round_trip(client, b"hi").unwrap(), b"hi");
        }
        let open: Vec<usize> = relay
            .connections_per_target()
            .iter()
            .map(|(_, open)| *open)
            .collect();
        assert_eq!(open, [2, 0, 2]);
        drop(clients);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while relay
            .connections_per_target()
            .iter()
            .any(|(_, open)| *open > 0)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "closed connections are released: {:?}",
                relay.connections_per_target()
            );
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
