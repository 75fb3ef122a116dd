//! Regions: a provider region code under one cloud account.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use sqlx::AssertSqlSafe;

use super::{Store, StoreError, unique_violation};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Region {
    pub id: Uuid,
    pub cloud_account_id: Uuid,
    pub cloud_name: String,
    pub provider: String,
    pub code: String,
    pub display_name: String,
    pub enabled: bool,
    pub cluster_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewRegion {
    pub cloud_account_id: Uuid,
    pub code: String,
    pub display_name: String,
    pub enabled: bool,
}

const SELECT: &str = "SELECT r.id, r.cloud_account_id, c.name AS cloud_name, c.provider, r.code, r.display_name,
        r.enabled, r.created_at, r.updated_at,
        (SELECT count(*) FROM clusters k WHERE k.region_id = r.id AND k.deleted_at IS NULL) AS cluster_count
    FROM regions r JOIN cloud_accounts c ON c.id = r.cloud_account_id";

impl Store {
    pub async fn insert_region(&self, new: NewRegion) -> Result<Region, StoreError> {
        let cloud = self.cloud(new.cloud_account_id).await?;
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO regions (id, cloud_account_id, code, display_name, enabled) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(new.cloud_account_id)
        .bind(&new.code)
        .bind(&new.display_name)
        .bind(new.enabled)
        .execute(self.pool())
        .await
        .map_err(|e| {
            unique_violation(e, || {
                format!("cloud account {:?} already has region {:?}", cloud.name, new.code)
            })
        })?;
        self.region(id).await
    }

    pub async fn region(&self, id: Uuid) -> Result<Region, StoreError> {
        sqlx::query_as::<_, Region>(AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("region", id))
    }

    /// Changes what is given; `None` keeps the current value.
    pub async fn update_region(
        &self,
        id: Uuid,
        enabled: Option<bool>,
        display_name: Option<&str>,
    ) -> Result<Region, StoreError> {
        let updated = sqlx::query(
            "UPDATE regions SET enabled = coalesce($2, enabled), display_name = coalesce($3, display_name)
             WHERE id = $1",
        )
        .bind(id)
        .bind(enabled)
        .bind(display_name)
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found("region", id));
        }
        self.region(id).await
    }

    pub async fn regions(&self) -> Result<Vec<Region>, StoreError> {
        Ok(
            sqlx::query_as::<_, Region>(AssertSqlSafe(format!("{SELECT} ORDER BY c.name, r.code")))
                .fetch_all(self.pool())
                .await?,
        )
    }
}
