//! Pod logs: watches the pods whose logs are collected - demo pods (labelled `edgefleet.io/demo`), pods labelled
//! `edgefleet.io/logs=enabled` and every pod of a namespace labelled either way - follows the log of each of their
//! containers (resuming after the stream ends - a container restart, an API server hiccup - without repeating
//! lines), tags every line with its demo (if any), namespace, pod, container and per-container sequence number,
//! and hands it to the session for batching. The Kubernetes events of those namespaces (and of opted-in pods) go
//! the same way (see `events`). Where each container's log was read up to is saved with every batch written to the
//! disk buffer, so a restarted agent carries on from there (see `positions`).

pub mod configured;
pub mod events;
pub mod line;
pub mod positions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use agent_protocol::{DEMO_LABEL, LOGS_LABEL, LOGS_OPT_IN, LogSelection, LogStream, PodLogLine};
use futures::stream::BoxStream;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::error::error_chain;
use events::EventsSent;
use positions::{SavedPosition, SharedPositions};

/// Lines waiting for the session; when full, followers stop reading (the kubelet keeps the rest).
pub const LINE_QUEUE: usize = 4096;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One container of one pod; the uid tells a re-created pod of the same name apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    uid: String,
    namespace: String,
    pod: String,
    container: String,
    demo_id: String,
}

type WatchEvents<K> = Option<BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>>;

/// Follows the logs and events of the selected pods and namespaces until the agent stops; `configured` is the
/// control plane's selection (see `configured`).
pub async fn run(
    client: kube::Client,
    lines: mpsc::Sender<PodLogLine>,
    positions: SharedPositions,
    mut configured: watch::Receiver<LogSelection>,
) {
    // Every namespace (there are few): opted-in and demo namespaces are told apart by their labels, which a
    // single label selector cannot do.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace_events = watcher(namespaces, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut selection = Selection {
        configured: configured.borrow_and_update().clone(),
        ..Selection::default()
    };
    // Selected namespaces seen since their watch (re)started.
    let mut namespaces_relisted: Option<BTreeMap<String, String>> = None;
    // Started once the selected namespaces are known, and again whenever they change, so that the relist
    // starts followers for pods that became selected and stops those that no longer are (and picks up the
    // events of a namespace that became selected).
    let mut pod_events: WatchEvents<Pod> = None;
    let mut kube_events: WatchEvents<Event> = None;
    let mut followers: HashMap<Target, AbortHandle> = HashMap::new();
    // Selected pods seen since the pod watch (re)started; at `InitDone` followers of pods not among them stop.
    let mut relisted: Option<HashSet<String>> = None;
    let mut events_sent = EventsSent::default();
    let mut events_relisted: Option<HashSet<String>> = None;
    loop {
        let changed = tokio::select! {
            Ok(()) = configured.changed() => {
                let set = configured.borrow_and_update().clone();
                let changed = set != selection.configured;
                selection.configured = set;
                // Not before the namespaces are known: their first listing starts the watches.
                changed && pod_events.is_some()
            }
            event = namespace_events.try_next() => match event {
                Ok(Some(watcher::Event::Init)) => {
                    namespaces_relisted = Some(BTreeMap::new());
                    false
                }
                Ok(Some(watcher::Event::InitApply(namespace))) => {
                    if let (Some(seen), Some(demo_id)) =
                        (namespaces_relisted.as_mut(), collected_namespace(&namespace))
                    {
                        seen.insert(namespace.name_any(), demo_id);
                    }
                    false
                }
                Ok(Some(watcher::Event::InitDone)) => {
                    let seen = namespaces_relisted.take().unwrap_or_default();
                    selection.set_namespaces(seen) || pod_events.is_none()
                }
                Ok(Some(watcher::Event::Apply(namespace))) => selection.update_namespace(&namespace),
                Ok(Some(watcher::Event::Delete(namespace))) => {
                    selection.remove_namespace(&namespace.name_any())
                }
                Ok(None) => return,
                Err(err) => {
                    warn!(error = %error_chain(&err), "watching namespaces for log collection failed; retrying");
                    false
                }
            },
            event = next_watch_event(&mut pod_events) => {
                match event {
                    Ok(Some(watcher::Event::Init)) => relisted = Some(HashSet::new()),
                    Ok(Some(watcher::Event::InitApply(pod))) => {
                        if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.uid())
                            && selection.selects(&pod)
                        {
                            seen.insert(uid);
                        }
                        reconcile(&client, &pod, &selection, &mut followers, &lines, &positions);
                    }
                    Ok(Some(watcher::Event::InitDone)) => {
                        if let Some(seen) = relisted.take() {
                            stop_where(&mut followers, |target| !seen.contains(&target.uid));
                        }
                    }
                    Ok(Some(watcher::Event::Apply(pod))) => {
                        reconcile(&client, &pod, &selection, &mut followers, &lines, &positions)
                    }
                    Ok(Some(watcher::Event::Delete(pod))) => {
                        let uid = pod.uid().unwrap_or_default();
                        stop_where(&mut followers, |target| target.uid == uid);
                    }
                    Ok(None) => return,
                    // The backoff wrapper retries; the error is worth a line, not a stop.
                    Err(err) => warn!(error = %error_chain(&err), "watching pods failed; retrying"),
                }
                false
            }
            event = next_watch_event(&mut kube_events) => {
                let occurred = match event {
                    Ok(Some(watcher::Event::Init)) => {
                        events_relisted = Some(HashSet::new());
                        None
                    }
                    Ok(Some(watcher::Event::InitApply(event))) => {
                        if let (Some(seen), Some(uid)) = (events_relisted.as_mut(), event.uid()) {
                            seen.insert(uid);
                        }
                        Some(event)
                    }
                    Ok(Some(watcher::Event::InitDone)) => {
                        if let Some(listed) = events_relisted.take() {
                            events_sent.retain(&listed);
                        }
                        None
                    }
                    Ok(Some(watcher::Event::Apply(event))) => Some(event),
                    Ok(Some(watcher::Event::Delete(event))) => {
                        events_sent.forget(&event);
                        None
                    }
                    Ok(None) => return,
                    Err(err) => {
                        warn!(error = %error_chain(&err), "watching Kubernetes events failed; retrying");
                        None
                    }
                };
                let line = occurred.and_then(|event| {
                    let demo_id = selection.event_demo(&event, &followers)?;
                    let saved = event
                        .uid()
                        .and_then(|uid| positions.get(&uid, ""))
                        .map(|saved| saved.next_seq);
                    events_sent.line(&event, saved, &demo_id)
                });
                if let Some(line) = line
                    && lines.send(line).await.is_err()
                {
                    return;
                }
                false
            }
        };
        if changed {
            info!(labelled = ?selection.namespaces.keys().collect::<Vec<_>>(),
                  configured = ?selection.configured.namespaces,
                  all_namespaces = selection.configured.all_namespaces,
                  "namespaces whose pod logs and events are collected");
            let pods: Api<Pod> = Api::all(client.clone());
            pod_events = Some(
                watcher(pods, watcher::Config::default())
                    .default_backoff()
                    .boxed(),
            );
            let events: Api<Event> = Api::all(client.clone());
            kube_events = Some(
                watcher(events, watcher::Config::default())
                    .default_backoff()
                    .boxed(),
            );
        }
    }
}

