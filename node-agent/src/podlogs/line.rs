//! One line of a container log as read with `timestamps=true`: the kubelet's timestamp, then the text, whose
//! level is read from the text itself.

use agent_protocol::LogLevel;
use std::borrow::Cow;

use chrono::DateTime;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Longer lines are cut here (on a character boundary) so one runaway line cannot fill a batch.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Splits `2026-11-23T21:53:38.456738123Z text` into nanoseconds since the epoch and the text; `None` when the
/// line does not start with a timestamp.
pub fn split_timestamp(line: &str) -> Option<(i64, &str)> {
    let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
    let nanos = DateTime::parse_from_rfc3339(stamp)
        .ok()?
        .timestamp_nanos_opt()?;
    Some((nanos, text))
}

/// Cuts `text` to [`MAX_LINE_BYTES`], marking the cut.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_LINE_BYTES {
        return text.to_owned();
    }
    let mut cut = MAX_LINE_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[truncated {} bytes]", &text[..cut], text.len() - cut)
}

/// The level a line states: a JSON object's `level`/`severity`/`lvl` field, a logfmt `level=`, or a leading
/// level word (`ERROR:root:...`, `[warn]`, `INFO:     Started`); INFO when it states none.
pub fn level(text: &str) -> LogLevel {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(fields) = serde_json::from_str::<LevelFields>(trimmed)
    {
        return [fields.level, fields.severity, fields.lvl]
            .into_iter()
            .find_map(|field| match field {
                Some(FieldValue::Text(word)) => Some(word),
                _ => None,
            })
            .and_then(|word| level_word(&word))
            .unwrap_or(LogLevel::Info);
    }
    if let Some(found) = trimmed
        .split_whitespace()
        .find_map(|token| token.strip_prefix("level="))
        .and_then(|value| level_word(value.trim_matches('"')))
    {
        return found;
    }
    trimmed
        .split(|c: char| c.is_whitespace() || c == ':' || c == '|')
        .find(|token| !token.is_empty())
        .map(|token| token.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | '<' | '>')))
        .and_then(level_word)
        .unwrap_or(LogLevel::Info)
}

/// The fields of a JSON line that may state its level; the others are skipped without being built, which
/// matters at tens of thousands of lines a second.
#[derive(Deserialize)]
struct LevelFields<'a> {
    #[serde(borrow, default)]
    level: Option<FieldValue<'a>>,
    #[serde(borrow, default)]
    severity: Option<FieldValue<'a>>,
    #[serde(borrow, default)]
    lvl: Option<FieldValue<'a>>,
}

/// Text states a level; a number, object or anything else does not.
#[derive(Deserialize)]
#[serde(untagged)]
enum FieldValue<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Other(IgnoredAny),
}

const LEVEL_WORDS: [(&str, LogLevel); 14] = [
    ("error", LogLevel::Error),
    ("err", LogLevel::Error),
    ("fatal", LogLevel::Error),
    ("critical", LogLevel::Error),
    ("crit", LogLevel::Error),
    ("panic", LogLevel::Error),
    ("emerg", LogLevel::Error),
    ("alert", LogLevel::Error),
    ("warn", LogLevel::Warn),
    ("warning", LogLevel::Warn),
    ("info", LogLevel::Info),
    ("notice", LogLevel::Info),
    ("debug", LogLevel::Debug),
    ("trace", LogLevel::Debug),
];

fn level_word(word: &str) -> Option<LogLevel> {
    LEVEL_WORDS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(word))
        .map(|(_, level)| *level)
        .or_else(|| klog_level(word))
}

/// klog and glog start a line with the level's letter and the date: `I1123 21:53:38.456738 1 main.go:42] ...`.
fn klog_level(token: &str) -> Option<LogLevel> {
    let (letter, date) = token.split_at_checked(1)?;
    if date.len() != 4 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match letter {
        "I" => Some(LogLevel::Info),
        "W" => Some(LogLevel::Warn),
        "E" | "F" => Some(LogLevel::Error),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_split_off_with_nanoseconds() {
        let (nanos, text) = split_timestamp("2026-11-23T21:53:38.000000123Z hello world").unwrap();
        assert_eq!(nanos % 1_000_000_000, 123);
        assert_eq!(text, "hello world");
        assert_eq!(split_timestamp("2026-11-23T21:53:38Z").unwrap().1, "");
        assert!(split_timestamp("no timestamp here").is_none());
    }

    #[test]
    fn levels_come_from_the_line() {
        for (line, expected) in [
            ("ERROR:root:model failed to load", LogLevel::Error),
            (
                "INFO:     Uvicorn running on http://0.0.0.0:8000",
                LogLevel::Info,
            ),
            ("[warn] slow request", LogLevel::Warn),
            ("WARNING: low memory", LogLevel::Warn),
            (r#"{"level":"error","msg":"boom"}"#, LogLevel::Error),
            (r#"{"severity":"DEBUG","msg":"x"}"#, LogLevel::Debug),
            ("ts=1 level=warn msg=\"slow\"", LogLevel::Warn),
            (
                r#"{"level":30,"severity":"warning","msg":"x"}"#,
                LogLevel::Warn,
            ),
            (
                r#"{"msg":"no level","nested":{"level":"error"}}"#,
                LogLevel::Info,
            ),
            (r#"{"level":"\u0045RROR","msg":"escaped"}"#, LogLevel::Error),
            (
                "E1123 21:53:38.456738       1 main.go:42] cannot sync",
                LogLevel::Error,
            ),
            (
                "W1123 21:53:38.456738       1 main.go:42] slow",
                LogLevel::Warn,
            ),
            (
                "I1123 21:53:38.456738       1 main.go:42] started",
                LogLevel::Info,
            ),
            ("E12 is not a klog prefix", LogLevel::Info),
            ("GET / 200", LogLevel::Info),
            ("", LogLevel::Info),
        ] {
            assert_eq!(level(line), expected, "{line:?}");
        }
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let line = "é".repeat(MAX_LINE_BYTES);
        let cut = bounded(&line);
        assert!(cut.len() < line.len());
        assert!(cut.ends_with(&format!("…[truncated {} bytes]", MAX_LINE_BYTES)));
        assert_eq!(bounded("short"), "short");
    }
}
