//! Errors: API failures rendered as Kubernetes `Status` bodies, start-up failures of the emulator, and
//! malformed `--run-image` mappings.

use serde_json::{Value, json};

use crate::resources::ResourceInfo;

/// A request failure, rendered exactly like the `Status` object a real API server returns.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Details naming the object the way the real server does: `kind` holds the plural resource.
    fn resource_details(res: &ResourceInfo, name: &str) -> Value {
        let mut details = json!({ "name": name, "kind": res.plural });
        if !res.group.is_empty() {
            details["group"] = json!(res.group);
        }
        details
    }

    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.qualified_resource()),
        )
        .with_details(Self::resource_details(res, name))
    }

    /// A namespaced request in a namespace that does not exist.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(json!({ "name": namespace, "kind": "namespaces" }))
    }

    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.qualified_resource()),
        )
        .with_details(Self::resource_details(res, name))
    }

    /// Optimistic-concurrency failure (stale `metadata.resourceVersion` or a failed precondition).
    pub fn conflict(res: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                res.qualified_resource()
            ),
        )
        .with_details(Self::resource_details(res, name))
    }

    pub fn stale_resource_version(res: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply conflicts: `causes` holds `(manager description, field path)` pairs.
    pub fn apply_conflict(message: String, causes: &[(String, String)]) -> Self {
        let causes: Vec<Value> = causes
            .iter()
            .map(|(manager, field)| {
                // StatusCause serializes its type under `reason`.
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {manager}"),
                    "field": field,
                })
            })
            .collect();
        Self::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    /// 422 with one cause per invalid field: `(field, cause reason, detail message)`.
    pub fn invalid(res: &ResourceInfo, name: &str, causes: &[(String, &str, String)]) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(field, _, message)| format!("{field}: {message}"))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut details = json!({
            "name": name,
            "kind": res.kind,
            "causes": causes.iter().map(|(field, reason, message)| json!({
                "reason": reason, "message": message, "field": field,
            })).collect::<Vec<_>>(),
        });
        if !res.group.is_empty() {
            details["group"] = json!(res.group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {summary}", res.qualified_kind()),
        )
        .with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A JSON patch that cannot be applied (failed `test`, missing path): 422 like a real server.
    pub fn invalid_json_patch(why: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {why}"),
        )
    }

    pub fn forbidden(res: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {why}",
                res.qualified_resource()
            ),
        )
        .with_details(Self::resource_details(res, name))
    }

    pub fn internal(message: &str) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// Raw path that no resource serves.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn method_not_allowed(what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {what}"),
        )
    }

    /// A watch or continue token pointing at history the emulator no longer keeps.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json (got {content_type:?})"
            ),
        )
    }

    /// The `Status` object as sent on the wire (also used as the object of a watch ERROR event).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// Failures while starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot generate TLS material: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot configure client certificate verification: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render kubeconfig: {0}")]
    Kubeconfig(#[from] serde_yaml::Error),
    #[error("run image {prefix}={}: {reason}", binary.display())]
    RunImage {
        prefix: String,
        binary: std::path::PathBuf,
        reason: String,
    },
}

/// A `--run-image` value that is not `IMAGE_PREFIX=PATH`.
#[derive(Debug, thiserror::Error)]
#[error("expected IMAGE_PREFIX=PATH with both parts non-empty, got {0:?}")]
pub struct RunImageError(pub String);
