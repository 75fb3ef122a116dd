//! HTTP(S) front end: connection handling (TLS with optional client certificates, HTTP/1.1 and HTTP/2),
//! authentication, and routing of Kubernetes REST paths, discovery, health checks and the test-only
//! log endpoint to the API semantics.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderMap, Method, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::api::{Api, Page, Preconditions, WriteOptions};
use crate::discovery;
use crate::error::ApiError;
use crate::logs::{self, LogOptions, LogStore};
use crate::meta;
use crate::patch::Patch;
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, Filter, LabelSelector};
use crate::watch::{self, WatchRequest};

/// Largest request body accepted (real servers allow 3 MiB objects).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Shared state of all requests.
pub struct AppState {
    pub api: Arc<Api>,
    pub logs: Arc<LogStore>,
    /// Required bearer token, if any (HTTPS mode always has one).
    pub token: Option<String>,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
}

impl AppState {
    /// Appends lines (one per line of `text`) to a pod container's log; `container` may be omitted for
    /// single-container pods.
    pub fn append_log(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        text: &str,
    ) -> Result<(), ApiError> {
        let pods = self
            .api
            .resource("", "v1", "pods")
            .expect("pods are built in");
        let pod = self.api.get(&pods, namespace, pod)?;
        let container = logs::resolve_container(&pod, container)?;
        self.logs.append(meta::uid(&pod), &container, text);
        Ok(())
    }

    /// Ends the open log streams of a pod (what a container restart does to followers).
    pub fn end_log_streams(&self, namespace: &str, pod: &str) -> Result<(), ApiError> {
        let pods = self
            .api
            .resource("", "v1", "pods")
            .expect("pods are built in");
        let pod = self.api.get(&pods, namespace, pod)?;
        self.logs.end_streams(meta::uid(&pod));
        Ok(())
    }
}

/// Whether the connection presented a client certificate signed by the emulator's CA.
#[derive(Debug, Clone, Copy)]
struct ClientCertificate(bool);

/// Accepts connections until the task is dropped; dropping it also ends every open connection.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<AppState>) {
    let router = Router::new().fallback(handle).with_state(state);
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let verified = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty());
                        serve_connection(TokioIo::new(stream), router, ClientCertificate(verified))
                            .await
                    }
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
                None => {
                    serve_connection(TokioIo::new(stream), router, ClientCertificate(false)).await
                }
            }
        });
    }
}

async fn serve_connection<I>(io: I, router: Router, certificate: ClientCertificate)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(certificate);
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, request.map(Body::new)).await }
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection_with_upgrades(io, service).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    raw_response(status, "application/json", Body::from(body.to_string()))
}

fn raw_response(status: u16, content_type: &str, body: Body) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .expect("static response parts are valid")
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code, &error.to_status())
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let outcome = AssertUnwindSafe(route(&state, request))
        .catch_unwind()
        .await;
    let response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error_response(&error),
        Err(_) => error_response(&ApiError::internal(
            "the emulator panicked while handling the request",
        )),
    };
    tracing::debug!(%method, path, status = response.status().as_u16(), "request");
    response
}

fn is_authorized(state: &AppState, request: &Request) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let certificate = request
        .extensions()
        .get::<ClientCertificate>()
        .is_some_and(|c| c.0);
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    certificate || bearer == Some(token.as_str())
}

