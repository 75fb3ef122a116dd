//! `/api/v1/regions`: provider regions under a cloud account.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::json::JsonBody;
use crate::store::{NewRegion, Region};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegion {
    pub cloud_account_id: Uuid,
    /// Provider region code, e.g. `ap-shanghai` or `us-east-1`.
    #[schema(example = "ap-shanghai")]
    pub code: String,
    /// Defaults to the code.
    #[schema(max_length = 100)]
    pub display_name: Option<String>,
    #[serde(default = "enabled_by_default")]
    #[schema(default = true)]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Add a region to a cloud account (admin)
#[utoipa::path(
    post,
    path = "/regions",
    operation_id = "create_region",
    request_body = CreateRegion,
    responses(
        (status = 201, description = "Created", body = Region),
        (status = 409, description = "The account has this region already", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateRegion>,
) -> Result<(StatusCode, Json<Region>), ApiError> {
    principal.require(Role::Admin, "add regions")?;
    let mut problems = Problems::default();
    problems.check_name("code", &body.code);
    if let Some(name) = &body.display_name
        && (name.trim().is_empty() || name.len() > 100)
    {
        problems.add("display_name", "must be 1-100 characters");
    }
    problems.into_result()?;
    let region = state
        .store
        .insert_region(NewRegion {
            cloud_account_id: body.cloud_account_id,
            display_name: body.display_name.unwrap_or_else(|| body.code.clone()),
            code: body.code,
            enabled: body.enabled,
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound { .. } => {
                ApiError::validation(vec![crate::domain::taskspec::FieldProblem {
                    field: "cloud_account_id".into(),
                    message: format!("no cloud account {}", body.cloud_account_id),
                }])
            }
            other => other.into(),
        })?;
    tracing::info!(region_id = %region.id, code = %region.code, by = %principal.label(), "region added");
    Ok((StatusCode::CREATED, Json(region)))
}

/// List regions
#[utoipa::path(
    get,
    path = "/regions",
    operation_id = "list_regions",
    responses((status = 200, description = "Regions", body = [Region]))
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
) -> Result<Json<Vec<Region>>, ApiError> {
    Ok(Json(state.store.regions().await?))
}

/// Get a region
#[utoipa::path(
    get,
    path = "/regions/{id}",
    operation_id = "get_region",
    params(("id" = Uuid, Path, description = "The region")),
    responses(
        (status = 200, description = "The region", body = Region),
        (status = 404, description = "No such region", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Region>, ApiError> {
    Ok(Json(state.store.region(id).await?))
}

/// At least one field changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateRegion {
    pub enabled: Option<bool>,
    #[schema(max_length = 100)]
    pub display_name: Option<String>,
}

/// Enable or disable a region, or rename it (admin); disabled regions take no new demos
#[utoipa::path(
    patch,
    path = "/regions/{id}",
    operation_id = "update_region",
    params(("id" = Uuid, Path, description = "The region")),
    request_body = UpdateRegion,
    responses(
        (status = 200, description = "The changed region", body = Region),
        (status = 404, description = "No such region", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<UpdateRegion>,
) -> Result<Json<Region>, ApiError> {
    principal.require(Role::Admin, "change regions")?;
    let mut problems = Problems::default();
    if let Some(name) = &body.display_name
        && (name.trim().is_empty() || name.len() > 100)
    {
        problems.add("display_name", "must be 1-100 characters");
    }
    if body.enabled.is_none() && body.display_name.is_none() {
        problems.add("body", "change at least one of enabled, display_name");
    }
    problems.into_result()?;
    let region = state
        .store
        .update_region(id, body.enabled, body.display_name.as_deref())
        .await?;
    tracing::info!(region_id = %id, enabled = region.enabled, by = %principal.label(), "region changed");
    Ok(Json(region))
}
