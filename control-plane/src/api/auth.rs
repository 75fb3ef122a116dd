//! Bearer API tokens: who is calling, and whether their role allows the action.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;
use crate::crypto::sha256_hex;

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

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
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
        format!("token:{}", self.name)
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

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// Middleware for `/api/v1`: resolves `Authorization: Bearer <token>` to a principal.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthenticated("send an API token as `Authorization: Bearer <token>`"))?;
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
    request.extensions_mut().insert(Principal {
        name: principal.name,
        role,
    });
    Ok(next.run(request).await)
}
