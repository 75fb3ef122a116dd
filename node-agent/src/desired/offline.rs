//! Edge autonomy: while the agent cannot reach the control plane it checks, every interval, that the objects its
//! tasks applied are still as applied, recreates deleted ones and takes back changed fields, and once it is
//! back it reports what it did (`OfflineReport`, resent until acknowledged).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use agent_protocol::{Correction, OfflineReport};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{DesiredState, ObjectKey};
use crate::apply::{Applier, Kept};

/// Corrections listed in one report; the rest are counted.
const CORRECTIONS_LISTED: usize = 100;

/// What happened during one period offline.
#[derive(Debug)]
struct OfflinePeriod {
    since: DateTime<Utc>,
    checks: u32,
    objects: u32,
    corrections: Vec<Correction>,
    not_listed: u32,
    /// Objects whose check failed already this period, so a cluster API that is down is reported once per object.
    failed: HashSet<ObjectKey>,
}

impl OfflinePeriod {
    fn new(since: DateTime<Utc>) -> Self {
        Self {
            since,
            checks: 0,
            objects: 0,
            corrections: Vec::new(),
            not_listed: 0,
            failed: HashSet::new(),
        }
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

    fn into_report(self, back: DateTime<Utc>) -> OfflineReport {
        OfflineReport {
            id: format!("{}-{:016x}", crate::instance_id(), rand::random::<u64>()),
            offline_since_unix: self.since.timestamp(),
            back_unix: back.timestamp(),
            checks: self.checks,
            objects: self.objects,
            corrections: self.corrections,
            corrections_not_listed: self.not_listed,
        }
    }
}

/// Runs for as long as the agent does. `online` is the session's view (a stream is established); every period
/// with it false that lasted at least one check ends in a report on `reports`.
pub async fn keep_while_offline(
    applier: Arc<Applier>,
    desired: Arc<DesiredState>,
    mut online: watch::Receiver<bool>,
    interval: Duration,
    reports: mpsc::UnboundedSender<OfflineReport>,
) {
    loop {
        if online.wait_for(|online| !*online).await.is_err() {
            return;
        }
        let mut period = OfflinePeriod::new(Utc::now());
        // The first check waits one interval, so that the short gap of every reconnect costs nothing.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => check(&applier, &desired, &mut period).await,
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
        if period.checks > 0 {
            let report = period.into_report(Utc::now());
            info!(
                offline_seconds = report.back_unix - report.offline_since_unix,
                checks = report.checks,
                corrections =
                    report.corrections.len() as u64 + u64::from(report.corrections_not_listed),
                "back in touch with the control plane; reporting what was kept while offline"
            );
            let _ = reports.send(report);
        }
    }
}

async fn check(applier: &Applier, desired: &DesiredState, period: &mut OfflinePeriod) {
    let objects = desired.objects();
    period.checks += 1;
    period.objects = u32::try_from(objects.len()).unwrap_or(u32::MAX);
    for kept in objects {
        match applier.keep(&kept.object, kept.tier()).await {
            Ok(Kept::InSync) => {
                period.failed.remove(&kept.key);
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
                if period.failed.insert(kept.key.clone()) {
                    warn!(object = %kept.key, %error, "offline: cannot check an object");
                    period.add(&kept.key, "failed", error);
                }
            }
        }
    }
}
