//! `/api/v1/demos`: one-click deploys of a template + image to a region (or `auto`), with their steps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::json::JsonBody;
use crate::domain::{DemoConfig, DemoStatus, RequestedRegion, StepState};
use crate::store::{Demo, DemoChange, DemoInsert, DemoStep, DemoVersion, NewDemo};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDemo {
    #[schema(max_length = 40)]
    pub name: String,
    pub template: String,
    /// A template version; the latest revision when absent.
    pub template_version: Option<String>,
    /// Image reference; the template's default image when absent (required for bring-your-own-image).
    pub image: Option<String>,
    /// A region id, or `auto`.
    pub region: String,
    /// Overrides of the template's environment variables.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub env: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "one")]
    #[schema(minimum = 0, maximum = 20, default = 1)]
    pub replicas: i32,
    pub idempotency_key: Option<String>,
}

fn one() -> i32 {
    1
}

#[derive(Serialize, ToSchema)]
pub struct DemoDetail {
    #[serde(flatten)]
    pub demo: Demo,
    /// The steps of the current deploy, in order.
    pub steps: Vec<DemoStep>,
}

/// `registry/path[:tag][@sha256:digest]` with the lowercase repository Docker requires.
fn valid_image_reference(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    if digest.is_some_and(|d| !d.starts_with("sha256:") || d.len() != 71) {
        return false;
    }
    let (repository, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    let repository_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-:".contains(c))
        });
    tag_ok && repository_ok
}

fn check_replicas(problems: &mut Problems, replicas: i32) {
    if !(0..=DemoConfig::MAX_REPLICAS).contains(&replicas) {
        problems.add(
            "replicas",
            format!("must be between 0 and {}", DemoConfig::MAX_REPLICAS),
        );
    }
}

/// Environment overrides: names like `MODEL_NAME`, string values.
fn check_env(
    problems: &mut Problems,
    env: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::BTreeMap<String, String> {
    let mut checked = std::collections::BTreeMap::new();
    for (key, value) in env {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            problems.add(format!("env.{key}"), "names must match [A-Z_][A-Z0-9_]*");
        }
        match value.as_str() {
            Some(text) => {
                checked.insert(key.clone(), text.to_owned());
            }
            None => problems.add(format!("env.{key}"), "values must be strings"),
        }
    }
    checked
}

/// One-click deploy of a template + image to a region or `auto` (operator)
///
/// The deploy runs as steps (ensure_cluster, ensure_agent, render, apply, wait_ready, publish_url); a region
/// without a cluster gets one provisioned. The same idempotency_key returns the first demo (200).
#[utoipa::path(
    post,
    path = "/demos",
    operation_id = "create_demo",
    request_body = CreateDemo,
    responses(
        (status = 202, description = "Deploy started", body = DemoDetail),
        (status = 200, description = "Existing demo with the same idempotency key", body = DemoDetail),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateDemo>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "deploy demos")?;
    let mut problems = Problems::default();
    problems.check_name("name", &body.name);
    if body.name.len() > 40 {
        problems.add(
            "name",
            "must be at most 40 characters (it names the demo's namespace and host)",
        );
    }
    check_replicas(&mut problems, body.replicas);
    let template = match state.store.template_revisions(&body.template).await {
        Ok(revisions) => {
            let chosen = match &body.template_version {
                Some(version) => revisions.into_iter().find(|t| &t.version == version),
                None => revisions.into_iter().find(|t| t.latest),
            };
            if chosen.is_none() {
                problems.add("template_version", "no such version of the template");
            }
            chosen
        }
        Err(_) => {
            problems.add(
                "template",
                format!("no image template named {:?}", body.template),
            );
            None
        }
    };
    let image = body
        .image
        .clone()
        .or_else(|| template.as_ref().and_then(|t| t.default_image.clone()));
    match &image {
        None if template.is_some() => {
            problems.add("image", "this template needs an image reference")
        }
        Some(image) if !valid_image_reference(image) => problems.add(
            "image",
            "is not a valid image reference (e.g. registry.example.com/team/model:1.2)",
        ),
        _ => {}
    }
    let region = body.region.parse::<RequestedRegion>();
    match region {
        Ok(RequestedRegion::Region(id)) if state.store.region(id).await.is_err() => {
            problems.add("region", "must be `auto` or the id of a region")
        }
        Ok(_) => {}
        Err(ref error) => problems.add("region", error.to_string()),
    }
    let env = check_env(&mut problems, &body.env);
    problems.into_result()?;
    let (Some(template), Some(image), Ok(requested_region)) = (template, image, region) else {
        unreachable!("a missing template, image or region is reported above")
    };
    let inserted = state
        .store
        .insert_demo(NewDemo {
            name: body.name,
            owner: principal.label(),
            template_id: template.id,
            image,
            requested_region,
            config: DemoConfig {
                env,
                replicas: body.replicas,
            },
            idempotency_key: body.idempotency_key,
            trace_parent: telemetry::current_traceparent(),
        })
        .await?;
    let (status, demo) = match inserted {
        DemoInsert::Created(demo) => {
            tracing::info!(demo_id = %demo.id, name = %demo.name, by = %principal.label(), "demo deploy requested");
            (StatusCode::ACCEPTED, demo)
        }
        DemoInsert::Existing(demo) => (StatusCode::OK, demo),
    };
    let (demo, steps) = state.store.demo_with_steps(demo.id).await?;
    Ok((status, Json(DemoDetail { demo, steps })))
}

