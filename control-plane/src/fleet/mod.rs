//! The fleet at a glance: per-region samples for the console's charts (agents connected and their round trip,
//! tasks finished and failed, demos online and failed, log lines) and each region's health. Deciding is pure
//! (`aggregate`, `region_health`); `sampler` does the I/O around it.

pub mod sampler;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{ClusterStatus, DemoStatus, RegionHealth};
use crate::store::{Cluster, Demo, Region, RegionSample, TaskCounts};

/// What one sample is made of, as read from PostgreSQL and ClickHouse.
pub struct Observed<'a> {
    pub at: DateTime<Utc>,
    pub regions: &'a [Region],
    pub clusters: &'a [Cluster],
    pub demos: &'a [Demo],
    pub tasks: &'a HashMap<Uuid, TaskCounts>,
    pub log_lines: &'a HashMap<Uuid, i64>,
}

/// One sample per region from per-cluster observations.
pub fn aggregate(observed: &Observed<'_>) -> Vec<RegionSample> {
    observed
        .regions
        .iter()
        .map(|region| {
            let clusters: Vec<&Cluster> = observed
                .clusters
                .iter()
                .filter(|cluster| cluster.region_id == region.id)
                .collect();
            let (agents_connected, rtt_ms) = agents(&clusters);
            let tasks = clusters
                .iter()
                .filter_map(|cluster| observed.tasks.get(&cluster.id))
                .fold(TaskCounts::default(), |sum, counts| TaskCounts {
                    succeeded: sum.succeeded + counts.succeeded,
                    failed: sum.failed + counts.failed,
                });
            let demos = observed
                .demos
                .iter()
                .filter(|demo| demo.region_id == Some(region.id) && demo.deleted_at.is_none());
            RegionSample {
                region_id: region.id,
                at: observed.at,
                clusters: count(clusters.len()),
                agents_connected,
                rtt_ms,
                tasks_succeeded: tasks.succeeded,
                tasks_failed: tasks.failed,
                demos_online: count(
                    demos
                        .clone()
                        .filter(|d| d.status == DemoStatus::Online)
                        .count(),
                ),
                demos_failed: count(demos.filter(|d| d.error.is_some()).count()),
                log_lines: clusters
                    .iter()
                    .filter_map(|cluster| observed.log_lines.get(&cluster.id))
                    .sum(),
            }
        })
        .collect()
}

/// How many of `clusters` have their agent connected, and those agents' mean round trip.
pub fn agents(clusters: &[&Cluster]) -> (i32, Option<f64>) {
    let connected: Vec<&&Cluster> = clusters.iter().filter(|c| c.agent.connected).collect();
    let rtts: Vec<f64> = connected.iter().filter_map(|c| c.agent.rtt_ms).collect();
    let mean = (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64);
    (count(connected.len()), mean)
}

pub fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A region's health from its clusters and the tasks that failed in the last sample.
pub fn region_health(region: &Region, clusters: &[&Cluster], recent_failures: i32) -> RegionHealth {
    if !region.enabled {
        return RegionHealth::Disabled;
    }
    if clusters.is_empty() {
        return RegionHealth::Empty;
    }
    let connected = clusters.iter().filter(|c| c.agent.connected).count();
    // A cluster that should have an agent by now but has none, or one that reports trouble.
    let troubled = clusters
        .iter()
        .filter(|c| match c.status {
            ClusterStatus::Failed | ClusterStatus::Degraded => true,
            ClusterStatus::Ready => !c.agent.connected,
            _ => false,
        })
        .count();
    match (connected, troubled) {
        (0, 0) => RegionHealth::Pending,
        (0, _) => RegionHealth::Down,
        (_, 0) if recent_failures == 0 => RegionHealth::Healthy,
        _ => RegionHealth::Degraded,
    }
}

#[cfg(test)]
mod tests;
