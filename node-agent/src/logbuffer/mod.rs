//! Log lines on their way to the control plane (task lines and pod lines): gathered into batches, each batch
//! written to the on-disk queue before anything else happens to it, sent with at most `send_window` batches
//! awaiting their ack on a stream, and deleted only when acknowledged (after the control plane stored it).

pub mod disk;

use std::path::PathBuf;
use std::time::Duration;

use agent_protocol::{LogBatch, LogLine, PodLogBatch, PodLogLine};
use prost::Message;
use tracing::{error, warn};

pub use disk::{Appended, DiskQueue, DiskQueueError, Limits, Recovered, WhenFull};

/// A batch message of the protocol: an id and its lines.
pub trait Batch: Message + Default + Sized {
    type Line;
    /// What the buffer's messages call it.
    const WHAT: &'static str;
    /// Its field number in `AgentMessage`'s `msg` oneof (protocol/proto/agent.proto).
    const AGENT_MESSAGE_FIELD: u32;
    fn new(batch_id: u64, lines: Vec<Self::Line>) -> Self;
    fn into_lines(self) -> Vec<Self::Line>;
    /// Roughly what a line adds to an encoded batch.
    fn line_bytes(line: &Self::Line) -> usize;
}

/// A batch is sealed once its lines add up to this, whatever `batch_lines` says, so a batch of long lines stays
/// far below the 4 MiB message limit of the gRPC stream.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

impl Batch for LogBatch {
    type Line = LogLine;
    const WHAT: &'static str = "task log";
    const AGENT_MESSAGE_FIELD: u32 = 6;
    fn new(batch_id: u64, lines: Vec<LogLine>) -> Self {
        Self { batch_id, lines }
    }
    fn into_lines(self) -> Vec<LogLine> {
        self.lines
    }
    fn line_bytes(line: &LogLine) -> usize {
        let fields: usize = line.fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        line.message.len() + line.task_id.len() + fields + 16
    }
}

impl Batch for PodLogBatch {
    type Line = PodLogLine;
    const WHAT: &'static str = "pod log";
    const AGENT_MESSAGE_FIELD: u32 = 7;
    fn new(batch_id: u64, lines: Vec<PodLogLine>) -> Self {
        Self { batch_id, lines }
    }
    fn into_lines(self) -> Vec<PodLogLine> {
        self.lines
    }
    fn line_bytes(line: &PodLogLine) -> usize {
        line.message.len()
            + line.demo_id.len()
            + line.namespace.len()
            + line.pod.len()
            + line.container.len()
            + line.pod_uid.len()
            + 32
    }
}

/// `AgentMessage { msg: <B's field> = payload }` in protobuf's encoding: the field's key, the length, the bytes.
fn as_agent_message<B: Batch>(payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(payload.len() + 16);
    prost::encoding::encode_key(
        B::AGENT_MESSAGE_FIELD,
        prost::encoding::WireType::LengthDelimited,
        &mut message,
    );
    prost::encoding::encode_varint(payload.len() as u64, &mut message);
    message.extend_from_slice(payload);
    message
}

/// Batching, buffering and sending of log lines.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A batch is sealed once it holds this many lines.
    pub batch_lines: usize,
    /// A partly filled batch is sealed after this long.
    pub flush_interval: Duration,
    /// Directory of the on-disk queues (one subdirectory per kind of log).
    pub buffer_dir: PathBuf,
    /// Bytes each queue may take on disk.
    pub buffer_max_bytes: u64,
    /// What a full pod log queue does; the task log queue always drops the oldest, since the agent cannot
    /// stop writing its own log.
    pub when_full: WhenFull,
    /// Batches sent on a stream and not yet acknowledged, at most.
    pub send_window: usize,
}

/// What sealing did.
pub enum Sealed<B> {
    /// Nothing was pending.
    Nothing,
    /// On disk; returned so the caller can note what it holds.
    Written { batch: B, appended: Appended },
    /// The queue is full (`Block`): the lines stay pending and no more are taken until acks free space.
    Full,
}

/// Lines waiting to be batched, sealed batches on disk, and how many are out on the current stream.
#[derive(Debug)]
pub struct LogBuffer<B: Batch> {
    settings: LogSettings,
    pending: Vec<B::Line>,
    pending_bytes: usize,
    queue: DiskQueue,
    next_batch_id: u64,
    in_flight: usize,
    dropped_lines: u64,
}

