//! Host processes of run containers: each in its own process group, killed with the emulator (parent-death
//! signal), its stdout and stderr copied line by line into the pod's container log, stopped with SIGTERM and
//! then SIGKILL after the grace period.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::launch::Launch;
use crate::logs::LogStore;

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

/// Where the process's output goes.
pub struct LogTarget {
    pub logs: Arc<LogStore>,
    pub pod_uid: String,
    pub container: String,
}

/// Starts `binary` as described by `launch`, copying its output into the container log.
///
/// Call this from a runtime worker thread, never from a blocking-pool thread: Linux sends the parent-death
/// signal when the thread that forked the child ends, and worker threads live as long as the runtime.
pub fn spawn(binary: &Path, launch: &Launch, log: LogTarget) -> io::Result<Process> {
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
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls (prctl, getppid)
    // without allocating.
    unsafe {
        command.pre_exec(move || {
            die_with_parent()?;
            // The emulator may have died before prctl took effect; then no signal will ever come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child.id().expect("a just-spawned child has a pid") as i32;
    let log = Arc::new(log);
    let mut copiers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        copiers.push(tokio::spawn(copy_lines(stdout, log.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        copiers.push(tokio::spawn(copy_lines(stderr, log)));
    }
    Ok(Process {
        child,
        pid,
        copiers,
    })
}

/// Asks the kernel to SIGKILL the child when the emulator dies, however it dies.
#[cfg(target_os = "linux")]
fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Other systems have no parent-death signal; their children only die with a clean emulator shutdown.
#[cfg(not(target_os = "linux"))]
fn die_with_parent() -> io::Result<()> {
    Ok(())
}

/// Appends each line of `stream` to the container log until the stream ends.
async fn copy_lines(stream: impl AsyncRead + Unpin, log: Arc<LogTarget>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            // `append` splits on line ends, so the newline keeps an empty line as one empty log line.
            Ok(_) => log.logs.append(
                &log.pod_uid,
                &log.container,
                &String::from_utf8_lossy(&line),
            ),
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
