//! Runs the `terraform` binary as a child process: credentials only in its environment, every output line
//! streamed to the task log (with secret values masked), interrupt-then-kill on cancel or timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::domain::names::is_secret_env_name;

#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("terraform {command} failed (exit {code}): {summary}")]
    Failed {
        command: String,
        code: i32,
        summary: String,
        cause: FailureCause,
    },
    #[error("terraform {command} was cancelled")]
    Cancelled { command: String },
    #[error("terraform {command} did not finish within {seconds} s and was stopped")]
    TimedOut { command: String, seconds: u64 },
    #[error("terraform {command}: {source}")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

impl TerraformError {
    /// Whether running the same command again may succeed.
    pub fn may_pass(&self) -> bool {
        match self {
            Self::Io { .. } => true,
            Self::Failed { cause, .. } => *cause != FailureCause::Other,
            Self::Spawn { .. } | Self::Cancelled { .. } | Self::TimedOut { .. } => false,
        }
    }
}

/// What a failed command ran into, read once from its error summary (Terraform reports errors as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// Another run holds the state lock.
    StateLocked,
    /// The cloud API or the state store could not be reached.
    Network,
    /// The cloud API asked to slow down or was briefly unavailable.
    Throttled,
    /// Invalid input, quota, permissions and everything else: fails again the same way.
    Other,
}

impl FailureCause {
    pub fn of(summary: &str) -> Self {
        const CAUSES: &[(FailureCause, &[&str])] = &[
            (
                FailureCause::StateLocked,
                &["Error acquiring the state lock"],
            ),
            (
                FailureCause::Network,
                &[
                    "connection reset",
                    "connection refused",
                    "i/o timeout",
                    "TLS handshake timeout",
                    "timeout while waiting",
                ],
            ),
            (
                FailureCause::Throttled,
                &[
                    "RequestLimitExceeded",
                    "Throttling",
                    "TooManyRequests",
                    "429 Too Many Requests",
                    "503 Service Unavailable",
                ],
            ),
        ];
        CAUSES
            .iter()
            .find(|(_, markers)| markers.iter().any(|marker| summary.contains(marker)))
            .map_or(Self::Other, |(cause, _)| *cause)
    }
}

/// Where a finished command's stdout goes: to the task log line by line, or kept for parsing (JSON output).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    Log,
    Capture,
}

/// One line Terraform printed, already masked.
pub struct OutputLine {
    pub stderr: bool,
    pub text: String,
}

/// The result of a command that ran to completion.
pub struct Finished {
    pub code: i32,
    pub stdout: String,
}

pub struct Terraform {
    pub bin: PathBuf,
    pub dir: PathBuf,
    /// Secrets (cloud credentials, state store keys) and settings for the child only.
    pub env: Vec<(String, Zeroizing<String>)>,
    pub timeout: Duration,
    pub grace: Duration,
}

