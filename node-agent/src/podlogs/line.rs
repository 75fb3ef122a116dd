//! One line of a container log as read with `timestamps=true`: the kubelet's timestamp, then the text, whose
//! level is read from the text itself.

use agent_protocol::LogLevel;
use chrono::DateTime;

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
        && let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(trimmed)
    {
        return ["level", "severity", "lvl"]
            .iter()
            .find_map(|key| fields.get(*key).and_then(|v| v.as_str()))
            .and_then(level_word)
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

fn level_word(word: &str) -> Option<LogLevel> {
    match word.to_ascii_lowercase().as_str() {
        "error" | "err" | "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => {
            Some(LogLevel::Error)
        }
        "warn" | "warning" => Some(LogLevel::Warn),
        "info" | "notice" => Some(LogLevel::Info),
        "debug" | "trace" => Some(LogLevel::Debug),
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
