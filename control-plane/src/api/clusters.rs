//! `/api/v1/clusters`: registered clusters, their agent state, and agent bootstrap tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, Problems};
use super::json::JsonBody;
use crate::agents::install::{self, InstallBundle, InstallInputs};
use crate::crypto::{BOOTSTRAP_TOKEN_PREFIX, OneTimeSecret};
use crate::store::{Cluster, NewCluster, SessionRow, StoreError};
use crate::taskspec::FieldProblem;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    pub region_id: Uuid,
    pub name: String,
    #[serde(default = "user_role")]
    pub role: String,
    pub api_endpoint: Option<String>,
}

fn user_role() -> String {
    "user".into()
}

pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateCluster>,
) -> Result<(StatusCode, Json<Cluster>), ApiError> {
    principal.require(Role::Operator, "register clusters")?;
    let mut problems = Problems::default();
    problems.check_name("name", &body.name);
    if body.role != "user" && body.role != "management" {
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
    problems.into_result()?;
    let cluster = state
        .store
        .insert_cluster(NewCluster {
            region_id: body.region_id,
            name: body.name,
            role: body.role,
            api_endpoint: body.api_endpoint,
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
    Ok((StatusCode::CREATED, Json(cluster)))
}

pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
) -> Result<Json<Vec<Cluster>>, ApiError> {
    Ok(Json(state.store.clusters().await?))
}

#[derive(Serialize)]
pub struct ClusterDetail {
    #[serde(flatten)]
    pub cluster: Cluster,
    /// The most recent agent sessions, newest first.
    pub sessions: Vec<SessionRow>,
}

pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<ClusterDetail>, ApiError> {
    let cluster = state.store.cluster(id).await?;
    let sessions = state.store.sessions(id, 10).await?;
    Ok(Json(ClusterDetail { cluster, sessions }))
}

pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Operator, "delete clusters")?;
    state.store.delete_cluster(id).await?;
    tracing::info!(cluster_id = %id, by = %principal.label(), "cluster deleted; agent revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateBootstrapToken {
    /// Lifetime of the token; defaults to the configured bootstrap token TTL (1 h).
    pub ttl_seconds: Option<u64>,
}

#[derive(Serialize)]
pub struct BootstrapTokenCreated {
    /// Shown once; only its SHA-256 is stored.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub cluster_id: Uuid,
    pub install: InstallBundle,
}

const MAX_TOKEN_TTL_SECONDS: u64 = 7 * 24 * 3600;

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
