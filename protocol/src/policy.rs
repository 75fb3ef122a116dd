//! The apply policy: which objects a task may apply, by the role of whoever asked for it. The control plane
//! checks it before a task is queued and the agent again before it applies anything, so neither a bug in one nor
//! a tampered queue row is enough to apply what the policy refuses. The agent's ClusterRole grants exactly the
//! kinds listed here, and its install manifest adds a ValidatingAdmissionPolicy that makes the API server refuse
//! the agent the protected namespaces and privileged pods as well.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::v1::ApplyTier;

/// The namespace the agent runs in; nothing a task applies may touch it.
pub const AGENT_NAMESPACE: &str = "edgefleet-system";

/// Namespaces no task may write to (nor create, change or delete as Namespace objects).
pub const PROTECTED_NAMESPACES: [&str; 4] = [
    AGENT_NAMESPACE,
    "kube-system",
    "kube-public",
    "kube-node-lease",
];

/// A kind by API group (empty for the core group) and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: &'static str,
    pub kind: &'static str,
    /// The RBAC resource name, for the agent's ClusterRole.
    pub resource: &'static str,
}

const fn gk(group: &'static str, kind: &'static str, resource: &'static str) -> GroupKind {
    GroupKind {
        group,
        kind,
        resource,
    }
}

/// What operators may apply: namespaced application kinds, and Namespaces themselves.
pub const OPERATOR_KINDS: [GroupKind; 13] = [
    gk("", "Namespace", "namespaces"),
    gk("", "ConfigMap", "configmaps"),
    gk("", "Service", "services"),
    gk("", "ServiceAccount", "serviceaccounts"),
    gk("", "PersistentVolumeClaim", "persistentvolumeclaims"),
    gk("apps", "Deployment", "deployments"),
    gk("apps", "StatefulSet", "statefulsets"),
    gk("batch", "Job", "jobs"),
    gk("batch", "CronJob", "cronjobs"),
    gk("networking.k8s.io", "Ingress", "ingresses"),
    gk("networking.k8s.io", "NetworkPolicy", "networkpolicies"),
    gk(
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    gk("policy", "PodDisruptionBudget", "poddisruptionbudgets"),
];

/// What admins may apply on top: a pod on every node, and limits on what a namespace may use.
pub const ADMIN_KINDS: [GroupKind; 3] = [
    gk("apps", "DaemonSet", "daemonsets"),
    gk("", "ResourceQuota", "resourcequotas"),
    gk("", "LimitRange", "limitranges"),
];

/// Capabilities a container may add: Pod Security's `baseline` list.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Which rule refused an object; its name is what the docs and error messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The object is in (or is) a namespace no task may touch.
    ProtectedNamespace,
    /// The kind is not one the task's role may apply (RBAC, CRDs, webhooks and other cluster-scoped kinds
    /// are no role's).
    Kind,
    /// A pod that would reach the node: privileged, host namespaces, hostPath, host ports, added capabilities.
    HostAccess,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Self::ProtectedNamespace => "protected-namespace",
            Self::Kind => "allowed-kinds",
            Self::HostAccess => "no-host-access",
        }
    }
}

/// Why the policy refused an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused by the apply policy (rule {}): {}",
            self.rule.name(),
            self.detail
        )
    }
}

impl std::error::Error for Violation {}

/// A kind the configuration adds to the policy (a custom resource the cluster's owner installed), written
/// `Kind.group` (`Kind` for the core group), with `=admin` when only admins may apply it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExtraKind {
    group: String,
    kind: String,
    admin_only: bool,
}

impl std::str::FromStr for ExtraKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, admin_only) = match text.split_once('=') {
            None => (text, false),
            Some((name, "admin")) => (name, true),
            Some((name, "operator")) => (name, false),
            Some((_, tier)) => {
                return Err(format!(
                    "{text:?}: the role after `=` must be admin or operator, not {tier:?}"
                ));
            }
        };
        let (kind, group) = name.split_once('.').unwrap_or((name, ""));
        let kind_ok = kind.starts_with(|c: char| c.is_ascii_uppercase())
            && kind.chars().all(|c| c.is_ascii_alphanumeric());
        let group_ok = group
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !kind_ok || !group_ok {
            return Err(format!(
                "{text:?} is not Kind.group (e.g. InferenceService.serving.kserve.io)"
            ));
        }
        Ok(Self {
            group: group.to_string(),
            kind: kind.to_string(),
            admin_only,
        })
    }
}

