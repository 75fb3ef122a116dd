//! `/api/v1/session`: console sign-in (argon2id passwords, rate limited), the current session with its CSRF
//! token, and sign-out.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ApiState;
use super::audit::AuditActor;
use super::auth::{Principal, Via, session_cookie_name, session_limits, unauthenticated};
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use crate::crypto::{OneTimeSecret, SESSION_TOKEN_PREFIX, hash_password, verify_password};
use crate::store::ThrottleKeys;

/// Sign-in attempts are counted over this window.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Attempts from one address, over all accounts, per window: a multiple of the per-account limit.
const ADDRESS_LIMIT_FACTOR: i64 = 4;
/// How much of a username an audit row keeps.
const AUDITED_USERNAME_CHARS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionUserView {
    /// Absent for API tokens.
    pub id: Option<Uuid>,
    pub username: String,
    #[schema(value_type = super::Role)]
    pub role: &'static str,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    #[schema(inline)]
    pub user: SessionUserView,
    /// Send as `X-CSRF-Token` on every request that changes something; absent for API tokens.
    pub csrf_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Sign in to the console (sets an HttpOnly, SameSite=Strict session cookie; Secure unless console.secure_cookies is off)
///
/// No authentication. Failed attempts are limited per username and per address within 15 minutes (429).
#[utoipa::path(
    post,
    path = "/session",
    operation_id = "sign_in",
    security(()),
    request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = SessionView),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let console = &state.config.console;
    let ip = peer.ip().to_string();
    let audited: String = body.username.chars().take(AUDITED_USERNAME_CHARS).collect();
    let actor = AuditActor(format!("login:{audited}"));
    // Counted before the password is checked, in one statement: concurrent guesses cannot all get through.
    let keys = ThrottleKeys::new(&body.username, &ip);
    let attempts = state.store.charge_sign_in(&keys, SIGN_IN_WINDOW).await?;
    let limit = i64::from(console.max_failed_logins);
    if attempts.account_from_address > limit || attempts.address > limit * ADDRESS_LIMIT_FACTOR {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed sign-ins; try again in 15 minutes",
        )
        .into_response();
        response.extensions_mut().insert(actor);
        return Ok(response);
    }
    let candidate = state.store.login_candidate(&body.username).await?;
    let password = body.password;
    // An unknown user costs the same hash as a known one, so timing does not tell which usernames exist.
    let (user_id, stored) = match candidate {
        Some((id, hash)) => (Some(id), hash),
        None => (None, dummy_hash().to_owned()),
    };
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(ApiError::internal)?;
    let Some(user_id) = user_id.filter(|_| matches) else {
        let mut response = unauthenticated("wrong username or password").into_response();
        response.extensions_mut().insert(actor);
        return Ok(response);
    };
    state.store.sign_in_succeeded(&keys).await?;
    let token = OneTimeSecret::generate(SESSION_TOKEN_PREFIX);
    let csrf = OneTimeSecret::generate("");
    let limits = session_limits(console);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|agent| agent.chars().take(300).collect::<String>());
    state
        .store
        .open_console_session(
            user_id,
            &token.digest(),
            csrf.expose(),
            limits.max_age,
            Some(&ip),
            user_agent.as_deref(),
        )
        .await?;
    let session = state
        .store
        .touch_console_session(&token.digest(), &limits)
        .await?
        .ok_or_else(|| ApiError::internal("the new session is not live"))?;
    tracing::info!(username = %session.username, %ip, "console sign-in");
    let cookie = Cookie::build((session_cookie_name(console), token.expose().to_owned()))
        .path("/")
        .http_only(true)
        .secure(console.secure_cookies)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(
            i64::try_from(limits.max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    let view = SessionView {
        user: SessionUserView {
            id: Some(session.user_id),
            username: session.username.clone(),
            role: super::Role::parse(&session.role)
                .map(super::Role::as_str)
                .unwrap_or("viewer"),
        },
        csrf_token: Some(session.csrf_token.clone()),
        expires_at: Some(session.expires_at),
    };
    let mut response = (CookieJar::new().add(cookie), Json(view)).into_response();
    response
        .extensions_mut()
        .insert(AuditActor(format!("user:{}", session.username)));
    Ok(response)
}

/// The signed-in user (or API token), the CSRF token to send as X-CSRF-Token, and when the session ends if idle
#[utoipa::path(
    get,
    path = "/session",
    operation_id = "current_session",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn current(principal: Principal) -> Json<SessionView> {
    let (id, csrf_token, expires_at) = match &principal.via {
        Via::Session(session) => (
            Some(session.user_id),
            Some(session.csrf_token.clone()),
            Some(session.expires_at),
        ),
        Via::Token => (None, None, None),
    };
    Json(SessionView {
        user: SessionUserView {
            id,
            username: principal.name.clone(),
            role: principal.role.as_str(),
        },
        csrf_token,
        expires_at,
    })
}

/// Sign out (the session is revoked and the cookie cleared)
#[utoipa::path(
    delete,
    path = "/session",
    operation_id = "sign_out",
    responses((status = 204, description = "Signed out"))
)]
pub async fn logout(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    if let Via::Session(session) = &principal.via {
        state
            .store
            .revoke_console_session(session.session_id)
            .await?;
    }
    let name = session_cookie_name(&state.config.console);
    let removal = Cookie::build((name, ""))
        .path("/")
        .secure(state.config.console.secure_cookies)
        .build();
    Ok((StatusCode::NO_CONTENT, CookieJar::new().remove(removal)).into_response())
}

/// A valid argon2id hash of a random password, computed once, to verify against for unknown usernames.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        hash_password(OneTimeSecret::generate("").expose()).expect("hashing a random password")
    })
}
