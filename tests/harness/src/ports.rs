//! Free loopback TCP ports for servers that need a fixed port before they start.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// A TCP port on 127.0.0.1 that nothing listens on right now and that this process has not handed out
/// before.
///
/// The port is free when this returns, not reserved: another process could take it before the caller
/// binds it. The kernel picks ports for `bind(:0)` at random, so that is rare; remembering the ports
/// already handed out rules it out within this process, where many servers start in a short time.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|error| panic!("harness: cannot bind a loopback port: {error}"));
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        if handed_out.insert(port) {
            return port;
        }
    }
}
