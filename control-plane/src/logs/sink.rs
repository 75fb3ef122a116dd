//! Batches log lines from every agent stream into few, larger ClickHouse inserts (MergeTree prefers that),
//! and acknowledges each submission only after the rows holding it are stored (or, refused by ClickHouse for
//! their content, kept in the dead-letter table).
//!
//! Clusters share the writer fairly: submissions wait in one queue per cluster, and a batch takes one submission
//! from each cluster in turn, so a cluster sending a flood gets its share of the inserts and no more; a quiet
//! cluster's lines go into the next insert whatever the flood has queued. The queues are bounded together
//! (`max_pending_lines`): past it, a cluster that already has lines waiting waits to submit more (backpressure
//! onto its stream, and through the agent's window onto its disk buffer), while a cluster with nothing waiting
//! is still let in.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use super::{LogRow, LogStore};
use crate::metrics::Metrics;

/// Batching settings: a batch is written when it holds `max_lines`, when `max_delay` has passed since its first
/// line, or when nothing more arrived for `max_idle`, whichever comes first.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub max_lines: usize,
    pub max_delay: Duration,
    /// Agents hold back batches until theirs are acknowledged (their window), so when submissions stop coming the
    /// batch is as full as it will get: waiting out `max_delay` would only stall every stream.
    pub max_idle: Duration,
    /// Lines waiting for the writer across all clusters; past it, clusters with lines waiting wait to submit.
    pub max_pending_lines: usize,
    /// Tries while ClickHouse is unavailable; rows it refuses are not retried (see `LogStore::deliver`).
    pub insert_attempts: u32,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            // Large inserts make few parts for ClickHouse to merge; at low volume `max_delay` sends sooner.
            max_lines: 50_000,
            max_delay: Duration::from_millis(200),
            max_idle: Duration::from_millis(10),
            max_pending_lines: 200_000,
            insert_attempts: 3,
        }
    }
}

struct Submission<R> {
    lines: Vec<R>,
    done: oneshot::Sender<Result<(), String>>,
}

/// What waits for the writer, per cluster, and whose turn is next.
struct Queues<R> {
    by_source: HashMap<Uuid, VecDeque<Submission<R>>>,
    /// Clusters with submissions waiting, in turn order.
    turn: VecDeque<Uuid>,
    pending_lines: usize,
}

impl<R> Queues<R> {
    fn push(&mut self, source: Uuid, submission: Submission<R>) {
        self.pending_lines += submission.lines.len();
        let queue = self.by_source.entry(source).or_default();
        if queue.is_empty() {
            self.turn.push_back(source);
        }
        queue.push_back(submission);
    }

    /// The next cluster's oldest submission; that cluster goes to the back of the turn.
    fn pop(&mut self) -> Option<Submission<R>> {
        let source = self.turn.pop_front()?;
        let queue = self.by_source.get_mut(&source)?;
        let submission = queue.pop_front()?;
        if queue.is_empty() {
            self.by_source.remove(&source);
        } else {
            self.turn.push_back(source);
        }
        self.pending_lines -= submission.lines.len();
        Some(submission)
    }

    fn admits(&self, source: Uuid, limit: usize) -> bool {
        self.pending_lines < limit || !self.by_source.contains_key(&source)
    }
}

struct Shared<R> {
    queues: Mutex<Queues<R>>,
    /// A submission arrived.
    arrived: Notify,
    /// Lines left the queues.
    drained: Notify,
}

impl<R> Shared<R> {
    fn queues(&self) -> std::sync::MutexGuard<'_, Queues<R>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer of one table.
pub struct LogSink<R> {
    shared: Arc<Shared<R>>,
    max_pending_lines: usize,
}

impl<R> Clone for LogSink<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            max_pending_lines: self.max_pending_lines,
        }
    }
}

