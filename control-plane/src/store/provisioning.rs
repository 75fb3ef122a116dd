//! What the provisioner reads and writes: cluster specs and outputs, and the queue of control-plane tasks.

use std::time::Duration;

use uuid::Uuid;

use super::{LeasedTask, Store, StoreError, channels};
use crate::domain::{ClusterStatus, DriftStatus, TaskKind};

/// Everything a Terraform run needs about its cluster.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProvisioningTarget {
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub region_code: String,
    pub cloud_account_id: Uuid,
    pub provider: String,
    pub provision_spec: Option<serde_json::Value>,
    pub credentials_sealed: Option<Vec<u8>>,
    pub kubeconfig_sealed: Option<Vec<u8>>,
}

impl Store {
    pub async fn provisioning_target(
        &self,
        cluster_id: Uuid,
    ) -> Result<ProvisioningTarget, StoreError> {
        sqlx::query_as::<_, ProvisioningTarget>(
            "SELECT k.id AS cluster_id, k.name AS cluster_name, r.code AS region_code, c.id AS cloud_account_id,
                    c.provider, k.provision_spec, c.credentials_sealed, k.kubeconfig_sealed
             FROM clusters k JOIN regions r ON r.id = k.region_id JOIN cloud_accounts c ON c.id = r.cloud_account_id
             WHERE k.id = $1",
        )
        .bind(cluster_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::not_found("cluster", cluster_id))
    }

    /// Replaces the Terraform variables of a provisioned cluster (e.g. to fix an input before a retry).
    pub async fn set_provision_variables(
        &self,
        cluster_id: Uuid,
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clusters SET provision_spec = jsonb_set(provision_spec, '{variables}', $2), updated_at = now()
             WHERE id = $1 AND provision_spec IS NOT NULL",
        )
        .bind(cluster_id)
        .bind(serde_json::Value::Object(variables.clone()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn set_cluster_status(
        &self,
        cluster_id: Uuid,
        status: ClusterStatus,
        message: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clusters SET status = $2, status_message = $3, updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(cluster_id)
        .bind(status)
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores the cluster module's outputs (the kubeconfig sealed by the caller).
    pub async fn record_cluster_outputs(
        &self,
        cluster_id: Uuid,
        api_endpoint: &str,
        ca_certificate: &str,
        kubeconfig_sealed: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clusters SET api_endpoint = $2, ca_certificate = $3, kubeconfig_sealed = $4, updated_at = now()
             WHERE id = $1",
        )
        .bind(cluster_id)
        .bind(api_endpoint)
        .bind(ca_certificate)
        .bind(kubeconfig_sealed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn record_drift(
        &self,
        cluster_id: Uuid,
        drift_status: DriftStatus,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE clusters SET drift_status = $2, drift_checked_at = now(), updated_at = now() WHERE id = $1")
            .bind(cluster_id)
            .bind(drift_status)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Saves a task's structured output (plan summary, outputs) while its lease is current.
    pub async fn set_task_output(
        &self,
        task_id: Uuid,
        lease_id: Uuid,
        output: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tasks SET output = $3, updated_at = now() WHERE id = $1 AND lease_id = $2",
        )
        .bind(task_id)
        .bind(lease_id)
        .bind(output)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Leases one pending control-plane task (Terraform runs). A cluster never has two runs at once, and a
    /// cloud account at most `per_cloud` (counted across processes; two processes leasing at the same instant
    /// may briefly exceed it, which Terraform's state lock still makes safe).
    pub async fn lease_control_plane_task(
        &self,
        kinds: &[TaskKind],
        worker_id: Uuid,
        lease: Duration,
        per_cloud: i64,
    ) -> Result<Option<LeasedTask>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let leased = sqlx::query_as::<_, LeasedTask>(
            "WITH candidates AS (
                 SELECT t.id FROM task_queue q JOIN tasks t ON t.id = q.task_id
                 JOIN clusters k ON k.id = t.cluster_id JOIN regions r ON r.id = k.region_id
                 WHERE NOT q.held AND q.kind = ANY($1) AND t.state = 'pending'
                   AND NOT EXISTS (SELECT 1 FROM task_queue o WHERE o.cluster_id = q.cluster_id
                                   AND o.held AND o.kind = ANY($1))
                   AND (SELECT count(*) FROM task_queue o JOIN clusters ok ON ok.id = o.cluster_id
                        JOIN regions orr ON orr.id = ok.region_id
                        WHERE o.held AND o.kind = ANY($1)
                          AND orr.cloud_account_id = r.cloud_account_id) < $4
                 ORDER BY q.created_at
                 LIMIT 1
                 FOR NO KEY UPDATE OF t SKIP LOCKED)
             UPDATE tasks t SET state = 'running', attempts = t.attempts + 1, lease_id = gen_random_uuid(),
                    lease_session_id = $2, lease_expires_at = now() + make_interval(secs => $3),
                    started_at = coalesce(t.started_at, now()), error = NULL, updated_at = now()
             FROM candidates c WHERE t.id = c.id
             RETURNING t.id, t.lease_id, t.attempts, t.kind, t.payload, t.reason, t.lease_expires_at, t.created_at,
                       t.cluster_id, t.body, t.signature, t.signing_key_id, t.trace_parent,
                       t.lease_session_id AS session_id",
        )
        .bind(kinds)
        .bind(worker_id)
        .bind(lease.as_secs_f64())
        .bind(per_cloud)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(task) = &leased {
            sqlx::query(
                "INSERT INTO task_events (task_id, kind, message) VALUES ($1, 'running', $2)",
            )
            .bind(task.id)
            .bind(format!("provisioner started attempt {}", task.attempts))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(leased)
    }

    /// Wakes the provisioners of every process.
    pub async fn notify_provisioners(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channels::PROVISIONER_WORK)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
