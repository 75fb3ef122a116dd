//! Where each container's log has been read up to, counting only lines already in the disk buffer: moved as
//! pod log batches are written, saved to a file at every flush of the log buffers (not per batch: rewriting a
//! file per batch cost the agent a fifth of its CPU at 100,000 lines/s), read when the agent starts. Followers
//! resume from there without losing or renumbering a line: lines read after the last save are read again, get
//! the same sequence numbers, and the control plane's storage drops the repeats.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use agent_protocol::{LogStream, PodLogLine};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Containers not written to for this long are forgotten (their pods are long gone).
const FORGET_AFTER_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPosition {
    /// The newest timestamp written, and how many lines carried it.
    pub last_nanos: i64,
    pub lines_at_last: usize,
    pub next_seq: u64,
    /// Unix seconds of the last batch that moved it.
    pub updated: i64,
}

#[derive(Debug, Error)]
#[error("log positions file {path}: {detail}")]
pub struct PositionsError {
    path: PathBuf,
    detail: String,
}

/// Positions per `<pod uid>/<container>`, shared between the followers (which read them when they start) and the
/// session (which moves them as batches reach the disk and saves them at each flush).
#[derive(Debug, Clone)]
pub struct SharedPositions {
    path: PathBuf,
    state: Arc<Mutex<Positions>>,
}

#[derive(Debug, Default)]
struct Positions {
    saved: HashMap<String, SavedPosition>,
    /// Moved since the file was last written.
    changed: bool,
}

fn key(pod_uid: &str, container: &str) -> String {
    format!("{pod_uid}/{container}")
}

impl SharedPositions {
    /// Reads the file if there is one; a file that does not parse is an error (starting over would resend, and
    /// renumber, every line still in the pods' logs).
    pub fn load(path: &Path) -> Result<Self, PositionsError> {
        let saved = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| PositionsError {
                path: path.to_owned(),
                detail: format!("does not parse ({err}); move it away to start over"),
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(err) => {
                return Err(PositionsError {
                    path: path.to_owned(),
                    detail: err.to_string(),
                });
            }
        };
        Ok(Self {
            path: path.to_owned(),
            state: Arc::new(Mutex::new(Positions {
                saved,
                changed: false,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Positions> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, pod_uid: &str, container: &str) -> Option<SavedPosition> {
        self.lock().saved.get(&key(pod_uid, container)).copied()
    }

    /// Moves the positions past `lines`, just written to disk; [`Self::save`] writes them to the file.
    pub fn advance(&self, lines: &[PodLogLine], now_seconds: i64) {
        let mut state = self.lock();
        // A batch holds runs of one container's lines: one lookup per run.
        for run in lines.chunk_by(|a, b| a.pod_uid == b.pod_uid && a.container == b.container) {
            // The agent's own lines never resume: a new process numbers its lines under a new instance id.
            let mut run = run
                .iter()
                .filter(|line| line.stream() != LogStream::Agent)
                .peekable();
            let Some(first) = run.peek() else {
                continue;
            };
            let entry = state
                .saved
                .entry(key(&first.pod_uid, &first.container))
                .or_insert(SavedPosition {
                    last_nanos: first.unix_nanos,
                    lines_at_last: 0,
                    next_seq: 0,
                    updated: now_seconds,
                });
            for line in run {
                if line.unix_nanos > entry.last_nanos {
                    entry.last_nanos = line.unix_nanos;
                    entry.lines_at_last = 0;
                }
                if line.unix_nanos == entry.last_nanos {
                    entry.lines_at_last += 1;
                }
                entry.next_seq = entry.next_seq.max(line.seq + 1);
                entry.updated = now_seconds;
            }
            state.changed = true;
        }
    }

    /// Writes the positions to the file atomically if they moved since the last save, forgetting containers
    /// that have not moved for a week.
    pub fn save(&self, now_seconds: i64) -> Result<(), PositionsError> {
        let json = {
            let mut state = self.lock();
            if !state.changed {
                return Ok(());
            }
            state
                .saved
                .retain(|_, saved| now_seconds - saved.updated < FORGET_AFTER_SECONDS);
            state.changed = false;
            serde_json::to_vec(&state.saved).expect("positions serialize")
        };
        let written = self.write(&json);
        if written.is_err() {
            self.lock().changed = true;
        }
        written
    }

    fn write(&self, json: &[u8]) -> Result<(), PositionsError> {
        let error = |err: std::io::Error| PositionsError {
            path: self.path.clone(),
            detail: err.to_string(),
        };
        crate::files::replace(&self.path, json).map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(uid: &str, nanos: i64, seq: u64) -> PodLogLine {
        PodLogLine {
            pod_uid: uid.into(),
            container: "app".into(),
            unix_nanos: nanos,
            seq,
            ..PodLogLine::default()
        }
    }

    #[test]
    fn positions_follow_written_lines_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let positions = SharedPositions::load(&path).unwrap();
        assert_eq!(positions.get("u1", "app"), None);
        positions.advance(
            &[
                line("u1", 10, 0),
                line("u1", 20, 1),
                line("u2", 5, 0),
                line("u1", 20, 2),
            ],
            1_000,
        );
        let mut agent_line = line("agent-instance", 7, 0);
        agent_line.set_stream(LogStream::Agent);
        positions.advance(&[agent_line], 1_000);
        assert!(
            !path.exists(),
            "advancing is in memory; the file waits for a save"
        );
        positions.save(1_000).unwrap();

        let reloaded = SharedPositions::load(&path).unwrap();
        let u1 = reloaded.get("u1", "app").unwrap();
        assert_eq!((u1.last_nanos, u1.lines_at_last, u1.next_seq), (20, 2, 3));
        assert_eq!(reloaded.get("u2", "app").unwrap().next_seq, 1);
        assert_eq!(reloaded.get("agent-instance", "app"), None);

        // Nothing moved: nothing is written.
        std::fs::remove_file(&path).unwrap();
        reloaded.save(1_000).unwrap();
        assert!(!path.exists());

        // A week later only what moved stays.
        reloaded.advance(&[line("u2", 6, 1)], 1_000 + FORGET_AFTER_SECONDS);
        reloaded.save(1_000 + FORGET_AFTER_SECONDS).unwrap();
        let pruned = SharedPositions::load(&path).unwrap();
        assert_eq!(pruned.get("u1", "app"), None);
        assert_eq!(pruned.get("u2", "app").unwrap().next_seq, 2);
    }

    #[test]
    fn a_damaged_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        std::fs::write(&path, b"{not json").unwrap();
        let err = SharedPositions::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("positions.json") && err.contains("does not parse"),
            "{err}"
        );
    }
}