impl<R: LogRow> LogSink<R> {
    pub fn start(store: LogStore, settings: SinkSettings, metrics: Metrics) -> Self {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues {
                by_source: HashMap::new(),
                turn: VecDeque::new(),
                pending_lines: 0,
            }),
            arrived: Notify::new(),
            drained: Notify::new(),
        });
        let max_pending_lines = settings.max_pending_lines;
        tokio::spawn(run_writer(store, settings, metrics, shared.clone()));
        Self {
            shared,
            max_pending_lines,
        }
    }

    /// Queues `source`'s lines for insertion (waiting while the queues are full and the source has lines
    /// waiting); the returned receiver resolves once they are stored (or failed for good).
    pub async fn submit(
        &self,
        source: Uuid,
        lines: Vec<R>,
    ) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        let mut submission = Some(Submission { lines, done });
        loop {
            // Registered before the check, so a drain between the check and the wait is not missed.
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let mut queues = self.shared.queues();
                if queues.admits(source, self.max_pending_lines) {
                    queues.push(source, submission.take().expect("submitted once"));
                    self.shared.arrived.notify_one();
                    return rx;
                }
            }
            drained.await;
        }
    }
}

async fn run_writer<R: LogRow>(
    store: LogStore,
    settings: SinkSettings,
    metrics: Metrics,
    shared: Arc<Shared<R>>,
) {
    loop {
        let batch = next_batch(&shared, &settings).await;
        shared.drained.notify_waiters();
        let mut lines: Vec<R> = Vec::with_capacity(batch.iter().map(|s| s.lines.len()).sum());
        let mut answers = Vec::with_capacity(batch.len());
        for submission in batch {
            lines.extend(submission.lines);
            answers.push(submission.done);
        }
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
        for done in answers {
            let _ = done.send(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}

/// Waits for a first submission, then takes submissions in turn until the batch is full, `max_delay` has passed
/// since the first, or none arrived for `max_idle`.
async fn next_batch<R>(shared: &Shared<R>, settings: &SinkSettings) -> Vec<Submission<R>> {
    let mut batch = Vec::new();
    let mut line_count = 0;
    let mut deadline = None;
    loop {
        let arrived = shared.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        {
            let mut queues = shared.queues();
            while line_count < settings.max_lines {
                let Some(submission) = queues.pop() else {
                    break;
                };
                line_count += submission.lines.len();
                batch.push(submission);
            }
        }
        if line_count >= settings.max_lines {
            return batch;
        }
        match deadline {
            None if batch.is_empty() => arrived.await,
            None => {
                deadline = Some(tokio::time::Instant::now() + settings.max_delay);
                continue;
            }
            Some(deadline) => {
                let wait_until = deadline.min(tokio::time::Instant::now() + settings.max_idle);
                if tokio::time::timeout_at(wait_until, arrived).await.is_err() {
                    return batch;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(lines: usize) -> (Submission<u8>, oneshot::Receiver<Result<(), String>>) {
        let (done, rx) = oneshot::channel();
        (
            Submission {
                lines: vec![0; lines],
                done,
            },
            rx,
        )
    }

    #[test]
    fn clusters_take_turns_whatever_one_of_them_queued() {
        let (flood, quiet) = (Uuid::new_v4(), Uuid::new_v4());
        let mut queues = Queues {
            by_source: HashMap::new(),
            turn: VecDeque::new(),
            pending_lines: 0,
        };
        let mut receivers = Vec::new();
        for _ in 0..5 {
            let (s, rx) = submission(100);
            queues.push(flood, s);
            receivers.push(rx);
        }
        let (s, _quiet_rx) = submission(1);
        queues.push(quiet, s);
        assert_eq!(queues.pending_lines, 501);
        // Over the limit, the flooding cluster waits; one with nothing queued does not.
        assert!(!queues.admits(flood, 500));
        assert!(queues.admits(Uuid::new_v4(), 500));
        let sizes: Vec<usize> = std::iter::from_fn(|| queues.pop())
            .map(|s| s.lines.len())
            .collect();
        // The quiet cluster's line is second, not sixth.
        assert_eq!(sizes, [100, 1, 100, 100, 100, 100]);
        assert_eq!(queues.pending_lines, 0);
        assert!(queues.by_source.is_empty() && queues.turn.is_empty());
    }
}
