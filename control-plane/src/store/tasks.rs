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
    /// The stream the task was leased to.
    pub session_id: Uuid,
}

/// A stream asking for work: up to `room` pending tasks of its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLease {
    pub cluster_id: Uuid,
    pub session_id: Uuid,
    pub room: i64,
}

/// What a report from a runner quotes: the task and the lease it was delivered under, on its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRef {
    pub cluster_id: Uuid,
    pub task_id: Uuid,
    pub lease_id: Uuid,
}

#[derive(Debug, Clone)]
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
    let payloads: Vec<String> = cluster_ids.iter().map(Uuid::to_string).collect();
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS p(payload)")
        .bind(channels::TASK_READY)
        .bind(&payloads)
        .execute(&mut *conn)
        .await?;
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
        let columns = NewTaskColumns::of(&tasks);
        // One statement for the whole batch, planned for its arrays (see `lease_tasks_for_streams`). A key
        // used twice in the batch inserts its first task only; the second finds it below.
        let inserted: std::collections::HashSet<Uuid> = sqlx::query_scalar(
            "INSERT INTO tasks (id, cluster_id, kind, payload, state, reason, idempotency_key, parent_id,
                                created_by, max_attempts, body, signature, signing_key_id, demo_step_id, trace_parent)
             SELECT id, cluster_id, kind, payload, $15, reason, idempotency_key, parent_id, created_by, max_attempts,
                    body, signature, signing_key_id, demo_step_id, trace_parent
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::uuid[],
                         $8::text[], $9::int[], $10::bytea[], $11::bytea[], $12::text[], $13::bigint[], $14::text[])
                  WITH ORDINALITY AS n(id, cluster_id, kind, payload, reason, idempotency_key, parent_id, created_by,
                                       max_attempts, body, signature, signing_key_id, demo_step_id, trace_parent, ord)
             ORDER BY ord
             ON CONFLICT (cluster_id, idempotency_key) DO NOTHING RETURNING id",
        )
        .persistent(false)
        .bind(&columns.ids)
        .bind(&columns.cluster_ids)
        .bind(&columns.kinds)
        .bind(&columns.payloads)
        .bind(&columns.reasons)
        .bind(&columns.idempotency_keys)
        .bind(&columns.parent_ids)
        .bind(&columns.created_by)
        .bind(&columns.max_attempts)
        .bind(&columns.bodies)
        .bind(&columns.signatures)
        .bind(&columns.key_ids)
        .bind(&columns.demo_steps)
        .bind(&columns.trace_parents)
        .bind(TaskState::Pending)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        // The tasks whose idempotency key was taken, earlier or in this batch: the same request again returns
        // the task it made; a different request under the same key refuses the batch.
        let (taken_clusters, taken_keys): (Vec<Uuid>, Vec<&str>) = tasks
            .iter()
            .filter(|task| !inserted.contains(&task.id))
            .map(|task| {
                (
                    task.cluster_id,
                    task.idempotency_key.as_deref().unwrap_or_default(),
                )
            })
            .unzip();
        let holders: HashMap<(Uuid, String), (Uuid, TaskKind, Json<serde_json::Value>)> =
            if taken_keys.is_empty() {
                HashMap::new()
            } else {
                sqlx::query_as::<_, (Uuid, String, Uuid, TaskKind, Json<serde_json::Value>)>(
                    "SELECT t.cluster_id, t.idempotency_key, t.id, t.kind, t.payload
                     FROM tasks t JOIN unnest($1::uuid[], $2::text[]) AS k(cluster_id, idempotency_key)
                       ON t.cluster_id = k.cluster_id AND t.idempotency_key = k.idempotency_key",
                )
                .persistent(false)
                .bind(&taken_clusters)
                .bind(&taken_keys)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(cluster_id, key, id, kind, payload)| ((cluster_id, key), (id, kind, payload)))
                .collect()
            };
        // (task id, created) in submission order.
        let mut outcomes: Vec<(Uuid, bool)> = Vec::with_capacity(tasks.len());
        for (index, new) in tasks.iter().enumerate() {
            if inserted.contains(&new.id) {
                outcomes.push((new.id, true));
                continue;
            }
            let key = new.idempotency_key.clone().unwrap_or_default();
            let Some((existing, existing_kind, existing_payload)) =
                holders.get(&(new.cluster_id, key.clone()))
            else {
                return Err(StoreError::Conflict(format!(
                    "task {} was not inserted and no task holds its idempotency key {key:?}",
                    new.id
                )));
            };
            if *existing_kind != columns.kinds[index]
                || existing_payload.0 != columns.payloads[index].0
            {
                let which = if tasks.len() > 1 {
                    format!("task {index} of the batch: ")
                } else {
                    String::new()
                };
                return Err(StoreError::Conflict(format!(
                    "{which}idempotency key {key:?} was already used for task {existing} with a different request"
                )));
            }
            outcomes.push((*existing, false));
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
                .persistent(false)
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

    /// Leases pending tasks of `kinds` for many streams at once, each up to its room, oldest first; returns
    /// each request's tasks in the requests' order. `SKIP LOCKED` lets concurrent leases (in any process) take
    /// different tasks instead of waiting on each other; the lock is `NO KEY UPDATE` so rows that merely
    /// reference the task (demo steps take a key-share lock through their foreign key) do not make it look
    /// taken. Requests of one cluster go in separate statements, since within one statement a row it has
    /// already locked is not skipped.
    pub async fn lease_tasks_for_streams(
        &self,
        requests: &[StreamLease],
        kinds: &[TaskKind],
        lease: Duration,
    ) -> Result<Vec<Vec<LeasedTask>>, StoreError> {
        let mut leased: Vec<Vec<LeasedTask>> = vec![Vec::new(); requests.len()];
        for round in rounds_of_distinct_clusters(requests) {
            let (mut cluster_ids, mut session_ids, mut rooms) =
                (Vec::new(), Vec::new(), Vec::new());
            for &index in &round {
                let request = &requests[index];
                cluster_ids.push(request.cluster_id);
                session_ids.push(request.session_id);
                rooms.push(request.room);
            }
            // One statement (the leases and their events): one round trip and one commit per round. Not
            // prepared, like every statement here that takes a batch as arrays: a prepared statement soon runs
            // a generic plan, made for arrays of ten and with the tables' statistics of that moment. Planned
            // each time, it sees the batch's size and the tables'. Candidates come from `task_queue` (open
            // tasks only) in order; the lock is taken on the `tasks` row, and its state checked there again,
            // since a lease that lost the race for a row finds it changed once the winner commits.
            let rows = sqlx::query_as::<_, LeasedTask>(
                "WITH requests AS (
                     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS r(cluster_id, session_id, room)),
                 candidates AS (
                     SELECT c.id, r.session_id FROM requests r
                     CROSS JOIN LATERAL (
                         SELECT t.id FROM task_queue q JOIN tasks t ON t.id = q.task_id
                         WHERE q.cluster_id = r.cluster_id AND NOT q.held AND q.kind = ANY($4)
                           AND t.state = $8
                         ORDER BY q.created_at
                         LIMIT r.room
                         FOR NO KEY UPDATE OF t SKIP LOCKED) c),
                 leased AS (
                     UPDATE tasks t SET state = $5, attempts = t.attempts + 1, lease_id = gen_random_uuid(),
                            lease_session_id = c.session_id,
                            lease_expires_at = now() + make_interval(secs => $6),
                            objects = '[]'::jsonb, error = NULL, updated_at = now()
                     FROM candidates c WHERE t.id = c.id
                     RETURNING t.id, t.lease_id, t.attempts, t.kind, t.payload, t.reason, t.lease_expires_at,
                               t.created_at, t.cluster_id, t.body, t.signature, t.signing_key_id, t.trace_parent,
                               t.lease_session_id AS session_id),
                 events AS (
                     INSERT INTO task_events (task_id, kind, message)
                     SELECT id, $7, 'delivered to agent (attempt ' || attempts || ')' FROM leased)
                 SELECT * FROM leased ORDER BY created_at",
            )
            .persistent(false)
            .bind(&cluster_ids)
            .bind(&session_ids)
            .bind(&rooms)
            .bind(kinds)
            .bind(leased_state())
            .bind(lease.as_secs_f64())
            .bind(TaskState::Leased.as_str())
            .bind(TaskState::Pending)
            .fetch_all(self.pool())
            .await?;
            let by_session: HashMap<Uuid, usize> = round
                .iter()
                .map(|&index| (requests[index].session_id, index))
                .collect();
            for task in rows {
                let index = by_session[&task.session_id];
                leased[index].push(task);
            }
        }
        Ok(leased)
    }

    /// Which of `cluster_ids` have tasks of `kinds` waiting to be leased; one query for all of a process's
    /// streams (through `task_queue`, which holds open tasks only).
    pub async fn clusters_with_pending_tasks(
        &self,
        cluster_ids: &[Uuid],
        kinds: &[TaskKind],
    ) -> Result<Vec<Uuid>, StoreError> {
        if cluster_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT cluster_id FROM task_queue
             WHERE cluster_id = ANY($1) AND NOT held AND kind = ANY($2)",
        )
        .persistent(false)
        .bind(cluster_ids)
        .bind(kinds)
        .fetch_all(self.pool())
        .await?)
    }

    /// The agent accepted deliveries: leased -> running, in one statement with their events. For each, whether
    /// its lease was current (a stale one changes nothing).
    pub async fn mark_running_many(&self, accepted: &[LeaseRef]) -> Result<Vec<bool>, StoreError> {
        // In id order, so that concurrent batches lock shared rows in the same order.
        let mut sorted: Vec<&LeaseRef> = accepted.iter().collect();
        sorted.sort_by_key(|accepted| accepted.task_id);
        let task_ids: Vec<Uuid> = sorted.iter().map(|a| a.task_id).collect();
        let cluster_ids: Vec<Uuid> = sorted.iter().map(|a| a.cluster_id).collect();
        let lease_ids: Vec<Uuid> = sorted.iter().map(|a| a.lease_id).collect();
        let started: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "WITH started AS (
                 UPDATE tasks t SET state = $5, started_at = coalesce(t.started_at, now()), updated_at = now()
                 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS a(id, cluster_id, lease_id)
                 WHERE t.id = a.id AND t.cluster_id = a.cluster_id AND t.lease_id = a.lease_id AND t.state = $4
                 RETURNING t.id, t.lease_id),
             events AS (
                 INSERT INTO task_events (task_id, kind, message)
                 SELECT id, $6, 'agent started the task' FROM started)
             SELECT id, lease_id FROM started",
        )
        .persistent(false)
        .bind(&task_ids)
        .bind(&cluster_ids)
        .bind(&lease_ids)
        .bind(leased_state())
        .bind(leased_state().start().expect("a leased task can start"))
        .bind(TaskState::Running.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(accepted
            .iter()
            .map(|a| started.contains(&(a.task_id, a.lease_id)))
            .collect())
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
        let report = LeaseRef {
            cluster_id,
            task_id,
            lease_id,
        };
        let mut states = self.complete_tasks(&[(report, completion.clone())]).await?;
        Ok(states.remove(0))
    }

    /// Records many results in one transaction: for each, the new state, or `None` when it quotes a lease that
    /// is no longer current (expired, cancelled, redelivered, or already reported earlier in the batch).
    pub async fn complete_tasks(
        &self,
        reports: &[(LeaseRef, TaskCompletion)],
    ) -> Result<Vec<Option<TaskState>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let task_ids: Vec<Uuid> = reports.iter().map(|(report, _)| report.task_id).collect();
        // Locked in id order, so that concurrent batches wait for each other instead of deadlocking.
        let rows: Vec<(Uuid, Uuid, Option<Uuid>, TaskState, bool)> = sqlx::query_as(
            "SELECT id, cluster_id, lease_id, state, attempts < max_attempts FROM tasks
             WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .persistent(false)
        .bind(&task_ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut current: HashMap<Uuid, (Uuid, Option<Uuid>, TaskState, bool)> = rows
            .into_iter()
            .map(|(id, cluster_id, lease_id, state, attempts_left)| {
                (id, (cluster_id, lease_id, state, attempts_left))
            })
            .collect();
        let mut states = Vec::with_capacity(reports.len());
        let mut ended = EndedAttempts::default();
        for (report, completion) in reports {
            let state = current
                .get_mut(&report.task_id)
                .filter(|(cluster_id, lease_id, _, _)| {
                    *cluster_id == report.cluster_id && *lease_id == Some(report.lease_id)
                })
                .and_then(|(_, lease_id, state, attempts_left)| {
                    let end = if completion.success {
                        AttemptEnd::Succeeded
                    } else {
                        AttemptEnd::Failed {
                            retryable: completion.retryable,
                        }
                    };
                    let next = state.end_attempt(end, *attempts_left).ok()?;
                    // A second report of the same lease in this batch finds it gone, as it would later.
                    *lease_id = None;
                    Some(next)
                });
            if let Some(state) = state {
                ended.push(report, completion, state);
            }
            states.push(state);
        }
        if !ended.task_ids.is_empty() {
            ended.write(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(states)
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
        .persistent(false)
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
            "SELECT t.id, t.cluster_id, t.state, t.attempts, t.attempts < t.max_attempts
                 FROM task_queue q JOIN tasks t ON t.id = q.task_id
                 WHERE q.held AND t.state = ANY($1) AND t.lease_expires_at < now()
                 FOR UPDATE OF t SKIP LOCKED",
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

/// Splits lease requests into rounds in which no cluster appears twice, keeping their order.
fn rounds_of_distinct_clusters(requests: &[StreamLease]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<(std::collections::HashSet<Uuid>, Vec<usize>)> = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        if request.room <= 0 {
            continue;
        }
        match rounds
            .iter_mut()
            .find(|(clusters, _)| !clusters.contains(&request.cluster_id))
        {
            Some((clusters, round)) => {
                clusters.insert(request.cluster_id);
                round.push(index);
            }
            None => rounds.push(([request.cluster_id].into(), vec![index])),
        }
    }
    rounds.into_iter().map(|(_, round)| round).collect()
}

/// The attempts a batch of results ends, written with one statement per table.
#[derive(Default)]
struct EndedAttempts {
    task_ids: Vec<Uuid>,
    states: Vec<TaskState>,
    errors: Vec<Option<String>>,
    objects: Vec<Json<Vec<ObjectReport>>>,
    finished: Vec<bool>,
    messages: Vec<String>,
    /// Tasks that failed for good taking their cluster with them: (cluster, status message).
    failed_clusters: Vec<(Uuid, String)>,
    /// Clusters with a task back to pending, to be notified.
    retried_clusters: Vec<Uuid>,
}

impl EndedAttempts {
    fn push(&mut self, report: &LeaseRef, completion: &TaskCompletion, state: TaskState) {
        let message = match (state, &completion.error) {
            (TaskState::Succeeded, _) => "succeeded".to_string(),
            (TaskState::Pending, Some(error)) => format!("failed, will retry: {error}"),
            (_, Some(error)) => format!("failed: {error}"),
            (_, None) => "failed".to_string(),
        };
        self.task_ids.push(report.task_id);
        self.states.push(state);
        self.errors.push(completion.error.clone());
        self.objects.push(Json(completion.objects.clone()));
        self.finished.push(state.is_final());
        self.messages.push(message);
        if let (TaskState::Failed, Some(status_message)) = (state, &completion.fails_cluster) {
            self.failed_clusters
                .push((report.cluster_id, status_message.clone()));
        }
        if state == TaskState::Pending && !self.retried_clusters.contains(&report.cluster_id) {
            self.retried_clusters.push(report.cluster_id);
        }
    }

    async fn write(&self, tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tasks t SET state = e.state, error = e.error, objects = e.objects, updated_at = now(),
                 lease_id = NULL, lease_session_id = NULL, lease_expires_at = NULL,
                 finished_at = CASE WHEN e.finished THEN now() END
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bool[])
                  AS e(id, state, error, objects, finished)
             WHERE t.id = e.id",
        )
        .persistent(false)
        .bind(&self.task_ids)
        .bind(&self.states)
        .bind(&self.errors)
        .bind(&self.objects)
        .bind(&self.finished)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO task_events (task_id, kind, message)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])",
        )
        .persistent(false)
        .bind(&self.task_ids)
        .bind(&self.states)
        .bind(&self.messages)
        .execute(&mut *tx)
        .await?;
        for (cluster_id, status_message) in &self.failed_clusters {
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
        if !self.retried_clusters.is_empty() {
            notify_tasks_ready(tx, &self.retried_clusters).await?;
        }
        Ok(())
    }
}

