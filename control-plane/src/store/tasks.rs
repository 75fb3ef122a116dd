//! The task queue: pending -> leased -> running -> succeeded | failed | cancelled, with leases that expire,
//! attempt counting, idempotency keys, and NOTIFY so agent streams in any process learn of new work at once.
//! Every transition is a single conditional UPDATE, so several control-plane processes can share the queue.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use sqlx::AssertSqlSafe;

use super::{Store, StoreError, channels};
use crate::domain::task::{AttemptEnd, LeaseExpiry};
use crate::domain::taskspec::TaskSpec;
use crate::domain::{ObjectOutcome, TaskKind, TaskState};

/// What happened to one object of an apply task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ObjectReport {
    pub document_index: u32,
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub outcome: ObjectOutcome,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub kind: TaskKind,
    #[schema(value_type = Object)]
    pub payload: Json<serde_json::Value>,
    pub state: TaskState,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub parent_id: Option<Uuid>,
    pub created_by: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Vec<ObjectReport>)]
    pub objects: Json<Vec<ObjectReport>>,
    /// Terraform tasks: the plan summary (text, counts, resource_changes), non-secret outputs, drift.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Json<serde_json::Value>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The OpenTelemetry trace the task belongs to (32 hex digits), when traces were on as it was created.
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TaskEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub message: String,
}

pub struct NewTask {
    /// Chosen before the insert because agent tasks are signed with it.
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub spec: TaskSpec,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub parent_id: Option<Uuid>,
    pub created_by: String,
    pub max_attempts: i32,
    /// The demo step (`demo_steps.id`) the planner queued the task for; its changes wake that demo.
    pub demo_step: Option<i64>,
    /// The signed body of a task an agent runs (`TaskSigner::seal`); `None` for tasks the control plane runs.
    pub seal: Option<TaskSeal>,
    /// The W3C `traceparent` of the span that created the task (`telemetry::current_traceparent`), when traces
    /// are on; its delivery, run and result continue that trace.
    pub trace_parent: Option<String>,
}

/// The signed body of an agent task, stored and delivered byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskSeal {
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
    pub key_id: String,
}

/// Whether `insert_task` created a task or found the one with the same idempotency key.
pub enum TaskInsert {
    Created(Task),
    Existing(Task),
}

/// One delivery of a task to an agent stream.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeasedTask {
    pub id: Uuid,
    pub lease_id: Uuid,
    pub attempts: i32,
    pub kind: TaskKind,
    pub payload: Json<serde_json::Value>,
    pub reason: String,
    pub lease_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub cluster_id: Uuid,
    pub body: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
    pub signing_key_id: Option<String>,
    pub trace_parent: Option<String>,
}

pub struct TaskCompletion {
    pub success: bool,
    pub error: Option<String>,
    pub objects: Vec<ObjectReport>,
    pub retryable: bool,
    /// When the task fails for good, its cluster's status becomes `failed` with this message in the same
    /// transaction, so nobody sees the task failed and the cluster still busy.
    pub fails_cluster: Option<String>,
}

#[derive(Debug, Default)]
pub struct TaskFilter {
    pub cluster_id: Option<Uuid>,
    pub state: Option<TaskState>,
    pub limit: i64,
    pub offset: i64,
}

const SELECT: &str = "SELECT id, cluster_id, kind, payload, state, reason, idempotency_key, parent_id, created_by,
        attempts, max_attempts, lease_expires_at, objects, output, error, created_at, updated_at, started_at, finished_at,
        substr(trace_parent, 4, 32) AS trace_id
    FROM tasks";

/// The state a pending task is leased into (`TaskState::lease`).
fn leased_state() -> TaskState {
    TaskState::Pending
        .lease()
        .expect("a pending task can be leased")
}

/// The states in which a runner holds the task under a lease (`TaskState::is_leased`).
fn held_states() -> Vec<TaskState> {
    TaskState::ALL
        .iter()
        .copied()
        .filter(|state| state.is_leased())
        .collect()
}

/// The states `TaskState::cancel` allows a cancel from.
fn cancellable_states() -> Vec<TaskState> {
    TaskState::ALL
        .iter()
        .copied()
        .filter(|state| state.cancel().is_ok())
        .collect()
}

async fn add_event(
    conn: &mut sqlx::PgConnection,
    task_id: Uuid,
    kind: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO task_events (task_id, kind, message) VALUES ($1, $2, $3)")
        .bind(task_id)
        .bind(kind)
        .bind(message)
        .execute(conn)
        .await?;
    Ok(())
}

