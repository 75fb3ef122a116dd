//! Runs an apply task: parse the manifest, server-side apply each object in order, then wait for Deployments.

mod discovery;
mod keep;
pub mod manifest;
mod prune;
mod readiness;

use std::fmt;
use std::time::Duration;

use agent_protocol::policy::{ApplyPolicy, Violation};
use agent_protocol::{AGENT_ORGANISATION, ApplySpec, ApplyTier, ObjectOutcome, ObjectResult};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, Scope};
use thiserror::Error;
use tracing::Instrument;

use crate::error::error_chain;
use crate::tasklog::TaskLog;
use discovery::DiscoveryCache;
pub use keep::Kept;
use manifest::{Document, DocumentRef, ManifestError};

/// The field manager of every server-side apply, so ownership of the fields is visible in `managedFields`.
pub const FIELD_MANAGER: &str = AGENT_ORGANISATION;

// A freshly applied CRD is served only once the API server has established it; give it this long to appear in
// discovery before calling its kind unknown.
const CRD_ESTABLISH_WAIT: Duration = Duration::from_secs(10);
const CRD_ESTABLISH_POLL: Duration = Duration::from_millis(500);

/// Called with a progress message and the object results it reports.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, Vec<ObjectResult>) + Send + Sync);

/// Why applying one object failed.
#[derive(Debug, Error)]
pub enum ObjectProblem {
    #[error("unknown kind {kind} in {api_version}: the API server does not serve it")]
    UnknownKind { api_version: String, kind: String },
    #[error("field manager conflict{}: {message} (set force_conflicts to take ownership)",
        manager.as_ref().map(|manager| format!(" with {manager:?}")).unwrap_or_default())]
    Conflict {
        manager: Option<String>,
        message: String,
    },
    #[error("rejected by the API server ({code} {reason}): {message}")]
    Rejected {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("Kubernetes API call failed: {0}")]
    Unreachable(String),
    #[error(
        "still being deleted after {waited:?} (a namespace stays Terminating until its contents are gone)"
    )]
    StillDeleting { waited: Duration },
    #[error("its namespace is being deleted: {0} (the task is retried once it is gone)")]
    NamespaceTerminating(String),
}

impl ObjectProblem {
    fn from_kube(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status)
                if status.code == 409 && status.message.contains("conflict") =>
            {
                Self::Conflict {
                    manager: conflicting_manager(&status.message),
                    message: status.message,
                }
            }
            // The namespace began terminating after it was applied (another demo's delete): worth another try,
            // which waits for it to be gone and creates it anew.
            kube::Error::Api(status)
                if status.code == 403
                    && status.message.contains("because it is being terminated") =>
            {
                Self::NamespaceTerminating(status.message)
            }
            kube::Error::Api(status) => Self::Rejected {
                code: status.code,
                reason: status.reason,
                message: status.message,
            },
            other => Self::Unreachable(error_chain(&other)),
        }
    }

    /// Server trouble, lost connections and slow deletions can pass; validation errors, conflicts and unknown
    /// kinds will not.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::StillDeleting { .. } | Self::NamespaceTerminating(_) => {
                true
            }
            Self::Rejected { code, .. } => *code >= 500 || *code == 429,
            Self::UnknownKind { .. } | Self::Conflict { .. } => false,
        }
    }
}

/// Why an apply task failed; the message names the document/object.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    // The document is boxed (here and in `Policy`) so that every `Result` carrying this error stays small.
    #[error("{document}: {problem}{}", NotAttempted(not_attempted))]
    Object {
        document: Box<DocumentRef>,
        problem: ObjectProblem,
        not_attempted: Vec<usize>,
    },
    #[error("pruning {kind} objects matching {label_selector}: {problem}")]
    Prune {
        kind: String,
        label_selector: String,
        problem: ObjectProblem,
    },
    #[error("invalid object set: {0}")]
    InvalidObjectSet(String),
    #[error("{document}: {violation}; nothing was applied")]
    Policy {
        document: Box<DocumentRef>,
        violation: Violation,
    },
    #[error("not available within {timeout:?}: {}", deployments.join("; "))]
    NotReady {
        timeout: Duration,
        deployments: Vec<String>,
    },
}

impl ApplyError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Object { problem, .. } | Self::Prune { problem, .. } => problem.is_retryable(),
            Self::Manifest(_)
            | Self::InvalidObjectSet(_)
            | Self::Policy { .. }
            | Self::NotReady { .. } => false,
        }
    }
}

struct NotAttempted<'a>(&'a [usize]);

