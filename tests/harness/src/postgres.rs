//! A private PostgreSQL server per test process, started from the system's PostgreSQL binaries.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::logs::file_tail;
use crate::ports::free_port;
use crate::server::{
    Launch, find_executable, retry_on_lost_port, server_dir, unique_database_name,
};
use crate::spawn::ServiceAccount;

/// The superuser `initdb` creates; the harness always connects as it.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server that belongs to this test process. Get it with [`postgres`].
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    /// Changes when a test restarts the server.
    pid: AtomicU32,
    bin_dir: PathBuf,
    dir: PathBuf,
    account: Option<ServiceAccount>,
    databases_created: AtomicU64,
}

/// A transaction held open by [`Postgres::hold_snapshot`]; dropping it ends the session, which rolls it back.
#[derive(Debug)]
pub struct HeldSnapshot {
    psql: std::process::Child,
}

impl Drop for HeldSnapshot {
    fn drop(&mut self) {
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

/// The PostgreSQL server of this test process, started on first use (about a second) and stopped by the
/// kernel when the process exits.
///
/// # Panics
/// If the server cannot start; the message says why and shows the end of its log. Later calls panic
/// with the same message instead of trying again.
pub fn postgres() -> &'static Postgres {
    static POSTGRES: OnceLock<Result<Postgres, String>> = OnceLock::new();
    POSTGRES
        .get_or_init(|| Postgres::start().map_err(|error| format!("{error:#}")))
        .as_ref()
        .unwrap_or_else(|error| panic!("harness: PostgreSQL did not start: {error}"))
}

impl Postgres {
    fn start() -> anyhow::Result<Postgres> {
        let started = Instant::now();
        let bin_dir = find_bin_dir()?;
        let account = ServiceAccount::for_server("postgres")?;
        let dir = server_dir("postgres", account)?;
        init_cluster(&bin_dir, &dir.join("data"), &dir, account)?;
        let (port, pid) = retry_on_lost_port("PostgreSQL", || {
            let port = free_port();
            Ok((port, launch(&bin_dir, &dir, port, account)?))
        })?;
        let postgres = Postgres {
            port,
            pid: AtomicU32::new(pid),
            bin_dir,
            dir,
            account,
            databases_created: AtomicU64::new(0),
        };
        eprintln!(
            "harness: PostgreSQL ready at {} after {} ms (log: {})",
            postgres.admin_url(),
            started.elapsed().as_millis(),
            postgres.log_path().display()
        );
        Ok(postgres)
    }

