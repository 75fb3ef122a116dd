//! `GET /api/v1/demos/{id}/logs` and `GET /api/v1/logs` (across demos): demo pod logs from ClickHouse,
//! filtered and paged, or followed live as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::Object;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody, Problems};
use super::query::QueryParams;
use crate::logs::{DemoLogCursor, DemoLogQuery, DemoLogRow, LEVELS, LineStream, STREAMS};

const DEFAULT_LIMIT: u64 = 200;
const MAX_LIMIT: u64 = 5000;
/// How often a live tail looks for new lines.
const TAIL_POLL: Duration = Duration::from_millis(500);

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// RFC 3339; lines at or after it.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339; lines before it.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// debug, info, warn or error: that level and more severe ones.
    #[param(schema_with = min_level_schema)]
    pub level: Option<String>,
    /// Case-insensitive text the message contains.
    #[param(min_length = 1, max_length = 500)]
    pub q: Option<String>,
    pub pod: Option<String>,
    /// One namespace (e.g. one that opted in to log collection, with `cluster_id`).
    pub namespace: Option<String>,
    /// Only containers' output, Kubernetes events, or the agent's own log.
    #[param(inline)]
    pub stream: Option<LineStream>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 5000, default = 200)]
    pub limit: Option<u64>,
    /// Keep the response open and send new lines as server-sent events.
    #[serde(default)]
    #[param(default = false)]
    pub follow: bool,
    /// Only for `GET /logs`: the lines of one demo.
    pub demo_id: Option<Uuid>,
    /// Only for `GET /logs`: the lines of one cluster.
    pub cluster_id: Option<Uuid>,
}

/// A log level, in the OpenAPI document.
pub(super) fn level_schema() -> Object {
    super::one_of(LEVELS)
}

/// The `level` parameter's schema carries its description: utoipa leaves that off a parameter with its own
/// schema.
fn min_level_schema() -> Object {
    let mut schema = level_schema();
    schema.description = Some("This level and more severe ones".into());
    schema
}

#[derive(Serialize, ToSchema)]
#[schema(as = DemoLogLine)]
pub struct LogLineView {
    pub time: DateTime<Utc>,
    #[schema(schema_with = level_schema)]
    pub level: String,
    pub message: String,
    pub demo_id: String,
    pub cluster_id: String,
    pub region: String,
    pub namespace: String,
    /// The pod; for an event, the object it is about (`Kind/name`).
    pub pod: String,
    /// Empty for events.
    pub container: String,
    #[schema(schema_with = stream_schema)]
    pub stream: String,
}

/// A line's stream, in the OpenAPI document.
fn stream_schema() -> Object {
    super::one_of(STREAMS)
}

#[derive(Serialize, ToSchema)]
pub struct DemoLogs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo_id: Option<Uuid>,
    pub lines: Vec<LogLineView>,
    /// Pass as `cursor` for the next page; absent when this page was not full.
    pub next_cursor: Option<String>,
}

