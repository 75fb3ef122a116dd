//! Container logs as a kubelet keeps them: one file per container start, `<pod dir>/<container>/<restart>.log`,
//! each line in the CRI format (`<RFC 3339 nano time> <stdout|stderr> F <text>`), read back with the options of
//! the `pods/log` API. Readers work from the files, so a slow reader never loses lines.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// How often a follower looks for new lines (a kubelet uses file notifications; polling is simpler).
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// The log file of a container's `restart`-th start.
pub fn file(container_dir: &Path, restart: u32) -> PathBuf {
    container_dir.join(format!("{restart}.log"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Appends each line of `text` (a trailing newline ends the last line, it does not add an empty one) to the log
/// file, stamped with the current time; lines of one write are a nanosecond apart, as a runtime that stamps each
/// line when it reads it gives them distinct, ordered times.
pub fn append(path: &Path, stream: Stream, text: &str) -> io::Result<()> {
    let mut out = String::new();
    let now = Utc::now();
    for (index, line) in text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .enumerate()
    {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let time = now + chrono::Duration::nanoseconds(index as i64);
        let time = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
        out.push_str(&format!("{time} {} F {line}\n", stream.as_str()));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per batch, so a concurrent reader sees whole lines.
    file.write_all(out.as_bytes())
}

/// One parsed line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: DateTime<Utc>,
    /// The time as written (nanoseconds), which `timestamps=true` prints.
    pub time_text: &'a str,
    pub text: &'a str,
}

/// Parses a CRI log line; `None` for a line that is not one (skipped, as the kubelet does).
pub fn parse(line: &str) -> Option<Entry<'_>> {
    let (time_text, rest) = line.split_once(' ')?;
    let (_stream, rest) = rest.split_once(' ')?;
    let (_tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let time = DateTime::parse_from_rfc3339(time_text)
        .ok()?
        .with_timezone(&Utc);
    Some(Entry {
        time,
        time_text,
        text,
    })
}

/// The `pods/log` options the simulated kubelet honours.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since_time: Option<DateTime<Utc>>,
    pub limit_bytes: Option<usize>,
}

/// Renders one entry as the API prints it.
pub fn render(entry: &Entry<'_>, timestamps: bool) -> String {
    if timestamps {
        format!("{} {}\n", entry.time_text, entry.text)
    } else {
        format!("{}\n", entry.text)
    }
}

/// The complete lines of `content` that pass the time filter, the last `tail_lines` of them, rendered; and how
/// many bytes of `content` were consumed (up to the last newline).
pub fn select(content: &str, options: &Options) -> (Vec<String>, usize) {
    let consumed = content.rfind('\n').map_or(0, |at| at + 1);
    let mut lines: Vec<String> = content[..consumed]
        .lines()
        .filter_map(parse)
        .filter(|e| options.since_time.is_none_or(|since| e.time >= since))
        .map(|e| render(&e, options.timestamps))
        .collect();
    if let Some(tail) = options.tail_lines {
        lines.drain(..lines.len().saturating_sub(tail));
    }
    (lines, consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 0);
        append(&path, Stream::Stdout, "one\ntwo\n").unwrap();
        append(&path, Stream::Stderr, "three").unwrap();
        let content = std::fs::read_to_string(&path).unwrap();
        let (all, consumed) = select(&content, &Options::default());
        assert_eq!(all, ["one\n", "two\n", "three\n"]);
        assert_eq!(consumed, content.len());
        let tail = Options {
            tail_lines: Some(2),
            ..Options::default()
        };
        assert_eq!(select(&content, &tail).0, ["two\n", "three\n"]);
        let future = Options {
            since_time: Some(Utc::now() + chrono::Duration::seconds(5)),
            ..Options::default()
        };
        assert!(select(&content, &future).0.is_empty());
        let stamped = Options {
            timestamps: true,
            ..Options::default()
        };
        let first = &select(&content, &stamped).0[0];
        assert!(first.ends_with(" one\n") && first.contains('T'), "{first}");
    }

    #[test]
    fn a_partial_last_line_waits_and_garbage_is_skipped() {
        let content = "not a log line\n2026-01-01T00:00:00.000000001Z stdout F done\n2026-01-01T00:00:01Z stdout P half";
        let (lines, consumed) = select(content, &Options::default());
        assert_eq!(lines, ["done\n"]);
        assert_eq!(&content[consumed..], "2026-01-01T00:00:01Z stdout P half");
    }
}
