//! `/api/v1/users` and `/api/v1/api-tokens` (admin only): console users and API tokens for scripts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::json::JsonBody;
use crate::crypto::{API_TOKEN_PREFIX, OneTimeSecret, hash_password};
use crate::store::{ApiToken, User};

pub const MIN_PASSWORD_CHARS: usize = 12;

fn check_password(problems: &mut Problems, password: &str) {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS || password.len() > 1024 {
        problems.add(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters (and at most 1024 bytes)"),
        );
    }
}

fn check_role(problems: &mut Problems, role: &str) {
    if Role::parse(role).is_none() {
        problems.add("role", "must be admin, operator or viewer");
    }
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Console users (admin)
#[utoipa::path(
    get,
    path = "/users",
    operation_id = "list_users",
    responses(
        (status = 200, description = "Users", body = [User]),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Json<Vec<User>>, ApiError> {
    principal.require(Role::Admin, "list users")?;
    Ok(Json(state.store.users().await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub username: String,
    #[schema(min_length = 12, format = Password)]
    pub password: String,
    #[schema(value_type = Role)]
    pub role: String,
}

/// Add a user (admin); the password is stored as an argon2id hash
#[utoipa::path(
    post,
    path = "/users",
    operation_id = "create_user",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Added", body = User),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    principal.require(Role::Admin, "add users")?;
    let mut problems = Problems::default();
    if !crate::domain::names::is_username(&body.username) {
        problems.add("username", "must be 1-64 letters, digits, '.', '_' or '-'");
    }
    check_password(&mut problems, &body.password);
    check_role(&mut problems, &body.role);
    problems.into_result()?;
    let password_hash = hash(body.password).await?;
    let user = state
        .store
        .insert_user(&body.username, &password_hash, &body.role)
        .await?;
    tracing::info!(username = %user.username, role = %user.role, by = %principal.label(), "user added");
    Ok((StatusCode::CREATED, Json(user)))
}

/// At least one field changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateUser {
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    pub disabled: Option<bool>,
    #[schema(min_length = 12, format = Password)]
    pub password: Option<String>,
}

/// Change a user's role, disable/enable them, or set a new password (admin); their sessions end
///
/// The last enabled admin cannot be demoted or disabled (409).
#[utoipa::path(
    patch,
    path = "/users/{id}",
    operation_id = "update_user",
    params(("id" = Uuid, Path, description = "The user")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "Changed", body = User),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The user is the last enabled admin", body = ErrorBody),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    principal.require(Role::Admin, "change users")?;
    let mut problems = Problems::default();
    if let Some(role) = &body.role {
        check_role(&mut problems, role);
    }
    if let Some(password) = &body.password {
        check_password(&mut problems, password);
    }
    if body.role.is_none() && body.disabled.is_none() && body.password.is_none() {
        problems.add("body", "change at least one of role, disabled, password");
    }
    problems.into_result()?;
    let users = state.store.users().await?;
    let target = users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::from(crate::store::StoreError::not_found("user", id)))?;
    let loses_admin = target.role == "admin"
        && !target.disabled
        && (body.disabled == Some(true) || body.role.as_deref().is_some_and(|r| r != "admin"));
    let other_admins = users
        .iter()
        .filter(|u| u.id != id && u.role == "admin" && !u.disabled)
        .count();
    if loses_admin && other_admins == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "{} is the last enabled admin; add another admin first",
                target.username
            ),
        ));
    }
    let password_hash = match body.password {
        Some(password) => Some(hash(password).await?),
        None => None,
    };
    let user = state
        .store
        .update_user(
            id,
            body.role.as_deref(),
            body.disabled,
            password_hash.as_deref(),
        )
        .await?;
    tracing::info!(username = %user.username, by = %principal.label(), "user changed; their sessions ended");
    Ok(Json(user))
}

/// API tokens (admin); never their values
#[utoipa::path(
    get,
    path = "/api-tokens",
    operation_id = "list_api_tokens",
    responses((status = 200, description = "Tokens", body = [ApiToken]))
)]
pub async fn list_tokens(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    principal.require(Role::Admin, "list API tokens")?;
    Ok(Json(state.store.api_tokens().await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[schema(max_length = 100)]
    pub name: String,
    #[schema(value_type = Role)]
    pub role: String,
    /// Expiry in days (1-3650); none = no expiry.
    #[schema(minimum = 1, maximum = 3650)]
    pub ttl_days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The secret, shown this once.
    #[serde(rename = "token")]
    pub secret: String,
}

/// Create an API token for scripts (admin); the response holds the token, shown this once
#[utoipa::path(
    post,
    path = "/api-tokens",
    operation_id = "create_api_token",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created", body = CreatedToken),
        (status = 422, description = "The request is invalid", body = ErrorBody),
    )
)]
pub async fn create_token(
    State(state): State<ApiState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require(Role::Admin, "create API tokens")?;
    let mut problems = Problems::default();
    if body.name.trim().is_empty() || body.name.len() > 100 {
        problems.add("name", "must be 1-100 characters");
    }
    check_role(&mut problems, &body.role);
    if body
        .ttl_days
        .is_some_and(|days| !(1..=3650).contains(&days))
    {
        problems.add("ttl_days", "must be between 1 and 3650");
    }
    problems.into_result()?;
    let secret = OneTimeSecret::generate(API_TOKEN_PREFIX);
    let expires_at = body.ttl_days.map(|days| Utc::now() + Duration::days(days));
    let token = state
        .store
        .create_api_token(
            &body.name,
            &secret.digest(),
            &body.role,
            expires_at,
            &principal.label(),
        )
        .await?;
    tracing::info!(token_id = %token.id, name = %token.name, role = %token.role, by = %principal.label(), "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token,
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// Revoke an API token (admin)
#[utoipa::path(
    delete,
    path = "/api-tokens/{id}",
    operation_id = "revoke_api_token",
    params(("id" = Uuid, Path, description = "The API token")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such API token", body = ErrorBody),
    )
)]
pub async fn revoke_token(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin, "revoke API tokens")?;
    let token = state.store.revoke_api_token(id).await?;
    tracing::info!(token_id = %token.id, by = %principal.label(), "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
