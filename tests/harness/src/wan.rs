//! A userspace WAN emulator: each region is a Linux network namespace joined to the host's namespace by
//! an emulated wide-area link with latency, jitter, packet loss and partitions, so a test can put agents
//! far from their control plane.
//!
//! Why userspace: these machines (and CI) have network namespaces and TUN devices but no `netem` qdisc,
//! no iptables or nftables and no kernel modules to load. So each link is two TUN devices, one in the
//! host namespace and one in the region's, and a thread of the test process moves IPv4 packets between
//! them, delaying and dropping them on the way. Creating namespaces and TUN devices needs root.
//!
//! Processes in a region reach the host (every address of it, through the link), not other regions
//! and not the internet. Namespaces are deleted when the [`Wan`] is dropped, or by a small janitor
//! when the test process dies however it dies; TUN devices go with the file descriptors.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::Relay;

/// The region's end of its link, inside its own namespace.
const REGION_INTERFACE: &str = "wan0";
const MTU: u32 = 1500;

/// How a link treats every packet, in each direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    /// One-way delay.
    pub latency: Duration,
    /// Each packet's delay varies uniformly within `latency ± jitter` (never below zero), but packets
    /// keep their order, as on one path: jitter delays a packet behind a slower one rather than
    /// reordering them, which TCP would take for loss.
    pub jitter: Duration,
    /// Probability, `0.0..=1.0`, that a packet is dropped.
    pub loss: f64,
}

impl LinkProfile {
    /// No delay and no loss.
    pub fn lan() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }

    fn check(&self) {
        assert!(
            (0.0..=1.0).contains(&self.loss),
            "LinkProfile::loss must be within 0.0..=1.0, not {}",
            self.loss
        );
    }
}

impl Default for LinkProfile {
    fn default() -> Self {
        Self::lan()
    }
}

/// Packets of one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounts {
    /// Delivered to the other end.
    pub forwarded: u64,
    /// Lost to [`LinkProfile::loss`] or a partition.
    pub dropped: u64,
}

/// Packets a link has carried so far, by direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub to_region: PacketCounts,
    pub to_host: PacketCounts,
}

impl LinkStats {
    /// What happened between `earlier` and `self`, to look at one phase of a test.
    pub fn since(&self, earlier: &LinkStats) -> LinkStats {
        let minus = |now: PacketCounts, then: PacketCounts| PacketCounts {
            forwarded: now.forwarded - then.forwarded,
            dropped: now.dropped - then.dropped,
        };
        LinkStats {
            to_region: minus(self.to_region, earlier.to_region),
            to_host: minus(self.to_host, earlier.to_host),
        }
    }
}

/// Regions and their links; dropping it kills every process left in a region and deletes the
/// namespaces and interfaces.
#[derive(Debug)]
pub struct Wan {
    regions: Vec<Region>,
}

impl Wan {
    /// Checks what the emulator needs: root, the TUN driver and the `ip` command.
    pub fn new() -> anyhow::Result<Wan> {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if uid != 0 {
            bail!(
                "harness::Wan needs root, to create network namespaces and TUN devices (running as uid {uid}); \
                 CI runs the tests as root"
            );
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context("harness::Wan needs the TUN driver, and /dev/net/tun cannot be opened")?;
        Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .ok()
            .filter(|status| status.success())
            .context("harness::Wan needs the `ip` command (iproute2) on PATH")?;
        Ok(Wan {
            regions: Vec::new(),
        })
    }

    /// A new region named `name` (for this test's eyes: error messages, thread names), in a
    /// namespace of its own, linked to the host with `profile`.
    pub fn add_region(&mut self, name: &str, profile: LinkProfile) -> anyhow::Result<&Region> {
        profile.check();
        if self.region(name).is_some() {
            bail!("the WAN already has a region named `{name}`");
        }
        let region =
            Region::create(name, profile).with_context(|| format!("add WAN region `{name}`"))?;
        self.regions.push(region);
        Ok(self.regions.last().expect("just pushed"))
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|region| region.name == name)
    }
}

/// One region: a network namespace and its link to the host.
#[derive(Debug)]
pub struct Region {
    name: String,
    host_interface: String,
    host_addr: Ipv4Addr,
    region_addr: Ipv4Addr,
    link: Arc<Link>,
    // Fields drop in this order: the forwarder, which closes both TUN devices, then the namespace.
    _forwarder: Forwarder,
    namespace: Namespace,
}