async fn next_watch_event<K>(
    events: &mut WatchEvents<K>,
) -> Result<Option<watcher::Event<K>>, watcher::Error> {
    match events {
        Some(events) => events.try_next().await,
        None => std::future::pending().await,
    }
}

/// Whether a namespace's pods and events are collected, and for which demo (empty: none): demo namespaces and
/// namespaces that opt in.
fn collected_namespace(namespace: &Namespace) -> Option<String> {
    let labels = namespace.labels();
    if let Some(demo_id) = labels.get(DEMO_LABEL) {
        return Some(demo_id.clone());
    }
    (labels.get(LOGS_LABEL).map(String::as_str) == Some(LOGS_OPT_IN)).then(String::new)
}

/// Which pods' logs are collected: demo pods, pods that opt in, and pods of the collected namespaces (labelled,
/// or chosen by the control plane).
#[derive(Debug, Default)]
struct Selection {
    /// Namespaces collected for their labels, with the demo each belongs to (empty: none).
    namespaces: BTreeMap<String, String>,
    /// The control plane's choice.
    configured: LogSelection,
}

impl Selection {
    fn selects(&self, pod: &Pod) -> bool {
        let labels = pod.labels();
        labels.contains_key(DEMO_LABEL)
            || labels
                .get(LOGS_LABEL)
                .is_some_and(|value| value == LOGS_OPT_IN)
            || pod
                .namespace()
                .is_some_and(|namespace| self.collects_namespace(&namespace))
    }