/// A task of the cluster became leasable: wakes its agent streams and the provisioners (each leases only the
/// kinds it runs).
async fn notify_task_ready(
    conn: &mut sqlx::PgConnection,
    cluster_id: Uuid,
) -> Result<(), StoreError> {
    notify_tasks_ready(conn, &[cluster_id]).await
}

/// Tasks of these clusters became leasable: one notification per cluster, and one wake-up for the provisioners.
async fn notify_tasks_ready(
    conn: &mut sqlx::PgConnection,
    cluster_ids: &[Uuid],
) -> Result<(), StoreError> {
    for cluster_id in cluster_ids {
        notify(&mut *conn, channels::TASK_READY, &cluster_id.to_string()).await?;
    }
    notify(conn, channels::PROVISIONER_WORK, "").await
}

async fn notify(
    conn: &mut sqlx::PgConnection,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Inserts a task, or returns the existing one with the same (cluster, idempotency key). A reused key with
    /// a different kind or payload is a conflict, so a retried request can never silently mean something else.
    #[tracing::instrument(
        name = "queue.insert",
        skip_all,
        fields(otel.name = "queue insert", task_id = %new.id, cluster_id = %new.cluster_id)
    )]
    pub async fn insert_task(&self, new: NewTask) -> Result<TaskInsert, StoreError> {
        let mut inserted = self.insert_tasks(vec![new]).await?;
        Ok(inserted.remove(0))
    }

    /// Inserts tasks in one transaction, all or none, returning each as created or as the task its idempotency
    /// key found (also one earlier in the same batch); a key used for a different request refuses the batch.
    /// Events go in one statement and each cluster is notified once.
    pub async fn insert_tasks(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskInsert>, StoreError> {
        let mut tx = self.pool().begin().await?;
        // (task id, created) in submission order.
        let mut outcomes: Vec<(Uuid, bool)> = Vec::with_capacity(tasks.len());
        for (index, new) in tasks.iter().enumerate() {
            let seal = new.seal.as_ref();
            let kind = new.spec.kind();
            let payload = new.spec.payload();
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO tasks (id, cluster_id, kind, payload, state, reason, idempotency_key, parent_id,
                                    created_by, max_attempts, body, signature, signing_key_id, demo_step_id, trace_parent)
                 VALUES ($1, $2, $3, $4, $14, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15)
                 ON CONFLICT (cluster_id, idempotency_key) DO NOTHING RETURNING id",
            )
            .bind(new.id)
            .bind(new.cluster_id)
            .bind(kind)
            .bind(&payload)
            .bind(&new.reason)
            .bind(&new.idempotency_key)
            .bind(new.parent_id)
            .bind(&new.created_by)
            .bind(new.max_attempts)
            .bind(seal.map(|seal| &seal.body))
            .bind(seal.map(|seal| &seal.signature))
            .bind(seal.map(|seal| &seal.key_id))
            .bind(new.demo_step)
            .bind(TaskState::Pending)
            .bind(&new.trace_parent)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = inserted {
                outcomes.push((id, true));
                continue;
            }
            let key = new.idempotency_key.clone().unwrap_or_default();
            let (existing, existing_kind, existing_payload): (Uuid, TaskKind, Json<serde_json::Value>) =
                sqlx::query_as(
                    "SELECT id, kind, payload FROM tasks WHERE cluster_id = $1 AND idempotency_key = $2",
                )
                .bind(new.cluster_id)
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
            if existing_kind != kind || existing_payload.0 != payload {
                let which = if tasks.len() > 1 {
                    format!("task {index} of the batch: ")
                } else {
                    String::new()
                };
                return Err(StoreError::Conflict(format!(
                    "{which}idempotency key {key:?} was already used for task {existing} with a different request"
                )));
            }
            outcomes.push((existing, false));
        }
        let created: Vec<&NewTask> = tasks
            .iter()
            .zip(&outcomes)
            .filter(|(_, (_, created))| *created)
            .map(|(task, _)| task)
            .collect();
        if !created.is_empty() {
            let ids: Vec<Uuid> = created.iter().map(|task| task.id).collect();
            let reasons: Vec<&str> = created.iter().map(|task| task.reason.as_str()).collect();
            sqlx::query(
                "INSERT INTO task_events (task_id, kind, message)
                 SELECT id, 'created', reason FROM unnest($1::uuid[], $2::text[]) AS t(id, reason)",
            )
            .bind(&ids)
            .bind(&reasons)
            .execute(&mut *tx)
            .await?;
            let mut clusters: Vec<Uuid> = created.iter().map(|task| task.cluster_id).collect();
            clusters.sort_unstable();
            clusters.dedup();
            notify_tasks_ready(&mut tx, &clusters).await?;
        }
        tx.commit().await?;
        let ids: Vec<Uuid> = outcomes.iter().map(|(id, _)| *id).collect();
        let found: HashMap<Uuid, Task> =
            sqlx::query_as::<_, Task>(AssertSqlSafe(format!("{SELECT} WHERE id = ANY($1)")))
                .bind(&ids)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .map(|task| (task.id, task))
                .collect();
        outcomes
            .into_iter()
            .map(|(id, created)| {
                // Cloned: a later entry of the batch with the same idempotency key returns the same task.
                let task = found
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| StoreError::not_found("task", id))?;
                Ok(if created {
                    TaskInsert::Created(task)
                } else {
                    TaskInsert::Existing(task)
                })
            })
            .collect()
    }

    pub async fn task(&self, id: Uuid) -> Result<Task, StoreError> {
        sqlx::query_as::<_, Task>(AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("task", id))
    }

    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        Ok(sqlx::query_as::<_, Task>(AssertSqlSafe(format!(
            "{SELECT} WHERE ($1::uuid IS NULL OR cluster_id = $1) AND ($2::text IS NULL OR state = $2)
             ORDER BY created_at DESC LIMIT $3 OFFSET $4"
        )))
        .bind(filter.cluster_id)
        .bind(filter.state)
        .bind(filter.limit)
        .bind(filter.offset)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn task_events(&self, task_id: Uuid) -> Result<Vec<TaskEvent>, StoreError> {
        Ok(sqlx::query_as::<_, TaskEvent>(
            "SELECT at, kind, message FROM task_events WHERE task_id = $1 ORDER BY id",
        )
        .bind(task_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Leases up to `limit` pending tasks of `kinds` for the cluster to one agent stream. `SKIP LOCKED` lets
    /// concurrent streams (in any process) take different tasks instead of waiting on each other; the lock is
    /// `NO KEY UPDATE` so rows that merely reference the task (demo steps take a key-share lock through their
    /// foreign key) do not make it look taken.
    pub async fn lease_tasks(
        &self,
        cluster_id: Uuid,
        session_id: Uuid,
        kinds: &[TaskKind],
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        // One statement (the lease and its events), so a delivery costs one round trip and one commit.
        let leased = sqlx::query_as::<_, LeasedTask>(
            "WITH candidates AS (
                 SELECT id FROM tasks
                 WHERE cluster_id = $1 AND state = $6 AND kind = ANY($5)
                 ORDER BY created_at
                 LIMIT $2
                 FOR NO KEY UPDATE SKIP LOCKED),
             leased AS (
                 UPDATE tasks t SET state = $7, attempts = t.attempts + 1, lease_id = gen_random_uuid(),
                        lease_session_id = $3, lease_expires_at = now() + make_interval(secs => $4),
                        objects = '[]'::jsonb, error = NULL, updated_at = now()
                 FROM candidates c WHERE t.id = c.id
                 RETURNING t.id, t.lease_id, t.attempts, t.kind, t.payload, t.reason, t.lease_expires_at,
                           t.created_at, t.cluster_id, t.body, t.signature, t.signing_key_id, t.trace_parent),
             events AS (
                 INSERT INTO task_events (task_id, kind, message)
                 SELECT id, $8, 'delivered to agent (attempt ' || attempts || ')' FROM leased)
             SELECT * FROM leased",
        )
        .bind(cluster_id)
        .bind(limit)
        .bind(session_id)
        .bind(lease.as_secs_f64())
        .bind(kinds)
        .bind(TaskState::Pending)
        .bind(leased_state())
        .bind(TaskState::Leased.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(leased)
    }

    /// Which of `cluster_ids` have tasks of `kinds` waiting to be leased; one query for all of a process's
    /// streams (through the `tasks_open` index).
    pub async fn clusters_with_pending_tasks(
        &self,
        cluster_ids: &[Uuid],
        kinds: &[TaskKind],
    ) -> Result<Vec<Uuid>, StoreError> {
        if cluster_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT cluster_id FROM tasks
             WHERE cluster_id = ANY($1) AND state = $2 AND kind = ANY($3)",
        )
        .bind(cluster_ids)
        .bind(TaskState::Pending)
        .bind(kinds)
        .fetch_all(self.pool())
        .await?)
    }

    /// The agent accepted a delivery: leased -> running. False when the lease is no longer current.
    pub async fn mark_running(
        &self,
        cluster_id: Uuid,
        task_id: Uuid,
        lease_id: Uuid,
    ) -> Result<bool, StoreError> {
        // One statement with its event: acceptances come once per delivery.
        let started: Option<Uuid> = sqlx::query_scalar(
            "WITH started AS (
                 UPDATE tasks SET state = $5, started_at = coalesce(started_at, now()), updated_at = now()
                 WHERE id = $1 AND cluster_id = $2 AND lease_id = $3 AND state = $4
                 RETURNING id)
             INSERT INTO task_events (task_id, kind, message)
             SELECT id, $6, 'agent started the task' FROM started
             RETURNING task_id",
        )
        .bind(task_id)
        .bind(cluster_id)
        .bind(lease_id)
        .bind(leased_state())
        .bind(leased_state().start().expect("a leased task can start"))
        .bind(TaskState::Running.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(started.is_some())
    }

    /// Appends progress from the current lease holder. False when the lease is no longer current.
    pub async fn record_progress(
        &self,
        cluster_id: Uuid,
        task_id: Uuid,
        lease_id: Uuid,
        message: &str,
        objects: &[ObjectReport],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET objects = objects || $4::jsonb, updated_at = now()
             WHERE id = $1 AND cluster_id = $2 AND lease_id = $3 AND state = ANY($5)",
        )
        .bind(task_id)
        .bind(cluster_id)
        .bind(lease_id)
        .bind(Json(objects))
        .bind(held_states())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 && !message.is_empty() {
            add_event(&mut tx, task_id, "progress", message).await?;
        }
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records the lease holder's result. A retryable failure with attempts left goes back to pending.
    /// Returns the new state, or `None` when the report quotes a lease that is no longer current.
    #[tracing::instrument(
        name = "queue.complete",
        skip_all,
        fields(otel.name = "queue complete", %task_id, success = completion.success)
    )]
    pub async fn complete_task(
        &self,
        cluster_id: Uuid,
        task_id: Uuid,
        lease_id: Uuid,
        completion: &TaskCompletion,
    ) -> Result<Option<TaskState>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let current: Option<(TaskState, bool)> = sqlx::query_as(
            "SELECT state, attempts < max_attempts FROM tasks
             WHERE id = $1 AND cluster_id = $2 AND lease_id = $3 FOR UPDATE",
        )
        .bind(task_id)
        .bind(cluster_id)
        .bind(lease_id)
        .fetch_optional(&mut *tx)
        .await?;
        let end = if completion.success {
            AttemptEnd::Succeeded
        } else {
            AttemptEnd::Failed {
                retryable: completion.retryable,
            }
        };
        // A report quoting a lease that is gone (expired, cancelled, redelivered) changes nothing.
        let Some(state) =
            current.and_then(|(state, attempts_left)| state.end_attempt(end, attempts_left).ok())
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE tasks SET state = $2, error = $3, objects = $4, updated_at = now(),
                 lease_id = NULL, lease_session_id = NULL, lease_expires_at = NULL,
                 finished_at = CASE WHEN $5 THEN now() END
             WHERE id = $1",
        )
        .bind(task_id)
        .bind(state)
        .bind(&completion.error)
        .bind(Json(&completion.objects))
        .bind(state.is_final())
        .execute(&mut *tx)
        .await?;
        let message = match (state, &completion.error) {
            (TaskState::Succeeded, _) => "succeeded".to_string(),
            (TaskState::Pending, Some(error)) => format!("failed, will retry: {error}"),
            (_, Some(error)) => format!("failed: {error}"),
            (_, None) => "failed".to_string(),
        };
        add_event(&mut tx, task_id, state.as_str(), &message).await?;
        if let (TaskState::Failed, Some(status_message)) = (state, &completion.fails_cluster) {
            sqlx::query(
                "UPDATE clusters SET status = $3, status_message = $2, updated_at = now()
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(cluster_id)
            .bind(status_message)
            .bind(crate::domain::ClusterStatus::Failed)
            .execute(&mut *tx)
            .await?;
        }
        if state == TaskState::Pending {
            notify_task_ready(&mut tx, cluster_id).await?;
        }
        tx.commit().await?;
        Ok(Some(state))
    }

    /// Extends the leases an agent says it still holds.
    pub async fn renew_leases(
        &self,
        cluster_id: Uuid,
        leases: &[(Uuid, Uuid)],
        lease: Duration,
    ) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let (task_ids, lease_ids): (Vec<Uuid>, Vec<Uuid>) = leases.iter().copied().unzip();
        let result = sqlx::query(
            "UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $4)
             FROM unnest($2::uuid[], $3::uuid[]) AS l(task_id, lease_id)
             WHERE t.cluster_id = $1 AND t.id = l.task_id AND t.lease_id = l.lease_id
               AND t.state = ANY($5)",
        )
        .bind(cluster_id)
        .bind(&task_ids)
        .bind(&lease_ids)
        .bind(lease.as_secs_f64())
        .bind(held_states())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Returns tasks whose lease expired to pending (or fails them when attempts are used up). Any process may
    /// run this at any time.
    pub async fn expire_leases(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let expired: Vec<(Uuid, Uuid, TaskState, i32, bool)> = sqlx::query_as(
            "SELECT id, cluster_id, state, attempts, attempts < max_attempts FROM tasks
             WHERE state = ANY($1) AND lease_expires_at < now()
             FOR UPDATE SKIP LOCKED",
        )
        .bind(held_states())
        .fetch_all(&mut *tx)
        .await?;
        for (task_id, cluster_id, state, attempts, attempts_left) in &expired {
            let LeaseExpiry {
                next,
                attempt_counts,
            } = state
                .expire_lease(*attempts_left)
                .expect("only leased tasks are selected");
            let (error, message) = if !attempt_counts {
                (
                    None,
                    format!(
                        "delivery of attempt {attempts} was not acknowledged within the lease; \
                         redelivered without using up an attempt"
                    ),
                )
            } else if next == TaskState::Pending {
                (
                    None,
                    format!(
                        "lease of attempt {attempts} expired without a result; will be redelivered"
                    ),
                )
            } else {
                (
                    Some(format!(
                        "no result from the agent within the lease, {attempts} attempt(s)"
                    )),
                    format!(
                        "lease of attempt {attempts} expired without a result; no attempts left"
                    ),
                )
            };
            sqlx::query(
                "UPDATE tasks SET state = $2, error = coalesce($3, error),
                     finished_at = CASE WHEN $4 THEN now() END,
                     attempts = CASE WHEN $5 THEN attempts ELSE attempts - 1 END,
                     lease_id = NULL, lease_session_id = NULL, lease_expires_at = NULL, updated_at = now()
                 WHERE id = $1",
            )
            .bind(task_id)
            .bind(next)
            .bind(error)
            .bind(next.is_final())
            .bind(attempt_counts)
            .execute(&mut *tx)
            .await?;
            add_event(&mut tx, *task_id, next.as_str(), &message).await?;
            if next == TaskState::Pending {
                notify_task_ready(&mut tx, *cluster_id).await?;
            }
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    /// Deletes up to `limit` tasks that finished before `before`, oldest first, with their events. A task a demo
    /// step points at stays as that step's record, and so does one whose follow-up task still exists (it goes
    /// after the follow-up). Replicas may run this at once: each skips the rows another is deleting.
    pub async fn prune_finished_tasks(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM tasks WHERE id IN (
                 SELECT id FROM tasks t
                 WHERE finished_at < $1
                   AND NOT EXISTS (SELECT 1 FROM demo_steps s WHERE s.task_id = t.id)
                   AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = t.id)
                 ORDER BY finished_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(limit)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected())
    }

    /// Cancels a task that has not finished. When an agent holds it, the agent's stream is told to stop.
    pub async fn cancel_task(&self, task_id: Uuid, by: &str) -> Result<Task, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "UPDATE tasks t SET state = $4, error = 'cancelled by ' || $2, finished_at = now(),
                    updated_at = now(), lease_expires_at = NULL
             FROM (SELECT id, lease_id AS old_lease FROM tasks WHERE id = $1 FOR UPDATE) old
             WHERE t.id = old.id AND t.state = ANY($3)
             RETURNING t.cluster_id, old.old_lease",
        )
        .bind(task_id)
        .bind(by)
        .bind(cancellable_states())
        .bind(TaskState::Cancelled)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((cluster_id, lease_id)) = row else {
            tx.rollback().await?;
            let task = self.task(task_id).await?;
            return Err(StoreError::Conflict(format!(
                "task {task_id} is already {} and cannot be cancelled",
                task.state
            )));
        };
        add_event(
            &mut tx,
            task_id,
            TaskState::Cancelled.as_str(),
            &format!("cancelled by {by}"),
        )
        .await?;
        if let Some(lease_id) = lease_id {
            notify(
                &mut tx,
                channels::TASK_CANCELLED,
                &format!("{cluster_id}:{task_id}:{lease_id}"),
            )
            .await?;
        }
        tx.commit().await?;
        self.task(task_id).await
    }
}
