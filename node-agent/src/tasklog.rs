//! Log lines going to the control plane (task lines, and demo pods' lines): sealed into batches and kept until the
//! control plane acknowledges them.

use std::collections::VecDeque;
use std::time::Duration;

use agent_protocol::{LogBatch, LogLevel, LogLine, PodLogBatch, PodLogLine};
use chrono::Utc;
use tokio::sync::mpsc;
use tracing::warn;

/// A batch message of the protocol: an id and its lines.
pub trait Batch: Clone {
    type Line;
    /// What the buffer's warnings call it.
    const WHAT: &'static str;
    fn new(batch_id: u64, lines: Vec<Self::Line>) -> Self;
    fn batch_id(&self) -> u64;
    fn line_count(&self) -> usize;
}

impl Batch for LogBatch {
    type Line = LogLine;
    const WHAT: &'static str = "task log";
    fn new(batch_id: u64, lines: Vec<LogLine>) -> Self {
        Self { batch_id, lines }
    }
    fn batch_id(&self) -> u64 {
        self.batch_id
    }
    fn line_count(&self) -> usize {
        self.lines.len()
    }
}

impl Batch for PodLogBatch {
    type Line = PodLogLine;
    const WHAT: &'static str = "pod log";
    fn new(batch_id: u64, lines: Vec<PodLogLine>) -> Self {
        Self { batch_id, lines }
    }
    fn batch_id(&self) -> u64 {
        self.batch_id
    }
    fn line_count(&self) -> usize {
        self.lines.len()
    }
}

/// Batching and buffering of log lines.
#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    /// A batch is sealed and sent once it holds this many lines.
    pub batch_lines: usize,
    /// A partly filled batch is sealed and sent after this long.
    pub flush_interval: Duration,
    /// Sealed batches kept until acknowledged; beyond this the oldest is dropped (and counted).
    pub buffer_batches: usize,
}

/// Lines waiting to be batched plus sealed batches waiting for their ack.
#[derive(Debug)]
pub struct LogBuffer<B: Batch> {
    settings: LogSettings,
    pending: Vec<B::Line>,
    unacked: VecDeque<B>,
    next_batch_id: u64,
    dropped_batches: u64,
}

impl<B: Batch> LogBuffer<B> {
    /// `first_batch_id` should grow across agent restarts (e.g. the start time) so ids are not reused.
    pub fn new(settings: LogSettings, first_batch_id: u64) -> Self {
        Self {
            settings,
            pending: Vec::new(),
            unacked: VecDeque::new(),
            next_batch_id: first_batch_id,
            dropped_batches: 0,
        }
    }

    /// Adds a line; returns the batch to send when this line filled one.
    #[must_use = "a sealed batch must be sent"]
    pub fn push(&mut self, line: B::Line) -> Option<B> {
        self.pending.push(line);
        (self.pending.len() >= self.settings.batch_lines).then(|| self.seal())
    }

    /// Seals whatever is pending (the flush timer fired); returns the batch to send, if any.
    #[must_use = "a sealed batch must be sent"]
    pub fn flush(&mut self) -> Option<B> {
        (!self.pending.is_empty()).then(|| self.seal())
    }

    /// Forgets an acknowledged batch; false when it was not (or no longer) buffered.
    pub fn ack(&mut self, batch_id: u64) -> bool {
        let before = self.unacked.len();
        self.unacked.retain(|batch| batch.batch_id() != batch_id);
        self.unacked.len() != before
    }

    /// Every sealed batch not yet acknowledged, oldest first: what to resend after a reconnect.
    pub fn unacked(&self) -> impl Iterator<Item = &B> {
        self.unacked.iter()
    }

    /// Batches dropped because the buffer was full since the agent started.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
    }

    fn seal(&mut self) -> B {
        let batch = B::new(self.next_batch_id, std::mem::take(&mut self.pending));
        self.next_batch_id += 1;
        self.unacked.push_back(batch.clone());
        while self.unacked.len() > self.settings.buffer_batches {
            if let Some(dropped) = self.unacked.pop_front() {
                self.dropped_batches += 1;
                warn!(
                    batch_id = dropped.batch_id(),
                    lines = dropped.line_count(),
                    dropped_total = self.dropped_batches,
                    "{} buffer full: dropped the oldest unacknowledged batch",
                    B::WHAT
                );
            }
        }
        batch
    }
}

