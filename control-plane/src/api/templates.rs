//! `/api/v1/templates`: the image templates loaded from `images/templates/`, with their revisions.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use super::query::QueryParams;
use crate::store::TemplateRow;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Every revision instead of only the latest of each template.
    #[serde(default)]
    #[param(default = false)]
    pub all: bool,
}

/// Image templates (the latest revision of each; every revision with all=true)
#[utoipa::path(
    get,
    path = "/templates",
    operation_id = "list_templates",
    params(ListQuery),
    responses((status = 200, description = "Templates", body = [TemplateRow]))
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Vec<TemplateRow>>, ApiError> {
    Ok(Json(state.store.templates(query.all).await?))
}

/// Every revision of one template, newest first
#[utoipa::path(
    get,
    path = "/templates/{name}",
    operation_id = "list_template_revisions",
    params(("name" = String, Path, description = "The template's name")),
    responses(
        (status = 200, description = "Revisions", body = [TemplateRow]),
        (status = 404, description = "No such template", body = ErrorBody),
    )
)]
pub async fn revisions(
    State(state): State<ApiState>,
    _: Principal,
    Path(name): Path<String>,
) -> Result<Json<Vec<TemplateRow>>, ApiError> {
    // No template name holds one, and PostgreSQL cannot compare text with a NUL byte in it.
    if name.chars().any(char::is_control) {
        return Err(ApiError::not_found(format!("no template named {name:?}")));
    }
    Ok(Json(state.store.template_revisions(&name).await?))
}
