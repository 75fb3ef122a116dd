//! The agent install bundle for a cluster: a ready-to-apply manifest (with least-privilege RBAC) and the
//! equivalent command line for running the agent outside the cluster.

use std::collections::BTreeMap;

use agent_protocol::ApplyTier;
use agent_protocol::policy::{AGENT_NAMESPACE, ApplyPolicy, PROTECTED_NAMESPACES};
use serde::Serialize;
use serde_json::{Value, json};

pub const NAMESPACE: &str = AGENT_NAMESPACE;
pub const SERVICE_ACCOUNT: &str = "edgefleet-agent";
pub const BOOTSTRAP_SECRET: &str = "edgefleet-agent-bootstrap";
pub const IDENTITY_SECRET: &str = "edgefleet-agent-identity";
const BOOTSTRAP_MOUNT: &str = "/etc/edgefleet/bootstrap";
/// Where an agent running with `--state-secret` keeps its log buffers unless told otherwise.
const LOG_BUFFER_MOUNT: &str = "/var/lib/edgefleet/log-buffer";

/// What an operator needs to start an agent for one cluster. Contains the one-time token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstallBundle {
    /// Multi-document YAML for `kubectl apply --server-side -f -`.
    pub manifest: String,
    /// Shell commands that run the agent outside the cluster against a kubeconfig.
    pub command: String,
    pub ca_pem: String,
    pub agent_endpoint: String,
}

pub struct InstallInputs<'a> {
    pub token: &'a str,
    pub ca_pem: &'a str,
    pub agent_endpoint: &'a str,
    pub image: &'a str,
}

pub fn bundle(inputs: &InstallInputs<'_>) -> InstallBundle {
    let manifest = manifest_documents(inputs)
        .iter()
        .map(|doc| serde_yaml::to_string(doc).expect("JSON values always serialize to YAML"))
        .collect::<Vec<_>>()
        .join("---\n");
    InstallBundle {
        manifest,
        command: command(inputs),
        ca_pem: inputs.ca_pem.to_string(),
        agent_endpoint: inputs.agent_endpoint.to_string(),
    }
}

fn command(inputs: &InstallInputs<'_>) -> String {
    format!(
        "mkdir -p edgefleet-agent && chmod 700 edgefleet-agent\n\
         cat > edgefleet-agent/ca.crt <<'EOF'\n{ca}EOF\n\
         umask 077 && printf '%s' '{token}' > edgefleet-agent/bootstrap-token\n\
         node-agent run --control-plane {endpoint} --ca-file edgefleet-agent/ca.crt \\\n  \
         --bootstrap-token-file edgefleet-agent/bootstrap-token --state-dir edgefleet-agent/state \\\n  \
         --kubeconfig \"${{KUBECONFIG:-$HOME/.kube/config}}\"\n",
        ca = ensure_newline(inputs.ca_pem),
        token = inputs.token,
        endpoint = inputs.agent_endpoint,
    )
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// Verbs for objects the agent applies from tasks and prunes when a demo no longer has them.
const MANAGE: [&str; 7] = [
    "get", "list", "watch", "create", "patch", "update", "delete",
];
const READ: [&str; 3] = ["get", "list", "watch"];
const PROTECTED_NAMESPACES_POLICY: &str = "edgefleet-agent-protected-namespaces";

/// The kinds the apply policy allows any role, grouped by API group as RBAC rules list them.
fn managed_kinds() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for kind in ApplyPolicy::kinds(ApplyTier::Admin) {
        by_group.entry(kind.group).or_default().push(kind.resource);
    }
    by_group
}

/// Exactly what the apply policy allows, plus what the agent reads to report status and follow logs.
fn cluster_role_rules() -> Vec<Value> {
    let mut rules: Vec<Value> = managed_kinds()
        .into_iter()
        .map(|(group, resources)| json!({"apiGroups": [group], "resources": resources, "verbs": MANAGE}))
        .collect();
    rules.extend([
        json!({"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": READ}),
        json!({"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": READ}),
        json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}),
    ]);
    rules
}

fn managed_resource_rules() -> Vec<Value> {
    managed_kinds()
        .into_iter()
        .map(|(group, resources)| {
            json!({"apiGroups": [group], "apiVersions": ["*"], "resources": resources,
                   "operations": ["CREATE", "UPDATE", "DELETE"]})
        })
        .collect()
}