impl<B: Batch> LogBuffer<B> {
    /// Opens the queue in `settings.buffer_dir/<name>`; batch ids continue above both what is on disk and
    /// `first_batch_id` (e.g. the start time), so they never repeat.
    pub fn open(
        settings: &LogSettings,
        name: &str,
        when_full: WhenFull,
        first_batch_id: u64,
    ) -> Result<(Self, Recovered), DiskQueueError> {
        let limits = Limits::new(settings.buffer_max_bytes, when_full);
        let (queue, recovered) = DiskQueue::open(&settings.buffer_dir.join(name), limits)?;
        let next_batch_id = recovered
            .last_batch_id
            .map_or(first_batch_id, |last| first_batch_id.max(last + 1));
        let buffer = Self {
            settings: settings.clone(),
            pending: Vec::new(),
            pending_bytes: 0,
            queue,
            next_batch_id,
            in_flight: 0,
            dropped_lines: 0,
        };
        Ok((buffer, recovered))
    }

    /// Whether to take more lines now; false while a full batch waits for room on disk.
    pub fn accepting(&self) -> bool {
        !self.batch_full()
    }

    fn batch_full(&self) -> bool {
        self.pending.len() >= self.settings.batch_lines || self.pending_bytes >= MAX_BATCH_BYTES
    }

    /// Adds a line, sealing the batch when it is full.
    pub fn push(&mut self, line: B::Line) -> Sealed<B> {
        self.pending_bytes += B::line_bytes(&line);
        self.pending.push(line);
        if self.batch_full() {
            self.seal()
        } else {
            Sealed::Nothing
        }
    }

    /// Seals whatever is pending (the flush timer fired, or acks may have made room).
    pub fn seal(&mut self) -> Sealed<B> {
        if self.pending.is_empty() {
            return Sealed::Nothing;
        }
        let lines = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        let batch = B::new(self.next_batch_id, std::mem::take(&mut self.pending));
        let payload = batch.encode_to_vec();
        if self.queue.is_full_for(payload.len()) {
            self.pending = batch.into_lines();
            return Sealed::Full;
        }
        match self.queue.append(self.next_batch_id, lines, &payload) {
            Ok(appended) => {
                self.next_batch_id += 1;
                self.pending_bytes = 0;
                if appended.dropped_lines > 0 {
                    self.dropped_lines += appended.dropped_lines;
                    warn!(
                        dropped_lines = appended.dropped_lines,
                        dropped_batches = appended.dropped_batches,
                        dropped_total = self.dropped_lines,
                        "{} buffer full: dropped the oldest unacknowledged lines",
                        B::WHAT
                    );
                }
                Sealed::Written { batch, appended }
            }
            // A disk that fails a write: keep the lines and try again at the next flush.
            Err(err) => {
                error!(error = %err, "cannot write a {} batch; keeping it in memory", B::WHAT);
                self.pending = batch.into_lines();
                Sealed::Full
            }
        }
    }

    /// The next batch to send on this stream, if the window has room, as the encoded `AgentMessage` that
    /// carries it: the stored bytes framed as the message's field, never decoded (they were encoded by
    /// [`Self::seal`] and pass their checksum when the buffer is opened).
    pub fn next_to_send(&mut self) -> Option<Vec<u8>> {
        if self.in_flight >= self.settings.send_window {
            return None;
        }
        match self.queue.next_unsent() {
            Ok(Some((_, payload))) => {
                self.in_flight += 1;
                Some(as_agent_message::<B>(&payload))
            }
            Ok(None) => None,
            Err(err) => {
                error!(error = %err, "cannot read the {} buffer", B::WHAT);
                None
            }
        }
    }

    /// Forgets an acknowledged batch; false when it was not (or no longer) held.
    pub fn ack(&mut self, batch_id: u64) -> bool {
        match self.queue.ack(batch_id) {
            Ok(held) => {
                if held {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                held
            }
            Err(err) => {
                error!(error = %err, "cannot delete an acknowledged {} segment", B::WHAT);
                true
            }
        }
    }

    /// A new stream starts: every unacknowledged batch goes out again.
    pub fn rewind(&mut self) {
        self.queue.rewind();
        self.in_flight = 0;
    }

    pub fn unacked_batches(&self) -> usize {
        self.queue.unacked_batches()
    }

    /// Lines deleted unsent because the queue was full, since the agent started.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    pub fn disk_bytes(&self) -> u64 {
        self.queue.bytes()
    }
}

#[cfg(test)]
mod tests {
    use agent_protocol::AgentMessage;
    use agent_protocol::agent_message::Msg;

    use super::*;

    fn settings(dir: &std::path::Path, batch_lines: usize, max_bytes: u64) -> LogSettings {
        LogSettings {
            batch_lines,
            flush_interval: Duration::from_millis(100),
            buffer_dir: dir.to_owned(),
            buffer_max_bytes: max_bytes,
            when_full: WhenFull::Block,
            send_window: 2,
        }
    }

