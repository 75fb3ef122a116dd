//! A child process of a test whose output is logged to a file and searchable, killed when dropped.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use regex::Regex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::logs::last_lines;
use crate::run_dir::{safe_file_name, test_dir};
use crate::spawn::spawn_tied_to_this_process;

const LOG_TAIL_LINES: usize = 40;
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long, after the process exited, to wait for the rest of its output to be captured.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running child process started by a test (e.g. the control plane or an agent).
///
/// Its stdout and stderr go, interleaved as written, to `<test dir>/<name>.log` and to memory, where
/// [`Process::wait_for_line`] searches them. It runs in its own process group; killing it kills that
/// group, so helpers it started die with it. It is killed (`SIGKILL`) when dropped, and by the kernel
/// when the test process dies, even by `kill -9`.
pub struct Process {
    name: String,
    child: Child,
    /// Set once the child has been reaped; its pid (and process group id) may be reused after that.
    exit_status: Option<ExitStatus>,
    log_path: PathBuf,
    output: Arc<CapturedOutput>,
}

/// What a line has to contain (a `&str` or `String`) or match (a [`Regex`]) for
/// [`Process::wait_for_line`].
#[derive(Clone, Debug)]
pub enum LinePattern {
    Substring(String),
    Regex(Regex),
}

struct CapturedOutput {
    text: Mutex<String>,
    /// `true` once the output has ended. Every captured line notifies too, so waiters look again.
    ended: watch::Sender<bool>,
}

impl Process {
    /// Starts `command` (stdin is `/dev/null`; stdout and stderr are captured) under `name`, which
    /// names the log file and appears in error messages.
    pub fn spawn(name: &str, mut command: Command) -> anyhow::Result<Process> {
        let (log_path, log) = create_log_file(&test_dir(), name)?;
        let (output_reader, output_writer) = io::pipe()?;
        command
            .stdin(Stdio::null())
            .stdout(output_writer.try_clone()?)
            .stderr(output_writer)
            .process_group(0);
        let program = command.get_program().to_string_lossy().into_owned();
        // `command` holds our copy of the pipe's write end and is dropped after the spawn, so the
        // reader sees end-of-file when the child and its descendants close theirs.
        let child = spawn_tied_to_this_process(command, libc::SIGKILL)
            .with_context(|| format!("start {name} ({program})"))?;
        let output = Arc::new(CapturedOutput {
            text: Mutex::new(String::new()),
            ended: watch::Sender::new(false),
        });
        let captured = Arc::clone(&output);
        std::thread::Builder::new()
            .name(format!("harness-output-{name}"))
            .spawn(move || captured.capture(output_reader, log))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            exit_status: None,
            log_path,
            output,
        })
    }

    /// The name given to [`Process::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the output is logged.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// All output captured so far; all of it once an exit status has been returned.
    pub fn log_text(&self) -> String {
        self.output.text().clone()
    }

    /// Waits until some line of output, earlier or new, contains or matches `pattern`, and returns that
    /// line. Fails when `timeout` passes or the output ends first; the error names the log file and
    /// shows its last lines.
    pub async fn wait_for_line(
        &mut self,
        pattern: impl Into<LinePattern>,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let pattern = pattern.into();
        let deadline = Instant::now() + timeout;
        let mut ended = self.output.ended.subscribe();
        let mut searched_bytes = 0;
        loop {
            // Marking the notification as seen before reading the text means a line added after the
            // read wakes the wait below.
            let output_ended = *ended.borrow_and_update();
            {
                let text = self.output.text();
                if let Some(line) = text[searched_bytes..]
                    .lines()
                    .find(|line| pattern.matches(line))
                {
                    return Ok(line.to_owned());
                }
                searched_bytes = text.len();
            }
            if output_ended {
                // The pipe closes while the process exits, a moment before it can be reaped.
                let ending = match self.exit_status_within(Duration::from_secs(1)).await? {
                    Some(status) => format!("exited ({status})"),
                    None => "closed its output".to_owned(),
                };
                bail!(self.failure(&format!("{ending} before printing a line {pattern}")));
            }
            let changed = tokio::time::timeout_at(deadline, ended.changed()).await;
            if changed.is_err() {
                bail!(self.failure(&format!("printed no line {pattern} within {timeout:?}")));
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself and returns its exit status.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match self.exit_status_within(timeout).await? {
            Some(status) => Ok(status),
            None => bail!(self.failure(&format!("did not exit within {timeout:?}"))),
        }
    }

    /// Kills the process group with `SIGKILL`, as a crash or the OOM killer would, and reaps the
    /// process.
    pub fn kill_9(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exit_status {
            return Ok(status);
        }
        self.signal_group(libc::SIGKILL);
        let status = self
            .child
            .wait()
            .with_context(|| format!("wait for {}", self.name))?;
        self.exit_status = Some(status);
        self.output.wait_for_end(OUTPUT_DRAIN_TIMEOUT);
        Ok(status)
    }

    /// Asks the process group to stop with `SIGTERM`, waits up to `grace` for the process to exit,
    /// then kills the group with `SIGKILL`. Returns the exit status (a signal if it was killed).
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exit_status {
            return Ok(status);
        }
        self.signal_group(libc::SIGTERM);
        match self.exit_status_within(grace).await? {
            Some(status) => Ok(status),
            None => self.kill_9(),
        }
    }

    async fn exit_status_within(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.exit_status_if_exited()?;
            if status.is_some() || Instant::now() >= deadline {
                return Ok(status);
            }
            tokio::time::sleep(EXIT_POLL_INTERVAL).await;
        }
    }

    /// The exit status if the process has exited. Reaps it, after killing whatever is left of its
    /// process group, which is safe only while the exited process is not yet reaped: until then its
    /// process group id cannot be reused.
    fn exit_status_if_exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exit_status.is_some() {
            return Ok(self.exit_status);
        }
        if !has_exited_without_reaping(self.child.id())? {
            return Ok(None);
        }
        self.kill_9().map(Some)
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions. The group exists at least as long as its
        // unreaped leader; ESRCH (the group already gone) needs no handling.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), signal) };
    }

    /// An error message naming the process and its log, with the log's last lines.
    fn failure(&self, what_happened: &str) -> String {
        // Printed as well, so the path is in the test's output even if the error is swallowed.
        eprintln!(
            "harness: {} (pid {}) {what_happened}; log: {}",
            self.name,
            self.pid(),
            self.log_path.display()
        );
        format!(
            "{} (pid {}) {what_happened}; full log: {}\n--- last {LOG_TAIL_LINES} lines ---\n{}",
            self.name,
            self.pid(),
            self.log_path.display(),
            last_lines(&self.output.text(), LOG_TAIL_LINES)
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; the kernel reaps the child when the tests exit anyway.
        let _ = self.kill_9();
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("exit_status", &self.exit_status)
            .field("log_path", &self.log_path)
            .finish()
    }
}