/// Query parameters, decoded (`+` and percent escapes); the last occurrence of a key wins.
fn query(request: &Request) -> HashMap<String, String> {
    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn route(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // Health and version are public on real clusters too.
    match segs.as_slice() {
        ["healthz" | "readyz" | "livez", ..] => {
            return Ok(raw_response(
                200,
                "text/plain; charset=utf-8",
                Body::from("ok"),
            ));
        }
        ["version"] => return Ok(json_response(200, &discovery::version())),
        _ => {}
    }
    if !is_authorized(state, &request) {
        return Err(ApiError::unauthorized());
    }
    let accept = header_text(request.headers(), header::ACCEPT).to_string();
    let registry = || state.api.store.transact(|txn| txn.registry().clone());
    match segs.as_slice() {
        ["api"] | ["apis"] => {
            let core = segs[0] == "api";
            if let Some(version) = discovery::aggregated_version(&accept) {
                let body = discovery::aggregated(&registry(), core, version);
                return Ok(raw_response(
                    200,
                    &discovery::aggregated_content_type(version),
                    Body::from(body.to_string()),
                ));
            }
            let body = if core {
                discovery::core_versions(&state.server_address)
            } else {
                discovery::group_list(&registry())
            };
            Ok(json_response(200, &body))
        }
        ["api", "v1"] => Ok(json_response(
            200,
            &discovery::resource_list(&registry(), "", "v1")
                .ok_or_else(ApiError::path_not_found)?,
        )),
        ["apis", group] => Ok(json_response(
            200,
            &discovery::group(&registry(), group).ok_or_else(ApiError::path_not_found)?,
        )),
        ["apis", group, version] => Ok(json_response(
            200,
            &discovery::resource_list(&registry(), group, version)
                .ok_or_else(ApiError::path_not_found)?,
        )),
        ["openapi", "v2"] => {
            let protobuf = accept.contains("protobuf");
            let content_type = if protobuf {
                discovery::OPENAPI_V2_PROTOBUF
            } else {
                "application/json"
            };
            Ok(raw_response(
                200,
                content_type,
                Body::from(discovery::openapi_v2(protobuf)),
            ))
        }
        ["emulator", "v1", "namespaces", ns, "pods", name, "log"]
            if request.method() == Method::POST =>
        {
            let (ns, name) = (ns.to_string(), name.to_string());
            append_log(state, &ns, &name, request).await
        }
        [
            "emulator",
            "v1",
            "namespaces",
            ns,
            "pods",
            name,
            "end-log-streams",
        ] if request.method() == Method::POST => {
            state.end_log_streams(ns, name)?;
            Ok(json_response(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
            ))
        }
        ["api", "v1", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(state, "", "v1", &rest, request).await
        }
        ["apis", group, version, rest @ ..] => {
            let (group, version) = (group.to_string(), version.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(state, &group, &version, &rest, request).await
        }
        _ => Err(ApiError::path_not_found()),
    }
}

/// A parsed resource URL.
struct Target {
    res: Arc<ResourceInfo>,
    /// `None` for cluster-scoped resources and for lists across all namespaces.
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(
    state: &AppState,
    group: &str,
    version: &str,
    rest: &[String],
) -> Result<Target, ApiError> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    // `namespaces/{ns}/{plural}/...`, except the namespace's own `status` and `finalize` subresources.
    let (namespace, rest) = match rest.as_slice() {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty()
                && tail.is_empty()
                && matches!(*plural, "status" | "finalize")) =>
        {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(ApiError::path_not_found()),
    };
    let res = state
        .api
        .resource(group, version, plural)
        .ok_or_else(ApiError::path_not_found)?;
    if namespace.is_some() && !res.namespaced {
        return Err(ApiError::path_not_found());
    }
    if res.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::path_not_found());
    }
    if let Some(sub) = &subresource
        && !res.subresources().iter().any(|(s, _)| s == sub)
    {
        return Err(ApiError::path_not_found());
    }
    Ok(Target {
        res,
        namespace,
        name,
        subresource,
    })
}

async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
    Ok((parts.headers, bytes))
}

/// Decodes a POST/PUT body (JSON, or YAML when the content type says so).
fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = header_text(headers, header::CONTENT_TYPE);
    if content_type.contains("protobuf") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if content_type.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    }
}

/// The field manager of a non-apply write: the parameter, else the User-Agent up to its first `/`.
fn manager_name(params: &HashMap<String, String>, headers: &HeaderMap) -> String {
    match params.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(manager) => manager.clone(),
        None => {
            let agent = header_text(headers, header::USER_AGENT);
            let prefix = agent.split('/').next().unwrap_or_default();
            if prefix.is_empty() {
                "unknown".into()
            } else {
                prefix.chars().take(128).collect()
            }
        }
    }
}

fn parse_bool(params: &HashMap<String, String>, key: &str) -> bool {
    params.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn filter_from(params: &HashMap<String, String>) -> Result<Filter, ApiError> {
    Ok(Filter {
        labels: LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(params.get("fieldSelector").map_or("", String::as_str))?,
    })
}

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(key)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| ApiError::bad_request(format!("invalid {key}: {v:?}")))
        })
        .transpose()
}

