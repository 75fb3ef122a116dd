//! `/api/v1/clouds`: cloud accounts with write-only, sealed credentials.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::Object;
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::json::JsonBody;
use crate::store::{CloudAccount, NewCloudAccount};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCloud {
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(schema_with = provider_schema)]
    pub provider: String,
    /// tencentcloud: secret_id, secret_key; aws: access_key_id, secret_access_key, session_token (optional);
    /// local: none; existing: kubeconfig (optional).
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The cloud providers, each with the credential fields it takes: (name, required).
const PROVIDERS: &[(&str, &[(&str, bool)])] = &[
    ("tencentcloud", &[("secret_id", true), ("secret_key", true)]),
    (
        "aws",
        &[
            ("access_key_id", true),
            ("secret_access_key", true),
            ("session_token", false),
        ],
    ),
    ("local", &[]),
    ("existing", &[("kubeconfig", false)]),
];

/// The credential fields a provider takes: (name, required).
pub fn credential_schema(provider: &str) -> Option<&'static [(&'static str, bool)]> {
    PROVIDERS
        .iter()
        .find(|(name, _)| *name == provider)
        .map(|(_, fields)| *fields)
}

fn provider_schema() -> Object {
    super::one_of(PROVIDERS.iter().map(|(name, _)| *name))
}

/// Register a cloud account (admin)
///
/// Credentials are write-only, sealed with AES-256-GCM at rest, and never returned.
#[utoipa::path(
    post,
    path = "/clouds",
    operation_id = "create_cloud",
    request_body = CreateCloud,
    responses(
        (status = 201, description = "Created", body = CloudAccount),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateCloud>,
) -> Result<(StatusCode, Json<CloudAccount>), ApiError> {
    principal.require(Role::Admin, "register cloud accounts")?;
    let mut problems = Problems::default();
    problems.check_name("name", &body.name);
    check_credentials(&mut problems, &body.provider, &body.credentials);
    check_tags(&mut problems, &body.tags);
    problems.into_result()?;

    let id = Uuid::new_v4();
    let (credentials_sealed, credential_fields) = seal_credentials(&state, id, &body.credentials);
    let cloud = state
        .store
        .insert_cloud(NewCloudAccount {
            id,
            name: body.name,
            provider: body.provider,
            credentials_sealed,
            credential_fields,
            tags: serde_json::to_value(&body.tags).expect("map serializes"),
        })
        .await?;
    tracing::info!(cloud_id = %cloud.id, provider = %cloud.provider, by = %principal.label(), "cloud account registered");
    Ok((StatusCode::CREATED, Json(cloud)))
}

/// At least one field changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateCloud {
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    pub name: Option<String>,
    /// Replaces every credential (rotation); the provider's rules apply as on create.
    pub credentials: Option<BTreeMap<String, String>>,
    pub tags: Option<BTreeMap<String, String>>,
}

