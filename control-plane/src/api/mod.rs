//! The REST API under `/api/v1` (JSON; API tokens or console sessions), plus health, readiness, metrics, the
//! OpenAPI document and the console's static files.

mod audit;
mod auth;
mod clouds;
mod clusters;
mod demo_logs;
mod demos;
mod error;
mod json;
mod regions;
mod session;
mod tasks;
mod templates;
mod users;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use auth::Role;
pub use error::ApiError;
pub use session::SIGN_IN_WINDOW;
pub use users::MIN_PASSWORD_CHARS;

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::logs::LogStore;
use crate::metrics::Metrics;
use crate::pki::AgentCa;
use crate::signing::TaskSigner;
use crate::store::Store;
use crate::supervisor::LoopHealth;

/// The OpenAPI document, kept beside the handlers it describes.
const OPENAPI_YAML: &str = include_str!("openapi.yaml");
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub logs: LogStore,
    pub sbox: SecretBox,
    pub ca: Arc<AgentCa>,
    pub config: Arc<Config>,
    pub signer: Arc<TaskSigner>,
    pub metrics: Metrics,
    pub loops: LoopHealth,
    /// Failures in a row after which `/readyz` reports a background loop.
    pub failing_loop_after: u32,
}

/// Every `/api/v1` route as (method, path), for the OpenAPI consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/clouds"),
    ("post", "/api/v1/clouds"),
    ("get", "/api/v1/clouds/{id}"),
    ("patch", "/api/v1/clouds/{id}"),
    ("delete", "/api/v1/clouds/{id}"),
    ("get", "/api/v1/regions"),
    ("post", "/api/v1/regions"),
    ("get", "/api/v1/regions/{id}"),
    ("patch", "/api/v1/regions/{id}"),
    ("get", "/api/v1/clusters"),
    ("post", "/api/v1/clusters"),
    ("get", "/api/v1/clusters/{id}"),
    ("delete", "/api/v1/clusters/{id}"),
    ("post", "/api/v1/clusters/{id}/provision"),
    ("post", "/api/v1/clusters/{id}/plan"),
    ("post", "/api/v1/clusters/{id}/drift-check"),
    ("post", "/api/v1/clusters/{id}/bootstrap-tokens"),
    ("post", "/api/v1/clusters/{id}/revoke-agent"),
    ("post", "/api/v1/clusters/{id}/tasks"),
    ("get", "/api/v1/demos"),
    ("post", "/api/v1/demos"),
    ("get", "/api/v1/demos/{id}"),
    ("delete", "/api/v1/demos/{id}"),
    ("post", "/api/v1/demos/{id}/retry"),
    ("post", "/api/v1/demos/{id}/update"),
    ("post", "/api/v1/demos/{id}/rollback"),
    ("post", "/api/v1/demos/{id}/stop"),
    ("post", "/api/v1/demos/{id}/start"),
    ("get", "/api/v1/demos/{id}/versions"),
    ("get", "/api/v1/demos/{id}/events"),
    ("get", "/api/v1/demos/{id}/logs"),
    ("get", "/api/v1/templates"),
    ("get", "/api/v1/templates/{name}"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/{id}"),
    ("post", "/api/v1/tasks/{id}/cancel"),
    ("get", "/api/v1/tasks/{id}/logs"),
    ("get", "/api/v1/logs"),
    ("get", "/api/v1/session"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("patch", "/api/v1/users/{id}"),
    ("get", "/api/v1/api-tokens"),
    ("post", "/api/v1/api-tokens"),
    ("delete", "/api/v1/api-tokens/{id}"),
    ("get", "/api/v1/audit"),
];

pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/clouds", get(clouds::list).post(clouds::create))
        .route(
            "/clouds/{id}",
            get(clouds::get)
                .patch(clouds::update)
                .delete(clouds::delete),
        )
        .route("/regions", get(regions::list).post(regions::create))
        .route("/regions/{id}", get(regions::get).patch(regions::update))
        .route("/clusters", get(clusters::list).post(clusters::create))
        .route(
            "/clusters/{id}",
            get(clusters::get).delete(clusters::delete),
        )
        .route(
            "/clusters/{id}/bootstrap-tokens",
            post(clusters::create_bootstrap_token),
        )
        .route("/clusters/{id}/revoke-agent", post(clusters::revoke_agent))
        .route("/clusters/{id}/provision", post(clusters::provision))
        .route("/clusters/{id}/plan", post(clusters::plan))
        .route("/clusters/{id}/drift-check", post(clusters::drift_check))
        .route("/clusters/{id}/tasks", post(tasks::create))
        .route("/demos", get(demos::list).post(demos::create))
        .route("/demos/{id}", get(demos::get).delete(demos::delete))
        .route("/demos/{id}/retry", post(demos::retry))
        .route("/demos/{id}/update", post(demos::update))
        .route("/demos/{id}/rollback", post(demos::rollback))
        .route("/demos/{id}/stop", post(demos::stop))
        .route("/demos/{id}/start", post(demos::start))
        .route("/demos/{id}/versions", get(demos::versions))
        .route("/demos/{id}/events", get(demos::events))
        .route("/demos/{id}/logs", get(demo_logs::logs))
        .route("/templates", get(templates::list))
        .route("/templates/{name}", get(templates::revisions))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::get))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/logs", get(tasks::logs))
        .route("/logs", get(demo_logs::search))
        .route("/session", get(session::current).delete(session::logout))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", axum::routing::patch(users::update))
        .route(
            "/api-tokens",
            get(users::list_tokens).post(users::create_token),
        )
        .route(
            "/api-tokens/{id}",
            axum::routing::delete(users::revoke_token),
        )
        .route("/audit", get(audit::list))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route("/session", post(session::login))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), audit::record))
        // API answers carry secrets and per-user data: no cache may keep them.
        .layer(middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-store"),
                );
                response
            },
        ));
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::console::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    header::HeaderValue::from_static("nosniff"),
                );
                response
            },
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    let doc: serde_json::Value =
        serde_yaml::from_str(OPENAPI_YAML).expect("openapi.yaml is valid YAML (tested)");
    Json(doc)
}

/// Ready when PostgreSQL and ClickHouse both answer and no background loop keeps failing. The answer is
/// unauthenticated, so it names what is down but not where it is or why (that goes to the log).
async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if let Err(error) = state.store.ping().await {
        tracing::warn!(%error, "readiness: PostgreSQL does not answer");
        problems.push("postgresql unavailable".to_owned());
    }
    if let Err(error) = state.logs.ping().await {
        tracing::warn!(%error, "readiness: ClickHouse does not answer");
        problems.push("clickhouse unavailable".to_owned());
    }
    for (name, failure) in state.loops.failing(state.failing_loop_after) {
        tracing::warn!(r#loop = name, %failure, "readiness: a background loop keeps failing");
        problems.push(format!("{name} loop keeps failing"));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n"))
    }
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_every_route_and_nothing_else() {
        let doc: serde_json::Value = serde_yaml::from_str(OPENAPI_YAML).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                if method != "parameters" {
                    documented.push((method.clone(), format!("/api/v1{path}")));
                }
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
