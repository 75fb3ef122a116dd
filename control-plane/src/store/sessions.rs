//! Agent sessions: one row per open agent stream, so every control-plane process can tell who is connected.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SessionRow {
    pub id: Uuid,
    pub cluster_id: Uuid,
    /// The control-plane process (`instance_name`) that holds or held the stream.
    pub instance: String,
    pub agent_version: String,
    pub peer_addr: Option<String>,
    pub connected_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn open_session(
        &self,
        instance: &str,
        cluster_id: Uuid,
        certificate_serial: &str,
        agent_version: &str,
        peer_addr: Option<String>,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO agent_sessions (id, instance, cluster_id, certificate_serial, agent_version, peer_addr)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(instance)
        .bind(cluster_id)
        .bind(certificate_serial)
        .bind(agent_version)
        .bind(peer_addr)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn close_session(&self, session_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agent_sessions SET disconnected_at = now() WHERE id = $1 AND disconnected_at IS NULL",
        )
        .bind(session_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the end of every stream a stopping process held.
    pub async fn close_instance_sessions(&self, instance: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE agent_sessions SET disconnected_at = now() WHERE instance = $1 AND disconnected_at IS NULL",
        )
        .bind(instance)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Closes sessions nobody has heard from for longer than the staleness limit: their process died without
    /// recording it. The end is taken as the last time the agent was heard from.
    pub async fn close_stale_sessions(&self) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE agent_sessions SET disconnected_at = last_seen_at
             WHERE disconnected_at IS NULL AND last_seen_at < now() - make_interval(secs => $1)",
        )
        .bind(self.agent_stale_after_secs())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    pub async fn sessions(
        &self,
        cluster_id: Uuid,
        limit: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        Ok(sqlx::query_as::<_, SessionRow>(
            "SELECT id, cluster_id, instance, agent_version, peer_addr, connected_at, last_seen_at, disconnected_at
             FROM agent_sessions WHERE cluster_id = $1 ORDER BY connected_at DESC LIMIT $2",
        )
        .bind(cluster_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
