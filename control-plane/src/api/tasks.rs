//! `/api/v1/clusters/{id}/tasks` and `/api/v1/tasks`: submit, inspect, cancel tasks and read their logs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::json::JsonBody;
use super::query::QueryParams;
use crate::domain::taskspec::{ApplyPayload, FieldProblem, TaskSpec, Tier};
use crate::domain::{TaskKind, TaskState};
use crate::logs::TaskLogLine;
use crate::store::{NewTask, Task, TaskEvent, TaskFilter, TaskInsert};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    #[schema(schema_with = submitted_kinds)]
    pub kind: String,
    /// For `apply`: multi-document Kubernetes YAML; each document needs apiVersion, kind and metadata.name.
    pub manifest: Option<String>,
    /// How long to wait for Deployments to become available; 0 = do not wait.
    #[schema(minimum = 0, maximum = 3600, default = 300)]
    pub wait_timeout_seconds: Option<u32>,
    /// Take ownership of fields another field manager owns.
    #[serde(default)]
    #[schema(default = false)]
    pub force_conflicts: bool,
    /// The same key on the same cluster returns the task created first instead of a new one.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
    #[schema(minimum = 1, maximum = 20, default = 3)]
    pub max_attempts: Option<i32>,
    /// Free text recorded as the task's reason.
    pub reason: Option<String>,
}

/// The kinds of task the API takes.
fn submitted_kinds() -> Object {
    super::one_of([TaskKind::Apply.as_str()])
}

/// Submit a task to the cluster's agent (operator)
///
/// With an idempotency key, repeating the request returns the first task (200) instead of creating another; the
/// same key with a different request is a 409.
#[utoipa::path(
    post,
    path = "/clusters/{id}/tasks",
    operation_id = "create_task",
    params(("id" = Uuid, Path, description = "The cluster")),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = Task),
        (status = 200, description = "Existing task with the same idempotency key", body = Task),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 409, description = "The idempotency key was used for another request", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    Path(cluster_id): Path<Uuid>,
    JsonBody(body): JsonBody<CreateTask>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    principal.require(Role::Operator, "submit tasks")?;
    let mut problems = Problems::default();
    let task = new_apply_task(&state, &principal, cluster_id, body, "", &mut problems);
    problems.into_result()?;
    state.store.live_cluster(cluster_id).await?;
    let task = task.expect("a task without problems");
    let inserted = state.store.insert_task(task).await?;
    Ok(match inserted {
        TaskInsert::Created(task) => {
            tracing::info!(task_id = %task.id, cluster_id = %cluster_id, by = %principal.label(), "task created");
            (StatusCode::CREATED, Json(task))
        }
        TaskInsert::Existing(task) => (StatusCode::OK, Json(task)),
    })
}

/// Checks one submitted apply task, adding its problems under `field_prefix`, and builds it (signed) when it
/// has none.
fn new_apply_task(
    state: &ApiState,
    principal: &Principal,
    cluster_id: Uuid,
    body: CreateTask,
    field_prefix: &str,
    problems: &mut Problems,
) -> Option<NewTask> {
    let before = problems.count();
    let field = |name: &str| format!("{field_prefix}{name}");
    if body.kind.parse::<TaskKind>() != Ok(TaskKind::Apply) {
        problems.add(field("kind"), "must be apply");
    }
    let payload = ApplyPayload {
        manifest: body.manifest.clone().unwrap_or_default(),
        wait_timeout_seconds: body.wait_timeout_seconds.unwrap_or(300),
        force_conflicts: body.force_conflicts,
        prune: None,
        tier: match principal.role {
            Role::Admin => Tier::Admin,
            _ => Tier::Operator,
        },
    };
    if body.manifest.is_none() {
        problems.add(field("manifest"), "is required for apply tasks");
    } else {
        for problem in payload.validate(&state.config.apply_policy.policy()) {
            problems.add(field(&problem.field), problem.message);
        }
    }
    if let Some(key) = &body.idempotency_key
        && (key.is_empty() || key.len() > 200)
    {
        problems.add(field("idempotency_key"), "must be 1-200 characters");
    }
    let max_attempts = body
        .max_attempts
        .unwrap_or(state.config.tasks.default_max_attempts);
    if !(1..=20).contains(&max_attempts) {
        problems.add(field("max_attempts"), "must be between 1 and 20");
    }
    if problems.count() > before {
        return None;
    }
    let mut task = NewTask {
        id: Uuid::new_v4(),
        cluster_id,
        spec: TaskSpec::Apply(payload),
        reason: body
            .reason
            .unwrap_or_else(|| format!("submitted through the API by {}", principal.label())),
        idempotency_key: body.idempotency_key,
        parent_id: None,
        created_by: principal.label(),
        max_attempts,
        seal: None,
        demo_step: None,
        trace_parent: telemetry::current_traceparent(),
    };
    state
        .signer
        .seal(&mut task)
        .expect("apply tasks run on agents");
    Some(task)
}

