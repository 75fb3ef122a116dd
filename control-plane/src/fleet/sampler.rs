//! Takes one sample per region at the end of every interval (aligned to the clock, so replicas sampling the
//! same interval agree on its start and only the first one's rows are kept) and drops samples past retention.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use uuid::Uuid;

use super::{Observed, aggregate};
use crate::logs::LogStore;
use crate::store::{Store, StoreError};

pub struct Sampler {
    pub store: Store,
    pub logs: LogStore,
    pub interval: Duration,
    pub retention: Duration,
}

impl Sampler {
    pub async fn run(&self) {
        let interval =
            TimeDelta::from_std(self.interval).expect("a sampling interval fits a TimeDelta");
        let settle = interval.min(TimeDelta::seconds(10));
        let retention = TimeDelta::from_std(self.retention).unwrap_or(TimeDelta::MAX);
        let now = Utc::now();
        let mut start = now.duration_trunc(interval).unwrap_or(now);
        loop {
            // Sleep past the interval's end, then sample it. The extra wait lets the log lines written at its end
            // reach ClickHouse (agents batch them for about a second); lines that arrive later than that (resent
            // after an outage) are not counted in the charts. The next interval starts where this one ended, not
            // at the clock after the wait: the wait may reach past it, and that interval would go unsampled.
            let end = start + interval;
            let now = Utc::now();
            tokio::time::sleep((end + settle - now).to_std().unwrap_or_default()).await;
            match self.sample(start, end).await {
                Ok(regions) => tracing::debug!(regions, at = %start, "fleet sampled"),
                Err(error) => {
                    tracing::warn!(%error, "could not sample the fleet for the console's charts")
                }
            }
            let before = Utc::now()
                .checked_sub_signed(retention)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            if let Err(error) = self.store.prune_fleet_samples(before).await {
                tracing::warn!(%error, "could not prune old fleet samples");
            }
            // After a long stall (a suspended process), intervals already past retention are not worth sampling.
            start = end.max(before.duration_trunc(interval).unwrap_or(end));
        }
    }

    /// Samples `[start, end)`; returns how many region rows were stored.
    async fn sample(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<u64, StoreError> {
        let regions = self.store.regions().await?;
        let clusters = self.store.clusters().await?;
        let demos = self.store.demos().await?;
        let tasks = self.store.task_counts(start, end).await?;
        let nanos = |at: DateTime<Utc>| at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        // Without ClickHouse the other columns still count; its lines show as none for that interval.
        let log_lines: HashMap<Uuid, i64> =
            match self.logs.lines_per_cluster(nanos(start), nanos(end)).await {
                Ok(rows) => rows
                    .into_iter()
                    .filter_map(|(cluster, lines)| {
                        Some((
                            cluster.parse().ok()?,
                            i64::try_from(lines).unwrap_or(i64::MAX),
                        ))
                    })
                    .collect(),
                Err(error) => {
                    tracing::warn!(%error, "could not count log lines for the fleet sample");
                    HashMap::new()
                }
            };
        let samples = aggregate(&Observed {
            at: start,
            regions: &regions,
            clusters: &clusters,
            demos: &demos,
            tasks: &tasks,
            log_lines: &log_lines,
        });
        self.store.insert_fleet_samples(&samples).await
    }
}
