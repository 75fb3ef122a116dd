//! A private ClickHouse server per test process, started from the system's `clickhouse-server`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::ports::free_port;
use crate::server::{
    Launch, find_executable, retry_on_lost_port, server_dir, unique_database_name,
};
use crate::spawn::ServiceAccount;

/// Long enough for a big insert or merge on a busy CI machine; a hung server still fails the test.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A ClickHouse server that belongs to this test process. Get it with [`clickhouse`].
#[derive(Debug)]
pub struct ClickHouse {
    http_port: u16,
    tcp_port: u16,
    pid: u32,
    dir: PathBuf,
    http: ureq::Agent,
    databases_created: AtomicU64,
}

/// The ClickHouse server of this test process, started on first use (about half a second) and stopped
/// by the kernel when the process exits.
///
/// # Panics
/// If the server cannot start; the message says why and shows the end of its logs. Later calls panic
/// with the same message instead of trying again.
pub fn clickhouse() -> &'static ClickHouse {
    static CLICKHOUSE: OnceLock<Result<ClickHouse, String>> = OnceLock::new();
    CLICKHOUSE
        .get_or_init(|| ClickHouse::start().map_err(|error| format!("{error:#}")))
        .as_ref()
        .unwrap_or_else(|error| panic!("harness: ClickHouse did not start: {error}"))
}

impl ClickHouse {
    fn start() -> anyhow::Result<ClickHouse> {
        let started = Instant::now();
        let server = find_executable("clickhouse-server", &["/usr/sbin", "/usr/bin"]).context(
            "clickhouse-server not found on PATH or in /usr/sbin; run scripts/install-deps.sh",
        )?;
        let account = ServiceAccount::for_server("clickhouse")?;
        let dir = server_dir("clickhouse", account)?;
        let http = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(QUERY_TIMEOUT))
                // Error responses carry ClickHouse's message in the body, which we want to read.
                .http_status_as_error(false)
                .build(),
        );
        let (ports, pid) = retry_on_lost_port("ClickHouse", || {
            // What an earlier try logged would be taken for this one's.
            let _ = fs::remove_file(dir.join("server.err.log"));
            launch(&server, &dir, account, &http)
        })?;

        let clickhouse = ClickHouse {
            http_port: ports.http,
            tcp_port: ports.tcp,
            pid,
            dir,
            http,
            databases_created: AtomicU64::new(0),
        };
        eprintln!(
            "harness: ClickHouse ready at {} after {} ms (log: {})",
            clickhouse.http_url(),
            started.elapsed().as_millis(),
            clickhouse.log_path().display()
        );
        Ok(clickhouse)
    }

    /// Base URL of the HTTP interface, e.g. `http://127.0.0.1:41235`; user `default`, no password.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Port of the native protocol, e.g. for `clickhouse-client --port` while debugging.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// Creates an empty database with a new name that starts with `name_hint` and returns the name.
    ///
    /// # Panics
    /// If ClickHouse refuses; the message carries its error.
    pub fn create_database(&self, name_hint: &str) -> String {
        let number = self.databases_created.fetch_add(1, Ordering::Relaxed) + 1;
        let name = unique_database_name(name_hint, number);
        if let Err(error) = self.query(&format!("CREATE DATABASE {name}")) {
            panic!("harness: {error:#}");
        }
        name
    }

    /// Runs one SQL statement over HTTP and returns the response body (tab-separated unless the
    /// statement says `FORMAT ...`). A rejected statement is an error with ClickHouse's message.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        let mut response = self
            .http
            .post(format!("{}/", self.http_url()))
            .send(sql)
            .with_context(|| format!("sending a query to ClickHouse at {}", self.http_url()))?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .context("reading ClickHouse's response")?;
        if !status.is_success() {
            bail!(
                "ClickHouse rejected `{sql}` (HTTP {status}): {}",
                body.trim_end()
            );
        }
        Ok(body)
    }

    /// The server's process id, for tests that inject a database failure.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's own log; errors also go to `server.err.log` beside it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

/// Starts the server in `dir` on newly picked ports; returns them and its pid once it answers.
fn launch(
    server: &Path,
    dir: &Path,
    account: Option<ServiceAccount>,
    http: &ureq::Agent,
) -> anyhow::Result<(ServerPorts, u32)> {
    let ports = ServerPorts {
        http: free_port(),
        tcp: free_port(),
        interserver: free_port(),
    };
    let config = dir.join("config.xml");
    let users = dir.join("users.xml");
    fs::write(&config, server_config(dir, &users, &ports))?;
    fs::write(&users, USERS_CONFIG)?;

    let mut command = Command::new(server);
    command
        .arg(format!("--config-file={}", config.display()))
        .current_dir(dir);
    let ping_url = format!("http://127.0.0.1:{}/ping", ports.http);
    let pid = Launch {
        label: "ClickHouse",
        command,
        account,
        // Its data is thrown away, so there is nothing to shut down cleanly.
        death_signal: libc::SIGKILL,
        output_log: dir.join("stdout.log"),
        other_logs: vec![dir.join("server.err.log")],
    }
    .start(|| answers_ping(http, &ping_url))?;
    Ok((ports, pid))
}

fn answers_ping(http: &ureq::Agent, ping_url: &str) -> bool {
    http.get(ping_url)
        .call()
        .ok()
        .and_then(|mut response| response.body_mut().read_to_string().ok())
        .is_some_and(|body| body.trim_end() == "Ok.")
}

struct ServerPorts {
    http: u16,
    tcp: u16,
    interserver: u16,
}

/// Only settings ClickHouse 18.16 (Debian's package) understands. Everything lives under `dir`; the
/// time zone is pinned so DateTime text is the same on every machine.
fn server_config(dir: &Path, users: &Path, ports: &ServerPorts) -> String {
    let dir = dir.display();
    let ServerPorts {
        http,
        tcp,
        interserver,
    } = ports;
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{dir}/server.log</log>
        <errorlog>{dir}/server.err.log</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <interserver_http_port>{interserver}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/data/tmp/</tmp_path>
    <user_files_path>{dir}/data/user_files/</user_files_path>
    <format_schema_path>{dir}/data/format_schemas/</format_schema_path>
    <users_config>{users}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
"#,
        users = users.display(),
    )
}

/// One passwordless `default` user, reachable from loopback only, with default settings.
const USERS_CONFIG: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default></default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#;
