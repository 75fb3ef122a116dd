//! Edge autonomy: while the agent cannot reach the control plane it checks, every interval, that the objects its
//! tasks applied are still as applied, recreates deleted ones and takes back changed fields, and once it is
//! back it reports what it did (`OfflineReport`, resent until acknowledged). Reports and the period in progress
//! are kept on disk ([`OfflineJournal`]), so an agent restarted while offline (an edge box power-cycled during a
//! partition) still reports everything it did.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_protocol::{Correction, OfflineReport};
use chrono::{DateTime, Utc};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{DesiredState, ObjectKey};
use crate::apply::{Applier, Kept};

/// Corrections listed in one report; the rest are counted.
const CORRECTIONS_LISTED: usize = 100;

/// What happened during one period offline.
#[derive(Debug)]
struct OfflinePeriod {
    id: String,
    since: DateTime<Utc>,
    checks: u32,
    objects: u32,
    corrections: Vec<Correction>,
    not_listed: u32,
    /// Objects whose check failed already this period, so a cluster API that is down is reported once per object.
    failed: HashSet<ObjectKey>,
    /// Began when this process started, before its first stream: not a loss of the control plane, so it is
    /// reported only if the agent did something in it.
    before_first_stream: bool,
}

impl OfflinePeriod {
    fn new(since: DateTime<Utc>, before_first_stream: bool) -> Self {
        Self {
            id: format!("{}-{:016x}", crate::instance_id(), rand::random::<u64>()),
            since,
            checks: 0,
            objects: 0,
            corrections: Vec::new(),
            not_listed: 0,
            failed: HashSet::new(),
            before_first_stream,
        }
    }

    /// Whether the period is worth a report once the agent is back.
    fn worth_reporting(&self) -> bool {
        self.checks > 0
            && (!self.before_first_stream || !self.corrections.is_empty() || self.not_listed > 0)
    }

    fn add(&mut self, key: &ObjectKey, action: &str, detail: String) {
        if self.corrections.len() >= CORRECTIONS_LISTED {
            self.not_listed += 1;
            return;
        }
        self.corrections.push(Correction {
            at_unix: Utc::now().timestamp(),
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            action: action.to_owned(),
            detail,
        });
    }

    /// Carries on a period an earlier run saved. Which objects already failed is not saved: a failure still
    /// there is listed once more.
    fn resume(saved: OfflineReport) -> Self {
        Self {
            id: saved.id,
            since: DateTime::from_timestamp(saved.offline_since_unix, 0).unwrap_or_else(Utc::now),
            checks: saved.checks,
            objects: saved.objects,
            corrections: saved.corrections,
            not_listed: saved.corrections_not_listed,
            failed: HashSet::new(),
            before_first_stream: false,
        }
    }

    /// The report so far; `back` unset (0) while the period goes on.
    fn report(&self, back: Option<DateTime<Utc>>) -> OfflineReport {
        OfflineReport {
            id: self.id.clone(),
            offline_since_unix: self.since.timestamp(),
            back_unix: back.map_or(0, |back| back.timestamp()),
            checks: self.checks,
            objects: self.objects,
            corrections: self.corrections.clone(),
            corrections_not_listed: self.not_listed,
        }
    }
}

/// Offline reports on disk until the control plane acknowledges them, and the period in progress: one file
/// `{id}.pb` (an encoded `OfflineReport`) each, the period in progress with `back_unix` 0.
#[derive(Debug, Clone)]
pub struct OfflineJournal {
    dir: PathBuf,
}