/// The apply policy: the built-in kinds and namespaces plus what the configuration adds.
#[derive(Debug, Clone, Default)]
pub struct ApplyPolicy {
    extra_protected: BTreeSet<String>,
    extra_kinds: BTreeSet<ExtraKind>,
}

impl ApplyPolicy {
    pub fn new(
        extra_protected_namespaces: impl IntoIterator<Item = String>,
        extra_kinds: impl IntoIterator<Item = ExtraKind>,
    ) -> Self {
        Self {
            extra_protected: extra_protected_namespaces.into_iter().collect(),
            extra_kinds: extra_kinds.into_iter().collect(),
        }
    }

    /// Kinds a role may apply.
    pub fn kinds(tier: ApplyTier) -> impl Iterator<Item = &'static GroupKind> {
        let admin: &[GroupKind] = match tier {
            ApplyTier::Admin => &ADMIN_KINDS,
            ApplyTier::Operator => &[],
        };
        OPERATOR_KINDS.iter().chain(admin)
    }

    /// Whether a kind (by `apiVersion` and `kind`) is one the role may apply or delete.
    pub fn check_kind(
        &self,
        api_version: &str,
        kind: &str,
        tier: ApplyTier,
    ) -> Result<(), Violation> {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        if Self::kinds(tier).any(|allowed| allowed.group == group && allowed.kind == kind) {
            return Ok(());
        }
        let extra = self
            .extra_kinds
            .iter()
            .find(|extra| extra.group == group && extra.kind == kind);
        if extra.is_some_and(|extra| !extra.admin_only || tier == ApplyTier::Admin) {
            return Ok(());
        }
        let admins_may = extra.is_some()
            || ADMIN_KINDS
                .iter()
                .any(|allowed| allowed.group == group && allowed.kind == kind);
        let detail = if admins_may {
            format!("{kind} ({api_version}) needs an admin")
        } else {
            format!(
                "{kind} ({api_version}) is not a kind tasks may apply; install cluster-wide objects (RBAC, CRDs, webhooks) with the cluster's own credentials"
            )
        };
        Err(Violation {
            rule: Rule::Kind,
            detail,
        })
    }

    /// Checks one object (as JSON: `apiVersion`, `kind`, `metadata`, `spec`) for a task of the given role.
    pub fn check(&self, object: &Value, tier: ApplyTier) -> Result<(), Violation> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        self.check_kind(api_version, kind, tier)?;
        let namespace = match kind {
            "Namespace" => object["metadata"]["name"].as_str(),
            _ => object["metadata"]["namespace"].as_str(),
        };
        if let Some(namespace) = namespace.filter(|ns| self.is_protected(ns)) {
            return Err(Violation {
                rule: Rule::ProtectedNamespace,
                detail: format!("namespace {namespace} is reserved for the cluster and its agent"),
            });
        }
        match pod_spec(kind, object) {
            Some(spec) => check_pod_spec(spec),
            None => Ok(()),
        }
    }

    /// Whether a namespace is one no task may touch (deletes and prunes skip its objects).
    pub fn is_protected(&self, namespace: &str) -> bool {
        PROTECTED_NAMESPACES.contains(&namespace) || self.extra_protected.contains(namespace)
    }
}

/// The pod template of a workload kind.
fn pod_spec<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    let spec = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => &object["spec"]["template"]["spec"],
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => return None,
    };
    Some(spec)
}

