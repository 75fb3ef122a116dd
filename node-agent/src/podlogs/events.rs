//! Kubernetes events of the namespaces whose logs are collected, as log lines: one line per occurrence (an
//! event's count grows when it repeats), none for an event seen again (a watch relist, an agent restart).

use std::collections::HashMap;

use agent_protocol::{LogLevel, LogStream, PodLogLine};
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;

use super::line;

/// How far each event was sent, by the event's uid: its count. Seeded from the saved positions (what reached the
/// disk buffer before a restart) and pruned when the event expires.
#[derive(Debug, Default)]
pub struct EventsSent {
    counts: HashMap<String, u64>,
}

impl EventsSent {
    /// The line for this event, unless this occurrence was sent before. `saved` is the next sequence number the
    /// disk buffer holds for the event (from a previous run), `demo_id` the demo it belongs to, if any.
    pub fn line(&mut self, event: &Event, saved: Option<u64>, demo_id: &str) -> Option<PodLogLine> {
        let uid = event.uid()?;
        let count = occurrences(event);
        let sent = self
            .counts
            .get(&uid)
            .copied()
            .or(saved.map(|next| next.saturating_sub(1)));
        if sent.is_some_and(|sent| count <= sent) {
            return None;
        }
        self.counts.insert(uid.clone(), count);
        let object = &event.involved_object;
        let text = match (event.reason.as_deref(), event.message.as_deref()) {
            (Some(reason), Some(message)) => format!("{reason}: {}", message.trim_end()),
            (Some(only), None) | (None, Some(only)) => only.trim_end().to_owned(),
            (None, None) => String::new(),
        };
        Some(PodLogLine {
            unix_nanos: occurred_at(event),
            level: if event.type_.as_deref() == Some("Warning") {
                LogLevel::Warn
            } else {
                LogLevel::Info
            }
            .into(),
            demo_id: demo_id.to_owned(),
            namespace: event.namespace().unwrap_or_default(),
            pod: format!(
                "{}/{}",
                object.kind.as_deref().unwrap_or("Object"),
                object.name.as_deref().unwrap_or_default()
            ),
            container: String::new(),
            message: line::bounded(&text),
            pod_uid: uid,
            seq: count,
            stream: LogStream::Event.into(),
        })
    }

    /// The event expired or was deleted.
    pub fn forget(&mut self, event: &Event) {
        if let Some(uid) = event.uid() {
            self.counts.remove(&uid);
        }
    }

    /// After a relist: events not listed are gone.
    pub fn retain(&mut self, listed: &std::collections::HashSet<String>) {
        self.counts.retain(|uid, _| listed.contains(uid));
    }
}

/// How many times the event happened: a series' count (events.k8s.io), else the legacy count, else once.
fn occurrences(event: &Event) -> u64 {
    event
        .series
        .as_ref()
        .and_then(|series| series.count)
        .or(event.count)
        .and_then(|count| u64::try_from(count).ok())
        .unwrap_or(1)
        .max(1)
}

/// When the event last happened, in nanoseconds: the newest of the times an event may carry.
fn occurred_at(event: &Event) -> i64 {
    let series = event
        .series
        .as_ref()
        .and_then(|series| series.last_observed_time.as_ref())
        .map(|time| time.0);
    series
        .or(event.last_timestamp.as_ref().map(|time| time.0))
        .or(event.event_time.as_ref().map(|time| time.0))
        .or(event.first_timestamp.as_ref().map(|time| time.0))
        .or(event
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|time| time.0))
        .and_then(|at| i64::try_from(at.as_nanosecond()).ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSeries, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};

    fn event(count: Option<i32>, kind: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some("web-1.17f".into()),
                namespace: Some("shop".into()),
                uid: Some("e-1".into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                ..ObjectReference::default()
            },
            reason: Some("BackOff".into()),
            message: Some("Back-off restarting failed container\n".into()),
            type_: Some(kind.into()),
            count,
            last_timestamp: Some(Time("2026-12-03T10:00:05Z".parse().unwrap())),
            first_timestamp: Some(Time("2026-12-03T10:00:00Z".parse().unwrap())),
            ..Event::default()
        }
    }

    #[test]
    fn an_event_is_a_line_per_occurrence_and_never_twice() {
        let mut sent = EventsSent::default();
        let line = sent.line(&event(Some(1), "Warning"), None, "d-1").unwrap();
        assert_eq!(line.pod, "Pod/web-1");
        assert_eq!(line.namespace, "shop");
        assert_eq!(
            line.message,
            "BackOff: Back-off restarting failed container"
        );
        assert_eq!(line.level, LogLevel::Warn as i32);
        assert_eq!(line.stream, LogStream::Event as i32);
        assert_eq!((line.pod_uid.as_str(), line.seq), ("e-1", 1));
        assert_eq!(line.demo_id, "d-1");
        assert_eq!(line.unix_nanos, 1_796_292_005_000_000_000);
        // Seen again (a relist): nothing; repeated: the next occurrence.
        assert!(sent.line(&event(Some(1), "Warning"), None, "d-1").is_none());
        assert_eq!(
            sent.line(&event(Some(3), "Warning"), None, "d-1")
                .unwrap()
                .seq,
            3
        );
        sent.forget(&event(None, "Normal"));
        let again = sent.line(&event(None, "Normal"), None, "").unwrap();
        assert_eq!((again.seq, again.level), (1, LogLevel::Info as i32));
    }

    #[test]
    fn after_a_restart_occurrences_already_buffered_are_skipped() {
        let mut sent = EventsSent::default();
        // The disk buffer holds occurrences up to 2 (next sequence 3).
        assert!(sent.line(&event(Some(2), "Normal"), Some(3), "").is_none());
        assert_eq!(
            sent.line(&event(Some(3), "Normal"), Some(3), "")
                .unwrap()
                .seq,
            3
        );
    }

    #[test]
    fn a_series_counts_and_dates_the_occurrence() {
        let mut with_series = event(None, "Normal");
        with_series.series = Some(EventSeries {
            count: Some(7),
            last_observed_time: Some(MicroTime("2026-12-03T10:01:00.5Z".parse().unwrap())),
        });
        let line = EventsSent::default().line(&with_series, None, "").unwrap();
        assert_eq!(line.seq, 7);
        assert_eq!(line.unix_nanos, 1_796_292_060_500_000_000);
    }
}
