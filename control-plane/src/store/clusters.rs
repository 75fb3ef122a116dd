//! Clusters and the agent state shown on them (connection, heartbeat, versions, certificate expiry).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use sqlx::AssertSqlSafe;

use super::{Store, StoreError, unique_violation};
use crate::domain::{ClusterRole, ClusterStatus, DriftStatus, LogSelection, Provisioning};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Cluster {
    pub id: Uuid,
    pub region_id: Uuid,
    pub region_code: String,
    pub name: String,
    pub role: ClusterRole,
    pub status: ClusterStatus,
    pub status_message: Option<String>,
    pub provisioning: Provisioning,
    pub api_endpoint: Option<String>,
    pub external_ip: Option<String>,
    #[sqlx(flatten)]
    pub agent: AgentStatus,
    /// Result of the last drift check of a provisioned cluster.
    pub drift_status: Option<DriftStatus>,
    pub drift_checked_at: Option<DateTime<Utc>>,
    /// Namespaces whose pod logs and events the agent collects besides demo and opted-in ones.
    #[sqlx(flatten)]
    pub log_selection: LogSelection,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AgentStatus {
    /// An agent stream is open and has been heard from within three heartbeat intervals.
    #[sqlx(rename = "agent_connected")]
    pub connected: bool,
    #[sqlx(rename = "agent_version")]
    pub version: Option<String>,
    pub kubernetes_version: Option<String>,
    pub node_count: Option<i32>,
    pub kubernetes_reachable: Option<bool>,
    pub kubernetes_error: Option<String>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Round trip to the agent over its stream (Ping/Pong), smoothed; none before the first measurement.
    #[sqlx(rename = "agent_rtt_ms")]
    pub rtt_ms: Option<f64>,
    /// While the agent is not connected: when it was last heard from (its last heartbeat), so how long the
    /// cluster has been offline; none while connected or before its first heartbeat.
    pub offline_since: Option<DateTime<Utc>>,
    /// Expiry of the newest unrevoked certificate issued to this cluster's agent.
    pub certificate_expires_at: Option<DateTime<Utc>>,
}

/// A keyset page of live clusters ordered by name; the defaults give all of them.
#[derive(Debug, Default)]
pub struct ClusterPage {
    /// The last name of the previous page.
    pub after: Option<String>,
    /// None: no limit.
    pub limit: Option<i64>,
}

pub struct NewCluster {
    pub region_id: Uuid,
    pub name: String,
    pub role: ClusterRole,
    pub api_endpoint: Option<String>,
    /// Set for clusters the control plane provisions with Terraform: `{"stack", "variables"}`.
    pub provision_spec: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub agent_version: String,
    pub kubernetes_version: String,
    pub node_count: i32,
    pub kubernetes_reachable: bool,
    pub kubernetes_error: Option<String>,
    /// A round trip measured since the previous heartbeat, folded into the cluster's smoothed value.
    pub rtt_ms: Option<f64>,
}

// The columns of `Cluster` over clusters `k`, then `JOINS` for what they need. The live session is a lateral
// `LIMIT 1` so each cluster looks it up on the open-session index: written as EXISTS, PostgreSQL planned it as a
// hash of every open session, read on each list call.
const COLUMNS: &str = "SELECT k.id, k.region_id, r.code AS region_code, k.name, k.role, k.status, k.status_message,
        k.provisioning, k.api_endpoint, k.external_ip, k.agent_version, k.kubernetes_version, k.node_count,
        k.kubernetes_reachable, k.kubernetes_error, k.last_heartbeat_at, k.agent_rtt_ms, k.created_at, k.updated_at, k.deleted_at,
        k.drift_status, k.drift_checked_at, k.log_all_namespaces, k.log_namespaces,
        coalesce(a.agent_connected, false) AS agent_connected,
        CASE WHEN a.agent_connected THEN NULL ELSE k.last_heartbeat_at END AS offline_since,
        (SELECT max(c.not_after) FROM agent_certificates c WHERE c.cluster_id = k.id AND c.revoked_at IS NULL)
            AS certificate_expires_at";
const JOINS: &str = "JOIN regions r ON r.id = k.region_id
    LEFT JOIN LATERAL (SELECT true AS agent_connected FROM agent_sessions s WHERE s.cluster_id = k.id
        AND s.disconnected_at IS NULL AND s.last_seen_at > now() - make_interval(secs => $1) LIMIT 1) a ON true";

impl Store {
    pub async fn insert_cluster(&self, new: NewCluster) -> Result<Cluster, StoreError> {
        self.region(new.region_id).await?;
        let id = Uuid::new_v4();
        let name = new.name.clone();
        let (status, message, provisioning) = match new.provision_spec {
            None => (
                ClusterStatus::Registered,
                "waiting for its agent to connect",
                Provisioning::Manual,
            ),
            Some(_) => (
                ClusterStatus::Pending,
                "waiting for Terraform",
                Provisioning::Terraform,
            ),
        };
        sqlx::query(
            "INSERT INTO clusters (id, region_id, name, role, status, status_message, api_endpoint, provisioning,
                                   provision_spec)
             VALUES ($1, $2, $3, $4, $7, $8, $5, $9, $6)",
        )
        .bind(id)
        .bind(new.region_id)
        .bind(&new.name)
        .bind(new.role)
        .bind(&new.api_endpoint)
        .bind(&new.provision_spec)
        .bind(status)
        .bind(message)
        .bind(provisioning)
        .execute(self.pool())
        .await
        .map_err(|e| unique_violation(e, || format!("a cluster named {name:?} already exists")))?;
        self.cluster(id).await
    }

    /// A cluster, including deleted ones (their record stays for history).
    pub async fn cluster(&self, id: Uuid) -> Result<Cluster, StoreError> {
        sqlx::query_as::<_, Cluster>(AssertSqlSafe(format!(
            "{COLUMNS} FROM clusters k {JOINS} WHERE k.id = $2"
        )))
        .bind(self.agent_stale_after_secs())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::not_found("cluster", id))
    }

    /// A cluster that has not been deleted.
    pub async fn live_cluster(&self, id: Uuid) -> Result<Cluster, StoreError> {
        let cluster = self.cluster(id).await?;
        if cluster.deleted_at.is_some() {
            return Err(StoreError::not_found("cluster", id));
        }
        Ok(cluster)
    }

    /// Which of `ids` are clusters that exist and are not deleted.
    pub async fn live_cluster_ids(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashSet<Uuid>, StoreError> {
        let live: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM clusters WHERE id = ANY($1) AND deleted_at IS NULL")
                .bind(ids)
                .fetch_all(self.pool())
                .await?;
        Ok(live.into_iter().collect())
    }

    /// Every cluster that has not been deleted, by name.
    pub async fn clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        self.clusters_page(&ClusterPage::default()).await
    }

    /// Live clusters by name, from after `page.after` and at most `page.limit` of them. The page is cut before
    /// the agent state is joined, so that work is done for the page's clusters only whatever plan PostgreSQL
    /// picks (with statistics from before a fleet registered, it sorted every cluster with its agent state).
    pub async fn clusters_page(&self, page: &ClusterPage) -> Result<Vec<Cluster>, StoreError> {
        Ok(sqlx::query_as::<_, Cluster>(AssertSqlSafe(format!(
            "{COLUMNS} FROM (SELECT * FROM clusters WHERE deleted_at IS NULL AND name > coalesce($2, '')
                             ORDER BY name LIMIT $3) k
             {JOINS} ORDER BY k.name"
        )))
        .bind(self.agent_stale_after_secs())
        .bind(page.after.as_deref())
        .bind(page.limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Marks the cluster deleted, revokes its agent certificates, cancels its open tasks (except `running_task`,
    /// the destroy run doing this) and tells every control-plane process to close the cluster's agent streams.
    pub async fn delete_cluster(
        &self,
        id: Uuid,
        running_task: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE clusters SET deleted_at = now(), status = $2, status_message = 'deleted',
                    updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(ClusterStatus::Deleted)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found("cluster", id));
        }
        super::certificates::revoke_agent_in(&mut tx, id).await?;
        let cancelled: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE tasks SET state = 'cancelled', error = 'cluster deleted', finished_at = now(), updated_at = now()
             WHERE id IN (SELECT task_id FROM task_queue WHERE cluster_id = $1)
               AND state IN ('pending', 'leased', 'running') AND id IS DISTINCT FROM $2
             RETURNING id",
        )
        .bind(id)
        .bind(running_task)
        .fetch_all(&mut *tx)
        .await?;
        for task_id in cancelled {
            sqlx::query("INSERT INTO task_events (task_id, kind, message) VALUES ($1, 'cancelled', 'cluster deleted')")
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets which namespaces the cluster's agent collects logs and events of; false when there is no such cluster.
    pub async fn set_log_selection(
        &self,
        cluster_id: Uuid,
        selection: &LogSelection,
    ) -> Result<bool, StoreError> {
        let namespaces: Vec<&str> = selection.namespaces.iter().map(|n| n.as_str()).collect();
        let updated = sqlx::query(
            "UPDATE clusters SET log_all_namespaces = $2, log_namespaces = $3, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(cluster_id)
        .bind(selection.all_namespaces)
        .bind(&namespaces)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records heartbeats of many streams in one statement: each cluster becomes `ready` (or `degraded` when its
    /// agent cannot reach its API), the round trip is folded in (weight 1/4, as TCP's SRTT uses 1/8: heartbeats
    /// are rarer than segments), and the sessions are marked seen. Returns, per heartbeat, the cluster's log
    /// selection (for the agent), or `None` when the cluster has been deleted. Two heartbeats of one cluster in
    /// a batch (an agent whose old stream overlaps its new one) update it once.
    pub async fn record_heartbeats(
        &self,
        beats: &[(Uuid, Uuid, Heartbeat)],
    ) -> Result<Vec<Option<LogSelection>>, StoreError> {
        // The statuses a heartbeat may change, and the one it sets: ClusterStatus::after_heartbeat.
        let heeded: Vec<ClusterStatus> = ClusterStatus::ALL
            .iter()
            .copied()
            .filter(|status| status.after_heartbeat(true).is_some())
            .collect();
        // In cluster order, so that concurrent batches lock shared rows in the same order.
        let mut sorted: Vec<&(Uuid, Uuid, Heartbeat)> = beats.iter().collect();
        sorted.sort_by_key(|(cluster_id, _, _)| *cluster_id);
        sorted.dedup_by_key(|(cluster_id, _, _)| *cluster_id);
        let mut columns = HeartbeatColumns::default();
        for (cluster_id, _, beat) in &sorted {
            columns.push(*cluster_id, beat);
        }
        let session_ids: Vec<Uuid> = beats.iter().map(|(_, session_id, _)| *session_id).collect();
        let seen: Vec<SeenCluster> = sqlx::query_as(
            "WITH seen AS (UPDATE agent_sessions SET last_seen_at = now() WHERE id = ANY($10))
             UPDATE clusters k SET agent_version = b.agent_version, kubernetes_version = b.kubernetes_version,
                    node_count = b.node_count, kubernetes_reachable = b.reachable,
                    kubernetes_error = b.error, last_heartbeat_at = now(),
                    status = CASE WHEN k.status = ANY($11) THEN b.status ELSE k.status END,
                    status_message = CASE WHEN k.status = ANY($11) THEN b.message ELSE k.status_message END,
                    agent_rtt_ms = CASE WHEN b.rtt IS NULL THEN k.agent_rtt_ms
                                        WHEN k.agent_rtt_ms IS NULL THEN b.rtt
                                        ELSE k.agent_rtt_ms * 0.75 + b.rtt * 0.25 END,
                    updated_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bool[], $6::text[], $7::text[],
                         $8::text[], $9::float8[])
                  AS b(id, agent_version, kubernetes_version, node_count, reachable, error, status, message, rtt)
             WHERE k.id = b.id AND k.deleted_at IS NULL
             RETURNING k.id, k.log_all_namespaces, k.log_namespaces",
        )
        // Planned for its arrays each time (see `Store::lease_tasks_for_streams`).
        .persistent(false)
        .bind(&columns.cluster_ids)
        .bind(&columns.agent_versions)
        .bind(&columns.kubernetes_versions)
        .bind(&columns.node_counts)
        .bind(&columns.reachable)
        .bind(&columns.errors)
        .bind(&columns.statuses)
        .bind(&columns.messages)
        .bind(&columns.rtts)
        .bind(&session_ids)
        .bind(&heeded)
        .fetch_all(self.pool())
        .await?;
        let selections: std::collections::HashMap<Uuid, LogSelection> = seen
            .into_iter()
            .map(|seen| (seen.id, seen.selection))
            .collect();
        Ok(beats
            .iter()
            .map(|(cluster_id, _, _)| selections.get(cluster_id).cloned())
            .collect())
    }
}

#[derive(sqlx::FromRow)]
struct SeenCluster {
    id: Uuid,
    #[sqlx(flatten)]
    selection: LogSelection,
}

/// Heartbeats as columns, for one `unnest`.
#[derive(Default)]
struct HeartbeatColumns {
    cluster_ids: Vec<Uuid>,
    agent_versions: Vec<String>,
    kubernetes_versions: Vec<String>,
    node_counts: Vec<i32>,
    reachable: Vec<bool>,
    errors: Vec<Option<String>>,
    statuses: Vec<ClusterStatus>,
    messages: Vec<String>,
    rtts: Vec<Option<f64>>,
}

impl HeartbeatColumns {
    fn push(&mut self, cluster_id: Uuid, beat: &Heartbeat) {
        let message = if beat.kubernetes_reachable {
            "agent connected".to_string()
        } else {
            format!(
                "agent cannot reach the Kubernetes API: {}",
                beat.kubernetes_error.as_deref().unwrap_or("unknown error")
            )
        };
        self.cluster_ids.push(cluster_id);
        self.agent_versions.push(beat.agent_version.clone());
        self.kubernetes_versions
            .push(beat.kubernetes_version.clone());
        self.node_counts.push(beat.node_count);
        self.reachable.push(beat.kubernetes_reachable);
        self.errors.push(beat.kubernetes_error.clone());
        self.statuses.push(
            ClusterStatus::Ready
                .after_heartbeat(beat.kubernetes_reachable)
                .expect("a ready cluster heeds heartbeats"),
        );
        self.messages.push(message);
        self.rtts.push(beat.rtt_ms);
    }
}
