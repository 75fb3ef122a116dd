//! `/api/v1/clusters`: registered clusters, their agent state, and agent bootstrap tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::LINK;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::json::JsonBody;
use super::query::QueryParams;
use crate::agents::install::{self, InstallBundle, InstallInputs};
use crate::crypto::{BOOTSTRAP_TOKEN_PREFIX, OneTimeSecret};
use crate::domain::taskspec::{FieldProblem, TaskSpec};
use crate::domain::{ClusterRole, LogSelection, Provisioning};
use crate::provisioner;
use crate::store::{
    Cluster, ClusterPage, NewCluster, NewTask, OfflineReport, SessionRow, StoreError, Task,
    TaskInsert,
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    pub region_id: Uuid,
    pub name: String,
    #[serde(default = "user_role")]
    #[schema(value_type = ClusterRole, default = "user")]
    pub role: String,
    pub api_endpoint: Option<String>,
    /// Provision the cluster with Terraform instead of registering an existing one.
    pub provision: Option<ProvisionRequest>,
    /// With `provision`: only plan (preview the resource changes); `POST /clusters/{id}/provision` applies.
    #[serde(default)]
    #[schema(default = false)]
    pub plan_only: bool,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// Root stack under terraform/region-cluster/; defaults to the region's cloud provider.
    pub stack: Option<String>,
    /// Terraform variables of the stack (non-secret; credentials come from the cloud account).
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterCreated {
    #[serde(flatten)]
    pub cluster: Cluster,
    /// The Terraform task started for a provisioned cluster.
    pub task: Option<Task>,
}

fn user_role() -> String {
    "user".into()
}

/// Register an existing cluster by hand (operator)
///
/// With `provision`, the control plane provisions the cluster with Terraform instead, and the answer carries the
/// Terraform task.
#[utoipa::path(
    post,
    path = "/clusters",
    operation_id = "create_cluster",
    request_body = CreateCluster,
    responses(
        (status = 201, description = "Registered; status `registered` until its agent connects", body = ClusterCreated),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateCluster>,
) -> Result<(StatusCode, Json<ClusterCreated>), ApiError> {
    principal.require(Role::Operator, "register clusters")?;
    let mut problems = Problems::default();
    problems.check_name("name", &body.name);
    let role = body.role.parse::<ClusterRole>();
    if role.is_err() {
        problems.add("role", "must be user or management");
    }
    if let Some(endpoint) = &body.api_endpoint
        && url::Url::parse(endpoint).is_err()
    {
        problems.add(
            "api_endpoint",
            "must be a URL such as https://10.0.0.1:6443",
        );
    }
    if body.plan_only && body.provision.is_none() {
        problems.add("plan_only", "needs `provision`");
    }
    let provision_spec = match &body.provision {
        None => None,
        Some(request) => {
            let region = state.store.region(body.region_id).await.ok();
            let stack = request
                .stack
                .clone()
                .or_else(|| region.as_ref().map(|r| r.provider.clone()))
                .unwrap_or_default();
            match &state.config.provisioning {
                None => problems.add(
                    "provision",
                    "Terraform provisioning is not configured on this control plane",
                ),
                Some(_) if stack == "existing" => problems.add(
                    "provision",
                    "clouds of provider `existing` hold clusters that already exist; register them without `provision`",
                ),
                // An unknown region is reported by the insert below.
                Some(_) if stack.is_empty() => {}
                Some(config) => match provisioner::inputs::offered(config, &stack) {
                    Ok(inputs) => {
                        problems.extend(inputs.check(&request.variables, "provision.variables"))
                    }
                    Err(error) => problems.add("provision.stack", error.to_string()),
                },
            }
            Some(serde_json::json!({"stack": stack, "variables": request.variables}))
        }
    };
    problems.into_result()?;
    let Ok(role) = role else {
        unreachable!("an unknown role is reported above")
    };
    let cluster = state
        .store
        .insert_cluster(NewCluster {
            region_id: body.region_id,
            name: body.name,
            role,
            api_endpoint: body.api_endpoint,
            provision_spec,
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => ApiError::validation(vec![FieldProblem {
                field: "region_id".into(),
                message: format!("no region {}", body.region_id),
            }]),
            other => other.into(),
        })?;
    tracing::info!(cluster_id = %cluster.id, name = %cluster.name, by = %principal.label(), "cluster registered");
    let task = if body.provision.is_some() {
        let spec = if body.plan_only {
            TaskSpec::TerraformPlan
        } else {
            TaskSpec::TerraformApply
        };
        Some(terraform_task(&state, &principal, cluster.id, spec, None).await?)
    } else {
        None
    };
    let cluster = state.store.cluster(cluster.id).await?;
    Ok((StatusCode::CREATED, Json(ClusterCreated { cluster, task })))
}

/// Queues a Terraform run for a provisioned cluster.
async fn terraform_task(
    state: &ApiState,
    principal: &Principal,
    cluster_id: Uuid,
    spec: TaskSpec,
    idempotency_key: Option<String>,
) -> Result<Task, ApiError> {
    let reason = format!("{} requested by {}", spec.kind(), principal.label());
    let inserted = state
        .store
        .insert_task(NewTask {
            id: Uuid::new_v4(),
            cluster_id,
            spec,
            reason,
            idempotency_key,
            parent_id: None,
            created_by: principal.label(),
            max_attempts: state.config.tasks.default_max_attempts,
            seal: None,
            demo_step: None,
            trace_parent: telemetry::current_traceparent(),
        })
        .await?;
    Ok(match inserted {
        TaskInsert::Created(task) | TaskInsert::Existing(task) => task,
    })
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerraformRequest {
    pub idempotency_key: Option<String>,
    /// Replaces the cluster's Terraform variables first (e.g. to fix the input of a failed provision).
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /clusters/{id}/{provision,plan,drift-check}`: a Terraform run on a provisioned cluster.
async fn run_terraform(
    state: ApiState,
    principal: Principal,
    id: Uuid,
    body: axum::body::Bytes,
    spec: TaskSpec,
    action: &str,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    principal.require(Role::Operator, action)?;
    let body: TerraformRequest = if body.is_empty() {
        Default::default()
    } else {
        super::json::parse(&body)?
    };
    let cluster = state.store.live_cluster(id).await?;
    if cluster.provisioning != Provisioning::Terraform {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "cluster {} was registered by hand, not provisioned with Terraform",
                cluster.name
            ),
        ));
    }
    if let Some(variables) = &body.variables {
        let target = state.store.provisioning_target(id).await?;
        let stack = target
            .provision_spec
            .as_ref()
            .and_then(|spec| spec["stack"].as_str())
            .unwrap_or(&target.provider);
        let config = state.config.provisioning.as_ref().ok_or_else(|| {
            ApiError::validation(vec![FieldProblem {
                field: "variables".into(),
                message: "Terraform provisioning is not configured on this control plane".into(),
            }])
        })?;
        let inputs = provisioner::inputs::offered(config, stack).map_err(|error| {
            ApiError::validation(vec![FieldProblem {
                field: "variables".into(),
                message: error.to_string(),
            }])
        })?;
        let mut problems = Problems::default();
        problems.extend(inputs.check(variables, "variables"));
        problems.into_result()?;
        state.store.set_provision_variables(id, variables).await?;
    }
    let task = terraform_task(&state, &principal, id, spec, body.idempotency_key).await?;
    Ok((StatusCode::ACCEPTED, Json(task)))
}

/// Plan and apply the cluster's Terraform stack, then install its agent (operator)
///
/// The cluster becomes `ready` only when its agent is connected and has sent a heartbeat. `variables` replaces
/// the stack variables first (to fix a failed input).
#[utoipa::path(
    post,
    path = "/clusters/{id}/provision",
    operation_id = "provision_cluster",
    params(("id" = Uuid, Path, description = "The cluster")),
    request_body = Option<TerraformRequest>,
    responses(
        (status = 202, description = "Queued", body = Task),
        (status = 409, description = "The cluster was registered by hand", body = ErrorBody),
    )
)]
pub async fn provision(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    run_terraform(
        state,
        principal,
        id,
        body,
        TaskSpec::TerraformApply,
        "provision clusters",
    )
    .await
}

/// Preview the resource changes of the cluster's stack (operator); the task's `output.plan` lists them
#[utoipa::path(
    post,
    path = "/clusters/{id}/plan",
    operation_id = "plan_cluster",
    params(("id" = Uuid, Path, description = "The cluster")),
    request_body = Option<TerraformRequest>,
    responses(
        (status = 202, description = "Queued", body = Task),
        (status = 409, description = "The cluster was registered by hand", body = ErrorBody),
    )
)]
pub async fn plan(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    run_terraform(
        state,
        principal,
        id,
        body,
        TaskSpec::TerraformPlan,
        "plan clusters",
    )
    .await
}

/// Compare the cluster's real infrastructure with its state (`plan -detailed-exitcode`); result in `drift_status`
#[utoipa::path(
    post,
    path = "/clusters/{id}/drift-check",
    operation_id = "check_cluster_drift",
    params(("id" = Uuid, Path, description = "The cluster")),
    request_body = Option<TerraformRequest>,
    responses(
        (status = 202, description = "Queued", body = Task),
        (status = 409, description = "The cluster was registered by hand", body = ErrorBody),
    )
)]
pub async fn drift_check(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    run_terraform(
        state,
        principal,
        id,
        body,
        TaskSpec::TerraformDrift,
        "check clusters for drift",
    )
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size; without it every cluster comes back in one answer.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only clusters whose name sorts after this one: the last name of the previous page.
    pub after: Option<String>,
}

/// List clusters (not deleted) with their agent state, by name
///
/// With `limit`, a page: when it is full, the `Link` header carries the next page's URL (`rel="next"`), which
/// asks for the clusters after the last name on this one, so clusters added or deleted between pages never
/// make a page skip or repeat one.
#[utoipa::path(
    get,
    path = "/clusters",
    operation_id = "list_clusters",
    params(ListQuery),
    responses(
        (status = 200, description = "Clusters", body = [Cluster],
         headers(("Link" = String, description = "`<URL of the next page>; rel=\"next\"` when this page is full"))),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<(HeaderMap, Json<Vec<Cluster>>), ApiError> {
    let mut problems = Problems::default();
    if let Some(limit) = query.limit
        && !(1..=500).contains(&limit)
    {
        problems.add("limit", "must be between 1 and 500");
    }
    problems.into_result()?;
    let page = ClusterPage {
        after: query.after,
        limit: query.limit,
    };
    let clusters = state.store.clusters_page(&page).await?;
    let mut headers = HeaderMap::new();
    if let (Some(limit), Some(last)) = (page.limit, clusters.last())
        && clusters.len() as i64 == limit
    {
        let next: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("limit", &limit.to_string())
            .append_pair("after", &last.name)
            .finish();
        let link = format!("</api/v1/clusters?{next}>; rel=\"next\"");
        headers.insert(
            LINK,
            HeaderValue::try_from(link).expect("a form-encoded query is a valid header value"),
        );
    }
    Ok((headers, Json(clusters)))
}