    fn collects_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
            || self.configured.all_namespaces
            || self
                .configured
                .namespaces
                .iter()
                .any(|chosen| chosen == namespace)
    }

    /// The demo of a selected pod (empty: none): its own label, else its namespace's.
    fn demo_of(&self, pod: &Pod) -> String {
        pod.labels()
            .get(DEMO_LABEL)
            .or_else(|| {
                pod.namespace()
                    .and_then(|namespace| self.namespaces.get(&namespace))
            })
            .cloned()
            .unwrap_or_default()
    }

    /// Whether an event is collected (it is in a collected namespace, or about a followed pod), and for which
    /// demo.
    fn event_demo(
        &self,
        event: &Event,
        followers: &HashMap<Target, AbortHandle>,
    ) -> Option<String> {
        if let Some(namespace) = event.namespace()
            && self.collects_namespace(&namespace)
        {
            return Some(self.namespaces.get(&namespace).cloned().unwrap_or_default());
        }
        let uid = event.involved_object.uid.as_deref()?;
        followers
            .keys()
            .find(|target| target.uid == uid)
            .map(|target| target.demo_id.clone())
    }

    /// Each returns whether the selection changed.
    fn set_namespaces(&mut self, namespaces: BTreeMap<String, String>) -> bool {
        let changed = namespaces != self.namespaces;
        self.namespaces = namespaces;
        changed
    }

    fn update_namespace(&mut self, namespace: &Namespace) -> bool {
        let name = namespace.name_any();
        match collected_namespace(namespace) {
            Some(demo_id) => self.namespaces.insert(name, demo_id.clone()) != Some(demo_id),
            None => self.namespaces.remove(&name).is_some(),
        }
    }

    fn remove_namespace(&mut self, namespace: &str) -> bool {
        self.namespaces.remove(namespace).is_some()
    }
}

/// Starts a follower for every container of a live pod that has none; stops them when the pod is terminating.
fn reconcile(
    client: &kube::Client,
    pod: &Pod,
    selection: &Selection,
    followers: &mut HashMap<Target, AbortHandle>,
    lines: &mpsc::Sender<PodLogLine>,
    positions: &SharedPositions,
) {
    let Some(uid) = pod.uid() else { return };
    if !selection.selects(pod) {
        // No longer selected (a label was removed): stop reading it.
        stop_where(followers, |target| target.uid == uid);
        return;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        // Followers read to the end on their own; nothing new starts for a terminating pod.
        return;
    }
    let namespace = pod.namespace().unwrap_or_default();
    let demo_id = selection.demo_of(pod);
    let containers = pod.spec.iter().flat_map(|spec| spec.containers.iter());
    for container in containers {
        let target = Target {
            uid: uid.clone(),
            namespace: namespace.clone(),
            pod: pod.name_any(),
            container: container.name.clone(),
            demo_id: demo_id.clone(),
        };
        if followers.contains_key(&target) {
            continue;
        }
        info!(namespace = %target.namespace, pod = %target.pod, container = %target.container,
              demo = %target.demo_id, "following container log");
        let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
        let start = Position::from_saved(positions.get(&target.uid, &target.container));
        let task = tokio::spawn(follow(api, target.clone(), lines.clone(), start));
        followers.insert(target, task.abort_handle());
    }
}

fn stop_where(followers: &mut HashMap<Target, AbortHandle>, stop: impl Fn(&Target) -> bool) {
    followers.retain(|target, follower| {
        let keep = !stop(target);
        if !keep {
            info!(namespace = %target.namespace, pod = %target.pod, container = %target.container,
                  "no longer following the container's log (pod gone or no longer selected)");
            follower.abort();
        }
        keep
    });
}

/// Where a follower is in its container's log: the newest timestamp sent and how many lines carried it, so a
/// re-read from that second (`sinceTime` has second precision) skips exactly what was sent; and the sequence
/// number of the next line.
#[derive(Debug, Default, Clone, Copy)]
struct Position {
    last_nanos: Option<i64>,
    sent_at_last: usize,
    to_skip_at_last: usize,
    next_seq: u64,
}

impl Position {
    fn from_saved(saved: Option<SavedPosition>) -> Self {
        saved.map_or_else(Self::default, |saved| Self {
            last_nanos: Some(saved.last_nanos),
            sent_at_last: saved.lines_at_last,
            to_skip_at_last: 0,
            next_seq: saved.next_seq,
        })
    }

    /// Takes the next sequence number, for an admitted line.
    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Whether a line with this timestamp is new.
    fn admit(&mut self, nanos: i64) -> bool {
        match self.last_nanos {
            Some(last) if nanos < last => false,
            Some(last) if nanos == last => {
                if self.to_skip_at_last > 0 {
                    self.to_skip_at_last -= 1;
                    false
                } else {
                    self.sent_at_last += 1;
                    true
                }
            }
            _ => {
                self.last_nanos = Some(nanos);
                self.sent_at_last = 1;
                self.to_skip_at_last = 0;
                true
            }
        }
    }

