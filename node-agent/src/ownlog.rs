//! The agent's own log, shipped like a pod's (stream `agent`): a tracing layer copies every event the log filter
//! lets through into a bounded queue - except the lines of a task, which travel with it (`tasklog`) - and
//! `forward` numbers them and hands them to the pod log pipeline, so they share its disk buffer and
//! acknowledgements. The layer never blocks the code that logs: when the queue is full it drops lines and says how
//! many in the next line it gets through.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use agent_protocol::{LogLevel, LogStream, PodLogLine};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::podlogs::line;

/// The tracing target of task log lines (`tasklog::TaskLog`); the layer leaves out those with a `task_id`.
pub const TASK_LOG_TARGET: &str = "task_log";

/// Lines the layer may hold before the pipeline takes them.
const QUEUE: usize = 1024;

/// Where the agent's lines say they come from: its pod (the host name in a pod) and namespace, when it runs in
/// one, and an id of this process, which with the sequence number makes each line's identity.
#[derive(Debug, Clone)]
pub struct AgentLogSource {
    pub namespace: String,
    pub pod: String,
    pub instance: String,
}

impl AgentLogSource {
    /// The pod and namespace the agent runs in (from the host name and the service account's namespace file),
    /// or the host name alone outside a cluster.
    pub fn detect() -> Self {
        let namespace =
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .map(|namespace| namespace.trim().to_owned())
                .unwrap_or_default();
        let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| "node-agent".into());
        Self {
            namespace,
            pod,
            instance: crate::instance_id().to_owned(),
        }
    }
}

struct Captured {
    unix_nanos: i64,
    level: LogLevel,
    text: String,
}

/// The tracing layer; install it with the log filter in front, so it sees what stderr sees.
pub struct OwnLogLayer {
    queue: mpsc::Sender<Captured>,
    dropped: AtomicU64,
}

/// The other end of the layer's queue, for [`forward`].
pub struct OwnLogLines {
    queue: mpsc::Receiver<Captured>,
    source: AgentLogSource,
}

pub fn channel(source: AgentLogSource) -> (OwnLogLayer, OwnLogLines) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    (
        OwnLogLayer {
            queue: sender,
            dropped: AtomicU64::new(0),
        },
        OwnLogLines {
            queue: receiver,
            source,
        },
    )
}

impl<S: Subscriber> Layer<S> for OwnLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let mut rendered = Rendered::default();
        event.record(&mut rendered);
        if metadata.target() == TASK_LOG_TARGET && !rendered.task_id.is_empty() {
            return;
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let notice = Captured {
                unix_nanos: now,
                level: LogLevel::Warn,
                text: format!(
                    "{dropped} lines of the agent's own log were dropped: the log pipeline was full"
                ),
            };
            if self.queue.try_send(notice).is_err() {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        let captured = Captured {
            unix_nanos: now,
            level: level_of(*metadata.level()),
            text: rendered.finish(metadata.target()),
        };
        if self.queue.try_send(captured).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn level_of(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG | Level::TRACE => LogLevel::Debug,
    }
}

/// An event as one line: the message, then `key=value` for each field (values with spaces or quotes quoted),
/// then the target, as the text format on stderr shows them.
#[derive(Default)]
struct Rendered {
    message: String,
    fields: String,
    /// Of a task log line; empty for the agent's lifecycle lines.
    task_id: String,
}

impl Rendered {
    fn finish(mut self, target: &str) -> String {
        let _ = write!(self.fields, " target={target}");
        self.message + &self.fields
    }

    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if field.name() == "task_id" {
            self.task_id.push_str(value);
        } else if value.is_empty()
            || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=')
        {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl Visit for Rendered {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

/// Hands the layer's lines to the pod log pipeline until either end goes away.
pub async fn forward(mut lines: OwnLogLines, pipeline: mpsc::Sender<PodLogLine>) {
    let source = lines.source;
    let mut seq = 0;
    while let Some(captured) = lines.queue.recv().await {
        let line = PodLogLine {
            unix_nanos: captured.unix_nanos,
            level: captured.level.into(),
            demo_id: String::new(),
            namespace: source.namespace.clone(),
            pod: source.pod.clone(),
            container: "node-agent".into(),
            message: line::bounded(&captured.text),
            pod_uid: source.instance.clone(),
            seq,
            stream: LogStream::Agent.into(),
        };
        seq += 1;
        if pipeline.send(line).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn source() -> AgentLogSource {
        AgentLogSource {
            namespace: "edgefleet-system".into(),
            pod: "edgefleet-agent-0".into(),
            instance: "agent-1-2".into(),
        }
    }

    #[tokio::test]
    async fn events_become_numbered_agent_lines_and_a_tasks_lines_are_left_out() {
        let (layer, lines) = channel(source());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(attempt = 3, reason = "tls handshake", "reconnecting");
            tracing::info!(target: TASK_LOG_TARGET, task_id = "t-1", "applied 3 objects");
            tracing::warn!(target: TASK_LOG_TARGET, task_id = "", fields = "lines=3", "logs_dropped");
            tracing::error!("gave up");
        });
        let (sender, mut received) = mpsc::channel(8);
        let forwarder = tokio::spawn(forward(lines, sender));
        let first = received.recv().await.unwrap();
        assert_eq!(
            first.message,
            r#"reconnecting attempt=3 reason="tls handshake" target=node_agent::ownlog::tests"#
        );
        assert_eq!(first.level, LogLevel::Warn as i32);
        assert_eq!(first.stream, LogStream::Agent as i32);
        assert_eq!(
            (
                first.namespace.as_str(),
                first.pod.as_str(),
                first.container.as_str()
            ),
            ("edgefleet-system", "edgefleet-agent-0", "node-agent")
        );
        assert_eq!((first.pod_uid.as_str(), first.seq), ("agent-1-2", 0));
        // A lifecycle line of the task log (no task id) is the agent's own; a task's line is not.
        let second = received.recv().await.unwrap();
        assert_eq!(
            (second.message.as_str(), second.seq),
            (r#"logs_dropped fields="lines=3" target=task_log"#, 1)
        );
        let third = received.recv().await.unwrap();
        assert_eq!(
            (third.message.as_str(), third.seq),
            ("gave up target=node_agent::ownlog::tests", 2)
        );
        // The layer (and its queue's sender) went with the subscriber: nothing else comes.
        assert!(received.recv().await.is_none());
        forwarder.await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_drops_lines_and_the_next_line_through_says_how_many() {
        let (layer, mut lines) = channel(source());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for n in 0..QUEUE + 5 {
                tracing::info!(n, "busy");
            }
            while lines.queue.try_recv().is_ok() {}
            tracing::info!("after");
        });
        let notice = lines.queue.recv().await.unwrap();
        assert_eq!(
            notice.text,
            "5 lines of the agent's own log were dropped: the log pipeline was full"
        );
        assert_eq!(
            lines.queue.recv().await.unwrap().text,
            "after target=node_agent::ownlog::tests"
        );
    }
}
