//! The WAN emulator with real TCP: a region's link delays, drops and partitions a connection from
//! inside the region to a server in the test, and nothing is left behind afterwards, neither after a
//! drop of the `Wan` nor after `kill -9` of the test process.
//!
//! Needs root, as CI runs the tests; otherwise these tests fail with `Wan::new`'s message rather than
//! skip, so a CI machine that lost root or `/dev/net/tun` shows up.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use harness::{LinkProfile, Region, Wan};
use regex::Regex;

/// The client, run inside the region by `python3 -c`: `rtt HOST PORT` prints the median round trip of
/// ten small messages, `bulk HOST PORT BYTES` sends that many bytes and checks the echo,
/// `connect HOST PORT TIMEOUT` connects and exchanges one message, or says why it failed.
///
/// Both ends cap TCP's retransmission timeout at 1 s (`TCP_RTO_MAX_MS`, Linux 6.15 and later): at 30 %
/// loss each way a retransmission and its acknowledgement both get through only half the time, and
/// with the timeout doubling up to 120 s after each failure, the 200 kB transfer outlasted the client's
/// 60 s timeout in 2 of the first 18 runs without the cap (none in 18 with it).
const CLIENT: &str = r#"
import socket, statistics, sys, threading, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
TCP_RTO_MAX_MS = 44

def connect(timeout):
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, TCP_RTO_MAX_MS, 1000)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    s.connect((host, port))
    return s

def receive(s, size):
    got = bytearray()
    while len(got) < size:
        chunk = s.recv(min(65536, size - len(got)))
        if not chunk:
            sys.exit("connection closed after %d of %d bytes" % (len(got), size))
        got += chunk
    return bytes(got)

if mode == "rtt":
    s = connect(10)
    times = []
    for _ in range(10):
        start = time.monotonic()
        s.sendall(b"ping")
        receive(s, 4)
        times.append((time.monotonic() - start) * 1000)
    print("median_ms %.1f" % statistics.median(times))
