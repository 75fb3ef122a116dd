//! Task kinds the control plane knows, their payloads, and validation of what users submit.

use agent_protocol::manifest;
use agent_protocol::policy::ApplyPolicy;
use agent_protocol::{ApplySpec, ApplyTier, DeleteSpec, task_body};
use serde::{Deserialize, Serialize};

use super::TaskKind;

/// The role a task was asked for with, which decides what the apply policy lets it apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Operator,
    Admin,
}

impl From<Tier> for ApplyTier {
    fn from(tier: Tier) -> Self {
        match tier {
            Tier::Operator => ApplyTier::Operator,
            Tier::Admin => ApplyTier::Admin,
        }
    }
}

/// Payload of an `apply` task: Kubernetes objects to server-side apply on the task's cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyPayload {
    /// Multi-document Kubernetes YAML.
    pub manifest: String,
    /// How long the agent waits for Deployments to become available; 0 = do not wait.
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout_seconds: u32,
    #[serde(default)]
    pub force_conflicts: bool,
    /// Objects of this set that the manifest no longer has are deleted after the apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<ObjectSet>,
    #[serde(default)]
    pub tier: Tier,
}

/// Payload of a `delete` task: every object of the set is deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePayload {
    pub objects: ObjectSet,
}

/// Objects of the listed kinds that match a label selector, in every namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSet {
    pub label_selector: String,
    pub kinds: Vec<ObjectKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectKind {
    pub api_version: String,
    pub kind: String,
}

impl From<&ObjectSet> for agent_protocol::ObjectSet {
    fn from(set: &ObjectSet) -> Self {
        Self {
            label_selector: set.label_selector.clone(),
            kinds: set
                .kinds
                .iter()
                .map(|kind| agent_protocol::ObjectKind {
                    api_version: kind.api_version.clone(),
                    kind: kind.kind.clone(),
                })
                .collect(),
        }
    }
}

/// A task's kind together with its payload, so that a payload of the wrong shape for its kind cannot exist.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskSpec {
    Apply(ApplyPayload),
    Delete(DeletePayload),
    /// The Terraform runs take everything from their cluster's provisioning spec.
    TerraformPlan,
    TerraformApply,
    TerraformDestroy,
    TerraformDrift,
}

impl TaskSpec {
    pub fn kind(&self) -> TaskKind {
        match self {
            Self::Apply(_) => TaskKind::Apply,
            Self::Delete(_) => TaskKind::Delete,
            Self::TerraformPlan => TaskKind::TerraformPlan,
            Self::TerraformApply => TaskKind::TerraformApply,
            Self::TerraformDestroy => TaskKind::TerraformDestroy,
            Self::TerraformDrift => TaskKind::TerraformDrift,
        }
    }

    /// The stored JSON form: shown to users and compared when an idempotency key is reused.
    pub fn payload(&self) -> serde_json::Value {
        let json = |value: Result<serde_json::Value, serde_json::Error>| {
            value.expect("payloads are plain data and always serialize")
        };
        match self {
            Self::Apply(payload) => json(serde_json::to_value(payload)),
            Self::Delete(payload) => json(serde_json::to_value(payload)),
            _ => serde_json::json!({}),
        }
    }

    /// What the agent is to run: the spec the control plane signs. `None` for tasks the control plane runs.
    pub fn agent_spec(&self) -> Option<task_body::Spec> {
        match self {
            Self::Apply(payload) => Some(task_body::Spec::Apply(ApplySpec {
                manifest_yaml: payload.manifest.clone(),
                wait_timeout_seconds: payload.wait_timeout_seconds,
                force_conflicts: payload.force_conflicts,
                prune: payload.prune.as_ref().map(Into::into),
                tier: ApplyTier::from(payload.tier).into(),
            })),
            Self::Delete(payload) => Some(task_body::Spec::Delete(DeleteSpec {
                objects: Some((&payload.objects).into()),
                tier: ApplyTier::Operator.into(),
            })),
            _ => None,
        }
    }
}

fn default_wait_timeout() -> u32 {
    300
}

