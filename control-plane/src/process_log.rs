//! The control plane's own log on stderr. Every field and message is written with its control characters
//! escaped, so user text (a token name, an agent's version string) cannot forge a line or send terminal escape
//! sequences, whatever a call site interpolates.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Installs the global subscriber: `json` lines (escaped by JSON itself) or text with escaped fields, and the
/// OpenTelemetry layer when `otlp` is set.
pub fn init(
    json: bool,
    otlp: Option<&telemetry::OtlpExport>,
) -> Result<telemetry::Telemetry, telemetry::TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn,hyper=warn"));
    // Colours only for a person at a terminal: escape sequences in a log file would hide forged ones.
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        telemetry::install(filter, layer.json(), otlp)
    } else {
        let layer = layer.fmt_fields(
            debug_fn(|writer: &mut Writer<'_>, field, value| {
                let text = escape_controls(&format!("{value:?}"));
                match field.name() {
                    "message" => write!(writer, "{text}"),
                    name => write!(writer, "{name}={text}"),
                }
            })
            .delimited(" "),
        );
        telemetry::install(filter, layer, otlp)
    }
}

/// `text` with every control character written as its Rust escape (`\n`, `\u{1b}`).
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(escaped, "{}", c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_escape_sequences_stay_on_one_line() {
        assert_eq!(
            escape_controls("ci\n2026-12-02T00:00:00Z  INFO forged\u{1b}[2J"),
            "ci\\n2026-12-02T00:00:00Z  INFO forged\\u{1b}[2J"
        );
        assert_eq!(
            escape_controls("plain text, ünïcode"),
            "plain text, ünïcode"
        );
    }
}