/// Rename a cloud account, rotate its credentials (replacing all of them; the provider's rules apply) or replace its tags (admin)
///
/// The provider cannot change.
#[utoipa::path(
    patch,
    path = "/clouds/{id}",
    operation_id = "update_cloud",
    params(("id" = Uuid, Path, description = "The cloud account")),
    request_body = UpdateCloud,
    responses(
        (status = 200, description = "The changed account (credential field names only)", body = CloudAccount),
        (status = 404, description = "No such cloud account", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<UpdateCloud>,
) -> Result<Json<CloudAccount>, ApiError> {
    principal.require(Role::Admin, "change cloud accounts")?;
    let current = state.store.cloud(id).await?;
    let mut problems = Problems::default();
    if let Some(name) = &body.name {
        problems.check_name("name", name);
    }
    if let Some(credentials) = &body.credentials {
        check_credentials(&mut problems, &current.provider, credentials);
    }
    if let Some(tags) = &body.tags {
        check_tags(&mut problems, tags);
    }
    if body.name.is_none() && body.credentials.is_none() && body.tags.is_none() {
        problems.add("body", "change at least one of name, credentials, tags");
    }
    problems.into_result()?;
    let credentials = body
        .credentials
        .as_ref()
        .map(|credentials| seal_credentials(&state, id, credentials));
    let tags = body
        .tags
        .as_ref()
        .map(|tags| serde_json::to_value(tags).expect("map serializes"));
    let cloud = state
        .store
        .update_cloud(id, body.name.as_deref(), credentials, tags)
        .await?;
    tracing::info!(cloud_id = %id, rotated = body.credentials.is_some(), by = %principal.label(), "cloud account changed");
    Ok(Json(cloud))
}

/// The provider's required fields are present and no unknown field is given.
fn check_credentials(
    problems: &mut Problems,
    provider: &str,
    credentials: &BTreeMap<String, String>,
) {
    let Some(schema) = credential_schema(provider) else {
        let providers: Vec<&str> = PROVIDERS.iter().map(|(name, _)| *name).collect();
        problems.add(
            "provider",
            format!("must be one of {}", providers.join(", ")),
        );
        return;
    };
    for (field, required) in schema {
        let present = credentials
            .get(*field)
            .is_some_and(|v| !v.trim().is_empty());
        if *required && !present {
            problems.add(
                format!("credentials.{field}"),
                format!("is required for provider {provider}"),
            );
        }
    }
    for field in credentials.keys() {
        if !schema.iter().any(|(known, _)| known == field) {
            let known: Vec<&str> = schema.iter().map(|(k, _)| *k).collect();
            problems.add(
                format!("credentials.{field}"),
                format!(
                    "is not a {provider} credential field (expected: {})",
                    known.join(", ")
                ),
            );
        }
    }
}

fn check_tags(problems: &mut Problems, tags: &BTreeMap<String, String>) {
    for key in tags.keys() {
        if key.is_empty() || key.len() > 63 {
            problems.add(format!("tags.{key}"), "tag keys must be 1-63 characters");
        }
    }
}

/// Seals the non-empty credentials to the account's row; returns the ciphertext (none when empty) and the
/// field names.
fn seal_credentials(
    state: &ApiState,
    id: Uuid,
    credentials: &BTreeMap<String, String>,
) -> (Option<Vec<u8>>, Vec<String>) {
    let credentials: BTreeMap<&String, &String> = credentials
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let sealed = (!credentials.is_empty()).then(|| {
        let plaintext =
            zeroize::Zeroizing::new(serde_json::to_vec(&credentials).expect("map serializes"));
        state
            .sbox
            .seal(&plaintext, &crate::crypto::cloud_credentials_context(id))
    });
    (sealed, credentials.keys().map(|k| k.to_string()).collect())
}

/// List cloud accounts
#[utoipa::path(
    get,
    path = "/clouds",
    operation_id = "list_clouds",
    responses((status = 200, description = "Cloud accounts", body = [CloudAccount]))
)]
pub async fn list(
    State(state): State<ApiState>,
    _: Principal,
) -> Result<Json<Vec<CloudAccount>>, ApiError> {
    Ok(Json(state.store.clouds().await?))
}

/// Get a cloud account
#[utoipa::path(
    get,
    path = "/clouds/{id}",
    operation_id = "get_cloud",
    params(("id" = Uuid, Path, description = "The cloud account")),
    responses(
        (status = 200, description = "The account", body = CloudAccount),
        (status = 404, description = "No such cloud account", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    _: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<CloudAccount>, ApiError> {
    Ok(Json(state.store.cloud(id).await?))
}

/// Delete a cloud account (admin); refused with 409 while regions use it
#[utoipa::path(
    delete,
    path = "/clouds/{id}",
    operation_id = "delete_cloud",
    params(("id" = Uuid, Path, description = "The cloud account")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Regions use the account", body = ErrorBody),
    )
)]
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
