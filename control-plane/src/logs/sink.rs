//! Batches log lines from every agent stream into few, larger ClickHouse inserts (MergeTree prefers that),
//! and acknowledges each submission only after the insert holding it succeeded.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{LogStore, LogStoreError, TaskLogLine};
use crate::metrics::Metrics;

/// Batching settings: a batch is written when it holds `max_lines` or when `max_delay` has passed since its
/// first line, whichever comes first.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub max_lines: usize,
    pub max_delay: Duration,
    /// Submissions waiting for the writer; when full, `submit` waits (backpressure onto agent streams).
    pub queue_capacity: usize,
    pub insert_attempts: u32,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            max_lines: 5_000,
            max_delay: Duration::from_millis(200),
            queue_capacity: 1_024,
            insert_attempts: 3,
        }
    }
}

struct Submission {
    lines: Vec<TaskLogLine>,
    done: oneshot::Sender<Result<(), String>>,
}

#[derive(Clone)]
pub struct LogSink {
    queue: mpsc::Sender<Submission>,
}

impl LogSink {
    pub fn start(store: LogStore, settings: SinkSettings, metrics: Metrics) -> Self {
        let (queue, rx) = mpsc::channel(settings.queue_capacity);
        tokio::spawn(run_writer(store, settings, metrics, rx));
        Self { queue }
    }

    /// Queues lines for insertion; the returned receiver resolves once they are stored (or failed for good).
    pub async fn submit(&self, lines: Vec<TaskLogLine>) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(submission)) =
            self.queue.send(Submission { lines, done }).await
        {
            let _ = submission.done.send(Err("log writer stopped".into()));
        }
        rx
    }
}

async fn run_writer(
    store: LogStore,
    settings: SinkSettings,
    metrics: Metrics,
    mut rx: mpsc::Receiver<Submission>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut line_count = batch[0].lines.len();
        let deadline = tokio::time::Instant::now() + settings.max_delay;
        while line_count < settings.max_lines {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => {
                    line_count += next.lines.len();
                    batch.push(next);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let lines: Vec<TaskLogLine> = batch.iter().flat_map(|s| s.lines.iter().cloned()).collect();
        let outcome = insert_with_retries(&store, &lines, settings.insert_attempts).await;
        match &outcome {
            Ok(()) => {
                metrics.log_lines_stored.inc_by(lines.len() as u64);
            }
            Err(error) => {
                metrics.log_insert_failures.inc();
                tracing::error!(%error, lines = lines.len(), "giving up on a log batch; agents will resend it");
            }
        };
        for submission in batch {
            let _ = submission
                .done
                .send(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}

async fn insert_with_retries(
    store: &LogStore,
    lines: &[TaskLogLine],
    attempts: u32,
) -> Result<(), LogStoreError> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match store.insert_task_logs(lines).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < attempts => {
                tracing::warn!(%error, attempt, "log insert failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