/// At most this many tasks in one batch: a batch is one transaction, and its request must fit the body limit.
pub const MAX_BATCH_TASKS: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskBatch {
    /// 1 to 1,000 tasks, for any clusters.
    pub tasks: Vec<BatchedTask>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchedTask {
    pub cluster_id: Uuid,
    pub task: CreateTask,
}

#[derive(Serialize, ToSchema)]
pub struct TaskBatch {
    /// In the order submitted.
    pub tasks: Vec<BatchedOutcome>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchedOutcome {
    /// False when the idempotency key returned a task created earlier.
    pub created: bool,
    pub task: Task,
}

/// Submit many tasks, to one cluster or many, in one transaction (operator)
///
/// All or nothing: a problem with any task (named by its index, e.g. `tasks[3].task.manifest`), a cluster that
/// does not exist, or an idempotency key used before for a different request refuses the whole batch. Each
/// task otherwise behaves as if submitted alone, idempotency keys included.
#[utoipa::path(
    post,
    path = "/tasks/batch",
    operation_id = "create_task_batch",
    request_body = CreateTaskBatch,
    responses(
        (status = 200, description = "Every task, created or existing, in the order submitted", body = TaskBatch),
        (status = 409, description = "An idempotency key was used for another request", body = ErrorBody),
        (status = 422, description = "The batch or one of its tasks is invalid", body = ErrorBody),
    )
)]
pub async fn create_batch(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateTaskBatch>,
) -> Result<Json<TaskBatch>, ApiError> {
    principal.require(Role::Operator, "submit tasks")?;
    if !(1..=MAX_BATCH_TASKS).contains(&body.tasks.len()) {
        return Err(ApiError::validation(vec![FieldProblem {
            field: "tasks".into(),
            message: format!("must hold 1 to {MAX_BATCH_TASKS} tasks"),
        }]));
    }
    let mut problems = Problems::default();
    let cluster_ids: Vec<Uuid> = body.tasks.iter().map(|t| t.cluster_id).collect();
    let live = state.store.live_cluster_ids(&cluster_ids).await?;
    let mut tasks = Vec::with_capacity(body.tasks.len());
    for (i, batched) in body.tasks.into_iter().enumerate() {
        if !live.contains(&batched.cluster_id) {
            problems.add(format!("tasks[{i}].cluster_id"), "no such cluster");
        }
        let prefix = format!("tasks[{i}].task.");
        tasks.extend(new_apply_task(
            &state,
            &principal,
            batched.cluster_id,
            batched.task,
            &prefix,
            &mut problems,
        ));
    }
    problems.into_result()?;
    let inserted = state.store.insert_tasks(tasks).await?;
    let created = inserted
        .iter()
        .filter(|i| matches!(i, TaskInsert::Created(_)))
        .count();
    tracing::info!(tasks = inserted.len(), created, by = %principal.label(), "task batch submitted");
    Ok(Json(TaskBatch {
        tasks: inserted
            .into_iter()
            .map(|inserted| match inserted {
                TaskInsert::Created(task) => BatchedOutcome {
                    created: true,
                    task,
                },
                TaskInsert::Existing(task) => BatchedOutcome {
                    created: false,
                    task,
                },
            })
            .collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub cluster_id: Option<Uuid>,
    #[param(value_type = Option<TaskState>)]
    pub state: Option<String>,
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// List tasks, newest first
#[utoipa::path(
    get,
    path = "/tasks",
    operation_id = "list_tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "Tasks", body = [Task]),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let mut problems = Problems::default();
    let task_state = match query.state.as_deref().map(str::parse::<TaskState>) {
        None => None,
        Some(Ok(parsed)) => Some(parsed),
        Some(Err(_)) => {
            problems.add(
                "state",
                "must be pending, leased, running, succeeded, failed or cancelled",
            );
            None
        }
    };
    let (limit, offset) = problems.check_page(query.limit, query.offset);
    problems.into_result()?;
    let filter = TaskFilter {
        cluster_id: query.cluster_id,
        state: task_state,
        limit,
        offset,
    };
    Ok(Json(state.store.tasks(&filter).await?))
}

#[derive(Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub events: Vec<TaskEvent>,
}

/// Get a task with its state, attempts, per-object results and events
#[utoipa::path(
    get,
    path = "/tasks/{id}",
    operation_id = "get_task",
    params(("id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "The task", body = TaskDetail),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<TaskDetail>, ApiError> {
    let task = state.store.task(id).await?;
    let events = state.store.task_events(id).await?;
    Ok(Json(TaskDetail { task, events }))
}

/// Cancel a task that has not finished (operator); an agent running it is told to stop
#[utoipa::path(
    post,
    path = "/tasks/{id}/cancel",
    operation_id = "cancel_task",
    params(("id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "Cancelled", body = Task),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The task has finished", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Task>, ApiError> {
    principal.require(Role::Operator, "cancel tasks")?;
    let task = state.store.cancel_task(id, &principal.label()).await?;
    tracing::info!(task_id = %id, by = %principal.label(), "task cancelled");
    Ok(Json(task))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only lines after this time (Unix nanoseconds), for paging and tailing.
    pub after: Option<i64>,
    #[param(minimum = 1, maximum = 10000, default = 1000)]
    pub limit: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TaskLogLine)]
pub struct LogLineView {
    pub time: chrono::DateTime<chrono::Utc>,
    pub ts_nanos: i64,
    #[schema(schema_with = super::demo_logs::level_schema)]
    pub level: String,
    pub message: String,
    pub fields: serde_json::Value,
    pub source: String,
}

#[derive(Serialize, ToSchema)]
pub struct TaskLogs {
    pub task_id: Uuid,
    pub lines: Vec<LogLineView>,
    /// Pass as `after` to get the next page; absent when this page was not full.
    pub next_after: Option<i64>,
}

/// The task's log lines from ClickHouse, in time order
#[utoipa::path(
    get,
    path = "/tasks/{id}/logs",
    operation_id = "task_logs",
    params(("id" = Uuid, Path, description = "The task"), LogQuery),
    responses(
        (status = 200, description = "Log lines", body = TaskLogs),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn logs(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
    QueryParams(query): QueryParams<LogQuery>,
) -> Result<Json<TaskLogs>, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation(vec![
            crate::domain::taskspec::FieldProblem {
                field: "limit".into(),
                message: "must be between 1 and 10000".into(),
            },
        ]));
    }
    let task = state.store.task(id).await?;
    let lines = state
        .logs
        .task_logs(
            &task.cluster_id.to_string(),
            &id.to_string(),
            query.after.unwrap_or(i64::MIN),
            limit,
        )
        .await
        .map_err(ApiError::internal)?;
    let next_after = (lines.len() as u64 == limit)
        .then(|| lines.last().map(|l| l.ts_nanos))
        .flatten();
    Ok(Json(TaskLogs {
        task_id: id,
        lines: lines.into_iter().map(view).collect(),
        next_after,
    }))
}

fn view(line: TaskLogLine) -> LogLineView {
    LogLineView {
        time: chrono::DateTime::from_timestamp_nanos(line.ts_nanos),
        ts_nanos: line.ts_nanos,
        level: line.level,
        message: line.message,
        fields: serde_json::from_str(&line.fields).unwrap_or(serde_json::Value::Null),
        source: line.source,
    }
}
