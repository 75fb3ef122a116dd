//! `/api/v1/clouds`: cloud accounts with write-only, sealed credentials.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, Problems};
use super::json::JsonBody;
use crate::store::{CloudAccount, NewCloudAccount};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCloud {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The credential fields each provider takes: (name, required).
pub fn credential_schema(provider: &str) -> Option<&'static [(&'static str, bool)]> {
    match provider {
        "tencentcloud" => Some(&[("secret_id", true), ("secret_key", true)]),
        "aws" => Some(&[
            ("access_key_id", true),
            ("secret_access_key", true),
            ("session_token", false),
        ]),
        "local" => Some(&[]),
        "existing" => Some(&[("kubeconfig", false)]),
        _ => None,
    }
}

pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateCloud>,
) -> Result<(StatusCode, Json<CloudAccount>), ApiError> {
    principal.require(Role::Admin, "register cloud accounts")?;
    let mut problems = Problems::default();
    problems.check_name("name", &body.name);
    match credential_schema(&body.provider) {
        None => problems.add(
            "provider",
            "must be one of tencentcloud, aws, local, existing",
        ),
        Some(schema) => {
            for (field, required) in schema {
                let present = body
                    .credentials
                    .get(*field)
                    .is_some_and(|v| !v.trim().is_empty());
                if *required && !present {
                    problems.add(
                        format!("credentials.{field}"),
                        format!("is required for provider {}", body.provider),
                    );
                }
            }
            for field in body.credentials.keys() {
                if !schema.iter().any(|(known, _)| known == field) {
                    let known: Vec<&str> = schema.iter().map(|(k, _)| *k).collect();
                    problems.add(
                        format!("credentials.{field}"),
                        format!(
                            "is not a {} credential field (expected: {})",
                            body.provider,
                            known.join(", ")
                        ),
                    );
                }
            }
        }
    }
    for key in body.tags.keys() {
        if key.is_empty() || key.len() > 63 {
            problems.add(format!("tags.{key}"), "tag keys must be 1-63 characters");
        }
    }
    problems.into_result()?;

    let id = Uuid::new_v4();
    let credentials: BTreeMap<&String, &String> = body
        .credentials
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let credentials_sealed = (!credentials.is_empty()).then(|| {
        let plaintext =
            zeroize::Zeroizing::new(serde_json::to_vec(&credentials).expect("map serializes"));
        state
            .sbox
            .seal(&plaintext, &crate::crypto::cloud_credentials_context(id))
    });
    let cloud = state
        .store
        .insert_cloud(NewCloudAccount {
            id,
            name: body.name,
            provider: body.provider,
            credentials_sealed,
            credential_fields: credentials.keys().map(|k| k.to_string()).collect(),
            tags: serde_json::to_value(&body.tags).expect("map serializes"),
        })
        .await?;
    tracing::info!(cloud_id = %cloud.id, provider = %cloud.provider, by = %principal.label(), "cloud account registered");
    Ok((StatusCode::CREATED, Json(cloud)))
}

pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
) -> Result<Json<Vec<CloudAccount>>, ApiError> {
    Ok(Json(state.store.clouds().await?))
}

pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<CloudAccount>, ApiError> {
    Ok(Json(state.store.cloud(id).await?))
}

pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin, "delete cloud accounts")?;
    state.store.delete_cloud(id).await?;
    tracing::info!(cloud_id = %id, by = %principal.label(), "cloud account deleted");
    Ok(StatusCode::NO_CONTENT)
}