impl OfflineJournal {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// What an earlier run left: the period it was in, if any, and its reports not yet acknowledged. A file that
    /// does not decode is said and removed.
    fn load(&self) -> (Option<OfflineReport>, Vec<OfflineReport>) {
        let mut in_progress: Option<OfflineReport> = None;
        let mut finished = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (None, finished);
        };
        for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
            if path.extension().is_none_or(|extension| extension != "pb") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    OfflineReport::decode(bytes.as_slice()).map_err(|e| e.to_string())
                }) {
                Ok(report) if report.back_unix != 0 => finished.push(report),
                // One period at a time; should two be left, the later one goes on and the earlier ends now.
                Ok(report) => match in_progress.take() {
                    Some(other) => {
                        let (earlier, later) =
                            if other.offline_since_unix <= report.offline_since_unix {
                                (other, report)
                            } else {
                                (report, other)
                            };
                        let ended = OfflineReport {
                            back_unix: Utc::now().timestamp(),
                            ..earlier
                        };
                        self.save(&ended);
                        finished.push(ended);
                        in_progress = Some(later);
                    }
                    None => in_progress = Some(report),
                },
                Err(error) => {
                    warn!(path = %path.display(), %error, "an offline report on disk does not decode; removing it");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        (in_progress, finished)
    }

    fn save(&self, report: &OfflineReport) {
        let written = std::fs::create_dir_all(&self.dir).and_then(|()| {
            crate::files::replace(
                &self.dir.join(format!("{}.pb", report.id)),
                &report.encode_to_vec(),
            )
        });
        if let Err(error) = written {
            warn!(dir = %self.dir.display(), %error,
                  "cannot save an offline report; a restart before it is acknowledged would lose it");
        }
    }

    /// Forgets report `id`: the control plane has recorded it, or it is not worth sending. Ids are the agent's
    /// own; anything else names no file here.
    pub fn remove(&self, id: &str) {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return;
        }
        let path = self.dir.join(format!("{id}.pb"));
        if let Err(error) = std::fs::remove_file(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %path.display(), %error, "cannot remove an acknowledged offline report");
        }
    }
}

/// Runs for as long as the agent does. `online` is the session's view (a stream is established); every period
/// with it false that lasted at least one check ends in a report on `reports`. Reports an earlier run left
/// unacknowledged go first; a period it was in carries on as this run's first.
pub async fn keep_while_offline(
    applier: Arc<Applier>,
    desired: Arc<DesiredState>,
    mut online: watch::Receiver<bool>,
    interval: Duration,
    reports: mpsc::UnboundedSender<OfflineReport>,
    journal: OfflineJournal,
) {
    let (mut resumed, left) = journal.load();
    for report in left {
        let _ = reports.send(report);
    }
    let mut first = true;
    loop {
        if online.wait_for(|online| !*online).await.is_err() {
            return;
        }
        let mut period = resumed.take().map_or_else(
            || OfflinePeriod::new(Utc::now(), first),
            OfflinePeriod::resume,
        );
        first = false;
        // The first check waits one interval, so that the short gap of every reconnect costs nothing.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => check(&applier, &desired, &mut period, &journal).await,
                changed = online.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *online.borrow_and_update() {
                        break;
                    }
                }
            }
        }
        if period.worth_reporting() {
            let report = period.report(Some(Utc::now()));
            journal.save(&report);
            info!(
                offline_seconds = report.back_unix - report.offline_since_unix,
                checks = report.checks,
                corrections =
                    report.corrections.len() as u64 + u64::from(report.corrections_not_listed),
                "back in touch with the control plane; reporting what was kept while offline"
            );
            let _ = reports.send(report);
        } else {
            journal.remove(&period.id);
        }
    }
}

