//! A bounded, checksummed on-disk queue of sealed log batches, kept until the control plane acknowledges each
//! (after its ClickHouse insert). It survives agent restarts: whatever was written and not yet acknowledged is
//! sent again (the control plane's storage drops the repeats by sequence number).
//!
//! Layout: segment files `<first batch id>.seg` in one directory; a record is a 20-byte header (payload length,
//! CRC-32 of id + line count + payload, batch id, line count) and the payload. Acknowledged ids are appended to
//! `<first batch id>.acks` (not synced: a lost ack only means a resend), and a segment is deleted once every
//! record in it is acknowledged; the segment being written is emptied and written on instead, so a buffer that
//! keeps up does not create a file per burst of acks. A torn or corrupt record (a crash mid-write, a bad disk) ends its segment: it
//! and what follows are counted and skipped, never sent.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

const HEADER: u64 = 20;
const SUFFIX: &str = ".seg";
const ACKS_SUFFIX: &str = ".acks";

/// What a full queue does with the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Stop taking lines until acknowledgements free space; followers stop reading (the kubelet keeps the log).
    #[default]
    Block,
    /// Delete the oldest segment, unsent or not, and count its lines as dropped.
    #[serde(alias = "drop_oldest")]
    DropOldest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the queue's segment files may take together.
    pub max_bytes: u64,
    /// A segment is closed once it reaches this size.
    pub segment_bytes: u64,
    pub when_full: WhenFull,
}

impl Limits {
    pub fn new(max_bytes: u64, when_full: WhenFull) -> Self {
        // Sixteen segments per queue: small enough that acknowledged space comes back soon, few enough files.
        let segment_bytes = (max_bytes / 16).clamp(64 * 1024, 8 * 1024 * 1024);
        Self {
            max_bytes,
            segment_bytes,
            when_full,
        }
    }
}

#[derive(Debug, Error)]
pub enum DiskQueueError {
    #[error("log buffer {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("log buffer {path} is full ({bytes} of {max_bytes} bytes)")]
    Full {
        path: PathBuf,
        bytes: u64,
        max_bytes: u64,
    },
    #[error(
        "a batch of {needed} bytes can never fit in log buffer {path} (segments of {segment_bytes}, at most {max_bytes} bytes)"
    )]
    TooLarge {
        path: PathBuf,
        needed: u64,
        segment_bytes: u64,
        max_bytes: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Record {
    batch_id: u64,
    offset: u64,
    len: u32,
    lines: u32,
    acked: bool,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
    records: Vec<Record>,
    /// The open acks file, once a record of the segment was acknowledged.
    acks: Option<File>,
}

impl Segment {
    fn unacked(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|record| !record.acked)
    }
}

/// What opening found on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub batches: u64,
    pub lines: u64,
    /// Records that failed their checksum or were cut short, with everything after them in their segment.
    pub corrupt_segments_tails: u64,
    /// The highest batch id found; new ids must be above it.
    pub last_batch_id: Option<u64>,
}

/// What an append cost: batches and lines deleted unsent to make room (`DropOldest` only).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub dropped_batches: u64,
    pub dropped_lines: u64,
}

#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    limits: Limits,
    /// Oldest first; the last one is open for appending.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    bytes: u64,
    /// Batches up to this id were handed out on the current stream.
    sent_up_to: u64,
}