impl Region {
    fn create(name: &str, profile: LinkProfile) -> anyhow::Result<Region> {
        let (slot, host_tun) = open_host_tun()?;
        let host_interface = format!("efwan{slot}");
        let host_addr = Ipv4Addr::new(10, 213, slot, 1);
        let region_addr = Ipv4Addr::new(10, 213, slot, 2);
        let namespace = Namespace::create(format!("ef{}-{slot}", std::process::id()))?;
        let region_tun = open_tun_in_namespace(&namespace.name, REGION_INTERFACE)?;

        let ns = &namespace.name;
        ip(&format!(
            "addr add {host_addr} peer {region_addr} dev {host_interface}"
        ))?;
        disable_ipv6(&host_interface)?;
        in_namespace(ns, || disable_ipv6(REGION_INTERFACE))?;
        ip(&format!("link set dev {host_interface} mtu {MTU} up"))?;
        ip(&format!("-n {ns} link set dev lo up"))?;
        ip(&format!(
            "-n {ns} addr add {region_addr} peer {host_addr} dev {REGION_INTERFACE}"
        ))?;
        ip(&format!(
            "-n {ns} link set dev {REGION_INTERFACE} mtu {MTU} up"
        ))?;
        ip(&format!("-n {ns} route add default dev {REGION_INTERFACE}"))?;

        let link = Arc::new(Link {
            profile: Mutex::new(profile),
            partitioned: AtomicBool::new(false),
            counts: Default::default(),
        });
        let forwarder = Forwarder::start(name, [host_tun, region_tun], link.clone(), slot)
            .context("start the link's forwarding thread")?;
        Ok(Region {
            name: name.to_owned(),
            host_interface,
            host_addr,
            region_addr,
            link,
            _forwarder: forwarder,
            namespace,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network namespace's name, for `ip -n` or `ip netns exec`.
    pub fn namespace(&self) -> &str {
        &self.namespace.name
    }

    /// The host's end of the link: what processes in the region connect to. A server on the host
    /// must listen on this address or on `0.0.0.0`.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// The region's end of the link, the source address of its processes' connections.
    pub fn region_addr(&self) -> Ipv4Addr {
        self.region_addr
    }

    /// The host side's interface, e.g. `efwan3`.
    pub fn host_interface(&self) -> &str {
        &self.host_interface
    }

    pub fn profile(&self) -> LinkProfile {
        *self.link.profile()
    }

    /// Applies to packets arriving from now on; those already on the way keep their delay.
    pub fn set_profile(&self, profile: LinkProfile) {
        profile.check();
        *self.link.profile() = profile;
    }

    /// Drops every packet both ways, including those already on the way, like a pulled cable:
    /// connections stall rather than close, until [`Region::heal`] (or their own timeouts).
    pub fn partition(&self) {
        self.link.partitioned.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.link.partitioned.store(false, Ordering::SeqCst);
    }

    /// A command that runs `program` inside the region (`ip netns exec <namespace> program`); add
    /// arguments as usual. Give it to [`crate::Process::spawn`] to capture its output and tie it to
    /// the test process. Processes still in the region when the [`Wan`] is dropped are killed.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace()])
            .arg(program);
        command
    }

    /// Makes the host's loopback port `port` reachable inside the region at `127.0.0.1:port` without crossing
    /// the emulated link: what a region's own services, run on the host by the test (its cluster's API server),
    /// are to processes in the region. Lives as long as the returned relay.
    pub fn local_port(&self, port: u16) -> anyhow::Result<Relay> {
        let listener = in_namespace(self.namespace(), move || {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        })
        .with_context(|| format!("listen on 127.0.0.1:{port} in region {}", self.name))?;
        Relay::start_on(listener, (Ipv4Addr::LOCALHOST, port).into())
            .with_context(|| format!("relay 127.0.0.1:{port} into region {}", self.name))
    }

    pub fn stats(&self) -> LinkStats {
        let [to_region, to_host] = &self.link.counts;
        LinkStats {
            to_region: to_region.get(),
            to_host: to_host.get(),
        }
    }
}

/// A named network namespace. A janitor (`sh`, in its own process group so Ctrl-C does not kill it)
/// waits for its stdin to close, which happens when this is dropped or when the test process dies,
/// then kills what is left in the namespace and deletes it: one way out for both cases.
#[derive(Debug)]
struct Namespace {
    name: String,
    janitor: Child,
    janitor_stdin: Option<ChildStdin>,
}

const JANITOR_SCRIPT: &str = r#"
trap '' HUP INT
cat >/dev/null
for pid in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
ip netns del "$1" 2>/dev/null
"#;

impl Namespace {
    fn create(name: String) -> anyhow::Result<Namespace> {
        // The janitor starts first, so a namespace is never left without one.
        let mut janitor = Command::new("sh")
            .args(["-c", JANITOR_SCRIPT, "harness-wan-janitor"])
            .arg(&name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("start the WAN namespace janitor (sh)")?;
        let janitor_stdin = janitor.stdin.take();
        let namespace = Namespace {
            name,
            janitor,
            janitor_stdin,
        };
        ip(&format!("netns add {}", namespace.name))?;
        Ok(namespace)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.janitor_stdin.take();
        // The namespace is gone once the janitor has exited.
        let _ = self.janitor.wait();
    }
}

/// Opens a TUN device named `efwan<slot>` in the host namespace, in the first slot no other link on
/// this host holds. The slot also picks the link's addresses, `10.213.<slot>.1` (host) and `.2`
/// (region): interface names are unique on the host, so the kernel hands out slots, and with them
/// addresses, to concurrent test processes without clashes.
fn open_host_tun() -> anyhow::Result<(u8, File)> {
    for slot in 0..=u8::MAX {
        match open_tun(&format!("efwan{slot}")) {
            Ok(tun) => return Ok((slot, tun)),
            // Another link, of this or another test process, has that name.
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => continue,
            Err(error) => return Err(error).context("create a TUN device on the host"),
        }
    }
    bail!("all 256 WAN links of this host (interfaces efwan0 to efwan255) are in use")
}

/// Creates the TUN device `interface` inside `namespace`.
fn open_tun_in_namespace(namespace: &str, interface: &str) -> anyhow::Result<File> {
    let interface = interface.to_owned();
    in_namespace(namespace, move || open_tun(&interface))
        .with_context(|| format!("create TUN device {REGION_INTERFACE} in namespace {namespace}"))
}

/// Runs `create` inside `namespace` and returns what it made. TUN devices and sockets belong to the namespace
/// of the thread that created them, so a short-lived thread enters the namespace and creates it; the file or
/// socket works from any thread afterwards, and the caller's thread stays in the host namespace.
fn in_namespace<T: Send + 'static>(
    namespace: &str,
    create: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/var/run/netns/{namespace}");
    let creator = thread::spawn(move || -> io::Result<T> {
        let namespace = File::open(&path)?;
        // SAFETY: setns only reads the file descriptor, which is open.
        if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        create()
    });
    Ok(creator
        .join()
        .map_err(|_| anyhow::anyhow!("a thread working in namespace {namespace} panicked"))??)
}

/// No IPv6 on a link's interface: the kernel would send router solicitations and MLD reports over it for a few
/// seconds after it comes up, stray packets that a test counting what crossed the link would see (it did, in CI).
fn disable_ipv6(interface: &str) -> io::Result<()> {
    match std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"),
        "1",
    ) {
        // A kernel without IPv6 sends none of it.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        written => written,
    }
}

/// A non-blocking TUN device without packet information (each read or write is one bare IP packet),
/// refusing a name that already exists.
fn open_tun(interface: &str) -> io::Result<File> {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain data, for which all zeroes is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if interface.len() >= request.ifr_name.len() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("interface name {interface} is too long"),
        ));
    }
    for (to, from) in request.ifr_name.iter_mut().zip(interface.bytes()) {
        *to = from as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as _;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `request` is.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut request) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tun)
}

