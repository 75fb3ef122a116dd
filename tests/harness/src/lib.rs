//! Test support: private PostgreSQL, ClickHouse and S3 servers, the product's processes, and polling helpers.
//!
//! Every test process gets its own servers, started from the system's binaries (S3: the workspace's
//! `s3-server`) on first use and shared by all tests in that process; each test takes a fresh database
//! or bucket so tests stay independent.
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//!
//! # async fn example() -> anyhow::Result<()> {
//! // Both servers start concurrently; or call `harness::postgres()` / `harness::clickhouse()` alone.
//! let (postgres, clickhouse) = harness::postgres_and_clickhouse();
//! let database_url = postgres.create_database("control_plane");
//! let log_database = clickhouse.create_database("logs");
//!
//! let mut command = Command::new(harness::workspace_bin("control-plane")?);
//! command
//!     .env("DATABASE_URL", &database_url)
//!     .env("CLICKHOUSE_URL", clickhouse.http_url())
//!     .env("CLICKHOUSE_DATABASE", &log_database)
//!     .arg(format!("--listen=127.0.0.1:{}", harness::free_port()));
//! let mut control_plane = harness::Process::spawn("control-plane", command)?;
//! control_plane.wait_for_line("listening", Duration::from_secs(30)).await?;
//!
//! let count_logs = format!("SELECT count() FROM {log_database}.entries");
//! let (timeout, interval) = (Duration::from_secs(10), Duration::from_millis(100));
//! harness::wait_until("a log line in ClickHouse", timeout, interval, || async {
//!     clickhouse.query(&count_logs).is_ok_and(|count| count.trim() != "0")
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! S3 (for Terraform state and artifacts) comes from the workspace's own `s3-server` binary: path-style
//! requests, SigV4 with fixed credentials, region `us-east-1`.
//!
//! ```no_run
//! let s3 = harness::s3();
//! let bucket = s3.create_bucket("terraform-state");
//! // Point an S3 client at it: endpoint URL, path-style addressing, static credentials, region.
//! let (endpoint, access_key, secret_key, region) =
//!     (s3.endpoint(), s3.access_key(), s3.secret_key(), s3.region());
//! ```
//!
//! Where things are: each test process has a run directory, `$TMPDIR/harness-<test binary>-XXXXXX`,
//! holding `postgres/`, `clickhouse/` and `s3/` (data and server logs) and one directory per test
//! (named after the test) with the logs of the processes it spawned. Servers and processes are killed by the kernel
//! when the test process exits, even by `kill -9`. The run directory is then deleted, except the logs
//! when a test panicked (the path is printed then) or `HARNESS_KEEP_LOGS` is set. When running as
//! root, PostgreSQL and ClickHouse run as the `postgres` and `clickhouse` users, because they refuse
//! to run as root.

mod aws;
mod clickhouse;
mod kube;
mod logs;
mod ports;
mod postgres;
mod process;
mod relay;
mod run_dir;
mod s3;
mod server;
mod spawn;
mod wait;
mod wan;
mod workspace;

pub use aws::{EmulatedAws, MOTO_PROXY_ENV, aws};
pub use clickhouse::{ClickHouse, clickhouse};
pub use kube::KubeCluster;
pub use ports::free_port;
pub use postgres::{HeldSnapshot, Postgres, postgres};
pub use process::{LinePattern, Process, process_is_gone};
pub use relay::Relay;
pub use run_dir::test_dir;
pub use s3::{S3, s3};
pub use spawn::{DeathSignal, spawn_tied_to_this_process};
pub use wait::{Outcome, wait_until};
pub use wan::{LinkProfile, LinkStats, PacketCounts, Region, Wan};
pub use workspace::{workspace_bin, workspace_root};

/// Both servers of this test process, starting whichever is not running yet concurrently (start-up
/// then takes as long as the slower of the two, about a second).
///
/// # Panics
/// If either server cannot start, like [`postgres`] and [`clickhouse`].
pub fn postgres_and_clickhouse() -> (&'static Postgres, &'static ClickHouse) {
    std::thread::scope(|scope| {
        let clickhouse = scope.spawn(clickhouse);
        let postgres = postgres();
        let clickhouse = clickhouse
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (postgres, clickhouse)
    })
}
