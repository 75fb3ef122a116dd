//! Batches log lines from every agent stream into few, larger ClickHouse inserts (MergeTree prefers that),
//! and acknowledges each submission only after the rows holding it are stored (or, refused by ClickHouse for
//! their content, kept in the dead-letter table).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{LogRow, LogStore};
use crate::metrics::Metrics;

/// Batching settings: a batch is written when it holds `max_lines` or when `max_delay` has passed since its
/// first line, whichever comes first.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub max_lines: usize,
    pub max_delay: Duration,
    /// Submissions waiting for the writer; when full, `submit` waits (backpressure onto agent streams).
    pub queue_capacity: usize,
    /// Tries while ClickHouse is unavailable; rows it refuses are not retried (see `LogStore::deliver`).
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

struct Submission<R> {
    lines: Vec<R>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The writer of one table.
pub struct LogSink<R> {
    queue: mpsc::Sender<Submission<R>>,
}

impl<R> Clone for LogSink<R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<R: LogRow> LogSink<R> {
    pub fn start(store: LogStore, settings: SinkSettings, metrics: Metrics) -> Self {
        let (queue, rx) = mpsc::channel(settings.queue_capacity);
        tokio::spawn(run_writer(store, settings, metrics, rx));
        Self { queue }
    }

    /// Queues lines for insertion; the returned receiver resolves once they are stored (or failed for good).
    pub async fn submit(&self, lines: Vec<R>) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(submission)) =
            self.queue.send(Submission { lines, done }).await
        {
            let _ = submission.done.send(Err("log writer stopped".into()));
        }
        rx
    }
}

async fn run_writer<R: LogRow>(
    store: LogStore,
    settings: SinkSettings,
    metrics: Metrics,
    mut rx: mpsc::Receiver<Submission<R>>,
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
        let lines: Vec<R> = batch.iter().flat_map(|s| s.lines.iter().cloned()).collect();
        let outcome = store.deliver(&lines, settings.insert_attempts).await;
        match &outcome {
            Ok(delivered) => {
                metrics.log_lines_stored.inc_by(delivered.stored as u64);
                metrics
                    .log_lines_dead_lettered
                    .inc_by(delivered.dead_lettered as u64);
            }
            Err(error) => {
                metrics.log_insert_failures.inc();
                tracing::error!(%error, table = R::TABLE, lines = lines.len(), "giving up on a log batch; agents will resend it");
            }
        };
        for submission in batch {
            let _ = submission
                .done
                .send(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}
