//! The REST API under `/api/v1` (JSON; API tokens or console sessions), plus health, readiness, metrics, the
//! OpenAPI document and the console's static files.

mod audit;
mod auth;
mod clouds;
mod clusters;
mod demo_logs;
mod demos;
mod error;
mod fleet;
mod json;
mod query;
mod regions;
mod session;
mod tasks;
mod templates;
mod users;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{Route, get};
use axum::{Json, Router, middleware};
use tower::{Layer, Service};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

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

/// The frame of the OpenAPI document; its operations and schemas come from the handlers the router serves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Edgefleet control plane API",
        version = "1",
        description = "REST API of the Edgefleet control plane. All operations except signing in need \
            `Authorization: Bearer <API token>` (the console sends its session cookie instead, and an \
            `X-CSRF-Token` header on every request that changes something). Errors have the shape \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\", \"details\": [{\"field\": \"...\", \"message\": \"...\"}]}}`. \
            Roles: viewer (read), operator (clusters, tasks, demos), admin (everything)."
    ),
    servers((url = "/api/v1")),
    security(("bearer" = [])),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// A string schema with these values.
fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// The operations that need a caller (an API token or a console session). Each `routes!` names the handlers of
/// one path: utoipa-axum serves all of a group's handlers on each of its paths.
fn authenticated_operations() -> Vec<UtoipaMethodRouter<ApiState>> {
    vec![
        routes!(clouds::list, clouds::create),
        routes!(clouds::get, clouds::update, clouds::delete),
        routes!(regions::list, regions::create),
        routes!(regions::get, regions::update),
        routes!(clusters::list, clusters::create),
        routes!(clusters::get, clusters::delete),
        routes!(clusters::create_bootstrap_token),
        routes!(clusters::revoke_agent),
        routes!(clusters::set_log_selection),
        routes!(clusters::provision),
        routes!(clusters::plan),
        routes!(clusters::drift_check),
        routes!(tasks::create),
        routes!(tasks::create_batch),
        routes!(demos::list, demos::create),
        routes!(demos::get, demos::delete),
        routes!(demos::retry),
        routes!(demos::update),
        routes!(demos::rollback),
        routes!(demos::stop),
        routes!(demos::start),
        routes!(demos::versions),
        routes!(demos::events),
        routes!(demo_logs::logs),
        routes!(templates::list),
        routes!(templates::revisions),
        routes!(tasks::list),
        routes!(tasks::get),
        routes!(tasks::cancel),
        routes!(tasks::logs),
        routes!(demo_logs::search),
        routes!(session::current, session::logout),
        routes!(users::list, users::create),
        routes!(users::update),
        routes!(users::list_tokens, users::create_token),
        routes!(users::revoke_token),
        routes!(audit::list),
        routes!(fleet::overview),
    ]
}

/// The operations anyone may call.
fn open_operations() -> Vec<UtoipaMethodRouter<ApiState>> {
    vec![routes!(session::login)]
}

/// The `/api/v1` routes with their OpenAPI document, both made from the operation lists above; `authenticate`
/// wraps the operations that need a caller.
fn api<L>(authenticate: L) -> OpenApiRouter<ApiState>
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Response: IntoResponse + 'static,
    <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    let authenticated = authenticated_operations()
        .into_iter()
        .fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            OpenApiRouter::routes,
        )
        .route_layer(authenticate);
    let mut api = open_operations()
        .into_iter()
        .fold(authenticated, OpenApiRouter::routes);
    leave_out_optional_bodies(api.get_openapi_mut());
    api
}

/// utoipa documents an optional request body (`Option<T>`) as one that may be `null`; the API takes either no
/// body or a `T`, so the schema is `T` (the body stays not required).
fn leave_out_optional_bodies(openapi: &mut utoipa::openapi::OpenApi) {
    let is_null = |schema: &RefOr<Schema>| match schema {
        RefOr::T(Schema::Object(object)) => object.schema_type == SchemaType::Type(Type::Null),
        _ => false,
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let Some(RefOr::T(body)) = &mut operation.request_body else {
                continue;
            };
            for content in body.content.values_mut() {
                if let RefOr::T(content) = content
                    && let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
                    && let [first, second] = one_of.items.as_slice()
                    && (is_null(first) || is_null(second))
                {
                    let body = if is_null(first) { second } else { first };
                    content.schema = Some(body.clone());
                }
            }
        }
    }
}

pub fn router(state: ApiState) -> Router {
    let (api, document) = api(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ))
    .split_for_parts();
    let document = Json(document);
    let api = api
        // The document itself is not one of its operations.
        .route("/openapi.json", get(move || async move { document }))
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
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    |response: &axum::response::Response, _latency, span: &tracing::Span| {
                        span.record("http.response.status_code", response.status().as_u16());
                    },
                ),
        )
        .with_state(state)
}