/// The demo's pod logs (stored in ClickHouse), filtered and paged, or followed live
///
/// Lines are in time order (ties broken by pod, container, message). Each carries the cluster, region,
/// namespace, pod and container it came from. A line an agent resent is returned once. With follow=true the
/// response is a server-sent event stream: every matching line as a `line` event (id = cursor), then new lines as
/// they are stored.
#[utoipa::path(
    get,
    path = "/demos/{id}/logs",
    operation_id = "demo_logs",
    params(("id" = Uuid, Path, description = "The demo"), LogsQuery),
    responses(
        (status = 200, description = "A page of lines, or (follow=true) an event stream", content(
            (DemoLogs = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 404, description = "No such demo", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn logs(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
    QueryParams(params): QueryParams<LogsQuery>,
) -> Result<Response, ApiError> {
    let mut query = parse(&params)?;
    state.store.demo(id).await?;
    query.demo_id = Some(id.to_string());
    answer(state, query, params.follow, Some(id)).await
}

/// Pod logs across demos and clusters, including pods that opted in to collection (same filters, paging and
/// follow mode as /demos/{id}/logs)
#[utoipa::path(
    get,
    path = "/logs",
    operation_id = "search_logs",
    params(LogsQuery),
    responses(
        (status = 200, description = "A page of lines, or (follow=true) an event stream of `line` events", content(
            (DemoLogs = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn search(
    State(state): State<ApiState>,
    _: Principal,
    QueryParams(params): QueryParams<LogsQuery>,
) -> Result<Response, ApiError> {
    let mut query = parse(&params)?;
    query.demo_id = params.demo_id.map(|id| id.to_string());
    query.cluster_id = params.cluster_id.map(|id| id.to_string());
    answer(state, query, params.follow, params.demo_id).await
}

async fn answer(
    state: ApiState,
    query: DemoLogQuery,
    follow: bool,
    demo_id: Option<Uuid>,
) -> Result<Response, ApiError> {
    if follow {
        return Ok(tail(state, query).into_response());
    }
    let rows = state
        .logs
        .demo_logs(&query)
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = (rows.len() as u64 == query.limit)
        .then(|| rows.last().map(|row| encode_cursor(&row.cursor())))
        .flatten();
    Ok(Json(DemoLogs {
        demo_id,
        lines: rows.into_iter().map(view).collect(),
        next_cursor,
    })
    .into_response())
}

/// Every matching line from the cursor (or the time range's start) on, then new ones as they are stored, each
/// as a `line` event whose id is the cursor to resume from.
fn tail(
    state: ApiState,
    query: DemoLogQuery,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    // `caught_up`: the last read returned less than a page, so the next one waits for new lines; after a full
    // page the tail reads on at once, so a busy demo does not leave it behind.
    let stream = futures::stream::unfold(
        (
            query,
            std::collections::VecDeque::<DemoLogRow>::new(),
            false,
        ),
        move |(mut query, mut pending, caught_up)| {
            let state = state.clone();
            async move {
                let mut caught_up = caught_up;
                loop {
                    if let Some(row) = pending.pop_front() {
                        let cursor = encode_cursor(&row.cursor());
                        let data = serde_json::to_string(&view(row)).unwrap_or_default();
                        let event = Event::default().event("line").id(cursor).data(data);
                        return Some((Ok(event), (query, pending, caught_up)));
                    }
                    if caught_up {
                        tokio::time::sleep(TAIL_POLL).await;
                    }
                    match state.logs.demo_logs(&query).await {
                        Ok(rows) => {
                            caught_up = (rows.len() as u64) < query.limit;
                            if let Some(last) = rows.last() {
                                query.after = Some(last.cursor());
                            }
                            pending.extend(rows);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "live tail cannot read demo logs");
                            let event = Event::default().event("error").data(error.to_string());
                            return Some((Ok(event), (query, pending, true)));
                        }
                    }
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn parse(params: &LogsQuery) -> Result<DemoLogQuery, ApiError> {
    let mut problems = Problems::default();
    let mut time = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|text| match DateTime::parse_from_rfc3339(text) {
                Ok(time) => {
                    let nanos = time.timestamp_nanos_opt();
                    if nanos.is_none() {
                        problems.add(field, "must be between the years 1678 and 2261");
                    }
                    nanos
                }
                Err(_) => {
                    problems.add(field, "must be an RFC 3339 time, e.g. 2026-11-23T21:00:00Z");
                    None
                }
            })
    };
    let since_nanos = time("since", &params.since);
    let until_nanos = time("until", &params.until);
    let min_level = match params.level.as_deref() {
        None => None,
        Some(level) => {
            let found = LEVELS.iter().copied().find(|known| *known == level);
            if found.is_none() {
                problems.add("level", "must be debug, info, warn or error");
            }
            found
        }
    };
    if params
        .q
        .as_deref()
        .is_some_and(|q| q.is_empty() || q.len() > 500)
    {
        problems.add("q", "must be 1-500 characters");
    }
    let after = params.cursor.as_deref().and_then(|cursor| {
        let decoded = decode_cursor(cursor);
        if decoded.is_none() {
            problems.add("cursor", "is not a cursor this API returned");
        }
        decoded
    });
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        problems.add("limit", format!("must be between 1 and {MAX_LIMIT}"));
    }
    problems.into_result()?;
    Ok(DemoLogQuery {
        since_nanos,
        until_nanos,
        min_level,
        text: params.q.clone(),
        pod: params.pod.clone(),
        namespace: params.namespace.clone(),
        stream: params.stream,
        demo_id: None,
        cluster_id: None,
        after,
        limit,
    })
}

fn encode_cursor(cursor: &DemoLogCursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).expect("cursors serialize"))
}

fn decode_cursor(text: &str) -> Option<DemoLogCursor> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).ok()?).ok()
}

fn view(row: DemoLogRow) -> LogLineView {
    LogLineView {
        time: DateTime::from_timestamp_nanos(row.ts_nanos),
        level: row.level,
        message: row.message,
        demo_id: row.demo_id,
        cluster_id: row.cluster_id,
        region: row.region,
        namespace: row.namespace,
        pod: row.pod,
        container: row.container,
        stream: row.stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = DemoLogCursor {
            ts_nanos: 1_700_000_000_123_456_789,
            cluster_id: "3f1c".into(),
            pod_uid: "6a0e-44".into(),
            container: "demo".into(),
            seq: u64::MAX,
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }

    #[test]
    fn bad_parameters_are_named() {
        let params = LogsQuery {
            since: Some("yesterday".into()),
            until: None,
            level: Some("loud".into()),
            q: None,
            pod: None,
            namespace: None,
            stream: None,
            cursor: Some("x".into()),
            limit: Some(0),
            follow: false,
            demo_id: None,
            cluster_id: None,
        };
        let Err(error) = parse(&params) else {
            panic!("bad parameters were accepted");
        };
        let text = format!("{error:?}");
        for field in ["since", "level", "cursor", "limit"] {
            assert!(text.contains(field), "{field} not named in {text}");
        }
    }
}
