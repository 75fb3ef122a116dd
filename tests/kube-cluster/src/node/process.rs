//! Host processes of run containers: each in its own process group and mount namespace (where the pod's
//! service-account volume is mounted at the path in-cluster clients read), killed with the simulator
//! (parent-death signal), its stdout and stderr copied line by line into the container's log file, stopped with
//! SIGTERM and then SIGKILL after the grace period.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::launch::Launch;
use super::logs::{self, Stream};
use super::volumes::SERVICE_ACCOUNT_DIR;

/// A started process. Dropping it kills its whole process group, as a container runtime tears down a
/// container's processes when its main process ends or the pod goes away.
pub struct Process {
    child: Child,
    /// The child's pid, which is also its process group id.
    pid: i32,
    /// Tasks copying stdout and stderr into the log.
    copiers: Vec<JoinHandle<()>>,
}

/// How long output still in flight may take to reach the log once the process group is dead; only a
/// process that escaped the group (e.g. with `setsid`) and kept the pipes open takes that long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts `binary` as described by `launch`, copying its output into the log file `log`.
///
/// Call this from a runtime worker thread, never from a blocking-pool thread: Linux sends the parent-death
/// signal when the thread that forked the child ends, and worker threads live as long as the runtime.
pub fn spawn(binary: &Path, launch: &Launch, log: PathBuf) -> io::Result<Process> {
    let mut command = Command::new(binary);
    command
        .args(&launch.args)
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so stopping the container also stops whatever it started (e.g. a shell's children).
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    let service_account = launch
        .service_account
        .as_deref()
        .map(ServiceAccountMount::new)
        .transpose()?;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls (prctl, getppid,
    // unshare, mount, mkdir) on memory prepared before the fork, without allocating.
    unsafe {
        command.pre_exec(move || {
            die_with_parent()?;
            // The simulator may have died before prctl took effect; then no signal will ever come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(mount) = &service_account {
                mount.apply()?;
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child.id().expect("a just-spawned child has a pid") as i32;
    let log = Arc::new(log);
    let mut copiers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        copiers.push(tokio::spawn(copy_lines(
            stdout,
            Stream::Stdout,
            log.clone(),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        copiers.push(tokio::spawn(copy_lines(stderr, Stream::Stderr, log)));
    }
    Ok(Process {
        child,
        pid,
        copiers,
    })
}

/// Mounts a pod's service-account volume at [`SERVICE_ACCOUNT_DIR`] for one process: a private mount namespace,
/// a fresh tmpfs over `/run` (which `/var/run` links to) so no directory is created on the host, and a read-only
/// bind mount of the volume. Needs root (CAP_SYS_ADMIN), as a container runtime does.
struct ServiceAccountMount {
    run: CString,
    tmpfs: CString,
    dirs: Vec<CString>,
    source: CString,
    target: CString,
}

impl ServiceAccountMount {
    fn new(source: &Path) -> io::Result<Self> {
        let c = |text: &[u8]| CString::new(text).map_err(io::Error::other);
        // /var/run/secrets/kubernetes.io/serviceaccount lives on the tmpfs at /run.
        let inside = SERVICE_ACCOUNT_DIR
            .strip_prefix("/var/run/")
            .expect("the service-account path is below /var/run");
        let mut dirs = Vec::new();
        let mut path = String::from("/run");
        for part in inside.split('/') {
            path.push('/');
            path.push_str(part);
            dirs.push(c(path.as_bytes())?);
        }
        Ok(Self {
            run: c(b"/run")?,
            tmpfs: c(b"tmpfs")?,
            target: dirs.last().expect("at least one directory").clone(),
            dirs,
            source: c(source.as_os_str().as_bytes())?,
        })
    }

    /// Runs in the child between fork and exec.
    unsafe fn apply(&self) -> io::Result<()> {
        let check = |result: libc::c_int| {
            if result == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let none = std::ptr::null();
        // SAFETY: plain system calls on NUL-terminated strings that outlive the call.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Nothing mounted here may propagate back to the host.
            check(libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                self.tmpfs.as_ptr(),
                self.run.as_ptr(),
                self.tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                std::ptr::null(),
            ))?;
            for dir in &self.dirs {
                check(libc::mkdir(dir.as_ptr(), 0o755))?;
            }
            check(libc::mount(
                self.source.as_ptr(),
                self.target.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                none,
                self.target.as_ptr(),
                none,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            ))
        }
    }
}

/// Asks the kernel to SIGKILL the child when the simulator dies, however it dies.
#[cfg(target_os = "linux")]
fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Other systems have no parent-death signal; their children only die with a clean simulator shutdown.
#[cfg(not(target_os = "linux"))]
fn die_with_parent() -> io::Result<()> {
    Ok(())
}

/// Appends each line of `stream` to the container's log file until the stream ends.
async fn copy_lines(stream: impl AsyncRead + Unpin, kind: Stream, log: Arc<PathBuf>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Err(error) = logs::append(&log, kind, &String::from_utf8_lossy(&line)) {
                    tracing::warn!(log = %log.display(), %error, "cannot write a container log line");
                }
            }
        }
    }
}

/// How a process ended, as a container status reports it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the main process to exit (cancel-safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal; a group that is already gone yields ESRCH, which is fine.
        unsafe {
            libc::kill(-self.pid, signal);
        }
    }

    /// After the main process has exited: kills what is left of its group and waits until its output is in
    /// the log, so that a reader who sees the container terminated also sees everything it printed.
    pub async fn drain(&mut self) {
        self.signal_group(libc::SIGKILL);
        let copiers = std::mem::take(&mut self.copiers);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(copiers)).await;
    }

    /// SIGTERM to the group, SIGKILL when the main process outlives `grace`; returns once it is reaped and
    /// its output drained.
    pub async fn terminate(mut self, grace: Duration) {
        self.signal_group(libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait().await;
        }
        self.drain().await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.signal_group(libc::SIGKILL);
    }
}