#[derive(Serialize, ToSchema)]
pub struct ClusterDetail {
    #[serde(flatten)]
    pub cluster: Cluster,
    /// The most recent agent sessions, newest first.
    pub sessions: Vec<SessionRow>,
    /// What the agent did during its latest periods without the control plane (edge autonomy), newest first.
    pub offline_reports: Vec<OfflineReport>,
}

/// Get a cluster with its recent agent sessions
#[utoipa::path(
    get,
    path = "/clusters/{id}",
    operation_id = "get_cluster",
    params(("id" = Uuid, Path, description = "The cluster")),
    responses(
        (status = 200, description = "The cluster", body = ClusterDetail),
        (status = 404, description = "No such cluster", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<ClusterDetail>, ApiError> {
    let cluster = state.store.cluster(id).await?;
    let sessions = state.store.sessions(id, 10).await?;
    let offline_reports = state.store.offline_reports(id, 10).await?;
    Ok(Json(ClusterDetail {
        cluster,
        sessions,
        offline_reports,
    }))
}

/// Revoke the cluster's agent certificates and unused bootstrap tokens, keeping the cluster (admin)
///
/// Every replica closes the agent's streams at once; the agent needs a new bootstrap token.
#[utoipa::path(
    post,
    path = "/clusters/{id}/revoke-agent",
    operation_id = "revoke_cluster_agent",
    params(("id" = Uuid, Path, description = "The cluster")),
    responses(
        (status = 200, description = "The cluster", body = Cluster),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
    )
)]
pub async fn revoke_agent(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Cluster>, ApiError> {
    principal.require(Role::Admin, "revoke agents")?;
    if !state.store.revoke_agent(id).await? {
        return Err(ApiError::not_found(format!("cluster {id} not found")));
    }
    tracing::warn!(cluster_id = %id, by = %principal.label(), "agent certificates revoked");
    Ok(Json(state.store.cluster(id).await?))
}

/// Delete a cluster (operator); revokes its agent, closes its streams, cancels its open tasks
///
/// A cluster provisioned with Terraform is destroyed first (202 with the destroy task) and deleted when that
/// succeeds.
#[utoipa::path(
    delete,
    path = "/clusters/{id}",
    operation_id = "delete_cluster",
    params(("id" = Uuid, Path, description = "The cluster")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 202, description = "Destroy queued", body = Task),
        (status = 404, description = "No such cluster", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    principal.require(Role::Operator, "delete clusters")?;
    let cluster = state.store.live_cluster(id).await?;
    if cluster.provisioning == Provisioning::Terraform {
        let task = terraform_task(
            &state,
            &principal,
            id,
            TaskSpec::TerraformDestroy,
            Some("destroy".into()),
        )
        .await?;
        tracing::info!(cluster_id = %id, task_id = %task.id, by = %principal.label(), "cluster destroy queued");
        return Ok((StatusCode::ACCEPTED, Json(task)).into_response());
    }
    state.store.delete_cluster(id, None).await?;
    tracing::info!(cluster_id = %id, by = %principal.label(), "cluster deleted; agent revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Set which namespaces' pod logs and Kubernetes events the cluster's agent collects (operator)
///
/// Besides demo namespaces and pods or namespaces labelled `edgefleet.io/logs=enabled`, which are always
/// collected. The agent gets the new selection after its next heartbeat, and keeps it across restarts.
#[utoipa::path(
    put,
    path = "/clusters/{id}/log-selection",
    operation_id = "set_cluster_log_selection",
    params(("id" = Uuid, Path, description = "The cluster")),
    request_body = LogSelection,
    responses(
        (status = 200, description = "The cluster, with its new selection", body = Cluster),
        (status = 403, description = "The caller is not an operator", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 422, description = "A namespace name is invalid, or there are too many", body = ErrorBody),
    )
)]
pub async fn set_log_selection(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    JsonBody(selection): JsonBody<LogSelection>,
) -> Result<Json<Cluster>, ApiError> {
    principal.require(Role::Operator, "choose which logs clusters collect")?;
    if let Some(problem) = selection.problem() {
        return Err(ApiError::validation(vec![FieldProblem {
            field: "namespaces".into(),
            message: problem,
        }]));
    }
    if !state.store.set_log_selection(id, &selection).await? {
        return Err(ApiError::not_found(format!("cluster {id} not found")));
    }
    tracing::info!(cluster_id = %id, by = %principal.label(), all_namespaces = selection.all_namespaces,
                   namespaces = selection.namespaces.len(), "log selection set");
    Ok(Json(state.store.cluster(id).await?))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBootstrapToken {
    /// Lifetime of the token; defaults to the configured bootstrap token TTL (1 h).
    #[schema(minimum = 60, maximum = 604800)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct BootstrapTokenCreated {
    /// Shown once; only its SHA-256 is stored.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub cluster_id: Uuid,
    pub install: InstallBundle,
}

const MAX_TOKEN_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Create a one-time agent bootstrap token and install bundle (operator)
///
/// The token is returned once; only its SHA-256 is stored. It is single-use and expires (default 1 h).
#[utoipa::path(
    post,
    path = "/clusters/{id}/bootstrap-tokens",
    operation_id = "create_bootstrap_token",
    params(("id" = Uuid, Path, description = "The cluster")),
    request_body = Option<CreateBootstrapToken>,
    responses(
        (status = 201, description = "Token and install bundle", body = BootstrapTokenCreated),
        (status = 404, description = "No such cluster", body = ErrorBody),
    )
)]
pub async fn create_bootstrap_token(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<BootstrapTokenCreated>), ApiError> {
    principal.require(Role::Operator, "create agent bootstrap tokens")?;
    // The body is optional: an empty one means all defaults.
    let body: CreateBootstrapToken = if body.is_empty() {
        CreateBootstrapToken::default()
    } else {
        super::json::parse(&body)?
    };
    let ttl = body
        .ttl_seconds
        .unwrap_or(state.config.agents.bootstrap_token_ttl_seconds);
    if !(60..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::validation(vec![FieldProblem {
            field: "ttl_seconds".into(),
            message: format!("must be between 60 and {MAX_TOKEN_TTL_SECONDS}"),
        }]));
    }
    let cluster = state.store.live_cluster(id).await?;
    let token = OneTimeSecret::generate(BOOTSTRAP_TOKEN_PREFIX);
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl as i64);
    state
        .store
        .insert_bootstrap_token(cluster.id, &token.digest(), expires_at, &principal.label())
        .await?;
    let install = install::bundle(&InstallInputs {
        token: token.expose(),
        ca_pem: state.ca.ca_pem(),
        agent_endpoint: &state.config.agent_endpoint,
        image: &state.config.agents.image,
    });
    tracing::info!(cluster_id = %cluster.id, %expires_at, by = %principal.label(), "bootstrap token created");
    Ok((
        StatusCode::CREATED,
        Json(BootstrapTokenCreated {
            token: token.expose().to_string(),
            expires_at,
            cluster_id: cluster.id,
            install,
        }),
    ))
}
