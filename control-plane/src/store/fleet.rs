//! Per-region samples of the fleet (`fleet_samples`) for the console's charts, and what they are computed from
//! that only PostgreSQL knows (tasks that ended in an interval).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::TaskState;

/// One region over one sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct RegionSample {
    #[serde(skip)]
    pub region_id: Uuid,
    /// Start of the interval.
    pub at: DateTime<Utc>,
    pub clusters: i32,
    pub agents_connected: i32,
    /// Mean agent round trip of the connected agents, when any reported one.
    pub rtt_ms: Option<f64>,
    /// Tasks that ended in the interval, by outcome.
    pub tasks_succeeded: i32,
    pub tasks_failed: i32,
    pub demos_online: i32,
    /// Demos whose last deploy step failed.
    pub demos_failed: i32,
    /// Log lines (task and demo logs) stored for the region's clusters in the interval.
    pub log_lines: i64,
}

/// Tasks of one cluster that ended in an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub succeeded: i32,
    pub failed: i32,
}

impl Store {
    /// Tasks that ended in `[from, until)`, per cluster.
    pub async fn task_counts(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, TaskCounts>, StoreError> {
        let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
            "SELECT cluster_id, count(*) FILTER (WHERE state = $2), count(*) FILTER (WHERE state = $3)
             FROM tasks WHERE finished_at >= $1 AND finished_at < $4 AND state IN ($2, $3) GROUP BY cluster_id",
        )
        .bind(from)
        .bind(TaskState::Succeeded)
        .bind(TaskState::Failed)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(cluster, succeeded, failed)| {
                let clamp = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
                (
                    cluster,
                    TaskCounts {
                        succeeded: clamp(succeeded),
                        failed: clamp(failed),
                    },
                )
            })
            .collect())
    }

    /// Stores one interval's samples; an interval another replica sampled already keeps its rows.
    pub async fn insert_fleet_samples(&self, samples: &[RegionSample]) -> Result<u64, StoreError> {
        let column = |f: fn(&RegionSample) -> i32| samples.iter().map(f).collect::<Vec<i32>>();
        let inserted = sqlx::query(
            "INSERT INTO fleet_samples (region_id, at, clusters, agents_connected, rtt_ms, tasks_succeeded,
                                        tasks_failed, demos_online, demos_failed, log_lines)
             SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int[], $4::int[], $5::float8[], $6::int[],
                                  $7::int[], $8::int[], $9::int[], $10::int8[])
             ON CONFLICT (region_id, at) DO NOTHING",
        )
        .bind(samples.iter().map(|s| s.region_id).collect::<Vec<_>>())
        .bind(samples.iter().map(|s| s.at).collect::<Vec<_>>())
        .bind(column(|s| s.clusters))
        .bind(column(|s| s.agents_connected))
        .bind(samples.iter().map(|s| s.rtt_ms).collect::<Vec<_>>())
        .bind(column(|s| s.tasks_succeeded))
        .bind(column(|s| s.tasks_failed))
        .bind(column(|s| s.demos_online))
        .bind(column(|s| s.demos_failed))
        .bind(samples.iter().map(|s| s.log_lines).collect::<Vec<_>>())
        .execute(self.pool())
        .await?;
        Ok(inserted.rows_affected())
    }

    /// Samples from `since` on, oldest first.
    pub async fn fleet_samples(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RegionSample>, StoreError> {
        Ok(sqlx::query_as::<_, RegionSample>(
            "SELECT region_id, at, clusters, agents_connected, rtt_ms, tasks_succeeded, tasks_failed, demos_online,
                    demos_failed, log_lines
             FROM fleet_samples WHERE at >= $1 ORDER BY at",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?)
    }

    /// Removes samples older than `before`; returns how many.
    pub async fn prune_fleet_samples(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM fleet_samples WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected())
    }
}