pub const MAX_WAIT_TIMEOUT_SECONDS: u32 = 3600;
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// A problem with one part of a submitted task, named so a person can find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl ApplyPayload {
    /// Checks the manifest before it is queued, with the parser the agent uses: every document must be a YAML
    /// mapping with `apiVersion`, `kind` and `metadata.name` that the apply policy allows for the task's tier.
    /// Kinds are resolved later by the agent against its cluster's discovery.
    pub fn validate(&self, policy: &ApplyPolicy) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        let push = |problems: &mut Vec<FieldProblem>, field: String, message: String| {
            problems.push(FieldProblem { field, message })
        };
        if self.manifest.len() > MAX_MANIFEST_BYTES {
            push(
                &mut problems,
                "manifest".into(),
                format!(
                    "is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                    self.manifest.len()
                ),
            );
        }
        if self.wait_timeout_seconds > MAX_WAIT_TIMEOUT_SECONDS {
            push(
                &mut problems,
                "wait_timeout_seconds".into(),
                format!("must be at most {MAX_WAIT_TIMEOUT_SECONDS}"),
            );
        }
        let (objects, malformed) = manifest::parse_all(&self.manifest);
        for error in &malformed {
            // `parse_all` reports every problem as one of a document; an empty manifest is checked below.
            if let manifest::ManifestError::Document { document, problem } = error {
                push(
                    &mut problems,
                    format!("manifest[document {}]", document.index),
                    problem.to_string(),
                );
            }
        }
        for object in &objects {
            if let Err(violation) = policy.check(&object.object, self.tier.into()) {
                let namespace = object
                    .namespace
                    .as_deref()
                    .map(|ns| format!("{ns}/"))
                    .unwrap_or_default();
                push(
                    &mut problems,
                    format!("manifest[document {}]", object.index),
                    format!("{} {namespace}{}: {violation}", object.kind, object.name),
                );
            }
        }
        let documents = objects.len() + malformed.len();
        if documents == 0 && problems.is_empty() {
            push(
                &mut problems,
                "manifest".into(),
                "contains no Kubernetes objects".into(),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(manifest: &str) -> ApplyPayload {
        ApplyPayload {
            manifest: manifest.into(),
            wait_timeout_seconds: 10,
            force_conflicts: false,
            prune: None,
            tier: Tier::Operator,
        }
    }

    #[test]
    fn accepts_multi_document_manifests_with_empty_documents() {
        let manifest = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: a\n";
        assert_eq!(payload(manifest).validate(&ApplyPolicy::default()), vec![]);
    }

    #[test]
    fn names_the_document_and_the_missing_field() {
        let manifest = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nmetadata:\n  name: b\n";
        let problems = payload(manifest).validate(&ApplyPolicy::default());
        assert_eq!(
            problems,
            vec![FieldProblem {
                field: "manifest[document 1]".into(),
                message: "missing or empty `kind`".into()
            }]
        );
    }

    #[test]
    fn reports_yaml_syntax_errors_with_position() {
        let problems =
            payload("apiVersion: v1\nkind: [unclosed\n").validate(&ApplyPolicy::default());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "manifest[document 0]");
        assert!(
            problems[0].message.contains("line"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn empty_manifest_is_refused() {
        let problems = payload("\n---\n").validate(&ApplyPolicy::default());
        assert_eq!(problems[0].message, "contains no Kubernetes objects");
    }

    #[test]
    fn policy_violations_name_the_document_object_and_rule() {
        let manifest = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: own\nroleRef: {kind: ClusterRole, name: cluster-admin}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: root\n  namespace: kube-system\n";
        let problems = payload(manifest).validate(&ApplyPolicy::default());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].field, "manifest[document 1]");
        assert!(
            problems[0].message.starts_with(
                "ClusterRoleBinding own: refused by the apply policy (rule allowed-kinds)"
            ),
            "{}",
            problems[0].message
        );
        assert_eq!(problems[1].field, "manifest[document 2]");
        assert_eq!(
            problems[1].message,
            "Deployment kube-system/root: refused by the apply policy (rule protected-namespace): namespace kube-system is reserved for the cluster and its agent"
        );
    }
}