/// Records log lines for one task (or, with an empty task id, for the agent itself): each line goes to stderr
/// through tracing and to the control plane through the session's log buffer.
#[derive(Debug, Clone)]
pub struct TaskLog {
    task_id: String,
    sink: mpsc::UnboundedSender<LogLine>,
}

impl TaskLog {
    pub fn new(task_id: impl Into<String>, sink: mpsc::UnboundedSender<LogLine>) -> Self {
        Self {
            task_id: task_id.into(),
            sink,
        }
    }

    pub fn info(&self, message: impl Into<String>, fields: &[(&str, String)]) {
        self.record(LogLevel::Info, message.into(), fields);
    }

    pub fn warn(&self, message: impl Into<String>, fields: &[(&str, String)]) {
        self.record(LogLevel::Warn, message.into(), fields);
    }

    pub fn error(&self, message: impl Into<String>, fields: &[(&str, String)]) {
        self.record(LogLevel::Error, message.into(), fields);
    }

    fn record(&self, level: LogLevel, message: String, fields: &[(&str, String)]) {
        let rendered = fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        match level {
            LogLevel::Error => tracing::error!(fields = %rendered, "{message}"),
            LogLevel::Warn => tracing::warn!(fields = %rendered, "{message}"),
            _ => tracing::info!(fields = %rendered, "{message}"),
        }
        let line = LogLine {
            unix_nanos: Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            level: level.into(),
            task_id: self.task_id.clone(),
            message,
            fields: fields
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
        };
        // The receiver only goes away when the agent shuts down; the line is on stderr either way.
        let _ = self.sink.send(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(batch_lines: usize, buffer_batches: usize) -> LogSettings {
        LogSettings {
            batch_lines,
            flush_interval: Duration::from_millis(100),
            buffer_batches,
        }
    }

    fn line(message: &str) -> LogLine {
        LogLine {
            message: message.into(),
            ..LogLine::default()
        }
    }

    #[test]
    fn a_batch_is_sealed_at_the_line_limit_or_on_flush() {
        let mut buffer = LogBuffer::<LogBatch>::new(settings(2, 10), 100);
        assert!(buffer.push(line("a")).is_none());
        let full = buffer.push(line("b")).expect("second line fills the batch");
        assert_eq!((full.batch_id, full.lines.len()), (100, 2));
        assert!(buffer.flush().is_none(), "nothing pending");
        assert!(buffer.push(line("c")).is_none());
        let partial = buffer.flush().unwrap();
        assert_eq!((partial.batch_id, partial.lines.len()), (101, 1));
    }

    #[test]
    fn batches_stay_until_acked_and_are_offered_for_resend() {
        let mut buffer = LogBuffer::<LogBatch>::new(settings(1, 10), 1);
        for message in ["a", "b", "c"] {
            let _ = buffer.push(line(message));
        }
        assert!(buffer.ack(2));
        assert!(!buffer.ack(2), "second ack of the same batch is a no-op");
        let resend: Vec<u64> = buffer.unacked().map(|batch| batch.batch_id).collect();
        assert_eq!(resend, [1, 3]);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_batch_and_counts_it() {
        let mut buffer = LogBuffer::<LogBatch>::new(settings(1, 2), 1);
        for message in ["a", "b", "c", "d"] {
            let _ = buffer.push(line(message));
        }
        let kept: Vec<u64> = buffer.unacked().map(|batch| batch.batch_id).collect();
        assert_eq!(kept, [3, 4]);
        assert_eq!(buffer.dropped_batches(), 2);
        assert!(!buffer.ack(1), "a dropped batch can no longer be acked");
    }

    #[tokio::test]
    async fn task_log_lines_carry_task_id_level_and_fields() {
        let (sink, mut lines) = mpsc::unbounded_channel();
        TaskLog::new("t-1", sink).warn("slow", &[("document_index", "2".into())]);
        let line = lines.recv().await.unwrap();
        assert_eq!(line.task_id, "t-1");
        assert_eq!(line.level, LogLevel::Warn as i32);
        assert_eq!(line.fields["document_index"], "2");
        assert!(line.unix_nanos > 0);
    }
}