async fn resource_request(
    state: &AppState,
    group: &str,
    version: &str,
    rest: &[String],
    request: Request,
) -> Result<Response, ApiError> {
    let target = parse_target(state, group, version, rest)?;
    let params = query(&request);
    let method = request.method().clone();
    let res = target.res.clone();
    let ns = target.namespace.clone().unwrap_or_default();
    let api = &state.api;
    match (
        &method,
        target.name.as_deref(),
        target.subresource.as_deref(),
    ) {
        (&Method::GET, None, None) => {
            let filter = filter_from(&params)?;
            let namespace = target.namespace.as_deref();
            if parse_bool(&params, "watch") {
                let watch_request = WatchRequest {
                    res,
                    namespace: target.namespace.clone(),
                    filter,
                    resource_version: params.get("resourceVersion").cloned(),
                    allow_bookmarks: parse_bool(&params, "allowWatchBookmarks"),
                    send_initial_events: parse_bool(&params, "sendInitialEvents"),
                    timeout: number::<u64>(&params, "timeoutSeconds")?.map(Duration::from_secs),
                };
                let stream = watch::start(&api.store, watch_request)?;
                let body = Body::from_stream(futures::StreamExt::map(
                    stream,
                    Ok::<_, std::convert::Infallible>,
                ));
                return Ok(raw_response(200, "application/json", body));
            }
            let page = Page {
                limit: number(&params, "limit")?,
                continue_token: params.get("continue").cloned().filter(|c| !c.is_empty()),
            };
            Ok(json_response(
                200,
                &api.list(&res, namespace, &filter, &page)?,
            ))
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            Ok(json_response(200, &api.get(&res, &ns, name)?))
        }
        (&Method::GET, Some(name), Some("scale")) => {
            let object = api.get(&res, &ns, name)?;
            Ok(json_response(200, &Api::scale_of(&res, &object)))
        }
        (&Method::GET, Some(name), Some("log")) => read_log(state, &res, &ns, name, &params),
        (&Method::POST, None, None) => {
            if res.namespaced && target.namespace.is_none() {
                return Err(ApiError::method_not_allowed(
                    "create needs a namespace in the path",
                ));
            }
            let manager = manager_name(&params, request.headers());
            let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
            let (headers, body) = read_body(request).await?;
            let object = decode_object(&headers, &body)?;
            let opts = WriteOptions {
                manager: &manager,
                subresource: None,
                dry_run,
            };
            Ok(json_response(201, &api.create(&res, &ns, object, opts)?))
        }
        (&Method::PUT, Some(name), sub) => {
            let manager = manager_name(&params, request.headers());
            let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
            let (headers, body) = read_body(request).await?;
            let object = decode_object(&headers, &body)?;
            let opts = WriteOptions {
                manager: &manager,
                subresource: sub,
                dry_run,
            };
            match sub {
                Some("scale") => {
                    let replicas = object["spec"]["replicas"].clone();
                    let expected_rv = object["metadata"]["resourceVersion"].clone();
                    let updated = api.update_with(&res, &ns, name, opts, |old| {
                        let mut new = old.clone();
                        new["spec"]["replicas"] = replicas;
                        new["metadata"]["resourceVersion"] = expected_rv;
                        Ok(new)
                    })?;
                    Ok(json_response(200, &Api::scale_of(&res, &updated)))
                }
                Some("finalize") => {
                    let finalizers = object["spec"]["finalizers"].clone();
                    let opts = WriteOptions {
                        subresource: None,
                        ..opts
                    };
                    let updated = api.update_with(&res, &ns, name, opts, |old| {
                        let mut new = old.clone();
                        new["spec"]["finalizers"] = finalizers;
                        Ok(new)
                    })?;
                    Ok(json_response(200, &updated))
                }
                _ => Ok(json_response(
                    200,
                    &api.replace(&res, &ns, name, object, opts)?,
                )),
            }
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status") | Some("scale"))) => {
            let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
            let force = parse_bool(&params, "force");
            let content_type = header_text(request.headers(), header::CONTENT_TYPE).to_string();
            let is_apply = content_type.starts_with("application/apply-patch");
            if is_apply && params.get("fieldManager").is_none_or(String::is_empty) {
                return Err(ApiError::bad_request(
                    "fieldManager is required for apply requests",
                ));
            }
            if !is_apply && force {
                return Err(ApiError::bad_request(
                    "force may not be set for non-apply patch requests",
                ));
            }
            let manager = manager_name(&params, request.headers());
            let (_, body) = read_body(request).await?;
            let patch = Patch::parse(&content_type, &body)?;
            let opts = WriteOptions {
                manager: &manager,
                subresource: sub,
                dry_run,
            };
            if sub == Some("scale") {
                // A Scale is patched as a whole document; apply configurations are merged like a merge patch.
                let patch = match patch {
                    Patch::Apply(config) => Patch::Merge(config),
                    other => other,
                };
                let updated = api.update_with(&res, &ns, name, opts, |old| {
                    let scale = patch.apply_to(&Api::scale_of(&res, old))?;
                    let mut new = old.clone();
                    new["spec"]["replicas"] = scale["spec"]["replicas"].clone();
                    Ok(new)
                })?;
                return Ok(json_response(200, &Api::scale_of(&res, &updated)));
            }
            let (object, created) = api.patch(&res, &ns, name, &patch, opts, force)?;
            Ok(json_response(if created { 201 } else { 200 }, &object))
        }
        (&Method::DELETE, Some(name), None) => {
            let (headers, body) = read_body(request).await?;
            let options = if body.is_empty() {
                json!({})
            } else {
                decode_object(&headers, &body)?
            };
            let dry_run = params.get("dryRun").is_some_and(|v| v == "All")
                || options["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|v| v == "All"));
            let pre = Preconditions {
                uid: options["preconditions"]["uid"].as_str().map(String::from),
                resource_version: options["preconditions"]["resourceVersion"]
                    .as_str()
                    .map(String::from),
            };
            Ok(json_response(
                200,
                &api.delete(&res, &ns, name, &pre, dry_run)?,
            ))
        }
        (&Method::DELETE, None, None) => {
            if res.plural == "namespaces" {
                return Err(ApiError::method_not_allowed(
                    "deletecollection of namespaces",
                ));
            }
            let filter = filter_from(&params)?;
            let dry_run = params.get("dryRun").is_some_and(|v| v == "All");
            Ok(json_response(
                200,
                &api.delete_collection(&res, target.namespace.as_deref(), &filter, dry_run),
            ))
        }
        _ => Err(ApiError::method_not_allowed(&format!(
            "{method} {}",
            res.qualified_resource()
        ))),
    }
}

fn read_log(
    state: &AppState,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let pod = state.api.get(res, ns, name)?;
    let container = logs::resolve_container(&pod, params.get("container").map(String::as_str))?;
    if parse_bool(params, "previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let since = match (
        params.get("sinceTime"),
        number::<i64>(params, "sinceSeconds")?,
    ) {
        (Some(time), _) => Some(
            meta::parse_time(time)
                .ok_or_else(|| ApiError::bad_request(format!("invalid sinceTime {time:?}")))?,
        ),
        (None, Some(seconds)) => Some(chrono::Utc::now() - chrono::Duration::seconds(seconds)),
        (None, None) => None,
    };
    let options = LogOptions {
        follow: parse_bool(params, "follow"),
        since,
        tail_lines: number(params, "tailLines")?,
        timestamps: parse_bool(params, "timestamps"),
        limit_bytes: number(params, "limitBytes")?,
    };
    let stream = state
        .logs
        .read(state.api.store.clone(), &pod, options, container);
    let body = Body::from_stream(futures::StreamExt::map(
        stream,
        Ok::<_, std::convert::Infallible>,
    ));
    Ok(raw_response(200, "text/plain", body))
}

/// Test-only: `POST /emulator/v1/namespaces/{ns}/pods/{name}/log?container=c`, one log line per body line.
/// (`POST .../end-log-streams` ends the pod's open `follow` reads, as a container restart does.)
async fn append_log(
    state: &AppState,
    ns: &str,
    name: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let params = query(&request);
    let (_, body) = read_body(request).await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("log lines must be UTF-8"))?;
    state.append_log(ns, name, params.get("container").map(String::as_str), &text)?;
    Ok(json_response(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
    ))
}