/// Runs `ip` with the words of `args` (names and addresses here never contain spaces), failing with
/// its error message.
fn ip(args: &str) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .context("run `ip`")?;
    if !output.status.success() {
        bail!(
            "`ip {args}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// What a link's forwarding thread shares with its [`Region`].
#[derive(Debug)]
struct Link {
    profile: Mutex<LinkProfile>,
    partitioned: AtomicBool,
    /// By direction: `[TO_REGION, TO_HOST]`.
    counts: [Counter; 2],
}

impl Link {
    fn profile(&self) -> MutexGuard<'_, LinkProfile> {
        self.profile.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Counter {
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

impl Counter {
    fn get(&self) -> PacketCounts {
        PacketCounts {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn count(&self, forwarded: bool) {
        let counter = if forwarded {
            &self.forwarded
        } else {
            &self.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Directions, also indices into the forwarder's `[host TUN, region TUN]`: a direction reads from its
/// own index and writes to the other.
const TO_REGION: usize = 0;
const TO_HOST: usize = 1;

/// The thread that carries a link's packets both ways. Dropping it stops the thread (closing a pipe it
/// polls wakes it at once) and waits for it, which closes both TUN devices.
#[derive(Debug)]
struct Forwarder {
    stop: Option<io::PipeWriter>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    fn start(name: &str, tuns: [File; 2], link: Arc<Link>, slot: u8) -> io::Result<Forwarder> {
        let (stop_reader, stop) = io::pipe()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ u64::from(slot);
        let thread = thread::Builder::new()
            .name(format!("wan-{name}"))
            .spawn(move || forward(&tuns, &stop_reader, &link, XorShift::new(seed)))?;
        Ok(Forwarder {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A packet on its way, leaving at `due`.
struct InFlight {
    due: Instant,
    packet: Vec<u8>,
}

/// Moves packets between `tuns` (`[host, region]`) until `stop` closes or a device fails. One thread
/// serves both directions: it sleeps in `ppoll` until a packet arrives or the next one is due.
fn forward(tuns: &[File; 2], stop: &io::PipeReader, link: &Link, mut random: XorShift) {
    let mut queues: [VecDeque<InFlight>; 2] = Default::default();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let now = Instant::now();
        let partitioned = link.partitioned.load(Ordering::SeqCst);
        for direction in [TO_REGION, TO_HOST] {
            let queue = &mut queues[direction];
            while let Some(head) = queue.front()
                && head.due <= now
            {
                let InFlight { packet, .. } = queue.pop_front().expect("it has a head");
                // A write fails if the receiving interface is down: that packet is lost too.
                let sent = !partitioned && (&tuns[1 - direction]).write(&packet).is_ok();
                link.counts[direction].count(sent);
            }
        }

        let next_due = queues
            .iter()
            .filter_map(|queue| queue.front())
            .map(|head| head.due)
            .min();
        let timeout = next_due.map(|due| {
            let wait = due.saturating_duration_since(now);
            libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos().into(),
            }
        });
        let mut fds =
            [tuns[0].as_raw_fd(), tuns[1].as_raw_fd(), stop.as_raw_fd()].map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        // SAFETY: `fds` holds three pollfds and the timeout, if any, outlives the call.
        let ready = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_ref().map_or(std::ptr::null(), |timeout| timeout),
                std::ptr::null(),
            )
        };
        if ready < 0 {
            if io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[2].revents != 0 {
            return; // The region is being dropped.
        }

        for direction in [TO_REGION, TO_HOST] {
            if fds[direction].revents == 0 {
                continue;
            }
            loop {
                let length = match (&tuns[direction]).read(&mut buffer) {
                    Ok(0) => break,
                    Ok(length) => length,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                    // The device is gone: nothing more will cross this link.
                    Err(_) => return,
                };
                let packet = &buffer[..length];
                // The link is IPv4 only; the kernel's IPv6 chatter on new interfaces (router
                // solicitations, MLD reports) is nobody's traffic and would blur the counts.
                if packet[0] >> 4 != 4 {
                    continue;
                }
                let profile = *link.profile();
                if link.partitioned.load(Ordering::SeqCst) || random.chance(profile.loss) {
                    link.counts[direction].count(false);
                    continue;
                }
                let queue = &mut queues[direction];
                let due = due_time(
                    Instant::now(),
                    &profile,
                    &mut random,
                    queue.back().map(|last| last.due),
                );
                queue.push_back(InFlight {
                    due,
                    packet: packet.to_vec(),
                });
            }
        }
    }
}

/// When a packet arriving at `now` leaves: after the profile's latency and jitter, but not before the
/// packet ahead of it (`previous_due`), so the link never reorders.
fn due_time(
    now: Instant,
    profile: &LinkProfile,
    random: &mut XorShift,
    previous_due: Option<Instant>,
) -> Instant {
    let spread = profile.jitter.mul_f64(2.0 * random.unit());
    let due = now + (profile.latency + spread).saturating_sub(profile.jitter);
    previous_due.map_or(due, |previous| due.max(previous))
}

/// xorshift64* (Vigna): plenty for loss and jitter, without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // A splitmix64 step spreads a seed with few changing bits; the state must not be zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wan_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Wan>();
    }

    #[test]
    fn loss_follows_the_probability() {
        let mut random = XorShift::new(7);
        let trials = 100_000;
        for p in [0.0, 0.3, 1.0] {
            let hits = (0..trials).filter(|_| random.chance(p)).count();
            let fraction = hits as f64 / f64::from(trials);
            assert!((fraction - p).abs() < 0.01, "p {p}: {fraction}");
        }
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_never_reorders() {
        let mut random = XorShift::new(42);
        let profile = LinkProfile {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            loss: 0.0,
        };
        let start = Instant::now();
        let (mut lowest, mut highest) = (Duration::MAX, Duration::ZERO);
        let mut previous = None;
        for packet in 0..10_000_u32 {
            // Packets 10 µs apart: far closer than the jitter, so order has to be enforced.
            let now = start + Duration::from_micros(10) * packet;
            let alone = due_time(now, &profile, &mut random, None) - now;
            lowest = lowest.min(alone);
            highest = highest.max(alone);
            let due = due_time(now, &profile, &mut random, previous);
            assert!(previous.is_none_or(|previous| due >= previous));
            assert!(due - now <= Duration::from_millis(70));
            previous = Some(due);
        }
        assert!(lowest >= Duration::from_millis(30) && lowest < Duration::from_millis(31));
        assert!(highest <= Duration::from_millis(70) && highest > Duration::from_millis(69));
    }

    #[test]
    fn jitter_larger_than_the_latency_never_goes_below_zero() {
        let mut random = XorShift::new(1);
        let profile = LinkProfile {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(5),
            loss: 0.0,
        };
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(due_time(now, &profile, &mut random, None) >= now);
        }
    }
}