impl fmt::Display for NotAttempted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let list = self
            .0
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "; not attempted: document{} {list}",
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

/// A failed apply with the per-object results gathered before it stopped.
#[derive(Debug)]
pub struct ApplyFailure {
    pub error: ApplyError,
    pub objects: Vec<ObjectResult>,
}

/// Applies manifests to the agent's cluster; shared by all running tasks.
pub struct Applier {
    client: kube::Client,
    discovery: DiscoveryCache,
    policy: ApplyPolicy,
}

/// How long an apply waits for an object that is being deleted (a Terminating namespace) to be gone before it
/// creates it again, and a prune for what it deleted to be gone.
const DELETION_WAIT: Duration = Duration::from_secs(120);
const DELETION_POLL: Duration = Duration::from_millis(250);

/// Waits until the object `name` with `uid` is gone (deleted for good, or replaced by a new object); false when
/// it is still there after `timeout`.
async fn wait_gone(
    api: &Api<DynamicObject>,
    name: &str,
    uid: Option<&str>,
    timeout: Duration,
) -> Result<bool, kube::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match api.get_opt(name).await? {
            None => return Ok(true),
            Some(current) if current.metadata.uid.as_deref() != uid => return Ok(true),
            Some(_) if tokio::time::Instant::now() >= deadline => return Ok(false),
            Some(_) => tokio::time::sleep(DELETION_POLL).await,
        }
    }
}

impl Applier {
    pub fn new(client: kube::Client, policy: ApplyPolicy) -> Self {
        Self {
            discovery: DiscoveryCache::new(client.clone()),
            client,
            policy,
        }
    }

    /// Checks every document against the apply policy before any is applied, so a refused manifest changes
    /// nothing on the cluster.
    fn check_policy(&self, documents: &[Document], tier: ApplyTier) -> Result<(), ApplyError> {
        for document in documents {
            let object = serde_json::to_value(&document.object).unwrap_or_default();
            if let Err(violation) = self.policy.check(&object, tier) {
                return Err(ApplyError::Policy {
                    document: Box::new(document.reference()),
                    violation,
                });
            }
        }
        Ok(())
    }

    /// Applies every object of `spec` in order, stopping at the first failure, prunes the spec's object set down to
    /// what was applied, then waits for Deployments when the spec asks for it. Safe to repeat: server-side apply of the same manifest converges to the same state.
    pub async fn apply(
        &self,
        spec: &ApplySpec,
        log: &TaskLog,
        progress: ProgressFn<'_>,
    ) -> Result<Vec<ObjectResult>, ApplyFailure> {
        let documents = manifest::parse(&spec.manifest_yaml)
            .map(manifest::apply_order)
            .map_err(|err| ApplyFailure {
                error: err.into(),
                objects: Vec::new(),
            })?;
        if let Err(error) = self.check_policy(&documents, spec.tier()) {
            log.error(error.to_string(), &[]);
            return Err(ApplyFailure {
                error,
                objects: Vec::new(),
            });
        }
        log.info(
            format!("applying {} objects", documents.len()),
            &[
                ("documents", documents.len().to_string()),
                ("force_conflicts", spec.force_conflicts.to_string()),
            ],
        );

        let mut objects = Vec::with_capacity(documents.len());
        let mut crd_applied = false;
        for (position, document) in documents.iter().enumerate() {
            let span = tracing::info_span!(
                "object.apply",
                otel.name = format!("apply {}", document.gvk.kind),
                document = document.index,
                object = %document.reference(),
            );
            match self
                .apply_document(document, spec.force_conflicts, crd_applied, log)
                .instrument(span)
                .await
            {
                Ok(result) => {
                    crd_applied |= document.is_custom_resource_definition();
                    log.info(
                        format!("{} {}", document.reference(), outcome_word(result.outcome)),
                        &object_fields(&result),
                    );
                    progress("object applied", vec![result.clone()]);
                    objects.push(result);
                }
                Err((reference, problem)) => {
                    let failed = object_result(
                        document,
                        &reference,
                        ObjectOutcome::Failed,
                        problem.to_string(),
                    );
                    log.error(format!("{reference}: {problem}"), &object_fields(&failed));
                    progress("object failed", vec![failed.clone()]);
                    objects.push(failed);
                    let not_attempted = documents[position + 1..]
                        .iter()
                        .map(|document| document.index)
                        .collect();
                    let error = ApplyError::Object {
                        document: Box::new(reference),
                        problem,
                        not_attempted,
                    };
                    return Err(ApplyFailure { error, objects });
                }
            }
        }

        if let Some(set) = &spec.prune {
            match self.prune(set, spec.tier(), &objects, log, progress).await {
                Ok(deleted) => objects.extend(deleted),
                Err(mut failure) => {
                    objects.append(&mut failure.objects);
                    return Err(ApplyFailure {
                        error: failure.error,
                        objects,
                    });
                }
            }
        }

        if spec.wait_timeout_seconds > 0 {
            let deployments: Vec<ObjectResult> = objects
                .iter()
                .filter(|object| object.api_version == "apps/v1" && object.kind == "Deployment")
                .cloned()
                .collect();
            if !deployments.is_empty() {
                let timeout = Duration::from_secs(spec.wait_timeout_seconds.into());
                log.info(
                    format!(
                        "waiting up to {timeout:?} for {} deployments",
                        deployments.len()
                    ),
                    &[("deployments", deployments.len().to_string())],
                );
                let waited = readiness::wait_for_deployments(
                    &self.client,
                    &deployments,
                    timeout,
                    log,
                    progress,
                )
                .await;
                objects.extend(waited.results);
                if !waited.not_ready.is_empty() {
                    let error = ApplyError::NotReady {
                        timeout,
                        deployments: waited.not_ready,
                    };
                    return Err(ApplyFailure { error, objects });
                }
            }
        }
        Ok(objects)
    }