elif mode == "bulk":
    size = int(sys.argv[4])
    data = bytes((i * 7 + i // 256) % 256 for i in range(size))
    s = connect(60)
    threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
    print("echoed %d intact %s" % (size, receive(s, size) == data))
elif mode == "connect":
    try:
        s = connect(float(sys.argv[4]))
        s.sendall(b"hello")
        print("connected echo %s" % receive(s, 5).decode())
    except OSError as error:
        print("failed %s" % type(error).__name__)
"#;

/// Linux's socket option capping the retransmission timeout (not in `libc` yet); see [`CLIENT`].
const TCP_RTO_MAX_MS: libc::c_int = 44;

fn cap_retransmission_timeout(socket: &impl AsRawFd) -> std::io::Result<()> {
    let milliseconds: libc::c_int = 1000;
    // SAFETY: the option value is a c_int, whose address and size are passed.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_RTO_MAX_MS,
            (&raw const milliseconds).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// An echo server on `addr`, port 0; it lives as long as the test process.
fn echo_server(addr: Ipv4Addr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((addr, 0))?;
    cap_retransmission_timeout(&listener).context("TCP_RTO_MAX_MS needs Linux 6.15 or later")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            cap_retransmission_timeout(&stream).expect("as on the listener");
            thread::spawn(move || {
                let mut buffer = [0; 64 * 1024];
                while let Ok(length) = stream.read(&mut buffer) {
                    if length == 0 || stream.write_all(&buffer[..length]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Runs the client in `region` and returns its output line; fails if it fails.
fn client(region: &Region, server: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let output = region
        .command("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(args[0])
        .arg(server.ip().to_string())
        .arg(server.port().to_string())
        .args(&args[1..])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the client ({args:?}) failed, {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn pids_in(namespace: &str) -> Vec<u32> {
    let output = Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
        .expect("run ip netns pids");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

fn namespace_exists(namespace: &str) -> bool {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.split_whitespace().next() == Some(namespace))
}

/// The interface's index, if it exists. Another link may take a freed name at once, so tests compare
/// indices, which the kernel never reuses soon.
fn interface_index(interface: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/ifindex"))
        .ok()
        .map(|index| index.trim().to_owned())
}

const LATENCY: Duration = Duration::from_millis(50);

#[test]
fn a_local_port_reaches_the_host_from_the_region_without_crossing_the_link() -> anyhow::Result<()> {
    let mut wan = Wan::new()?;
    let region = wan.add_region(
        "local",
        LinkProfile {
            latency: LATENCY,
            ..LinkProfile::lan()
        },
    )?;
    let server = echo_server(Ipv4Addr::LOCALHOST)?;
    let _local = region.local_port(server.port())?;
    let before = region.stats();
    let line = client(region, server, &["rtt"])?;
    let median: f64 = line
        .strip_prefix("median_ms ")
        .and_then(|ms| ms.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected client output {line:?}"))?;
    assert!(
        median < 20.0,
        "a local service answers at once: {median} ms"
    );
    assert_eq!(
        region.stats().since(&before),
        harness::LinkStats::default(),
        "nothing went over the link"
    );
    // Partitioned from the host, the region keeps its local services.
    region.partition();
    assert_eq!(
        client(region, server, &["connect", "2"])?,
        "connected echo hello"
    );
    Ok(())
}

#[test]
fn a_link_delays_drops_and_partitions_tcp_and_its_wan_leaves_nothing_behind() -> anyhow::Result<()>
{
    let mut wan = Wan::new()?;
    let region = wan.add_region(
        "eu",
        LinkProfile {
            latency: LATENCY,
            ..LinkProfile::lan()
        },
    )?;
    let server = echo_server(region.host_addr())?;

    // Latency: each round trip crosses the link twice.
    let line = client(region, server, &["rtt"])?;
    let median: f64 = line
        .strip_prefix("median_ms ")
        .and_then(|ms| ms.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected client output {line:?}"))?;
    println!("median round trip at {LATENCY:?} one way: {median} ms");
    assert!(
        (100.0..160.0).contains(&median),
        "median round trip {median} ms"
    );

    // Loss: TCP retransmits its way through, and the link dropped about the share it was told to.
    region.set_profile(LinkProfile {
        loss: 0.3,
        ..region.profile()
    });
    let before = region.stats();
    let started = Instant::now();
    let line = client(region, server, &["bulk", "200000"]).with_context(|| {
        format!(
            "after {:?}, {:?}",
            started.elapsed(),
            region.stats().since(&before)
        )
    })?;
    assert_eq!(line, "echoed 200000 intact True");
    let phase = region.stats().since(&before);
    let dropped = phase.to_region.dropped + phase.to_host.dropped;
    let seen = dropped + phase.to_region.forwarded + phase.to_host.forwarded;
    let fraction = dropped as f64 / seen as f64;
    println!(
        "200 kB echoed at 30 % loss in {:?}: {phase:?}, {dropped} of {seen} packets dropped ({fraction:.3})",
        started.elapsed()
    );
    // 200 kB each way is at least 137 full-size packets each way.
    assert!(seen >= 274, "{phase:?}");
    assert!((0.15..0.45).contains(&fraction), "{phase:?}");

    // Partition: a connection attempt gets no answer at all; after healing one succeeds.
    region.set_profile(LinkProfile {
        loss: 0.0,
        ..region.profile()
    });
    region.partition();
    let before = region.stats();
    let line = client(region, server, &["connect", "2"])?;
    let phase = region.stats().since(&before);
    println!("partitioned: {line}, {phase:?}");
    assert_eq!(line, "failed TimeoutError");
    assert_eq!(phase.to_host.forwarded, 0, "{phase:?}");
    assert!(phase.to_host.dropped >= 1, "the SYN was dropped: {phase:?}");
    region.heal();
    let line = client(region, server, &["connect", "5"])?;
    println!("healed: {line}");
    assert_eq!(line, "connected echo hello");

    // Dropping the Wan kills what runs in the region and removes the namespace and the interface.
    let namespace = region.namespace().to_owned();
    let interface = region.host_interface().to_owned();
    let interface_index_before = interface_index(&interface).expect("the host interface exists");
    let mut sleeper = region.command("sleep").arg("300").spawn()?;
    let sleeper_pid = sleeper.id();
    wait_for(
        "the sleeper to be in the region",
        Duration::from_secs(10),
        || pids_in(&namespace).contains(&sleeper_pid),
    );
    drop(wan);
    assert!(!namespace_exists(&namespace), "{namespace} is left");
    assert_ne!(
        interface_index(&interface),
        Some(interface_index_before),
        "{interface} is left"
    );
    wait_for("the sleeper to be killed", Duration::from_secs(10), || {
        sleeper.try_wait().is_ok_and(|status| status.is_some())
    });
    Ok(())
}

const CHILD_MODE: &str = "HARNESS_WAN_TEST_CHILD";

#[tokio::test]
async fn kill_9_of_the_test_process_removes_its_regions() -> anyhow::Result<()> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args([
            "child_makes_a_region_then_idles",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, "idle");
    let mut child = harness::Process::spawn("wan-child", command)?;
    let pattern = Regex::new(r"region (\S+) (\S+) (\d+) sleeper (\d+)$")?;
    let line = child
        .wait_for_line(&pattern, Duration::from_secs(60))
        .await?;
    let captures = pattern.captures(&line).expect("the line matched");
    let (namespace, interface, interface_index_before) = (&captures[1], &captures[2], &captures[3]);
    let sleeper: u32 = captures[4].parse()?;
    assert!(namespace_exists(namespace));
    assert!(!harness::process_is_gone(sleeper));

    child.kill_9()?;
    harness::wait_until(
        "the region's namespace, interface and process to go",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            !namespace_exists(namespace)
                && interface_index(interface).as_deref() != Some(interface_index_before)
                && harness::process_is_gone(sleeper)
        },
    )
    .await?;
    Ok(())
}

#[test]
#[ignore = "run by kill_9_of_the_test_process_removes_its_regions"]
fn child_makes_a_region_then_idles() -> anyhow::Result<()> {
    if std::env::var(CHILD_MODE).as_deref() != Ok("idle") {
        return Ok(());
    }
    let mut wan = Wan::new()?;
    let region = wan.add_region("child", LinkProfile::lan())?;
    // Its own process group, untied from this process: only the namespace's janitor can stop it.
    let sleeper = region
        .command("sleep")
        .arg("300")
        .process_group(0)
        .spawn()?;
    wait_for(
        "the sleeper to be in the region",
        Duration::from_secs(10),
        || pids_in(region.namespace()).contains(&sleeper.id()),
    );
    println!(
        "region {} {} {} sleeper {}",
        region.namespace(),
        region.host_interface(),
        interface_index(region.host_interface()).expect("the host interface exists"),
        sleeper.id()
    );
    thread::sleep(Duration::from_secs(300));
    Ok(())
}
