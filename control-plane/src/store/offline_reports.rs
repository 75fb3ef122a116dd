//! Reports of what agents did while they could not reach the control plane (edge autonomy).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError};

/// One object the agent put back while offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OfflineCorrection {
    pub at: DateTime<Utc>,
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    /// `recreated` (it had been deleted), `reverted` (fields the agent applied had been changed) or `failed`
    /// (the agent could not check it).
    pub action: String,
    /// For `reverted`, the fields that differed; for `failed`, why.
    pub detail: String,
}

/// One period an agent spent without the control plane, as it reported it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct OfflineReport {
    pub id: String,
    pub offline_since: DateTime<Utc>,
    pub back_at: DateTime<Utc>,
    /// How many times the agent checked the objects it keeps, and how many it kept.
    pub checks: i32,
    pub objects: i32,
    #[schema(value_type = Vec<OfflineCorrection>)]
    pub corrections: Json<Vec<OfflineCorrection>>,
    /// Corrections beyond the listed ones.
    pub corrections_not_listed: i32,
    pub received_at: DateTime<Utc>,
}

/// A report as received, to record.
#[derive(Debug)]
pub struct NewOfflineReport {
    pub id: String,
    pub offline_since: DateTime<Utc>,
    pub back_at: DateTime<Utc>,
    pub checks: i32,
    pub objects: i32,
    pub corrections: Vec<OfflineCorrection>,
    pub corrections_not_listed: i32,
}

impl Store {
    /// Records the report unless one with its id is recorded already (the agent resends until acknowledged).
    pub async fn record_offline_report(
        &self,
        cluster_id: Uuid,
        report: &NewOfflineReport,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_offline_reports
                 (id, cluster_id, offline_since, back_at, checks, objects, corrections, corrections_not_listed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&report.id)
        .bind(cluster_id)
        .bind(report.offline_since)
        .bind(report.back_at)
        .bind(report.checks)
        .bind(report.objects)
        .bind(Json(&report.corrections))
        .bind(report.corrections_not_listed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The cluster's latest reports, newest first.
    pub async fn offline_reports(
        &self,
        cluster_id: Uuid,
        limit: i64,
    ) -> Result<Vec<OfflineReport>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, offline_since, back_at, checks, objects, corrections, corrections_not_listed, received_at
             FROM agent_offline_reports WHERE cluster_id = $1 ORDER BY back_at DESC LIMIT $2",
        )
        .bind(cluster_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