/// Demos (not deleted), newest first
#[utoipa::path(
    get,
    path = "/demos",
    operation_id = "list_demos",
    responses((status = 200, description = "Demos", body = [Demo]))
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
) -> Result<Json<Vec<Demo>>, ApiError> {
    Ok(Json(state.store.demos().await?))
}

/// A demo with the steps of its current deploy
#[utoipa::path(
    get,
    path = "/demos/{id}",
    operation_id = "get_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 200, description = "The demo", body = DemoDetail),
        (status = 404, description = "No such demo", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<DemoDetail>, ApiError> {
    let (demo, steps) = state.store.demo_with_steps(id).await?;
    Ok(Json(DemoDetail { demo, steps }))
}

/// At least one field changes.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateDemo {
    pub image: Option<String>,
    /// Replaces the demo's environment overrides.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub env: Option<serde_json::Map<String, serde_json::Value>>,
    #[schema(minimum = 0, maximum = 20)]
    pub replicas: Option<i32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub version: i32,
}

/// Queues a new version of the demo and answers with the demo and its new steps.
async fn change(
    state: &ApiState,
    id: Uuid,
    change: DemoChange,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    let demo = state.store.change_demo(id, change).await?;
    tracing::info!(demo_id = %demo.id, version = demo.version, "demo version queued");
    let (demo, steps) = state.store.demo_with_steps(demo.id).await?;
    Ok((StatusCode::ACCEPTED, Json(DemoDetail { demo, steps })))
}

/// Roll out a new image, environment or replica count as a new version (operator)
#[utoipa::path(
    post,
    path = "/demos/{id}/update",
    operation_id = "update_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    request_body = UpdateDemo,
    responses(
        (status = 202, description = "New version queued", body = DemoDetail),
        (status = 404, description = "No such demo", body = ErrorBody),
        (status = 409, description = "The demo is being deleted", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<UpdateDemo>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "update demos")?;
    let current = state.store.demo(id).await?;
    let mut problems = Problems::default();
    if let Some(image) = &body.image
        && !valid_image_reference(image)
    {
        problems.add(
            "image",
            "is not a valid image reference (e.g. registry.example.com/team/model:1.2)",
        );
    }
    if let Some(replicas) = body.replicas {
        check_replicas(&mut problems, replicas);
    }
    let env = body.env.as_ref().map(|env| check_env(&mut problems, env));
    if body.image.is_none() && body.env.is_none() && body.replicas.is_none() {
        problems.add("body", "change at least one of image, env, replicas");
    }
    problems.into_result()?;
    let mut config = current.config.0.clone();
    if let Some(env) = env {
        config.env = env;
    }
    if let Some(replicas) = body.replicas {
        config.replicas = replicas;
    }
    let reason = match (&body.image, body.replicas) {
        (Some(image), _) => format!("update to image {image}"),
        (None, Some(replicas)) => format!("scale to {replicas} replica(s)"),
        _ => "update of the environment".to_string(),
    };
    change(
        &state,
        id,
        DemoChange {
            template_id: None,
            image: body.image,
            config: Some(config),
            reason,
            by: principal.label(),
            trace_parent: telemetry::current_traceparent(),
        },
    )
    .await
}

