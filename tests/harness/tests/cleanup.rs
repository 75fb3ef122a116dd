//! Servers and processes die with the test process, even on `kill -9`, and the run directory goes away
//! with them unless a test panicked.
//!
//! Each test runs this test binary again as a child (selecting one of the `child_*` tests, which do
//! nothing unless `CHILD_MODE` is set) and inspects what the child leaves behind.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use regex::Regex;

const CHILD_MODE: &str = "HARNESS_CLEANUP_TEST_CHILD";

fn child_test(test_name: &str, mode: &str) -> anyhow::Result<harness::Process> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args([
            test_name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode);
    harness::Process::spawn(mode, command)
}

struct ChildReport {
    pids: Vec<u32>,
    run_dir: PathBuf,
}

async fn child_report(child: &mut harness::Process) -> anyhow::Result<ChildReport> {
    let pattern = Regex::new(r"^pids (\d+) (\d+) (\d+) run_dir (\S+)$")?;
    let line = child
        .wait_for_line(&pattern, Duration::from_secs(60))
        .await?;
    let captures = pattern.captures(&line).expect("the line matched");
    Ok(ChildReport {
        pids: (1..=3)
            .map(|group| captures[group].parse())
            .collect::<Result<_, _>>()?,
        run_dir: PathBuf::from(&captures[4]),
    })
}

#[tokio::test]
async fn kill_9_of_the_test_process_stops_everything_and_removes_the_run_dir() -> anyhow::Result<()>
{
    let mut child = child_test("child_starts_everything_then_idles", "idle")?;
    let report = child_report(&mut child).await?;
    assert!(
        report
            .pids
            .iter()
            .all(|&pid| !harness::process_is_gone(pid))
    );
    assert!(report.run_dir.join("postgres/data").is_dir());

    child.kill_9()?;
    harness::wait_until(
        "servers and processes to die with the test process",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { report.pids.iter().all(|&pid| harness::process_is_gone(pid)) },
    )
    .await?;
    harness::wait_until(
        "the run directory to be removed",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async { !report.run_dir.exists() },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn after_a_panic_the_logs_stay_and_the_data_goes() -> anyhow::Result<()> {
    let mut child = child_test("child_starts_everything_then_panics", "panic")?;
    let report = child_report(&mut child).await?;
    let status = child.wait_for_exit(Duration::from_secs(30)).await?;
    assert!(!status.success(), "the child test failed");
    assert!(child.log_text().contains("logs of this run are kept in"));

    harness::wait_until(
        "servers and processes to die with the test process",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { report.pids.iter().all(|&pid| harness::process_is_gone(pid)) },
    )
    .await?;
    harness::wait_until(
        "the server data to be removed",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async {
            !report.run_dir.join("postgres/data").exists()
                && !report.run_dir.join("clickhouse/data").exists()
        },
    )
    .await?;
    assert!(report.run_dir.join("postgres/server.log").is_file());
    assert!(report.run_dir.join("clickhouse/server.log").is_file());
    assert!(
        report
            .run_dir
            .join("child_starts_everything_then_panics/sleeper.log")
            .is_file()
    );
    std::fs::remove_dir_all(&report.run_dir)?;
    Ok(())
}

/// Starts both servers and a process, and prints their pids and the run directory for the parent test.
fn start_everything_and_report() -> harness::Process {
    let (postgres, clickhouse) = harness::postgres_and_clickhouse();
    let sleeper = harness::Process::spawn("sleeper", {
        let mut command = Command::new("sleep");
        command.arg("300");
        command
    })
    .expect("start sleep");
    let run_dir = harness::test_dir()
        .parent()
        .expect("the run directory")
        .to_owned();
    println!(
        "pids {} {} {} run_dir {}",
        postgres.pid(),
        clickhouse.pid(),
        sleeper.pid(),
        run_dir.display()
    );
    sleeper
}

#[test]
#[ignore = "run by kill_9_of_the_test_process_stops_everything_and_removes_the_run_dir"]
fn child_starts_everything_then_idles() {
    if std::env::var(CHILD_MODE).as_deref() != Ok("idle") {
        return;
    }
    let _sleeper = start_everything_and_report();
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
#[ignore = "run by after_a_panic_the_logs_stay_and_the_data_goes"]
fn child_starts_everything_then_panics() {
    if std::env::var(CHILD_MODE).as_deref() != Ok("panic") {
        return;
    }
    let sleeper = start_everything_and_report();
    // Keep the process alive past the panic: only the exit of the test binary may stop it.
    std::mem::forget(sleeper);
    panic!("deliberate failure, so the harness keeps this run's logs");
}
