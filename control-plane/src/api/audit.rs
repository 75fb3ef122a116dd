//! The audit trail: a layer that records every state-changing `/api/v1` request (who, what, target, from where,
//! the result), and `GET /api/v1/audit` to browse it.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::query::QueryParams;
use crate::store::{AuditEntry, AuditFilter, NewAuditEntry};

/// Who to record for a request that has no principal (a sign-in names the username it tried).
#[derive(Debug, Clone)]
pub struct AuditActor(pub String);

/// Records state-changing requests once they are answered. Reads stay out of the log.
pub async fn record(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let target = request.uri().path().to_owned();
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let response = next.run(request).await;
    // Routing happens inside this layer; the authentication layer hands the matched route back.
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| target.clone());
    let actor = match (
        response.extensions().get::<AuditActor>(),
        response.extensions().get::<Principal>(),
    ) {
        (Some(actor), _) => actor.0.clone(),
        (None, Some(principal)) => principal.label(),
        (None, None) => "anonymous".to_owned(),
    };
    let action = format!(
        "{method} {}",
        route.strip_prefix("/api/v1").unwrap_or(&route)
    );
    let entry = NewAuditEntry {
        actor: &actor,
        action: &action,
        target: &target,
        ip: ip.as_deref(),
        status: response.status().as_u16(),
        detail: None,
    };
    // A request is not failed because its audit row could not be written, but it must be visible.
    if let Err(error) = state.store.record_audit(entry).await {
        tracing::error!(%error, %actor, %action, %target, "could not record an audit entry");
    }
    response
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact actor, e.g. user:alice or token:ci.
    pub actor: Option<String>,
    /// Substring of the action, e.g. demos.
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub total: i64,
}

/// The audit log (admin), newest first
///
/// Every state-changing /api/v1 request (console or API, allowed or refused) with who, what, the path, the
/// caller's address and the HTTP status; failed sign-ins appear as actor login:<name>.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "list_audit_entries",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries and the total", body = AuditPage),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Role::Admin, "read the audit log")?;
    let mut problems = Problems::default();
    let (limit, offset) = problems.check_page(query.limit, query.offset);
    problems.into_result()?;
    let (entries, total) = state
        .store
        .audit(&AuditFilter {
            actor: query.actor.filter(|a| !a.is_empty()),
            action: query.action.filter(|a| !a.is_empty()),
            since: query.since,
            until: query.until,
            limit,
            offset,
        })
        .await?;
    Ok(Json(AuditPage { entries, total }))
}
