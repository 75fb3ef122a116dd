//! Log lines about tasks and the agent itself: written to stderr and handed to the session, which buffers and
//! ships them (see `logbuffer`).

use agent_protocol::{LogLevel, LogLine};
use chrono::Utc;
use tokio::sync::mpsc;

use crate::ownlog::TASK_LOG_TARGET;

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
        // Under their own target with the task id, by which the agent's own log (`ownlog`) leaves out the lines
        // of a task (they travel with it) and keeps the agent's lifecycle lines (no task id).
        let task_id = self.task_id.as_str();
        match level {
            LogLevel::Error => {
                tracing::error!(target: TASK_LOG_TARGET, task_id, fields = %rendered, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: TASK_LOG_TARGET, task_id, fields = %rendered, "{message}")
            }
            _ => tracing::info!(target: TASK_LOG_TARGET, task_id, fields = %rendered, "{message}"),
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
            // Numbered by the session, in the order lines enter its buffer.
            ..LogLine::default()
        };
        // The receiver only goes away when the agent shuts down; the line is on stderr either way.
        let _ = self.sink.send(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