/// Checks every kept object once. The period is saved after each correction, so that a restart right after one
/// does not lose it, and after the whole check.
async fn check(
    applier: &Applier,
    desired: &DesiredState,
    period: &mut OfflinePeriod,
    journal: &OfflineJournal,
) {
    let objects = desired.objects();
    period.checks += 1;
    period.objects = u32::try_from(objects.len()).unwrap_or(u32::MAX);
    for kept in objects {
        match applier.keep(&kept.object, kept.tier()).await {
            Ok(Kept::InSync) => {
                period.failed.remove(&kept.key);
                continue;
            }
            Ok(Kept::Recreated) => {
                warn!(object = %kept.key, task_id = %kept.task_id, "offline: recreated an object that was deleted");
                period.add(&kept.key, "recreated", String::new());
            }
            Ok(Kept::Reverted { fields }) => {
                let fields = fields.join(", ");
                warn!(object = %kept.key, task_id = %kept.task_id, %fields, "offline: reverted changed fields");
                period.add(&kept.key, "reverted", fields);
            }
            Err(error) => {
                if !period.failed.insert(kept.key.clone()) {
                    continue;
                }
                warn!(object = %kept.key, %error, "offline: cannot check an object");
                period.add(&kept.key, "failed", error);
            }
        }
        journal.save(&period.report(None));
    }
    journal.save(&period.report(None));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_period_saved_before_a_restart_carries_on_with_what_it_corrected() {
        let dir = tempfile::tempdir().unwrap();
        let journal = OfflineJournal::new(dir.path().join("offline-reports"));
        let since = Utc::now() - chrono::Duration::seconds(90);
        let mut period = OfflinePeriod::new(since, false);
        period.checks = 4;
        period.add(&key("settings"), "recreated", String::new());
        journal.save(&period.report(None));

        let (in_progress, finished) = journal.load();
        assert!(finished.is_empty());
        let mut resumed = OfflinePeriod::resume(in_progress.expect("the period in progress"));
        assert_eq!(resumed.id, period.id);
        assert_eq!(resumed.since.timestamp(), since.timestamp());
        resumed.checks += 1;
        resumed.add(&key("web"), "reverted", "spec.replicas".into());
        let report = resumed.report(Some(Utc::now()));
        assert_eq!(report.checks, 5);
        let names: Vec<&str> = report.corrections.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["settings", "web"]);
    }

    #[test]
    fn the_wait_for_the_first_stream_is_reported_only_if_the_agent_did_something_in_it() {
        let mut starting = OfflinePeriod::new(Utc::now(), true);
        starting.checks = 3;
        assert!(!starting.worth_reporting());
        starting.add(&key("settings"), "recreated", String::new());
        assert!(starting.worth_reporting());

        let mut lost = OfflinePeriod::new(Utc::now(), false);
        assert!(!lost.worth_reporting(), "no check, nothing to say");
        lost.checks = 1;
        assert!(
            lost.worth_reporting(),
            "a lost control plane is reported even when all was in sync"
        );
    }

    #[test]
    fn reports_stay_on_disk_until_acknowledged_and_unreadable_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let reports = dir.path().join("offline-reports");
        let journal = OfflineJournal::new(reports.clone());
        let mut period = OfflinePeriod::new(Utc::now(), false);
        period.checks = 1;
        let report = period.report(Some(Utc::now()));
        journal.save(&report);
        std::fs::write(reports.join("torn.pb"), b"\xff\xff not a report").unwrap();

        let (in_progress, finished) = journal.load();
        assert!(in_progress.is_none());
        assert_eq!(finished, std::slice::from_ref(&report));
        assert!(
            !reports.join("torn.pb").exists(),
            "the unreadable file is gone"
        );

        // An id that is not the agent's own names no file.
        journal.remove("../offline-reports/x");
        journal.remove(&report.id);
        assert_eq!(journal.load(), (None, Vec::new()));
    }

    #[test]
    fn of_two_periods_left_in_progress_the_later_carries_on_and_the_earlier_ends() {
        let dir = tempfile::tempdir().unwrap();
        let journal = OfflineJournal::new(dir.path().to_path_buf());
        let earlier = OfflinePeriod::new(Utc::now() - chrono::Duration::seconds(600), false);
        let later = OfflinePeriod::new(Utc::now() - chrono::Duration::seconds(60), false);
        journal.save(&earlier.report(None));
        journal.save(&later.report(None));

        let (in_progress, finished) = journal.load();
        assert_eq!(in_progress.unwrap().id, later.id);
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].id, earlier.id);
        assert_ne!(finished[0].back_unix, 0);
        // The ended one is saved as ended.
        let (in_progress, finished) = journal.load();
        assert_eq!(in_progress.unwrap().id, later.id);
        assert_eq!(finished[0].id, earlier.id);
    }
}