/// `true` once the process has exited, leaving it unreaped (`WNOWAIT`).
fn has_exited_without_reaping(pid: u32) -> anyhow::Result<bool> {
    // SAFETY: siginfo_t is plain data that waitid fills in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid siginfo_t for waitid to write.
    let result = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error()).context("waitid");
    }
    // SAFETY: waitid succeeded, so si_pid is initialised (zero if the child has not exited).
    Ok(unsafe { info.si_pid() } != 0)
}

/// Creates `<dir>/<name>.log`, or `<name>-2.log` and so on if a process of that name ran before in the
/// same test (e.g. a restart).
fn create_log_file(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, File)> {
    let stem = safe_file_name(name);
    for attempt in 1.. {
        let file_name = match attempt {
            1 => format!("{stem}.log"),
            n => format!("{stem}-{n}.log"),
        };
        let path = dir.join(file_name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error).with_context(|| format!("create {}", path.display())),
        }
    }
    unreachable!("an unbounded range ends only by returning")
}

impl CapturedOutput {
    fn text(&self) -> std::sync::MutexGuard<'_, String> {
        // A panic elsewhere while holding the lock leaves the text intact.
        self.text.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the capture thread has read the last of the output, so that the log is complete
    /// once the process is known to have exited. Bounded, because a descendant that left the process
    /// group could keep the pipe open.
    fn wait_for_end(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !*self.ended.borrow() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Copies `output` line by line to `log` and into memory until the process closes it.
    fn capture(&self, output: io::PipeReader, mut log: File) {
        let mut output = BufReader::new(output);
        let mut line = Vec::new();
        loop {
            line.clear();
            match output.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // Logging is best effort: a full disk must not hide the output from waiters.
                    let _ = log.write_all(&line);
                    self.text().push_str(&String::from_utf8_lossy(&line));
                    self.ended.send_replace(false);
                }
            }
        }
        self.ended.send_replace(true);
    }
}

impl LinePattern {
    fn matches(&self, line: &str) -> bool {
        match self {
            LinePattern::Substring(substring) => line.contains(substring.as_str()),
            LinePattern::Regex(regex) => regex.is_match(line),
        }
    }
}

impl fmt::Display for LinePattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinePattern::Substring(substring) => write!(formatter, "containing `{substring}`"),
            LinePattern::Regex(regex) => write!(formatter, "matching /{regex}/"),
        }
    }
}

impl From<&str> for LinePattern {
    fn from(substring: &str) -> LinePattern {
        LinePattern::Substring(substring.to_owned())
    }
}

impl From<String> for LinePattern {
    fn from(substring: String) -> LinePattern {
        LinePattern::Substring(substring)
    }
}

impl From<Regex> for LinePattern {
    fn from(regex: Regex) -> LinePattern {
        LinePattern::Regex(regex)
    }
}

impl From<&Regex> for LinePattern {
    fn from(regex: &Regex) -> LinePattern {
        LinePattern::Regex(regex.clone())
    }
}

/// True once `pid` is gone or a zombie (the reaper of orphans may take a moment): for tests that check a process
/// was cleaned up.
pub fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}
