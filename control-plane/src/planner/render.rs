//! Renders a demo's Kubernetes objects from its template revision: Namespace, Deployment (probes from the
//! template's port and health path, resources), Service, Ingress and NetworkPolicy, all labelled for pruning.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::domain::taskspec::{ObjectKind, ObjectSet};
use crate::store::TemplateRow;

use agent_protocol::DEMO_LABEL;
pub const VERSION_LABEL: &str = "edgefleet.io/demo-version";

/// Every kind [`manifest`] renders, as (apiVersion, kind): what pruning and deletion look through.
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
];

/// The objects of one demo on its cluster.
pub fn object_set(demo_id: &str) -> ObjectSet {
    ObjectSet {
        label_selector: format!("{DEMO_LABEL}={demo_id}"),
        kinds: KINDS
            .iter()
            .map(|(api_version, kind)| ObjectKind {
                api_version: (*api_version).to_owned(),
                kind: (*kind).to_owned(),
            })
            .collect(),
    }
}

pub struct DemoSpec<'a> {
    pub demo_id: &'a str,
    pub name: &'a str,
    pub version: i32,
    pub image: &'a str,
    pub replicas: i32,
    /// Overrides and additions to the template's environment defaults.
    pub env: &'a BTreeMap<String, String>,
    /// The host the Ingress serves the demo on.
    pub host: &'a str,
}

pub fn namespace(name: &str) -> String {
    format!("demo-{name}")
}

/// The demo's Kubernetes objects, in the order they are applied.
pub fn objects(template: &TemplateRow, demo: &DemoSpec<'_>) -> Vec<Value> {
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
            .map(String::as_str)
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
            env.push(json!({"name": name, "value": value}));
        }
    }
    let probe = json!({"httpGet": {"path": template.health_check_path, "port": "http"}, "periodSeconds": 10});
    vec![
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
    ]
}

/// Multi-document YAML for an `apply` task.
pub fn manifest(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|object| serde_yaml::to_string(object).expect("JSON values serialize to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A template row for tests of what is rendered from one.
#[cfg(test)]
pub(crate) fn sample_template() -> TemplateRow {
    use sqlx::types::Json;
    TemplateRow {
        id: uuid::Uuid::nil(),
        name: "fastapi-inference".into(),
        version: "1.0.0".into(),
        revision: 1,
        title: "FastAPI".into(),
        description: String::new(),
        runtime: "python".into(),
        process: "uvicorn app:app".into(),
        port: 8000,
        health_check_path: "/healthz".into(),
        env: Json(json!([{"name": "MODEL_NAME", "default": "tiny"}])),
        resources: Json(json!({"limits": {"cpu": "1"}})),
        image_required: false,
        default_image: None,
        dockerfile: None,
        content_sha256: String::new(),
        latest: true,
        loaded_at: chrono::Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn every_rendered_object_is_labelled_and_of_a_pruned_kind() {
        let template = sample_template();
        let env = BTreeMap::new();
        let manifest = manifest(&objects(
            &template,
            &DemoSpec {
                demo_id: "d-1",
                name: "hello",
                version: 2,
                image: "nginx:1",
                replicas: 1,
                env: &env,
                host: "hello.example",
            },
        ));
        let set = object_set("d-1");
        assert_eq!(set.label_selector, "edgefleet.io/demo=d-1");
        let mut rendered = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&manifest) {
            let object = serde_json::Value::deserialize(document).unwrap();
            assert_eq!(object["metadata"]["labels"][DEMO_LABEL], "d-1", "{object}");
            let kind = (
                object["apiVersion"].as_str().unwrap().to_owned(),
                object["kind"].as_str().unwrap().to_owned(),
            );
            assert!(
                set.kinds
                    .iter()
                    .any(|k| (k.api_version.as_str(), k.kind.as_str())
                        == (kind.0.as_str(), kind.1.as_str())),
                "{kind:?} is rendered but not pruned"
            );
            rendered.push(kind);
        }
        assert_eq!(rendered.len(), KINDS.len());
    }
}
