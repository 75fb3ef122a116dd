//! Pod logs: per-pod line buffers filled through the test-only endpoint, and the `pods/{name}/log` reader
//! with `container`, `sinceTime`, `sinceSeconds`, `tailLines`, `timestamps`, `limitBytes` and `follow`
//! (a follower ends when its pod is deleted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::meta;
use crate::store::{EventType, Key, Store};

#[derive(Debug)]
struct LogLine {
    container: String,
    time: DateTime<Utc>,
    text: String,
}

struct PodLog {
    lines: Vec<Arc<LogLine>>,
    live: broadcast::Sender<Arc<LogLine>>,
}

/// Log lines of every pod, keyed by pod uid so a re-created pod starts with an empty log.
#[derive(Default)]
pub struct LogStore {
    pods: Mutex<HashMap<String, PodLog>>,
}

/// Parameters of a log read.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub since: Option<DateTime<Utc>>,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

/// The container a log request addresses: the named one, or the only one when none is named.
pub fn resolve_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod["spec"][*list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    let pod_name = meta::name(pod);
    match requested {
        Some(name) if names.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::bad_request(format!(
            "container {name} is not valid for pod {pod_name}"
        ))),
        None => {
            let regular: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match regular.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    regular.join(" ")
                ))),
            }
        }
    }
}

impl LogStore {
    fn with_pod<R>(&self, uid: &str, f: impl FnOnce(&mut PodLog) -> R) -> R {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let pod = pods.entry(uid.to_string()).or_insert_with(|| PodLog {
            lines: Vec::new(),
            live: broadcast::channel(1024).0,
        });
        f(pod)
    }

    /// Appends one line per line of `text` to a container's log and hands them to followers.
    pub fn append(&self, pod_uid: &str, container: &str, text: &str) {
        self.with_pod(pod_uid, |pod| {
            for text in text.lines() {
                let line = Arc::new(LogLine {
                    container: container.to_string(),
                    time: Utc::now(),
                    text: text.to_string(),
                });
                pod.lines.push(line.clone());
                // No followers is fine.
                let _ = pod.live.send(line);
            }
        });
    }

    /// Ends every open `follow` read of the pod, as a container restart ends `kubectl logs -f`; the lines stay.
    pub fn end_streams(&self, pod_uid: &str) {
        self.with_pod(pod_uid, |pod| pod.live = broadcast::channel(1024).0);
    }

    /// Drops the log of one pod.
    pub fn forget(&self, pod_uid: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.remove(pod_uid);
    }

    /// Drops the logs of deleted pods; runs for the emulator's lifetime.
    pub async fn forget_deleted_pods(self: Arc<Self>, store: Arc<Store>) {
        let mut events = store.events();
        loop {
            match events.recv().await {
                Ok(event)
                    if event.kind == EventType::Deleted
                        && event.key.plural == "pods"
                        && event.key.group.is_empty() =>
                {
                    self.forget(meta::uid(&event.object));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Reads (and with `follow`, keeps streaming) the log of `pod` as a plain-text body.
    pub fn read(
        self: &Arc<Self>,
        store: Arc<Store>,
        pod: &Value,
        options: LogOptions,
        container: String,
    ) -> ReceiverStream<Bytes> {
        let uid = meta::uid(pod).to_string();
        // Subscribe to deletions before checking that the pod still exists, so no deletion is missed.
        let mut events = store.events();
        let pod_key = Key {
            group: String::new(),
            plural: "pods".into(),
            namespace: meta::namespace(pod).to_string(),
            name: meta::name(pod).to_string(),
        };
        let alive = store.transact(|txn| txn.get(&pod_key).is_some_and(|p| meta::uid(p) == uid));
        let (backlog, mut live) = self.with_pod(&uid, |p| (p.lines.clone(), p.live.subscribe()));
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut budget = options.limit_bytes.unwrap_or(usize::MAX);
            let selected: Vec<&Arc<LogLine>> = backlog
                .iter()
                .filter(|l| l.container == container && options.since.is_none_or(|s| l.time >= s))
                .collect();
            let skip = options
                .tail_lines
                .map_or(0, |tail| selected.len().saturating_sub(tail));
            for line in selected.into_iter().skip(skip) {
                if !send_line(&tx, line, options.timestamps, &mut budget).await {
                    return;
                }
            }
            if !options.follow || !alive {
                return;
            }
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    received = live.recv() => match received {
                        Ok(line) if line.container == container => {
                            if !send_line(&tx, &line, options.timestamps, &mut budget).await {
                                return;
                            }
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    event = events.recv() => match event {
                        Ok(e) if e.kind == EventType::Deleted && meta::uid(&e.object) == uid => return,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Sends one formatted line within the byte budget; false when the reader is gone or the budget is spent.
async fn send_line(
    tx: &mpsc::Sender<Bytes>,
    line: &LogLine,
    timestamps: bool,
    budget: &mut usize,
) -> bool {
    if *budget == 0 {
        return false;
    }
    let mut text = if timestamps {
        format!(
            "{} {}\n",
            line.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
            line.text
        )
    } else {
        format!("{}\n", line.text)
    };
    if text.len() > *budget {
        let mut cut = *budget;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    *budget -= text.len();
    tx.send(Bytes::from(text)).await.is_ok()
}