/// New tasks as columns, for one `unnest`.
struct NewTaskColumns {
    ids: Vec<Uuid>,
    cluster_ids: Vec<Uuid>,
    kinds: Vec<TaskKind>,
    payloads: Vec<Json<serde_json::Value>>,
    reasons: Vec<String>,
    idempotency_keys: Vec<Option<String>>,
    parent_ids: Vec<Option<Uuid>>,
    created_by: Vec<String>,
    max_attempts: Vec<i32>,
    bodies: Vec<Option<Vec<u8>>>,
    signatures: Vec<Option<Vec<u8>>>,
    key_ids: Vec<Option<String>>,
    demo_steps: Vec<Option<i64>>,
    trace_parents: Vec<Option<String>>,
}

impl NewTaskColumns {
    fn of(tasks: &[NewTask]) -> Self {
        Self {
            ids: tasks.iter().map(|task| task.id).collect(),
            cluster_ids: tasks.iter().map(|task| task.cluster_id).collect(),
            kinds: tasks.iter().map(|task| task.spec.kind()).collect(),
            payloads: tasks.iter().map(|task| Json(task.spec.payload())).collect(),
            reasons: tasks.iter().map(|task| task.reason.clone()).collect(),
            idempotency_keys: tasks
                .iter()
                .map(|task| task.idempotency_key.clone())
                .collect(),
            parent_ids: tasks.iter().map(|task| task.parent_id).collect(),
            created_by: tasks.iter().map(|task| task.created_by.clone()).collect(),
            max_attempts: tasks.iter().map(|task| task.max_attempts).collect(),
            bodies: tasks
                .iter()
                .map(|task| task.seal.as_ref().map(|s| s.body.clone()))
                .collect(),
            signatures: tasks
                .iter()
                .map(|task| task.seal.as_ref().map(|s| s.signature.clone()))
                .collect(),
            key_ids: tasks
                .iter()
                .map(|task| task.seal.as_ref().map(|s| s.key_id.clone()))
                .collect(),
            demo_steps: tasks.iter().map(|task| task.demo_step).collect(),
            trace_parents: tasks.iter().map(|task| task.trace_parent.clone()).collect(),
        }
    }
}