impl DiskQueue {
    /// Opens (creating) the queue in `dir` and recovers the segments left by an earlier run.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Self, Recovered), DiskQueueError> {
        let io_err = |source| DiskQueueError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(io_err)?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let stem = path.file_name()?.to_str()?.strip_suffix(SUFFIX)?;
                Some((stem.parse().ok()?, path))
            })
            .collect();
        names.sort();
        let mut recovered = Recovered::default();
        let mut segments = VecDeque::new();
        for (_, path) in names {
            let (segment, corrupt) = scan(&path)?;
            recovered.corrupt_segments_tails += u64::from(corrupt);
            let acks_path = path.with_extension(&ACKS_SUFFIX[1..]);
            if segment.unacked().next().is_none() {
                remove(&path)?;
                remove(&acks_path)?;
                continue;
            }
            for record in segment.unacked() {
                recovered.batches += 1;
                recovered.lines += u64::from(record.lines);
                recovered.last_batch_id = recovered.last_batch_id.max(Some(record.batch_id));
            }
            segments.push_back(segment);
        }
        let bytes = segments.iter().map(|segment| segment.bytes).sum();
        let queue = Self {
            dir: dir.to_owned(),
            limits,
            segments,
            // Recovered segments are closed; the next append starts a new one.
            writer: None,
            bytes,
            sent_up_to: 0,
        };
        Ok((queue, recovered))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the segment files take.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether a batch of `payload_len` bytes would be refused now (`Block` only).
    pub fn is_full_for(&self, payload_len: usize) -> bool {
        self.limits.when_full == WhenFull::Block && !self.fits(record_size(payload_len))
    }

    /// Batches written and not yet acknowledged.
    pub fn unacked_batches(&self) -> usize {
        self.segments.iter().map(|s| s.unacked().count()).sum()
    }

    fn fits(&self, size: u64) -> bool {
        self.bytes + size <= self.limits.max_bytes
    }

    /// Writes one batch and syncs it to disk before returning.
    pub fn append(
        &mut self,
        batch_id: u64,
        lines: u32,
        payload: &[u8],
    ) -> Result<Appended, DiskQueueError> {
        let size = record_size(payload.len());
        if size > self.limits.max_bytes {
            return Err(DiskQueueError::TooLarge {
                path: self.dir.clone(),
                needed: size,
                segment_bytes: self.limits.segment_bytes,
                max_bytes: self.limits.max_bytes,
            });
        }
        let mut appended = Appended::default();
        while !self.fits(size) {
            match self.limits.when_full {
                WhenFull::Block => {
                    return Err(DiskQueueError::Full {
                        path: self.dir.clone(),
                        bytes: self.bytes,
                        max_bytes: self.limits.max_bytes,
                    });
                }
                WhenFull::DropOldest => {
                    if self.segments.len() == 1 {
                        self.writer = None;
                    }
                    let Some(oldest) = self.segments.pop_front() else {
                        break;
                    };
                    for record in oldest.unacked() {
                        appended.dropped_batches += 1;
                        appended.dropped_lines += u64::from(record.lines);
                    }
                    self.bytes -= oldest.bytes;
                    remove(&oldest.path)?;
                }
            }
        }
        let rotate = self
            .segments
            .back()
            .is_none_or(|last| last.bytes + size > self.limits.segment_bytes);
        if rotate || self.writer.is_none() {
            self.start_segment(batch_id)?;
        }
        let segment = self
            .segments
            .back_mut()
            .expect("a segment was just started");
        let writer = self.writer.as_mut().expect("the last segment is open");
        let mut record = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        record.extend_from_slice(
            &u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        record.extend_from_slice(&checksum(batch_id, lines, payload).to_le_bytes());
        record.extend_from_slice(&batch_id.to_le_bytes());
        record.extend_from_slice(&lines.to_le_bytes());
        record.extend_from_slice(payload);
        let io_err = |source| DiskQueueError::Io {
            path: segment.path.clone(),
            source,
        };
        writer.write_all(&record).map_err(io_err)?;
        writer.sync_data().map_err(io_err)?;
        segment.records.push(Record {
            batch_id,
            offset: segment.bytes + HEADER,
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            lines,
            acked: false,
        });
        segment.bytes += size;
        self.bytes += size;
        Ok(appended)
    }

    fn start_segment(&mut self, first_batch_id: u64) -> Result<(), DiskQueueError> {
        let path = self.dir.join(format!("{first_batch_id:020}{SUFFIX}"));
        let io_err = |source| DiskQueueError::Io {
            path: path.clone(),
            source,
        };
        // Readable too: batches of the open segment are read back through the same handle.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        file.set_len(0).map_err(io_err)?;
        // The new name must survive a crash too, or a synced record could sit in a file nobody finds.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        self.writer = Some(file);
        self.segments.push_back(Segment {
            path,
            bytes: 0,
            records: Vec::new(),
            acks: None,
        });
        Ok(())
    }

    /// Marks a batch acknowledged and deletes segments that hold nothing else; false when it was not held.
    pub fn ack(&mut self, batch_id: u64) -> Result<bool, DiskQueueError> {
        let Some(index) = self.segments.iter().position(|segment| {
            segment
                .records
                .first()
                .is_some_and(|r| r.batch_id <= batch_id)
                && segment
                    .records
                    .last()
                    .is_some_and(|r| r.batch_id >= batch_id)
        }) else {
            return Ok(false);
        };
        let open = index + 1 == self.segments.len() && self.writer.is_some();
        let segment = &mut self.segments[index];
        let acks_path = segment.path.with_extension(&ACKS_SUFFIX[1..]);
        let Some(record) = segment
            .records
            .iter_mut()
            .find(|record| record.batch_id == batch_id && !record.acked)
        else {
            return Ok(false);
        };
        record.acked = true;
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| DiskQueueError::Io { path, source }
        };
        if segment.unacked().next().is_some() {
            let acks = match &mut segment.acks {
                Some(acks) => acks,
                None => segment.acks.insert(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&acks_path)
                        .map_err(io_err(&acks_path))?,
                ),
            };
            acks.write_all(&batch_id.to_le_bytes())
                .map_err(io_err(&acks_path))?;
        } else if open {
            // Emptied in place; a crash before the next synced append may bring its records back as unacked,
            // which only means a resend.
            let writer = self.writer.as_ref().expect("the open segment has a writer");
            writer.set_len(0).map_err(io_err(&segment.path))?;
            segment.acks = None;
            self.bytes -= segment.bytes;
            segment.bytes = 0;
            segment.records.clear();
            remove(&acks_path)?;
        } else {
            let done = self.segments.remove(index).expect("index is in range");
            self.bytes -= done.bytes;
            remove(&done.path)?;
            remove(&acks_path)?;
        }
        Ok(true)
    }

    /// The next unacknowledged batch not yet handed out on this stream, read back from disk.
    pub fn next_unsent(&mut self) -> Result<Option<(u64, Vec<u8>)>, DiskQueueError> {
        let after = self.sent_up_to;
        let last = self.segments.len().saturating_sub(1);
        let found = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, segment)| segment.records.last().is_some_and(|r| r.batch_id > after))
            .find_map(|(index, segment)| {
                segment
                    .unacked()
                    .find(|record| record.batch_id > after)
                    .map(|record| (index, &segment.path, *record))
            });
        let Some((index, path, record)) = found else {
            return Ok(None);
        };
        let writer = self.writer.as_ref().filter(|_| index == last);
        let payload = read_payload(path, writer, record)?;
        self.sent_up_to = record.batch_id;
        Ok(Some((record.batch_id, payload)))
    }

    /// A new stream: every unacknowledged batch is to be sent again.
    pub fn rewind(&mut self) {
        self.sent_up_to = 0;
    }
}