fn manifest_documents(inputs: &InstallInputs<'_>) -> Vec<Value> {
    let protected = format!("{:?}", PROTECTED_NAMESPACES).replace('"', "'");
    let labels = json!({"app.kubernetes.io/name": "edgefleet-agent", "app.kubernetes.io/part-of": "edgefleet"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": labels}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": BOOTSTRAP_SECRET, "namespace": NAMESPACE, "labels": labels},
               "stringData": {"token": inputs.token, "ca.crt": inputs.ca_pem, "endpoint": inputs.agent_endpoint}}),
        // Pre-created so the agent needs no `create` right on Secrets: it only updates this one.
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": IDENTITY_SECRET, "namespace": NAMESPACE, "labels": labels}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "edgefleet-agent-identity", "namespace": NAMESPACE, "labels": labels},
               "rules": [{"apiGroups": [""], "resources": ["secrets"],
                          "resourceNames": [IDENTITY_SECRET, BOOTSTRAP_SECRET],
                          "verbs": ["get", "update", "patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "edgefleet-agent-identity", "namespace": NAMESPACE, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "edgefleet-agent-identity"},
               "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "edgefleet-agent", "labels": labels},
        "rules": cluster_role_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "edgefleet-agent", "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edgefleet-agent"},
               "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]}),
        // RBAC cannot limit a ClusterRole to some namespaces; the API server itself refuses the agent the
        // protected ones, whatever the agent's own checks do.
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": PROTECTED_NAMESPACES_POLICY, "labels": labels},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": managed_resource_rules()},
            "matchConditions": [{"name": "by-the-agent",
                "expression": format!("request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}'")}],
            "validations": [
                {"expression": format!("!(request.namespace in {protected})"),
                 "message": "the edgefleet agent may not write to a protected namespace"},
                {"expression": format!("request.resource.resource != 'namespaces' || !(request.name in {protected})"),
                 "message": "the edgefleet agent may not change a protected namespace"}
            ]
        }}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": PROTECTED_NAMESPACES_POLICY, "labels": labels},
               "spec": {"policyName": PROTECTED_NAMESPACES_POLICY, "validationActions": ["Deny"]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "edgefleet-agent", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            // One agent per cluster at a time: never two streams racing for the same cluster's tasks.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "edgefleet-agent"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    // fsGroup: the kubelet makes the bootstrap Secret's files (root-owned) readable by this group, so
                    // the non-root agent can read them; nobody else in the pod exists to read them.
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "agent",
                        "image": inputs.image,
                        "args": ["run", "--control-plane", inputs.agent_endpoint,
                                 "--ca-file", format!("{BOOTSTRAP_MOUNT}/ca.crt"),
                                 "--bootstrap-token-file", format!("{BOOTSTRAP_MOUNT}/token"),
                                 "--state-secret", format!("{NAMESPACE}/{IDENTITY_SECRET}")],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "bootstrap", "mountPath": BOOTSTRAP_MOUNT, "readOnly": true},
                                         {"name": "log-buffer", "mountPath": LOG_BUFFER_MOUNT}]
                    }],
                    // The agent's on-disk log buffers (two queues of at most 256 MiB and the read positions): they
                    // outlive a crashed or restarted agent container; a rescheduled pod starts empty.
                    "volumes": [{"name": "bootstrap", "secret": {"secretName": BOOTSTRAP_SECRET, "defaultMode": 0o400}},
                                {"name": "log-buffer", "emptyDir": {"sizeLimit": "640Mi"}}]
                }
            }
        }}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> InstallInputs<'static> {
        InstallInputs {
            token: "efb_secret",
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            agent_endpoint: "https://cp.example:8443",
            image: "agent:1",
        }
    }

    #[test]
    fn manifest_parses_back_into_the_expected_kinds() {
        let bundle = bundle(&inputs());
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&bundle.manifest)
            .map(|doc| {
                let value = serde_yaml::Value::deserialize(doc).unwrap();
                value["kind"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "Secret",
                "Secret",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
                "Deployment"
            ]
        );
        assert!(bundle.manifest.contains("efb_secret"));
    }

    #[test]
    fn agent_cannot_read_secrets_cluster_wide() {
        let docs = manifest_documents(&inputs());
        let cluster_role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
        for rule in cluster_role["rules"].as_array().unwrap() {
            let resources = rule["resources"].as_array().unwrap();
            assert!(
                !resources.iter().any(|r| r == "secrets" || r == "*"),
                "{rule}"
            );
            assert!(
                !rule["verbs"].as_array().unwrap().iter().any(|v| v == "*"),
                "{rule}"
            );
        }
    }

    #[test]
    fn command_never_puts_the_token_in_process_arguments() {
        let command = bundle(&inputs()).command;
        let run_line = command
            .lines()
            .skip_while(|l| !l.starts_with("node-agent"))
            .collect::<String>();
        assert!(!run_line.contains("efb_secret"), "{run_line}");
        assert!(command.contains("--bootstrap-token-file"));
    }

    use serde::Deserialize;
}