/// One span per request, named by its route (`POST /api/v1/clusters/{id}/tasks`) so traces group by endpoint and
/// never carry ids or query text in the name; a caller's `traceparent` header makes it part of the caller's trace.
/// Probes and metrics scrapes get a debug span, which the default filter drops.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |path| path.as_str());
    let method = request.method();
    let span = if matches!(route, "/healthz" | "/readyz" | "/metrics") {
        tracing::debug_span!("http.request", http.route = route)
    } else {
        tracing::info_span!(
            "http.request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = route,
            http.response.status_code = tracing::field::Empty,
        )
    };
    if let Some(parent) = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
    {
        telemetry::set_parent(&span, parent);
    }
    span
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
    use std::collections::BTreeSet;

    use serde_json::Value;
    use tower::layer::util::Identity;

    use super::*;

    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// (method, path) of every operation in `paths`, an OpenAPI paths object.
    fn operations(paths: &Value, prefix: &str) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in paths.as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    found.insert((method.clone(), format!("{prefix}{path}")));
                }
            }
        }
        found
    }

    /// What the router serves under `/api/v1` besides the document itself: utoipa-axum routes each group on
    /// its path with the methods of its handlers' `#[utoipa::path]`.
    fn served(groups: Vec<UtoipaMethodRouter<ApiState>>) -> BTreeSet<(String, String)> {
        let mut served = BTreeSet::new();
        for (_, paths, _) in groups {
            let paths = serde_json::to_value(&paths).unwrap();
            assert_eq!(
                paths.as_object().unwrap().len(),
                1,
                "one routes! names handlers of several paths, and axum would serve all of them on each: {paths}"
            );
            served.extend(operations(&paths, "/api/v1"));
        }
        served
    }

    fn document() -> Value {
        serde_json::to_value(api(Identity::new()).into_openapi()).unwrap()
    }

    #[test]
    fn the_document_lists_every_route_the_router_serves_and_nothing_else() {
        let document = document();
        let base = document["servers"][0]["url"].as_str().unwrap();
        assert_eq!(base, "/api/v1", "the router nests the API there");
        let documented = operations(&document["paths"], base);
        let open = served(open_operations());
        let mut served = served(authenticated_operations());
        served.extend(open.iter().cloned());
        assert_eq!(documented, served);

        // Only signing in is open; everything else falls back to the document's bearer requirement.
        assert_eq!(document["security"], serde_json::json!([{"bearer": []}]));
        let mut operation_ids = BTreeSet::new();
        for (method, path) in &documented {
            let operation = &document["paths"][&path[base.len()..]][method];
            let security = &operation["security"];
            if open.contains(&(method.clone(), path.clone())) {
                assert_eq!(security, &serde_json::json!([{}]), "{method} {path}");
            } else {
                assert!(security.is_null(), "{method} {path} has its own security");
            }
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id), "operationId {id} is used twice");
            // A path parameter the document does not declare could not be filled in by a client.
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }
    }

    #[test]
    fn schemas_come_from_the_types() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["TaskState"]["enum"],
            serde_json::json!([
                "pending",
                "leased",
                "running",
                "succeeded",
                "failed",
                "cancelled"
            ])
        );
        let body = &document["paths"]["/clusters"]["post"]["requestBody"];
        assert_eq!(body["required"], true);
        let reference = body["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let create = &schemas[reference.trim_start_matches("#/components/schemas/")];
        let required = create["required"].as_array().unwrap();
        assert!(required.contains(&"region_id".into()), "{create}");
        assert_eq!(
            create["additionalProperties"], false,
            "unknown fields are refused"
        );
        assert_eq!(
            schemas["Error"]["properties"]["error"]["required"],
            serde_json::json!(["code", "message"])
        );
        let optional = &document["paths"]["/clusters/{id}/provision"]["post"]["requestBody"];
        assert!(optional["required"].is_null(), "{optional}");
        assert_eq!(
            optional["content"]["application/json"]["schema"],
            serde_json::json!({"$ref": "#/components/schemas/TerraformRequest"})
        );
        assert_refs_resolve(&document, &document);
    }

    fn assert_refs_resolve(document: &Value, value: &Value) {
        match value {
            Value::Object(entries) => {
                if let Some(Value::String(target)) = entries.get("$ref") {
                    let pointer = target.strip_prefix('#').unwrap();
                    assert!(
                        document.pointer(pointer).is_some(),
                        "{target} is not in the document"
                    );
                }
                entries
                    .values()
                    .for_each(|v| assert_refs_resolve(document, v));
            }
            Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(document, v)),
            _ => {}
        }
    }
}
