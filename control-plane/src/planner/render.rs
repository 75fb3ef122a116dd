//! Renders a demo's Kubernetes objects from its template revision: Namespace, Deployment (probes from the
//! template's port and health path, resources), Service, Ingress and NetworkPolicy, all labelled for pruning.

use serde_json::{Value, json};

use crate::store::TemplateRow;

/// Label carrying the demo id on every object, so objects a new version no longer has can be pruned.
pub const DEMO_LABEL: &str = "edgefleet.io/demo";
pub const VERSION_LABEL: &str = "edgefleet.io/demo-version";

pub struct DemoSpec<'a> {
    pub demo_id: &'a str,
    pub name: &'a str,
    pub version: i32,
    pub image: &'a str,
    pub replicas: i32,
    /// Overrides and additions to the template's environment defaults.
    pub env: &'a serde_json::Map<String, Value>,
    /// The host the Ingress serves the demo on.
    pub host: &'a str,
}

pub fn namespace(name: &str) -> String {
    format!("demo-{name}")
}

/// Multi-document YAML for an `apply` task.
pub fn manifest(template: &TemplateRow, demo: &DemoSpec<'_>) -> String {
    let ns = namespace(demo.name);
    let labels = json!({
        "app.kubernetes.io/name": demo.name,
        "app.kubernetes.io/managed-by": "edgefleet",
        DEMO_LABEL: demo.demo_id,
    });
    let pod_labels = json!({"app.kubernetes.io/name": demo.name, DEMO_LABEL: demo.demo_id});
    let mut env: Vec<Value> = Vec::new();
    for var in template.env.0.as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default();
        let value = demo
            .env
            .get(name)
            .and_then(|v| v.as_str())
            .or_else(|| var["default"].as_str());
        if let Some(value) = value {
            env.push(json!({"name": name, "value": value}));
        }
    }
    for (name, value) in demo.env {
        let known = template
            .env
            .0
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["name"] == name.as_str());
        if !known {
            env.push(json!({"name": name, "value": value.as_str().unwrap_or_default()}));
        }
    }
    let probe = json!({"httpGet": {"path": template.health_check_path, "port": "http"}, "periodSeconds": 10});
    let documents = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": demo.name, "namespace": ns, "labels": labels,
                     "annotations": {VERSION_LABEL: demo.version.to_string()}},
        "spec": {
            "replicas": demo.replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {VERSION_LABEL: demo.version.to_string()}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "demo",
                        "image": demo.image,
                        "ports": [{"name": "http", "containerPort": template.port}],
                        "env": env,
                        "readinessProbe": probe,
                        "livenessProbe": probe,
                        "resources": template.resources.0,
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": demo.name, "namespace": ns, "labels": labels},
               "spec": {"selector": pod_labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": demo.name, "namespace": ns, "labels": labels},
               "spec": {"rules": [{"host": demo.host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                   "backend": {"service": {"name": demo.name, "port": {"name": "http"}}}}]}}]}}),
        // Only the demo's HTTP port is reachable; nothing else in the namespace accepts traffic.
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": format!("{}-http-only", demo.name), "namespace": ns, "labels": labels},
               "spec": {"podSelector": {"matchLabels": pod_labels}, "policyTypes": ["Ingress"],
                        "ingress": [{"ports": [{"port": template.port, "protocol": "TCP"}]}]}}),
    ];
    documents
        .iter()
        .map(|doc| serde_yaml::to_string(doc).expect("JSON values serialize to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}
