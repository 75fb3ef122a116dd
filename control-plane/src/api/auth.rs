//! Who is calling - an API token (`Authorization: Bearer`) or a console session (cookie, with a CSRF token on
//! every state-changing request) - and whether their role allows the action.

use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;

use super::ApiState;
use super::audit::AuditActor;
use super::error::ApiError;
use crate::config::ConsoleConfig;
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::store::{SessionLimits, SessionUser};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl utoipa::PartialSchema for Role {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::one_of([Self::Viewer, Self::Operator, Self::Admin].map(Self::as_str)).into()
    }
}

impl utoipa::ToSchema for Role {}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    Token,
    Session(SessionUser),
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

impl Principal {
    /// Refuses with 403 unless the caller's role is at least `needed`; the message says what was refused.
    pub fn require(&self, needed: Role, action: &str) -> Result<(), ApiError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} (role {}) may not {action}; that needs role {} or higher",
                self.name,
                self.role.as_str(),
                needed.as_str()
            ),
        ))
    }

    /// How the caller is named in task records and audit trails.
    pub fn label(&self) -> String {
        match self.via {
            Via::Token => format!("token:{}", self.name),
            Via::Session(_) => format!("user:{}", self.name),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| unauthenticated("authentication required"))
    }
}

pub(super) fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// The console's session cookie name; `__Host-` binds a Secure cookie to this exact origin.
pub fn session_cookie_name(config: &ConsoleConfig) -> &'static str {
    if config.secure_cookies {
        "__Host-edgefleet_session"
    } else {
        "edgefleet_session"
    }
}

pub fn session_limits(config: &ConsoleConfig) -> SessionLimits {
    SessionLimits {
        idle_timeout: Duration::from_secs(u64::from(config.session_idle_minutes) * 60),
        max_age: Duration::from_secs(u64::from(config.session_max_hours) * 3600),
    }
}

/// Methods that change state and so need a CSRF token when the caller authenticated by cookie.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware for `/api/v1`: resolves a bearer token or a session cookie to a principal. The principal is also
/// put on the response, for the audit layer outside.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = match request.headers().get(AUTHORIZATION) {
        Some(header) => bearer(&state, header).await?,
        None => match session(&state, request.headers(), request.method()).await {
            Ok(principal) => principal,
            // The caller is known, so the audit entry names them.
            Err(Refusal::Csrf { actor }) => {
                let mut response = csrf_error().into_response();
                response.extensions_mut().insert(AuditActor(actor));
                return Ok(response);
            }
            Err(Refusal::Other(error)) => return Err(error),
        },
    };
    request.extensions_mut().insert(principal.clone());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    response.extensions_mut().insert(principal);
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    Ok(response)
}

async fn bearer(state: &ApiState, header: &HeaderValue) -> Result<Principal, ApiError> {
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <token>`"))?;
    let principal = state
        .store
        .authenticate_api_token(&sha256_hex(token))
        .await?
        .ok_or_else(|| unauthenticated("the API token is not valid, expired or revoked"))?;
    let role = Role::parse(&principal.role)
        .ok_or_else(|| ApiError::internal("token has an unknown role"))?;
    Ok(Principal {
        name: principal.name,
        role,
        via: Via::Token,
    })
}

enum Refusal {
    Csrf { actor: String },
    Other(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self::Other(error)
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Other(error.into())
    }
}

fn csrf_error() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        format!(
            "a request that changes something must carry the session's {CSRF_HEADER} header (GET /api/v1/session returns it)"
        ),
    )
}

async fn session(
    state: &ApiState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Principal, Refusal> {
    let console = &state.config.console;
    let jar = CookieJar::from_headers(headers);
    let cookie = jar.get(session_cookie_name(console)).ok_or_else(|| {
        unauthenticated("sign in, or send an API token as `Authorization: Bearer <token>`")
    })?;
    let session = state
        .store
        .touch_console_session(&sha256_hex(cookie.value()), &session_limits(console))
        .await?
        .ok_or_else(|| unauthenticated("your session has expired or was ended; sign in again"))?;
    if changes_state(method) {
        let sent = headers
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
            return Err(Refusal::Csrf {
                actor: format!("user:{}", session.username),
            });
        }
    }
    let role =
        Role::parse(&session.role).ok_or_else(|| ApiError::internal("user has an unknown role"))?;
    Ok(Principal {
        name: session.username.clone(),
        role,
        via: Via::Session(session),
    })
}

/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