    /// Where the next read starts; lines at the last timestamp that were sent will be skipped again.
    fn resume(&mut self) -> Option<jiff::Timestamp> {
        self.to_skip_at_last = self.sent_at_last;
        let nanos = self.last_nanos?;
        jiff::Timestamp::from_second(nanos.div_euclid(1_000_000_000)).ok()
    }
}

/// Reads one container's log for as long as the pod lives (the supervisor aborts this when it is deleted).
async fn follow(
    api: Api<Pod>,
    target: Target,
    lines: mpsc::Sender<PodLogLine>,
    mut position: Position,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let params = LogParams {
            container: Some(target.container.clone()),
            follow: true,
            timestamps: true,
            since_time: position.resume(),
            ..LogParams::default()
        };
        match api.log_stream(&target.pod, &params).await {
            Ok(stream) => {
                let mut reader = stream.lines();
                loop {
                    match reader.next().await {
                        Some(Ok(text)) => {
                            retry = FIRST_RETRY;
                            let Some(line) = tag(&target, &text, &mut position) else {
                                continue;
                            };
                            if lines.send(line).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(err)) => {
                            debug!(pod = %target.pod, container = %target.container, error = %err,
                                   "log stream broke; resuming");
                            break;
                        }
                        None => break,
                    }
                }
            }
            // A kubelet answers 404 both for a deleted pod and for one it has not started yet.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                if !still_exists(&api, &target).await {
                    debug!(pod = %target.pod, "pod gone; log follower ends");
                    return;
                }
                debug!(pod = %target.pod, "the kubelet does not know the pod yet");
            }
            // Typically "container is waiting to start": try again shortly.
            Err(err) => debug!(pod = %target.pod, container = %target.container,
                               error = %error_chain(&err), "cannot read the log yet"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Whether the pod this follower reads is still there (the same uid); a failed lookup counts as yes, so the
/// follower retries rather than losing the pod's lines.
async fn still_exists(api: &Api<Pod>, target: &Target) -> bool {
    match api.get_opt(&target.pod).await {
        Ok(Some(pod)) => pod.uid().as_deref() == Some(target.uid.as_str()),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// The protocol line for one line of the log, or `None` when it was sent before.
fn tag(target: &Target, text: &str, position: &mut Position) -> Option<PodLogLine> {
    let (nanos, message) = match line::split_timestamp(text) {
        Some(split) => split,
        None => (
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            text,
        ),
    };
    if !position.admit(nanos) {
        return None;
    }
    Some(PodLogLine {
        pod_uid: target.uid.clone(),
        seq: position.take_seq(),
        unix_nanos: nanos,
        level: line::level(message).into(),
        demo_id: target.demo_id.clone(),
        namespace: target.namespace.clone(),
        pod: target.pod.clone(),
        container: target.container.clone(),
        message: line::bounded(message),
        stream: LogStream::Container.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_read_skips_exactly_the_lines_already_sent() {
        let mut position = Position::default();
        let second = 1_700_000_000_000_000_000_i64;
        // First read: three lines, two of them in the same nanosecond.
        assert!(position.admit(second + 10));
        assert!(position.admit(second + 20));
        assert!(position.admit(second + 20));
        let since = position.resume().unwrap();
        assert_eq!(since.as_second(), 1_700_000_000);
        // The re-read starts at the second: old lines are skipped, then a third line at +20 is new.
        assert!(!position.admit(second + 10));
        assert!(!position.admit(second + 20));
        assert!(!position.admit(second + 20));
        assert!(position.admit(second + 20));
        assert!(position.admit(second + 30));
        assert_eq!(Position::default().resume(), None);
    }

    #[test]
    fn a_follower_started_from_a_saved_position_skips_what_was_written_and_keeps_numbering() {
        let second = 1_700_000_000_000_000_000_i64;
        let mut position = Position::from_saved(Some(SavedPosition {
            last_nanos: second + 20,
            lines_at_last: 2,
            next_seq: 7,
            updated: 0,
        }));
        assert_eq!(position.resume().unwrap().as_second(), 1_700_000_000);
        assert!(!position.admit(second + 10));
        assert!(!position.admit(second + 20));
        assert!(!position.admit(second + 20));
        assert!(
            position.admit(second + 20),
            "a third line at the same instant is new"
        );
        assert_eq!(position.take_seq(), 7);
        assert!(position.admit(second + 40));
        assert_eq!(position.take_seq(), 8);
    }
}
