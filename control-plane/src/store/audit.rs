//! The audit log: one row per state-changing request, console or API.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Store, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `user:<name>`, `token:<name>`, or for a failed sign-in `login:<name>`.
    pub actor: String,
    /// `<METHOD> <route>`, e.g. `POST /demos/{id}/stop`.
    pub action: String,
    /// The request path (names the object acted on).
    pub target: String,
    pub ip: Option<String>,
    /// The HTTP status of the response.
    pub status: i32,
    pub detail: Option<String>,
}

pub struct NewAuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub ip: Option<&'a str>,
    pub status: u16,
    pub detail: Option<&'a str>,
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    pub async fn record_audit(&self, entry: NewAuditEntry<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (actor, action, target, ip, status, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.ip)
        .bind(i32::from(entry.status))
        .bind(entry.detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Entries newest first, with the number matching the filter.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<(Vec<AuditEntry>, i64), StoreError> {
        const WHERE: &str = "WHERE ($1::text IS NULL OR actor = $1)
              AND ($2::text IS NULL OR action ILIKE '%' || $2 || '%')
              AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)";
        let entries = sqlx::query_as::<_, AuditEntry>(sqlx::AssertSqlSafe(format!(
            "SELECT id, at, actor, action, target, ip, status, detail FROM audit_log {WHERE}
             ORDER BY at DESC, id DESC LIMIT $5 OFFSET $6"
        )))
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.limit)
        .bind(filter.offset)
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM audit_log {WHERE}"
        )))
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_one(self.pool())
        .await?;
        Ok((entries, total))
    }
}
