//! `/api/v1/templates`: the image templates loaded from `images/templates/`, with their revisions.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use crate::store::TemplateRow;

#[derive(Deserialize)]
pub struct ListQuery {
    /// Every revision instead of only the latest of each template.
    #[serde(default)]
    pub all: bool,
}

pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<TemplateRow>>, ApiError> {
    Ok(Json(state.store.templates(query.all).await?))
}

pub async fn revisions(
    State(state): State<ApiState>,
    _: Principal,
    Path(name): Path<String>,
) -> Result<Json<Vec<TemplateRow>>, ApiError> {
    Ok(Json(state.store.template_revisions(&name).await?))
}