impl Terraform {
    /// Runs `terraform <args>`. Lines go to `lines` as they are printed. `cancel` flipping to true interrupts the
    /// run (SIGINT to its process group, like Ctrl-C, then SIGKILL after the grace period).
    #[tracing::instrument(
        name = "terraform.command",
        skip_all,
        fields(otel.name = format!("terraform {}", args.first().copied().unwrap_or_default()))
    )]
    pub async fn run(
        &self,
        args: &[&str],
        stdout_mode: Stdout,
        lines: &mpsc::UnboundedSender<OutputLine>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<Finished, TerraformError> {
        let command_name = args.first().copied().unwrap_or("").to_string();
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(passthrough_env())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command.spawn().map_err(|source| TerraformError::Spawn {
            bin: self.bin.clone(),
            source,
        })?;
        let pid = child.id().map(|p| p as i32);
        let secrets: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| is_secret_env_name(k))
            .map(|(_, v)| v.to_string())
            .collect();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let out_task = tokio::spawn(forward(
            stdout,
            false,
            stdout_mode == Stdout::Capture,
            lines.clone(),
            secrets.clone(),
        ));
        let err_task = tokio::spawn(forward(stderr, true, false, lines.clone(), secrets));

        let io_err = |source| TerraformError::Io {
            command: command_name.clone(),
            source,
        };
        let interrupted = tokio::select! {
            status = child.wait() => Ok(status.map_err(io_err)?),
            _ = cancel.wait_for(|c| *c) => Err(false),
            _ = tokio::time::sleep(self.timeout) => Err(true),
        };
        let status = match interrupted {
            Ok(status) => status,
            Err(timed_out) => {
                if let Some(pid) = pid {
                    // SAFETY: plain syscall on the child's own process group.
                    unsafe { libc::killpg(pid, libc::SIGINT) };
                }
                if tokio::time::timeout(self.grace, child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
                let _ = out_task.await;
                let _ = err_task.await;
                return Err(if timed_out {
                    TerraformError::TimedOut {
                        command: command_name,
                        seconds: self.timeout.as_secs(),
                    }
                } else {
                    TerraformError::Cancelled {
                        command: command_name,
                    }
                });
            }
        };
        let captured = out_task.await.unwrap_or_default();
        let errors = err_task.await.unwrap_or_default();
        let code = status.code().unwrap_or(-1);
        Ok(Finished {
            code,
            stdout: if stdout_mode == Stdout::Capture {
                captured
            } else {
                errors
            },
        })
    }

    /// Runs a command that must exit 0; otherwise fails with Terraform's own error lines.
    pub async fn run_ok(
        &self,
        args: &[&str],
        stdout_mode: Stdout,
        lines: &mpsc::UnboundedSender<OutputLine>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<String, TerraformError> {
        let finished = self.run(args, stdout_mode, lines, cancel).await?;
        if finished.code != 0 {
            let summary = error_summary(&finished.stdout);
            return Err(TerraformError::Failed {
                command: args.first().copied().unwrap_or("").to_string(),
                code: finished.code,
                cause: FailureCause::of(&summary),
                summary,
            });
        }
        Ok(finished.stdout)
    }
}

/// Reads a pipe line by line; each line is masked and sent to the log. With `capture`, stdout is kept instead
/// of logged; stderr is always logged and also returned, so failures can quote it.
async fn forward(
    pipe: impl tokio::io::AsyncRead + Unpin,
    stderr: bool,
    capture: bool,
    lines: mpsc::UnboundedSender<OutputLine>,
    secrets: Vec<String>,
) -> String {
    let mut reader = BufReader::new(pipe).lines();
    let mut kept = String::new();
    while let Ok(Some(line)) = reader.next_line().await {
        let line = mask(&line, &secrets);
        if capture {
            kept.push_str(&line);
            kept.push('\n');
            continue;
        }
        if stderr {
            kept.push_str(&line);
            kept.push('\n');
        }
        let _ = lines.send(OutputLine { stderr, text: line });
    }
    kept
}

/// Replaces every occurrence of a secret value; a last line of defence behind keeping secrets out of the
/// configuration Terraform could echo.
pub fn mask(line: &str, secrets: &[String]) -> String {
    let mut masked = line.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if masked.contains(secret.as_str()) {
            masked = masked.replace(secret.as_str(), "[redacted]");
        }
    }
    masked
}

/// The environment the child inherits: only what Terraform needs to run, never this process's own secrets.
fn passthrough_env() -> Vec<(String, String)> {
    [
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "TF_PLUGIN_CACHE_DIR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
    .collect()
}

/// Terraform's error block ("Error: ..." and the lines after it), or the last lines when there is none.
fn error_summary(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim_start_matches(['│', '╷', '╵', ' ']))
        .collect();
    let from = lines
        .iter()
        .position(|l| l.starts_with("Error:"))
        .unwrap_or(lines.len().saturating_sub(8));
    let text: Vec<&str> = lines[from..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .take(12)
        .collect();
    if text.is_empty() {
        "no error output".into()
    } else {
        text.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_values_in_output() {
        let secrets = vec!["AKIDsecret123".to_string()];
        assert_eq!(
            mask("using AKIDsecret123 now", &secrets),
            "using [redacted] now"
        );
    }

    #[test]
    fn error_summary_quotes_terraform_error_block() {
        let stderr = "╷\n│ Error: Invalid value for variable\n│ \n│   on variables.tf line 3:\n│ name must be lowercase\n╵\n";
        let summary = error_summary(stderr);
        assert!(
            summary.starts_with("Error: Invalid value for variable"),
            "{summary}"
        );
        assert!(summary.contains("name must be lowercase"), "{summary}");
    }
}
