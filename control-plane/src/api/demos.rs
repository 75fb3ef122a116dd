//! `/api/v1/demos`: one-click deploys of a template + image to a region (or `auto`), with their steps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, Problems};
use super::json::JsonBody;
use crate::domain::{DemoConfig, DemoStatus, RequestedRegion, StepState};
use crate::store::{Demo, DemoChange, DemoInsert, DemoStep, DemoVersion, NewDemo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDemo {
    pub name: String,
    pub template: String,
    /// A template version; the latest revision when absent.
    pub template_version: Option<String>,
    /// Image reference; the template's default image when absent (required for bring-your-own-image).
    pub image: Option<String>,
    /// A region id, or `auto`.
    pub region: String,
    #[serde(default)]
    pub env: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "one")]
    pub replicas: i32,
    pub idempotency_key: Option<String>,
}

fn one() -> i32 {
    1
}

#[derive(Serialize)]
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
        })
        .await?;
    let (status, demo) = match inserted {
        DemoInsert::Created(demo) => {
            tracing::info!(demo_id = %demo.id, name = %demo.name, by = %principal.label(), "demo deploy requested");
            (StatusCode::ACCEPTED, demo)
        }
        DemoInsert::Existing(demo) => (StatusCode::OK, demo),
    };
    let steps = state.store.demo_steps(demo.id, demo.version).await?;
    Ok((status, Json(DemoDetail { demo, steps })))
}

pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
) -> Result<Json<Vec<Demo>>, ApiError> {
    Ok(Json(state.store.demos().await?))
}

pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<DemoDetail>, ApiError> {
    let demo = state.store.demo(id).await?;
    let steps = state.store.demo_steps(demo.id, demo.version).await?;
    Ok(Json(DemoDetail { demo, steps }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateDemo {
    pub image: Option<String>,
    /// Replaces the demo's environment overrides.
    pub env: Option<serde_json::Map<String, serde_json::Value>>,
    pub replicas: Option<i32>,
}

#[derive(Deserialize)]
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
    let steps = state.store.demo_steps(demo.id, demo.version).await?;
    Ok((StatusCode::ACCEPTED, Json(DemoDetail { demo, steps })))
}

/// `POST /demos/{id}/update`: a new image, environment or replica count, rolled out as a new version.
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
        },
    )
    .await
}

/// `POST /demos/{id}/rollback`: a new version with the template, image and config of an earlier one.
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
    };
    change(&state, id, change_to).await
}

/// `POST /demos/{id}/stop` (scale to zero, status offline) and `/start` (back to the replicas it had).
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
        },
    )
    .await
}

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

/// `DELETE /demos/{id}`: prune the demo's objects from its cluster, then close it (soft delete).
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "delete demos")?;
    let demo = state
        .store
        .request_demo_delete(id, &principal.label())
        .await?;
    tracing::info!(demo_id = %demo.id, by = %principal.label(), "demo delete requested");
    let steps = state.store.demo_steps(demo.id, demo.version).await?;
    Ok((StatusCode::ACCEPTED, Json(DemoDetail { demo, steps })))
}

/// `POST /demos/{id}/retry`: resume from the failed step.
pub async fn retry(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<DemoDetail>), ApiError> {
    principal.require(Role::Operator, "retry demo steps")?;
    let demo = state.store.retry_demo(id, &principal.label()).await?;
    tracing::info!(demo_id = %demo.id, by = %principal.label(), step = ?demo.current_step, "demo step retry");
    let steps = state.store.demo_steps(demo.id, demo.version).await?;
    Ok((StatusCode::ACCEPTED, Json(DemoDetail { demo, steps })))
}

/// `GET /demos/{id}/versions`: the version history, newest first.
pub async fn versions(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<DemoVersion>>, ApiError> {
    state.store.demo(id).await?;
    Ok(Json(state.store.demo_versions(id).await?))
}

/// `GET /demos/{id}/events`: server-sent events with each step transition of the current deploy (`step`), the
/// demo's status (`demo`), and `done` when the deploy finished (all steps succeeded, or one failed).
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
            let Ok(demo) = w.store.demo(w.id).await else {
                return None;
            };
            let steps = w
                .store
                .demo_steps(demo.id, demo.version)
                .await
                .unwrap_or_default();
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