/// A new version with the template, image and configuration of an earlier one (operator)
#[utoipa::path(
    post,
    path = "/demos/{id}/rollback",
    operation_id = "roll_back_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    request_body = Rollback,
    responses(
        (status = 202, description = "New version queued", body = DemoDetail),
        (status = 422, description = "The demo has no such version", body = ErrorBody),
    )
)]
pub async fn rollback(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<Rollback>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "roll back demos")?;
    let versions = state.store.demo_versions(id).await?;
    let Some(target) = versions.into_iter().find(|v| v.version == body.version) else {
        return Err(ApiError::validation(vec![
            crate::domain::taskspec::FieldProblem {
                field: "version".into(),
                message: format!("demo {id} has no version {}", body.version),
            },
        ]));
    };
    let change_to = DemoChange {
        template_id: Some(target.template_id),
        image: Some(target.image),
        config: Some(target.config.0),
        reason: format!("rollback to version {}", body.version),
        by: principal.label(),
        trace_parent: telemetry::current_traceparent(),
    };
    change(&state, id, change_to).await
}

/// Scale to zero; the demo becomes offline (operator)
#[utoipa::path(
    post,
    path = "/demos/{id}/stop",
    operation_id = "stop_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 202, description = "New version queued", body = DemoDetail),
    )
)]
pub async fn stop(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "stop demos")?;
    scale(&state, &principal, id, 0, "stop (scale to zero)".into()).await
}

/// A new version that only changes the replica count.
async fn scale(
    state: &ApiState,
    principal: &Principal,
    id: Uuid,
    replicas: i32,
    reason: String,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    let mut config = state.store.demo(id).await?.config.0;
    config.replicas = replicas;
    let by = principal.label();
    change(
        state,
        id,
        DemoChange {
            template_id: None,
            image: None,
            config: Some(config),
            reason,
            by,
            trace_parent: telemetry::current_traceparent(),
        },
    )
    .await
}

/// Back to the replica count it last had (operator)
#[utoipa::path(
    post,
    path = "/demos/{id}/start",
    operation_id = "start_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 202, description = "New version queued", body = DemoDetail),
    )
)]
pub async fn start(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "start demos")?;
    let versions = state.store.demo_versions(id).await?;
    let replicas = versions
        .iter()
        .map(|v| v.config.0.replicas)
        .find(|r| *r > 0)
        .unwrap_or(1);
    scale(
        &state,
        &principal,
        id,
        replicas,
        format!("start ({replicas} replica(s))"),
    )
    .await
}

/// Delete a demo (operator)
///
/// Runs the steps prune (the agent deletes every object labelled edgefleet.io/demo=<id>, Namespaces last) and
/// close (status closed, deleted_at set: a soft delete, the record and its history stay readable). The demo goes
/// offline at once and a deploy in flight is cancelled. Repeating the request while the delete runs returns the
/// same demo.
#[utoipa::path(
    delete,
    path = "/demos/{id}",
    operation_id = "delete_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 202, description = "Delete started", body = DemoDetail),
        (status = 404, description = "No such demo", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "delete demos")?;
    let demo = state
        .store
        .request_demo_delete(
            id,
            &principal.label(),
            telemetry::current_traceparent().as_deref(),
        )
        .await?;
    tracing::info!(demo_id = %demo.id, by = %principal.label(), "demo delete requested");
    let (demo, steps) = state.store.demo_with_steps(demo.id).await?;
    Ok((StatusCode::ACCEPTED, Json(DemoDetail { demo, steps })))
}