fn check_pod_spec(spec: &Value) -> Result<(), Violation> {
    let refuse = |detail: String| {
        Err(Violation {
            rule: Rule::HostAccess,
            detail,
        })
    };
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == Value::Bool(true) {
            return refuse(format!("the pod sets {field}: true"));
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        if !volume["hostPath"].is_null() {
            let name = volume["name"].as_str().unwrap_or("?");
            return refuse(format!("volume {name} is a hostPath"));
        }
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten());
    for container in containers {
        let name = container["name"].as_str().unwrap_or("?");
        let security = &container["securityContext"];
        if security["privileged"] == Value::Bool(true) {
            return refuse(format!("container {name} is privileged"));
        }
        if security["procMount"]
            .as_str()
            .is_some_and(|m| m != "Default")
        {
            return refuse(format!("container {name} sets procMount"));
        }
        let added = security["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten();
        for capability in added {
            let capability = capability.as_str().unwrap_or_default();
            let bare = capability.trim_start_matches("CAP_");
            if !BASELINE_CAPABILITIES.contains(&bare) {
                return refuse(format!("container {name} adds capability {capability}"));
            }
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().is_some_and(|p| p != 0) {
                return refuse(format!("container {name} uses a host port"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(namespace: &str, pod: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": namespace},
               "spec": {"template": {"spec": pod}}})
    }

    fn refused(object: &Value, tier: ApplyTier) -> Option<(Rule, String)> {
        ApplyPolicy::default()
            .check(object, tier)
            .err()
            .map(|v| (v.rule, v.detail))
    }

    #[test]
    fn operators_apply_workloads_in_their_own_namespaces() {
        let pod = json!({"containers": [{"name": "web", "image": "nginx",
            "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
            "ports": [{"containerPort": 80}]}]});
        for object in [
            deployment("demo-a", pod),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo-a"}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "p", "namespace": "demo-a"}}),
        ] {
            assert_eq!(refused(&object, ApplyTier::Operator), None, "{object}");
        }
    }

    #[test]
    fn cluster_wide_kinds_are_no_roles_and_some_kinds_need_an_admin() {
        for (api_version, kind) in [
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
            ),
            ("v1", "PersistentVolume"),
            ("v1", "Secret"),
            ("v1", "Pod"),
        ] {
            let object = json!({"apiVersion": api_version, "kind": kind,
                                "metadata": {"name": "x", "namespace": "demo-a"}});
            for tier in [ApplyTier::Operator, ApplyTier::Admin] {
                let (rule, detail) = refused(&object, tier).expect(kind);
                assert_eq!(rule, Rule::Kind);
                assert!(detail.contains("is not a kind tasks may apply"), "{detail}");
            }
        }
        let daemonset = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                               "metadata": {"name": "x", "namespace": "demo-a"}});
        assert_eq!(
            refused(&daemonset, ApplyTier::Operator),
            Some((Rule::Kind, "DaemonSet (apps/v1) needs an admin".into()))
        );
        assert_eq!(refused(&daemonset, ApplyTier::Admin), None);
    }

    #[test]
    fn protected_namespaces_are_refused_to_everyone() {
        let policy = ApplyPolicy::new(["platform".to_string()], []);
        for namespace in ["kube-system", "edgefleet-system", "kube-public", "platform"] {
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "x", "namespace": namespace}});
            let namespace_object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            for object in [object, namespace_object] {
                let violation = policy.check(&object, ApplyTier::Admin).unwrap_err();
                assert_eq!(violation.rule, Rule::ProtectedNamespace, "{object}");
                assert_eq!(
                    violation.to_string(),
                    format!(
                        "refused by the apply policy (rule protected-namespace): namespace {namespace} is reserved for the cluster and its agent"
                    )
                );
            }
        }
    }

    #[test]
    fn pods_that_reach_the_node_are_refused_to_everyone() {
        let cases = [
            (
                json!({"hostPID": true, "containers": []}),
                "the pod sets hostPID: true",
            ),
            (
                json!({"hostNetwork": true, "containers": []}),
                "the pod sets hostNetwork: true",
            ),
            (
                json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}], "containers": []}),
                "volume root is a hostPath",
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
                "container c is privileged",
            ),
            (
                json!({"initContainers": [{"name": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
                "container i adds capability SYS_ADMIN",
            ),
            (
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                "container c uses a host port",
            ),
        ];
        for (pod, detail) in cases {
            for tier in [ApplyTier::Operator, ApplyTier::Admin] {
                assert_eq!(
                    refused(&deployment("demo-a", pod.clone()), tier),
                    Some((Rule::HostAccess, detail.to_string()))
                );
            }
        }
        let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "c", "namespace": "demo-a"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostIPC": true}}}}}});
        assert_eq!(
            refused(&cronjob, ApplyTier::Operator),
            Some((Rule::HostAccess, "the pod sets hostIPC: true".into()))
        );
    }

    #[test]
    fn the_configuration_adds_kinds_for_a_role() {
        let extra: Vec<ExtraKind> = [
            "Widget.example.com",
            "CustomResourceDefinition.apiextensions.k8s.io=admin",
        ]
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
        let policy = ApplyPolicy::new([], extra);
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "a"}});
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                         "metadata": {"name": "widgets.example.com"}});
        assert!(policy.check(&widget, ApplyTier::Operator).is_ok());
        assert!(policy.check(&crd, ApplyTier::Admin).is_ok());
        let violation = policy.check(&crd, ApplyTier::Operator).unwrap_err();
        assert_eq!(
            violation.detail,
            "CustomResourceDefinition (apiextensions.k8s.io/v1) needs an admin"
        );
        for bad in [
            "widget.example.com",
            "Widget.Example.com",
            "Widget=root",
            "Wid get",
        ] {
            assert!(bad.parse::<ExtraKind>().is_err(), "{bad}");
        }
    }
}