    /// Applies one object; on failure returns its reference (with the namespace it was sent to) and the problem.
    async fn apply_document(
        &self,
        document: &Document,
        force: bool,
        crd_applied: bool,
        log: &TaskLog,
    ) -> Result<ObjectResult, (DocumentRef, ObjectProblem)> {
        let mut reference = document.reference();
        let (resource, capabilities) = self
            .resolve(document, crd_applied)
            .await
            .map_err(|problem| (reference.clone(), problem))?;
        let mut object = document.object.clone();
        // Namespaced objects without a namespace go to `default`, as kubectl does; cluster-scoped ones carry none.
        let namespace = match capabilities.scope {
            Scope::Namespaced => Some(
                object
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            Scope::Cluster => None,
        };
        object.metadata.namespace = namespace.clone();
        reference.namespace = namespace.clone();
        let api: Api<DynamicObject> = match &namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let name = document.name();
        let fail = |err| (reference.clone(), ObjectProblem::from_kube(err));
        let current = match api.get_opt(name).await.map_err(fail)? {
            // Applying to an object being deleted would only touch the dying one (and a Terminating namespace
            // refuses new content), so the apply waits for it to be gone and creates it anew.
            Some(dying) if dying.metadata.deletion_timestamp.is_some() => {
                log.info(
                    format!(
                        "{reference} is being deleted; waiting up to {DELETION_WAIT:?} for it to be gone before applying it again"
                    ),
                    &[("waiting_for_deletion", reference.to_string())],
                );
                let uid = dying.metadata.uid.as_deref();
                if !wait_gone(&api, name, uid, DELETION_WAIT)
                    .await
                    .map_err(fail)?
                {
                    let waited = DELETION_WAIT;
                    return Err((reference, ObjectProblem::StillDeleting { waited }));
                }
                None
            }
            current => current,
        };
        // The resourceVersion before and after tells APPLIED from UNCHANGED: a no-op apply does not bump it.
        let before = current.and_then(|current| current.metadata.resource_version);
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if force {
            params = params.force();
        }
        let mut after = api
            .patch(name, &params, &Patch::Apply(&object))
            .await
            .map_err(fail)?;
        // Its deletion began between the read and the apply: wait for it to be gone, then create it anew.
        if after.metadata.deletion_timestamp.is_some() {
            log.info(
                format!(
                    "{reference} began terminating as it was applied; waiting up to {DELETION_WAIT:?} for it to be gone"
                ),
                &[("waiting_for_deletion", reference.to_string())],
            );
            let uid = after.metadata.uid.clone();
            if !wait_gone(&api, name, uid.as_deref(), DELETION_WAIT)
                .await
                .map_err(fail)?
            {
                let waited = DELETION_WAIT;
                return Err((reference, ObjectProblem::StillDeleting { waited }));
            }
            after = api
                .patch(name, &params, &Patch::Apply(&object))
                .await
                .map_err(fail)?;
        }
        let (outcome, message) = match before {
            Some(version) if after.metadata.resource_version.as_ref() == Some(&version) => {
                (ObjectOutcome::Unchanged, "unchanged")
            }
            Some(_) => (ObjectOutcome::Applied, "configured"),
            None => (ObjectOutcome::Applied, "created"),
        };
        Ok(object_result(
            document,
            &reference,
            outcome,
            message.to_owned(),
        ))
    }

    async fn resolve(
        &self,
        document: &Document,
        crd_applied: bool,
    ) -> Result<(ApiResource, ApiCapabilities), ObjectProblem> {
        let deadline = tokio::time::Instant::now() + CRD_ESTABLISH_WAIT;
        loop {
            let found = self.discovery.resolve(&document.gvk).await.map_err(|err| {
                ObjectProblem::Unreachable(format!("discovery failed: {}", error_chain(&err)))
            })?;
            match found {
                Some(found) => return Ok(found),
                None if crd_applied && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(CRD_ESTABLISH_POLL).await;
                }
                None => {
                    return Err(ObjectProblem::UnknownKind {
                        api_version: document.api_version(),
                        kind: document.gvk.kind.clone(),
                    });
                }
            }
        }
    }
}