    /// Makes every commit wait for its WAL to be written, from now on and in every open session, as on a
    /// production server: by default the harness lets commits return before that (`synchronous_commit = off`),
    /// which a crash turns into lost commits that clients were told had succeeded. Call it before
    /// [`Postgres::crash`]. (`fsync` stays off: the WAL survives a crash of PostgreSQL, not of the machine.)
    pub fn durable_commits(&self) -> anyhow::Result<()> {
        self.query(
            &self.admin_url(),
            "ALTER SYSTEM SET synchronous_commit = on",
        )?;
        self.query(&self.admin_url(), "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// Stops the server at once, as a crash would (immediate shutdown: every connection is cut and the next
    /// start runs crash recovery), and returns when it no longer accepts connections. For tests of a database
    /// outage; every test of this process shares the server, so such tests get a test binary of their own.
    pub fn crash(&self) -> anyhow::Result<()> {
        let pid = self.pid();
        // SAFETY: kill(2) with a pid this process started.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGQUIT) } != 0 {
            bail!(
                "signal PostgreSQL ({pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        let pg_isready = self.bin_dir.join("pg_isready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !crate::process_is_gone(pid) || accepts_connections(&pg_isready, self.port) {
            if Instant::now() > deadline {
                bail!("PostgreSQL ({pid}) did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the server again after [`Postgres::crash`], on the same port and data, and returns when it
    /// accepts connections.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let pid = launch(&self.bin_dir, &self.dir, self.port, self.account)?;
        self.pid.store(pid, Ordering::SeqCst);
        Ok(())
    }

    /// URL of the `postgres` database as the superuser, e.g. `postgres://postgres@127.0.0.1:41234/postgres`.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// Creates an empty database with a new name that starts with `name_hint` and returns its URL
    /// (superuser, no password).
    ///
    /// # Panics
    /// If PostgreSQL refuses; the message carries its error.
    pub fn create_database(&self, name_hint: &str) -> String {
        let number = self.databases_created.fetch_add(1, Ordering::Relaxed) + 1;
        let name = unique_database_name(name_hint, number);
        if let Err(error) = self.query(&self.admin_url(), &format!("CREATE DATABASE {name}")) {
            panic!("harness: {error:#}");
        }
        self.url(&name)
    }

    /// Runs SQL (one or more statements) with `psql` against `database_url` and returns the rows of the
    /// last statement, one per line, columns separated by tabs. An error carries PostgreSQL's message.
    pub fn query(&self, database_url: &str, sql: &str) -> anyhow::Result<String> {
        let output = Command::new(self.bin_dir.join("psql"))
            // No ~/.psqlrc, no headers or alignment, stop at the first error.
            .args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", database_url, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("run psql")?;
        if !output.status.success() {
            bail!(
                "PostgreSQL rejected `{sql}` ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Opens a `REPEATABLE READ` transaction on `database_url` and keeps it open until the returned value is
    /// dropped: its snapshot pins the server's xmin, so vacuum removes no row version deleted or updated after
    /// it began (the situation of a forgotten transaction or a long report). Returns once the server shows the
    /// snapshot held.
    pub fn hold_snapshot(&self, database_url: &str) -> anyhow::Result<HeldSnapshot> {
        const NAME: &str = "harness-held-snapshot";
        let separator = if database_url.contains('?') { '&' } else { '?' };
        let mut psql = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-d",
                &format!("{database_url}{separator}application_name={NAME}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("run psql")?;
        let stdin = psql.stdin.as_mut().context("psql's stdin")?;
        stdin
            .write_all(b"BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM pg_class;\n")
            .context("write to psql")?;
        stdin.flush().context("write to psql")?;
        let held = HeldSnapshot { psql };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let holding = self.query(
                database_url,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{NAME}' \
                     AND backend_xmin IS NOT NULL AND state = 'idle in transaction'"
                ),
            )?;
            if holding.trim() == "1" {
                return Ok(held);
            }
            if Instant::now() > deadline {
                bail!("the held snapshot did not show in pg_stat_activity within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id, for tests that inject a database failure.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// The server's log (stdout and stderr of the postmaster).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }
}

/// Starts the postmaster on `port` with the data in `<dir>/data` and returns its pid once it accepts
/// connections.
fn launch(
    bin_dir: &Path,
    dir: &Path,
    port: u16,
    account: Option<ServiceAccount>,
) -> anyhow::Result<u32> {
    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string()])
        // The socket goes into our own directory: the system's /var/run/postgresql may not exist.
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        // Durability is pointless for throwaway data and slows every commit down. (synchronous_commit=off is
        // in postgresql.conf instead, where `durable_commits` can override it.)
        .args(["-c", "fsync=off"])
        .args(["-c", "full_page_writes=off"])
        // Many tests in one process each open a connection pool.
        .args(["-c", "max_connections=300"])
        .current_dir(dir);
    // Statement statistics for benchmarks that ask where PostgreSQL's time goes (`CREATE EXTENSION` turns
    // them on per database); loaded only where the server has the module.
    if bin_dir
        .parent()
        .is_some_and(|root| root.join("lib/pg_stat_statements.so").exists())
    {
        command.args(["-c", "shared_preload_libraries=pg_stat_statements"]);
    }
    let pg_isready = bin_dir.join("pg_isready");
    Launch {
        label: "PostgreSQL",
        command,
        account,
        // Immediate shutdown: the postmaster stops its backends and exits at once.
        death_signal: libc::SIGQUIT,
        output_log: dir.join("server.log"),
        other_logs: Vec::new(),
    }
    .start(|| accepts_connections(&pg_isready, port))
}

/// Where `initdb` and `postgres` are: `pg_config --bindir`, else the newest Debian/Ubuntu
/// `/usr/lib/postgresql/<major>/bin`, else `$PATH`. None of these is on PATH on Debian.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let newest_debian_major = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin);
    let on_path =
        find_executable("initdb", &[]).and_then(|initdb| Some(initdb.parent()?.to_owned()));
    from_pg_config
        .into_iter()
        .chain(newest_debian_major)
        .chain(on_path)
        .find(|dir| has_server(dir))
        .context(
            "PostgreSQL server binaries (initdb, postgres) not found via pg_config, in /usr/lib/postgresql/*/bin \
             or on PATH; run scripts/install-deps.sh",
        )
}

fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    dir: &Path,
    account: Option<ServiceAccount>,
) -> anyhow::Result<()> {
    let log_path = dir.join("initdb.log");
    let log = File::create(&log_path)?;
    let mut command = Command::new(bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ])
        // Skipping the final fsync saves most of initdb's time; the data is thrown away anyway.
        .arg("--no-sync")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(account) = account {
        account.apply(&mut command);
    }
    let status = command
        .status()
        .with_context(|| format!("run {}", bin_dir.join("initdb").display()))?;
    if !status.success() {
        bail!("initdb failed ({status}):\n{}", file_tail(&log_path, 40));
    }
    let conf = data_dir.join("postgresql.conf");
    let mut settings = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .with_context(|| format!("open {}", conf.display()))?;
    settings.write_all(b"\nsynchronous_commit = off\n")?;
    Ok(())
}

fn accepts_connections(pg_isready: &Path, port: u16) -> bool {
    Command::new(pg_isready)
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
        ])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
