//! `Process` captures output, finds lines, reports failures with its log, and never outlives its owner.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use regex::Regex;

fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

#[tokio::test]
async fn output_is_captured_in_memory_and_in_a_log_file() -> anyhow::Result<()> {
    let mut process = harness::Process::spawn(
        "talker",
        shell(
            "echo 'to stdout'; echo 'to stderr' >&2; echo 'listening on 127.0.0.1:4242'; sleep 30",
        ),
    )?;
    let line = process
        .wait_for_line(
            &Regex::new(r"listening on [\d.]+:\d+")?,
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(line, "listening on 127.0.0.1:4242");
    // Lines printed before the wait count too.
    assert_eq!(
        process
            .wait_for_line("to stderr", Duration::from_secs(1))
            .await?,
        "to stderr"
    );

    let expected = "to stdout\nto stderr\nlistening on 127.0.0.1:4242\n";
    assert_eq!(process.log_text(), expected);
    assert_eq!(std::fs::read_to_string(process.log_path())?, expected);
    assert_eq!(
        process.log_path().parent(),
        Some(harness::test_dir().as_path())
    );
    assert!(process.log_path().ends_with("talker.log"));
    assert!(
        harness::test_dir().ends_with("output_is_captured_in_memory_and_in_a_log_file"),
        "{}",
        harness::test_dir().display()
    );
    Ok(())
}

#[tokio::test]
async fn a_restarted_process_gets_its_own_log() -> anyhow::Result<()> {
    let first = harness::Process::spawn("agent", shell("true"))?;
    let second = harness::Process::spawn("agent", shell("true"))?;
    assert!(first.log_path().ends_with("agent.log"));
    assert!(second.log_path().ends_with("agent-2.log"));
    Ok(())
}

#[tokio::test]
async fn a_wait_that_times_out_names_the_log_and_shows_its_tail() -> anyhow::Result<()> {
    let mut process = harness::Process::spawn("quiet", shell("echo 'booting'; sleep 30"))?;
    let error = process
        .wait_for_line("ready", Duration::from_millis(300))
        .await
        .expect_err("the process never prints `ready`");
    let message = format!("{error:#}");
    assert!(message.contains("quiet (pid"), "{message}");
    assert!(
        message.contains("printed no line containing `ready`"),
        "{message}"
    );
    assert!(
        message.contains(&process.log_path().display().to_string()),
        "{message}"
    );
    assert!(message.ends_with("booting"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_wait_fails_fast_when_the_process_exits() -> anyhow::Result<()> {
    let mut process = harness::Process::spawn("crasher", shell("echo 'bad config' >&2; exit 3"))?;
    let started = std::time::Instant::now();
    let error = process
        .wait_for_line("ready", Duration::from_secs(30))
        .await
        .expect_err("the process exits first");
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = format!("{error:#}");
    assert!(message.contains("exited (exit status: 3)"), "{message}");
    assert!(message.contains("bad config"), "{message}");
    Ok(())
}

#[tokio::test]
async fn dropping_a_process_kills_it_and_its_children() -> anyhow::Result<()> {
    let mut process =
        harness::Process::spawn("parent", shell("sleep 300 & echo \"child $!\"; wait"))?;
    let line = process
        .wait_for_line("child ", Duration::from_secs(10))
        .await?;
    let child: u32 = line.trim_start_matches("child ").parse()?;
    let parent = process.pid();
    assert!(!harness::process_is_gone(parent) && !harness::process_is_gone(child));

    drop(process);
    assert!(
        harness::process_is_gone(parent),
        "the process is killed and reaped on drop"
    );
    harness::wait_until(
        "the background child to die with its process group",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { harness::process_is_gone(child) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn terminate_lets_the_process_shut_down_and_kill_9_does_not() -> anyhow::Result<()> {
    let graceful_script =
        "trap 'echo stopping; exit 0' TERM; echo ready; while :; do sleep 0.05; done";
    let mut graceful = harness::Process::spawn("graceful", shell(graceful_script))?;
    graceful
        .wait_for_line("ready", Duration::from_secs(10))
        .await?;
    let status = graceful.terminate(Duration::from_secs(5)).await?;
    assert!(status.success(), "{status}");
    assert!(graceful.log_text().contains("stopping"));

    let stubborn_script = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
    let mut stubborn = harness::Process::spawn("stubborn", shell(stubborn_script))?;
    stubborn
        .wait_for_line("ready", Duration::from_secs(10))
        .await?;
    let status = stubborn.terminate(Duration::from_millis(200)).await?;
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let mut victim = harness::Process::spawn("victim", shell("echo ready; sleep 300"))?;
    victim
        .wait_for_line("ready", Duration::from_secs(10))
        .await?;
    let status = victim.kill_9()?;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(victim.wait_for_exit(Duration::ZERO).await?, status);
    Ok(())
}

#[tokio::test]
async fn wait_until_returns_the_value_or_explains_the_timeout() -> anyhow::Result<()> {
    let mut attempts = 0;
    let value = harness::wait_until(
        "the third attempt",
        Duration::from_secs(5),
        Duration::from_millis(1),
        || {
            attempts += 1;
            let attempt = attempts;
            async move { (attempt >= 3).then_some(attempt * 10) }
        },
    )
    .await?;
    assert_eq!(value, 30);

    let error = harness::wait_until(
        "a file that never appears",
        Duration::from_millis(50),
        Duration::from_millis(10),
        || async { std::fs::read_to_string(Path::new("/nonexistent/harness-file")) },
    )
    .await
    .expect_err("the file never appears");
    let message = error.to_string();
    assert!(
        message.contains("timed out after 50ms waiting for a file that never appears"),
        "{message}"
    );
    assert!(
        message.contains("last error: No such file or directory"),
        "{message}"
    );
    Ok(())
}
