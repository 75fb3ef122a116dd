//! What the PostgreSQL and ClickHouse launchers share: locating binaries, a directory per server, and
//! starting a server and waiting until it serves.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::logs::file_tail;
use crate::run_dir::run_dir;
use crate::spawn::{DeathSignal, ServiceAccount, spawn_tied_to_this_process};

/// Generous because CI machines with two cores may be busy compiling while tests start servers.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);
const LOG_TAIL_LINES: usize = 40;

/// The first executable called `name` in `$PATH`, then in `extra_dirs` (`/usr/sbin` is not on a normal
/// user's PATH, and Debian puts `clickhouse-server` there).
pub(crate) fn find_executable(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Creates `<run dir>/<name>`, owned by the account the server runs as.
pub(crate) fn server_dir(name: &str, account: Option<ServiceAccount>) -> anyhow::Result<PathBuf> {
    let dir = run_dir().join(name);
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    if let Some(account) = account {
        account.take_ownership(&dir)?;
    }
    Ok(dir)
}

/// Runs `launch` (which picks its ports anew each time) again, up to three tries in all, while it fails because a
/// port it picked was taken before the server bound it: a free port is only bound a moment after it is picked,
/// and a server another test process starts meanwhile can take it.
pub(crate) fn retry_on_lost_port<T>(
    label: &str,
    mut launch: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    const TRIES: u32 = 3;
    let mut tried = 1;
    loop {
        match launch() {
            Err(error)
                if tried < TRIES && format!("{error:#}").contains("Address already in use") =>
            {
                eprintln!(
                    "harness: {label} lost a port to another process; starting it again on new ports"
                );
                tried += 1;
            }
            launched => return launched,
        }
    }
}

/// How to launch one server and tell when it is up.
pub(crate) struct Launch<'a> {
    /// For messages: "PostgreSQL", "ClickHouse".
    pub label: &'a str,
    pub command: Command,
    pub account: Option<ServiceAccount>,
    /// Sent by the kernel when the test process dies; chosen per server for the quickest clean exit.
    pub death_signal: DeathSignal,
    /// Receives the server's stdout and stderr.
    pub output_log: PathBuf,
    /// Logs the server writes itself, shown with `output_log` when it fails to start.
    pub other_logs: Vec<PathBuf>,
}

impl Launch<'_> {
    /// Starts the server and polls `is_ready` until it returns true. Fails early if the server exits, and
    /// after [`START_TIMEOUT`]; either way the error carries the tail of its logs. Returns the server's pid.
    pub(crate) fn start(self, mut is_ready: impl FnMut() -> bool) -> anyhow::Result<u32> {
        let Launch {
            label,
            mut command,
            account,
            death_signal,
            output_log,
            other_logs,
        } = self;
        let output = File::create(&output_log)
            .with_context(|| format!("create {}", output_log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output);
        if let Some(account) = account {
            account.apply(&mut command);
        }
        let mut child = spawn_tied_to_this_process(command, death_signal)
            .with_context(|| format!("start {label}"))?;
        let log_tails = || {
            std::iter::once(&output_log)
                .chain(&other_logs)
                .map(|log| {
                    format!(
                        "\n--- last lines of {} ---\n{}",
                        log.display(),
                        file_tail(log, LOG_TAIL_LINES)
                    )
                })
                .collect::<String>()
        };
        let started = Instant::now();
        loop {
            if is_ready() {
                return Ok(child.id());
            }
            if let Some(status) = child.try_wait()? {
                bail!("{label} exited during start-up ({status}){}", log_tails());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{label} did not become ready within {START_TIMEOUT:?}{}",
                    log_tails()
                );
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        }
    }
}

/// `<hint>_<number>` reduced to lower-case ASCII letters, digits and `_`, starting with a letter and
/// within PostgreSQL's and ClickHouse's identifier limits, so it never needs quoting.
pub(crate) fn unique_database_name(name_hint: &str, number: u64) -> String {
    let cleaned: String = name_hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let prefix = if cleaned.starts_with(|c: char| c.is_ascii_lowercase()) {
        ""
    } else {
        "db_"
    };
    format!("{prefix}{cleaned}_{number}")
}

#[cfg(test)]
mod tests {
    use super::{retry_on_lost_port, unique_database_name};

    #[test]
    fn database_names_are_plain_identifiers() {
        assert_eq!(unique_database_name("control-plane", 3), "control_plane_3");
        assert_eq!(unique_database_name("9lives", 1), "db_9lives_1");
        assert_eq!(unique_database_name("", 2), "db__2");
        assert_eq!(unique_database_name("Ünïcode Name", 4), "db__n_code_name_4");
    }

    #[test]
    fn a_start_that_lost_a_port_is_tried_again_and_other_failures_are_not() {
        let lost = || {
            anyhow::anyhow!("ClickHouse exited: Net Exception: Address already in use: 127.0.0.1:1")
        };
        let mut tries = 0;
        let started = retry_on_lost_port("test server", || {
            tries += 1;
            if tries < 3 { Err(lost()) } else { Ok(tries) }
        });
        assert_eq!(started.unwrap(), 3);

        let mut tries = 0;
        let refused: anyhow::Result<()> = retry_on_lost_port("test server", || {
            tries += 1;
            Err(anyhow::anyhow!("bad configuration"))
        });
        assert_eq!(
            (refused.is_err(), tries),
            (true, 1),
            "only a lost port is worth another try"
        );

        let mut tries = 0;
        let gave_up: anyhow::Result<()> = retry_on_lost_port("test server", || {
            tries += 1;
            Err(lost())
        });
        assert_eq!((gave_up.is_err(), tries), (true, 3), "three tries in all");
    }
}
