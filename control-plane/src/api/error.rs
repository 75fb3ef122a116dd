//! The API's error body: `{"error": {"code", "message", "details": [{"field", "message"}]}}`, with stable codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::taskspec::FieldProblem;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldProblem>,
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    #[schema(inline)]
    error: Inner<'a>,
}

#[derive(Serialize, ToSchema)]
struct Inner<'a> {
    /// Stable machine-readable code: validation_failed, invalid_json, body_unreadable, unsupported_media_type,
    /// unauthenticated, forbidden, csrf, rate_limited, not_found, conflict, database_unavailable, internal.
    code: &'a str,
    message: &'a str,
    /// For validation_failed: each field that is wrong, and why.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    details: &'a [FieldProblem],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 422 with one entry per problem, each naming its field.
    pub fn validation(details: Vec<FieldProblem>) -> Self {
        let summary = details
            .iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: format!("the request is invalid: {summary}"),
            details,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the control plane log has the details",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, id } => Self::not_found(format!("{what} {id} not found")),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            // PostgreSQL restarting or out of reach is the database's state, not a bug: say so, and that a
            // retry may succeed, instead of a 500.
            other if other.is_transient() => {
                tracing::warn!(error = %other, "request failed: database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is not reachable right now; retry shortly",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: Inner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Collects field problems for one request body.
#[derive(Default)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    pub fn extend(&mut self, problems: Vec<FieldProblem>) {
        self.0.extend(problems);
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }

    /// `limit` (1-500, default 50) and `offset` (not negative, default 0) of a paged list.
    pub fn check_page(&mut self, limit: Option<i64>, offset: Option<i64>) -> (i64, i64) {
        let limit = limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            self.add("limit", "must be between 1 and 500");
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            self.add("offset", "must not be negative");
        }
        (limit, offset)
    }

    /// A DNS-label style name: what Kubernetes, Terraform state keys and URLs all accept.
    pub fn check_name(&mut self, field: &str, value: &str) {
        if !crate::domain::names::is_dns_label(value) {
            self.add(field, crate::domain::names::DNS_LABEL_RULE);
        }
    }
}