/// Pulls the other manager's name out of an apply conflict message such as
/// `Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas`.
fn conflicting_manager(message: &str) -> Option<String> {
    let rest = &message[message.find("conflict with \"")? + "conflict with \"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn object_result(
    document: &Document,
    reference: &DocumentRef,
    outcome: ObjectOutcome,
    message: String,
) -> ObjectResult {
    ObjectResult {
        document_index: u32::try_from(document.index).unwrap_or(u32::MAX),
        api_version: document.api_version(),
        kind: document.gvk.kind.clone(),
        namespace: reference.namespace.clone().unwrap_or_default(),
        name: document.name().to_owned(),
        outcome: outcome.into(),
        message,
    }
}

fn outcome_word(outcome: i32) -> &'static str {
    match ObjectOutcome::try_from(outcome) {
        Ok(ObjectOutcome::Applied) => "applied",
        Ok(ObjectOutcome::Unchanged) => "unchanged",
        Ok(ObjectOutcome::Failed) => "failed",
        Ok(ObjectOutcome::Ready) => "ready",
        Ok(ObjectOutcome::NotReady) => "not ready",
        Ok(ObjectOutcome::Deleted) => "deleted",
        Ok(ObjectOutcome::Unspecified) | Err(_) => "unspecified",
    }
}

fn object_fields(result: &ObjectResult) -> Vec<(&'static str, String)> {
    vec![
        ("document_index", result.document_index.to_string()),
        ("api_version", result.api_version.clone()),
        ("kind", result.kind.clone()),
        ("namespace", result.namespace.clone()),
        ("name", result.name.clone()),
        ("outcome", outcome_word(result.outcome).to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_name_the_other_manager() {
        let message = r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#;
        assert_eq!(
            conflicting_manager(message).as_deref(),
            Some("kubectl-edit")
        );
        let problem = ObjectProblem::Conflict {
            manager: conflicting_manager(message),
            message: message.into(),
        };
        let text = problem.to_string();
        assert!(
            text.starts_with("field manager conflict with \"kubectl-edit\": Apply failed"),
            "{text}"
        );
        assert!(
            text.ends_with("(set force_conflicts to take ownership)"),
            "{text}"
        );
        assert!(!problem.is_retryable());
        assert_eq!(conflicting_manager("conflict without a name"), None);
    }

    #[test]
    fn object_errors_name_the_document_and_what_was_not_attempted() {
        let error = ApplyError::Object {
            document: Box::new(DocumentRef {
                index: 2,
                kind: Some("Deployment".into()),
                namespace: Some("demo".into()),
                name: Some("web".into()),
            }),
            problem: ObjectProblem::Rejected {
                code: 422,
                reason: "Invalid".into(),
                message: "spec.replicas: bad".into(),
            },
            not_attempted: vec![3, 4],
        };
        assert_eq!(
            error.to_string(),
            "document 2 (Deployment demo/web): rejected by the API server (422 Invalid): spec.replicas: bad; \
             not attempted: documents 3, 4"
        );
        assert!(!error.is_retryable());
        let unreachable = ApplyError::Object {
            document: Box::new(DocumentRef {
                index: 0,
                ..DocumentRef::default()
            }),
            problem: ObjectProblem::Unreachable("connection refused".into()),
            not_attempted: vec![],
        };
        assert!(unreachable.is_retryable());
        assert_eq!(
            unreachable.to_string(),
            "document 0: Kubernetes API call failed: connection refused"
        );
    }
}