fn record_size(payload_len: usize) -> u64 {
    HEADER + u64::try_from(payload_len).unwrap_or(u64::MAX - HEADER)
}

fn checksum(batch_id: u64, lines: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&batch_id.to_le_bytes());
    hasher.update(&lines.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn remove(path: &Path) -> Result<(), DiskQueueError> {
    match fs::remove_file(path) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(DiskQueueError::Io {
            path: path.to_owned(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Reads a record's payload through `open` (the segment being written) or by opening the segment.
fn read_payload(
    path: &Path,
    open: Option<&File>,
    record: Record,
) -> Result<Vec<u8>, DiskQueueError> {
    let io_err = |source| DiskQueueError::Io {
        path: path.to_owned(),
        source,
    };
    let mut payload = vec![0; record.len as usize];
    match open {
        Some(file) => file.read_exact_at(&mut payload, record.offset),
        None => File::open(path).and_then(|file| file.read_exact_at(&mut payload, record.offset)),
    }
    .map_err(io_err)?;
    Ok(payload)
}

/// Reads a segment's records up to the first one that is cut short or fails its checksum; returns whether the
/// segment had such a tail (which is then cut off the file, so appends never follow garbage).
fn scan(path: &Path) -> Result<(Segment, bool), DiskQueueError> {
    let io_err = |source| DiskQueueError::Io {
        path: path.to_owned(),
        source,
    };
    let data = fs::read(path).map_err(io_err)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    let header = HEADER as usize;
    while at + header <= data.len() {
        let word = |from: usize| u32::from_le_bytes(data[from..from + 4].try_into().unwrap());
        let len = word(at) as usize;
        let crc = word(at + 4);
        let batch_id = u64::from_le_bytes(data[at + 8..at + 16].try_into().unwrap());
        let lines = word(at + 16);
        let Some(payload) = data.get(at + header..at + header + len) else {
            break;
        };
        if checksum(batch_id, lines, payload) != crc {
            break;
        }
        records.push(Record {
            batch_id,
            offset: (at + header) as u64,
            len: len as u32,
            lines,
            acked: false,
        });
        at += header + len;
    }
    let acks = fs::read(path.with_extension(&ACKS_SUFFIX[1..])).unwrap_or_default();
    for id in acks.chunks_exact(8) {
        let id = u64::from_le_bytes(id.try_into().unwrap());
        if let Some(record) = records.iter_mut().find(|r| r.batch_id == id) {
            record.acked = true;
        }
    }
    let corrupt = at != data.len();
    if corrupt {
        let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
        file.set_len(at as u64).map_err(io_err)?;
    }
    let segment = Segment {
        path: path.to_owned(),
        bytes: at as u64,
        records,
        acks: None,
    };
    Ok((segment, corrupt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64, segment_bytes: u64, when_full: WhenFull) -> Limits {
        Limits {
            max_bytes,
            segment_bytes,
            when_full,
        }
    }

    fn drain(queue: &mut DiskQueue) -> Vec<(u64, Vec<u8>)> {
        std::iter::from_fn(|| queue.next_unsent().unwrap()).collect()
    }

    #[test]
    fn batches_survive_a_restart_until_acknowledged_and_acked_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let limits = limits(10_000, 100, WhenFull::Block);
        let (mut queue, recovered) = DiskQueue::open(dir.path(), limits).unwrap();
        assert_eq!(recovered, Recovered::default());
        for id in 1..=4u64 {
            queue
                .append(id, 2, format!("batch-{id}-").repeat(5).as_bytes())
                .unwrap();
        }
        // Each 60-byte payload makes an 80-byte record, so every batch has a segment of its own.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
        let sent: Vec<u64> = drain(&mut queue).into_iter().map(|(id, _)| id).collect();
        assert_eq!(sent, [1, 2, 3, 4]);
        assert!(queue.ack(2).unwrap());
        assert!(!queue.ack(2).unwrap(), "a second ack finds nothing");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
        drop(queue);

        let (mut queue, recovered) = DiskQueue::open(dir.path(), limits).unwrap();
        assert_eq!((recovered.batches, recovered.lines), (3, 6));
        assert_eq!(recovered.last_batch_id, Some(4));
        let again = drain(&mut queue);
        assert_eq!(
            again.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1, 3, 4]
        );
        assert_eq!(again[1].1, "batch-3-".repeat(5).as_bytes());
    }

    #[test]
    fn a_queue_that_keeps_up_writes_on_in_one_segment_file() {
        let dir = tempfile::tempdir().unwrap();
        let limits = limits(10_000, 1_000, WhenFull::Block);
        let (mut queue, _) = DiskQueue::open(dir.path(), limits).unwrap();
        let files = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        for id in (1..=40u64).step_by(2) {
            queue
                .append(id, 1, format!("batch {id}").as_bytes())
                .unwrap();
            queue.append(id + 1, 1, b"second").unwrap();
            assert_eq!(drain(&mut queue).len(), 2);
            assert!(queue.ack(id).unwrap());
            assert!(queue.ack(id + 1).unwrap());
            assert_eq!(queue.bytes(), 0, "all acknowledged: the space is back");
        }
        assert_eq!(files(dir.path()), ["00000000000000000001.seg"]);
        // Written on after being emptied: what follows is read back and survives a restart.
        queue.append(500, 3, b"after emptying").unwrap();
        queue.append(501, 1, b"and one more").unwrap();
        assert!(queue.ack(501).unwrap());
        assert_eq!(
            drain(&mut queue),
            [(500, b"after emptying".to_vec())],
            "an acknowledged batch is not handed out"
        );
        drop(queue);
        let (mut queue, recovered) = DiskQueue::open(dir.path(), limits).unwrap();
        assert_eq!((recovered.batches, recovered.lines), (1, 3));
        assert_eq!(drain(&mut queue), [(500, b"after emptying".to_vec())]);
    }

    #[test]
    fn rewinding_hands_out_every_unacknowledged_batch_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut queue, _) =
            DiskQueue::open(dir.path(), limits(10_000, 1_000, WhenFull::Block)).unwrap();
        for id in [7u64, 8, 9] {
            queue.append(id, 1, b"x").unwrap();
        }
        assert_eq!(queue.next_unsent().unwrap().unwrap().0, 7);
        queue.ack(7).unwrap();
        assert_eq!(queue.next_unsent().unwrap().unwrap().0, 8);
        queue.rewind();
        let ids: Vec<u64> = drain(&mut queue).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [8, 9]);
        assert_eq!(queue.unacked_batches(), 2);
    }

    #[test]
    fn a_full_queue_blocks_or_drops_the_oldest_segment_as_configured() {
        let dir = tempfile::tempdir().unwrap();
        // Records of 30 bytes; room for three.
        let (mut blocking, _) =
            DiskQueue::open(&dir.path().join("b"), limits(90, 30, WhenFull::Block)).unwrap();
        for id in 1..=3 {
            blocking.append(id, 4, &[0; 10]).unwrap();
        }
        assert!(blocking.is_full_for(10));
        let refused = blocking.append(4, 4, &[0; 10]).unwrap_err();
        assert!(
            refused.to_string().contains("is full (90 of 90 bytes)"),
            "{refused}"
        );
        blocking.ack(1).unwrap();
        assert!(!blocking.is_full_for(10));
        blocking.append(4, 4, &[0; 10]).unwrap();

        let (mut dropping, _) =
            DiskQueue::open(&dir.path().join("d"), limits(90, 30, WhenFull::DropOldest)).unwrap();
        for id in 1..=3 {
            dropping.append(id, 4, &[0; 10]).unwrap();
        }
        assert!(!dropping.is_full_for(10), "dropping never refuses");
        let appended = dropping.append(4, 4, &[0; 10]).unwrap();
        assert_eq!(
            appended,
            Appended {
                dropped_batches: 1,
                dropped_lines: 4
            }
        );
        let ids: Vec<u64> = drain(&mut dropping).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert!(dropping.bytes() <= 90);

        let too_large = dropping.append(5, 1, &[0; 100]).unwrap_err();
        assert!(
            too_large.to_string().contains("can never fit"),
            "{too_large}"
        );
    }

    #[test]
    fn a_torn_or_corrupt_record_ends_its_segment_and_is_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        let limits = limits(10_000, 10_000, WhenFull::Block);
        let (mut queue, _) = DiskQueue::open(dir.path(), limits).unwrap();
        for id in 1..=3u64 {
            queue.append(id, 1, b"hello").unwrap();
        }
        drop(queue);
        let path = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = fs::read(&path).unwrap();
        // Flip a byte of the second record's payload and cut the third short (a crash mid-write).
        bytes[25 + 20] ^= 0xff;
        bytes.truncate(bytes.len() - 2);
        fs::write(&path, &bytes).unwrap();

        let (mut queue, recovered) = DiskQueue::open(dir.path(), limits).unwrap();
        assert_eq!(recovered.batches, 1);
        assert_eq!(recovered.corrupt_segments_tails, 1);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            25,
            "the bad tail is cut off"
        );
        let ids: Vec<u64> = drain(&mut queue).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1]);
        // Appends after recovery go to a new segment and read back intact.
        queue.append(10, 1, b"after").unwrap();
        assert_eq!(
            queue.next_unsent().unwrap().unwrap(),
            (10, b"after".to_vec())
        );
    }
}