/// Resume the current deploy or delete from its failed step (operator)
///
/// The failed step becomes pending again as a new attempt (with a new task); the steps before it are not
/// repeated.
#[utoipa::path(
    post,
    path = "/demos/{id}/retry",
    operation_id = "retry_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 202, description = "Retry queued", body = DemoDetail),
        (status = 404, description = "No such demo", body = ErrorBody),
        (status = 409, description = "No step has failed", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "retry demo steps")?;
    let demo = state.store.retry_demo(id, &principal.label()).await?;
    tracing::info!(demo_id = %demo.id, by = %principal.label(), step = ?demo.current_step, "demo step retry");
    let (demo, steps) = state.store.demo_with_steps(demo.id).await?;
    Ok((StatusCode::ACCEPTED, Json(DemoDetail { demo, steps })))
}

/// Version history, newest first
#[utoipa::path(
    get,
    path = "/demos/{id}/versions",
    operation_id = "list_demo_versions",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 200, description = "Versions", body = [DemoVersion]),
        (status = 404, description = "No such demo", body = ErrorBody),
    )
)]
pub async fn versions(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<DemoVersion>>, ApiError> {
    state.store.demo(id).await?;
    Ok(Json(state.store.demo_versions(id).await?))
}

/// Live progress of the current deploy as server-sent events
///
/// Events: `step` ({version, step, state, message}) for every step transition, `demo` ({version, status,
/// current_step, url, error}) when the demo changes, and `done` (succeeded or failed) when the deploy finished
/// (all steps succeeded, or one failed); then the stream ends.
#[utoipa::path(
    get,
    path = "/demos/{id}/events",
    operation_id = "watch_demo",
    params(("id" = Uuid, Path, description = "The demo")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such demo", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<
    axum::response::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    state.store.demo(id).await?;
    struct Watch {
        store: crate::store::Store,
        id: Uuid,
        seen: std::collections::HashMap<(i32, i32), (StepState, Option<String>)>,
        demo_seen: Option<(DemoStatus, Option<String>, Option<String>)>,
        pending: std::collections::VecDeque<Event>,
        finished: bool,
        first: bool,
    }
    let watch = Watch {
        store: state.store.clone(),
        id,
        seen: Default::default(),
        demo_seen: None,
        pending: Default::default(),
        finished: false,
        first: true,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(event) = w.pending.pop_front() {
                return Some((Ok(event), w));
            }
            if w.finished {
                return None;
            }
            if !w.first {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            w.first = false;
            let Ok((demo, steps)) = w.store.demo_with_steps(w.id).await else {
                return None;
            };
            for step in &steps {
                let key = (step.version, step.position);
                let value = (step.state, step.message.clone());
                if w.seen.get(&key) != Some(&value) {
                    w.seen.insert(key, value);
                    let data = serde_json::json!({"version": step.version, "step": step.name, "state": step.state, "message": step.message});
                    w.pending
                        .push_back(Event::default().event("step").data(data.to_string()));
                }
            }
            let demo_state = (demo.status, demo.url.clone(), demo.error.clone());
            if w.demo_seen.as_ref() != Some(&demo_state) {
                w.demo_seen = Some(demo_state);
                let data = serde_json::json!({"version": demo.version, "status": demo.status, "current_step": demo.current_step, "url": demo.url, "error": demo.error});
                w.pending
                    .push_back(Event::default().event("demo").data(data.to_string()));
            }
            let failed = steps.iter().any(|s| s.state == StepState::Failed);
            let succeeded =
                !steps.is_empty() && steps.iter().all(|s| s.state == StepState::Succeeded);
            if failed || succeeded {
                w.finished = true;
                let outcome = if failed {
                    StepState::Failed
                } else {
                    StepState::Succeeded
                };
                w.pending
                    .push_back(Event::default().event("done").data(outcome.as_str()));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::valid_image_reference;

    #[test]
    fn image_references() {
        for ok in [
            "nginx",
            "ghcr.io/edgefleet/templates/gradio-demo:1.0.0",
            "localhost:5000/a/b:v1",
            "a/b@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert!(valid_image_reference(ok), "{ok}");
        }
        for bad in ["", "Upper/Case:1", "a b:1", "repo:", "repo:bad tag", "a//b"] {
            assert!(!valid_image_reference(bad), "{bad}");
        }
    }
}
