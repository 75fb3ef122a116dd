//! Watch streams: initial state or replay from a resourceVersion, live events filtered per watcher (with
//! selector transitions turned into ADDED/DELETED as a real server does), bookmarks, 410 Expired and timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::api::present;
use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::selectors::Filter;
use crate::store::{Event, EventType, Store};

/// How often a watch that allows bookmarks gets one (real servers send them about once a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(2);

/// A parsed watch request.
pub struct WatchRequest {
    pub res: Arc<ResourceInfo>,
    pub namespace: Option<String>,
    pub filter: Filter,
    /// The `resourceVersion` parameter: `None`/`"0"` start with the current state, a number resumes after it.
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
}

impl WatchRequest {
    fn wants(&self, event: &Event) -> bool {
        event.key.group == self.res.group
            && event.key.plural == self.res.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == event.key.namespace)
    }

    /// The event this watcher sees, if any: an object entering the selection is ADDED, one leaving is DELETED.
    fn translate(&self, event: &Event) -> Option<(EventType, Value)> {
        if !self.wants(event) {
            return None;
        }
        let now = self.filter.matches(&event.object);
        let kind = match event.kind {
            EventType::Modified => {
                let before = event.old.as_ref().is_some_and(|o| self.filter.matches(o));
                match (before, now) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => return None,
                }
            }
            other if now => other,
            _ => return None,
        };
        Some((kind, present(&self.res, &event.object)))
    }

    fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> Bytes {
        let mut object = json!({
            "kind": self.res.kind,
            "apiVersion": self.res.api_version(),
            "metadata": {"resourceVersion": resource_version.to_string()},
        });
        if initial_events_end {
            object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line("BOOKMARK", object)
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("JSON values always serialize");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Starts a watch. Errors before streaming (bad resourceVersion) are returned; an expired resourceVersion
/// becomes a stream holding one ERROR event with a 410 `Status`, as a real server sends it.
pub fn start(store: &Store, request: WatchRequest) -> Result<ReceiverStream<Bytes>, ApiError> {
    let since = match request.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(_) if request.send_initial_events => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?,
        ),
    };
    let (tx, rx) = mpsc::channel(256);
    let initial = |txn: &crate::store::Txn<'_>| -> Vec<Value> {
        if since.is_some() {
            return Vec::new();
        }
        txn.list(
            &request.res.group,
            &request.res.plural,
            request.namespace.as_deref(),
        )
        .filter(|(_, o)| request.filter.matches(o))
        .map(|(_, o)| present(&request.res, o))
        .collect()
    };
    match store.subscribe(since, initial) {
        Ok(subscription) => {
            tokio::spawn(async move {
                // A send error means the client went away; the task then just ends.
                // A version from the future starts at the current one rather than skipping what comes next.
                let current = subscription.resource_version;
                let mut last = since.map_or(current, |rv| rv.min(current));
                for object in subscription.snapshot {
                    if tx.send(line("ADDED", object)).await.is_err() {
                        return;
                    }
                }
                if request.send_initial_events
                    && request.allow_bookmarks
                    && tx.send(request.bookmark(last, true)).await.is_err()
                {
                    return;
                }
                for event in subscription.replay {
                    last = event.resource_version;
                    if let Some((kind, object)) = request.translate(&event)
                        && tx.send(line(kind.as_str(), object)).await.is_err()
                    {
                        return;
                    }
                }
                stream_live(request, subscription.receiver, tx, last).await;
            });
        }
        Err(oldest) => {
            let rv = request.resource_version.unwrap_or_default();
            let status = ApiError::expired(format!("too old resource version: {rv} ({oldest})"));
            // The channel has room for this single line.
            let _ = tx.try_send(line("ERROR", status.to_status()));
        }
    }
    Ok(ReceiverStream::new(rx))
}

async fn stream_live(
    request: WatchRequest,
    mut events: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Bytes>,
    mut last: u64,
) {
    let mut bookmarks = tokio::time::interval_at(
        tokio::time::Instant::now() + BOOKMARK_INTERVAL,
        BOOKMARK_INTERVAL,
    );
    let deadline = tokio::time::sleep(
        request
            .timeout
            .unwrap_or(Duration::from_secs(365 * 24 * 3600)),
    );
    tokio::pin!(deadline);
    loop {
        let out = tokio::select! {
            _ = tx.closed() => return,
            _ = &mut deadline => return,
            _ = bookmarks.tick(), if request.allow_bookmarks => request.bookmark(last, false),
            received = events.recv() => match received {
                Ok(event) if event.resource_version <= last => continue,
                Ok(event) => {
                    last = event.resource_version;
                    match request.translate(&event) {
                        Some((kind, object)) => line(kind.as_str(), object),
                        None => continue,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // This watcher fell too far behind: end it like an expired watch so the client relists.
                    let status = ApiError::expired(format!("too old resource version: {last}"));
                    let _ = tx.send(line("ERROR", status.to_status())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}