    fn line(message: &str) -> LogLine {
        LogLine {
            message: message.into(),
            ..LogLine::default()
        }
    }

    /// What the control plane decodes from a sent batch.
    fn received(message: Vec<u8>) -> LogBatch {
        match AgentMessage::decode(message.as_slice()).unwrap().msg {
            Some(Msg::Logs(batch)) => batch,
            other => panic!("not a task log batch: {other:?}"),
        }
    }

    fn written(sealed: Sealed<LogBatch>) -> Option<LogBatch> {
        match sealed {
            Sealed::Written { batch, .. } => Some(batch),
            _ => None,
        }
    }

    #[test]
    fn batches_are_sealed_to_disk_and_sent_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, _) = LogBuffer::<LogBatch>::open(
            &settings(dir.path(), 2, 1 << 20),
            "t",
            WhenFull::Block,
            100,
        )
        .unwrap();
        assert!(written(buffer.push(line("a"))).is_none());
        let full = written(buffer.push(line("b"))).expect("the second line fills the batch");
        assert_eq!((full.batch_id, full.lines.len()), (100, 2));
        assert!(written(buffer.push(line("c"))).is_none());
        assert_eq!(written(buffer.seal()).unwrap().batch_id, 101);
        assert!(written(buffer.push(line("d"))).is_none());
        assert_eq!(written(buffer.seal()).unwrap().batch_id, 102);

        // A window of two: the third waits for an ack.
        let sent: Vec<u64> = std::iter::from_fn(|| buffer.next_to_send())
            .map(|message| received(message).batch_id)
            .collect();
        assert_eq!(sent, [100, 101]);
        assert!(buffer.ack(100));
        assert_eq!(received(buffer.next_to_send().unwrap()).batch_id, 102);
        // A new stream sends everything unacknowledged again, from disk.
        buffer.rewind();
        let resent: Vec<LogBatch> = std::iter::from_fn(|| buffer.next_to_send())
            .map(received)
            .collect();
        assert_eq!(
            resent.iter().map(|b| b.batch_id).collect::<Vec<_>>(),
            [101, 102]
        );
        assert_eq!(resent[0].lines[0].message, "c");

        // Ids continue above what is on disk after a restart, even with an older clock.
        drop(buffer);
        let (buffer, recovered) =
            LogBuffer::<LogBatch>::open(&settings(dir.path(), 2, 1 << 20), "t", WhenFull::Block, 5)
                .unwrap();
        assert_eq!(recovered.batches, 2);
        assert_eq!(buffer.next_batch_id, 103);
    }

    #[test]
    fn a_full_blocking_buffer_keeps_the_lines_and_stops_taking_more_until_an_ack() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), 1, 64 * 1024);
        let (mut buffer, _) =
            LogBuffer::<LogBatch>::open(&settings, "t", WhenFull::Block, 1).unwrap();
        let big = "x".repeat(20 * 1024);
        for _ in 0..3 {
            assert!(written(buffer.push(line(&big))).is_some());
        }
        assert!(matches!(buffer.push(line(&big)), Sealed::Full));
        assert!(
            !buffer.accepting(),
            "the waiting batch holds the reader back"
        );
        // Space comes back a segment at a time; these limits give a single segment.
        assert!(buffer.ack(1));
        assert!(buffer.ack(2));
        assert!(matches!(buffer.seal(), Sealed::Full));
        assert!(buffer.ack(3));
        let batch = written(buffer.seal()).expect("the acks made room");
        assert_eq!(batch.lines[0].message.len(), big.len());
        assert!(buffer.accepting());
        assert_eq!(buffer.dropped_lines(), 0, "blocking never drops");
    }

    #[test]
    fn a_stored_pod_batch_goes_out_as_the_agent_message_prost_would_encode() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, _) = LogBuffer::<PodLogBatch>::open(
            &settings(dir.path(), 1, 1 << 20),
            "p",
            WhenFull::Block,
            7,
        )
        .unwrap();
        // Long enough for a length of several varint bytes.
        let line = PodLogLine {
            message: "x".repeat(70_000),
            pod_uid: "uid".into(),
            seq: 3,
            ..PodLogLine::default()
        };
        let Sealed::Written { batch, .. } = buffer.push(line) else {
            panic!("a batch of one line is sealed at once");
        };
        let expected = AgentMessage {
            msg: Some(Msg::PodLogs(batch)),
        }
        .encode_to_vec();
        assert_eq!(buffer.next_to_send().unwrap(), expected);
    }
}
