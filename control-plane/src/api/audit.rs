//! The audit trail: a layer that records every state-changing `/api/v1` request (who, what, target, from where,
//! the result), and `GET /api/v1/audit` to browse it.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, Problems};
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub total: i64,
}

/// `GET /audit`: newest first, filtered by actor (exact), action (substring) and time.
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    Query(query): Query<AuditQuery>,
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
