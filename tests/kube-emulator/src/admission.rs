//! Defaulting and validation of written objects: the subset of the real server's defaults that clients read
//! back (pod and workload defaults, Service IPs, Secret `stringData`), and the validation rules listed in the
//! README.

use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::selectors::LabelSelector;

/// Hands out Service cluster IPs (10.96.0.0/12) and node ports (30000-32767).
#[derive(Debug)]
pub struct Allocator {
    next_ip: AtomicU32,
    next_node_port: AtomicU32,
}

impl Default for Allocator {
    fn default() -> Self {
        Self {
            // 10.96.0.1 is the `kubernetes` Service on a real cluster.
            next_ip: AtomicU32::new(10),
            next_node_port: AtomicU32::new(30000),
        }
    }
}

impl Allocator {
    fn cluster_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    fn node_port(&self) -> u32 {
        30000 + (self.next_node_port.fetch_add(1, Ordering::Relaxed) - 30000) % 2768
    }
}

/// Sets `map[key]` to `value` when absent.
fn default_field(map: &mut Value, key: &str, value: Value) {
    if let Some(m) = map.as_object_mut() {
        m.entry(key).or_insert(value);
    }
}

/// The value at `path` if every step exists (unlike `IndexMut`, which would insert nulls).
fn at<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| v.get_mut(*key))
}

/// Defaults applied on every write (they only fill in missing fields, so they are idempotent).
pub fn default_object(res: &ResourceInfo, object: &mut Value, allocator: &Allocator) {
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Namespace") => {
            let name = object["metadata"]["name"].clone();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            default_field(object, "spec", json!({}));
            default_field(&mut object["spec"], "finalizers", json!(["kubernetes"]));
        }
        ("", "Pod") => default_pod_spec(at(object, &["spec"])),
        ("", "Secret") => {
            default_field(object, "type", json!("Opaque"));
            move_string_data(object);
        }
        ("", "Service") => default_service(object, allocator),
        ("apps", "Deployment") => {
            if let Some(spec) = at(object, &["spec"]) {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(spec, "progressDeadlineSeconds", json!(600));
                default_field(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
            }
            default_pod_spec(at(object, &["spec", "template", "spec"]));
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = at(object, &["spec"]) {
                default_field(spec, "replicas", json!(1));
            }
            default_pod_spec(at(object, &["spec", "template", "spec"]));
        }
        ("batch", "Job") => {
            if let Some(spec) = at(object, &["spec"]) {
                for (key, value) in [
                    ("parallelism", json!(1)),
                    ("completions", json!(1)),
                    ("backoffLimit", json!(6)),
                    ("completionMode", json!("NonIndexed")),
                    ("suspend", json!(false)),
                ] {
                    default_field(spec, key, value);
                }
            }
            default_pod_spec(at(object, &["spec", "template", "spec"]));
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let mut types = vec![json!("Ingress")];
            if object["spec"]["egress"].is_array() {
                types.push(json!("Egress"));
            }
            if let Some(spec) = at(object, &["spec"]) {
                default_field(spec, "policyTypes", Value::Array(types));
            }
        }
        _ => {}
    }
}

/// Defaults that only a create sets: initial status, and a Job's selector on its own uid.
pub fn default_on_create(res: &ResourceInfo, object: &mut Value) {
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Namespace") => object["status"] = json!({"phase": "Active"}),
        ("", "Pod") => object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        ("batch", "Job") if object["spec"]["manualSelector"] != Value::Bool(true) => {
            let uid = object["metadata"]["uid"].clone();
            let name = object["metadata"]["name"].clone();
            let labels = json!({
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            });
            object["spec"]["selector"] =
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            let template_labels = &mut object["spec"]["template"]["metadata"]["labels"];
            if !template_labels.is_object() {
                *template_labels = json!({});
            }
            for (k, v) in labels.as_object().into_iter().flatten() {
                template_labels[k] = v.clone();
            }
        }
        _ => {}
    }
}

fn default_pod_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        return;
    };
    for (key, value) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
        ("serviceAccountName", json!("default")),
        ("enableServiceLinks", json!(true)),
    ] {
        default_field(spec, key, value);
    }
    for list in ["containers", "initContainers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            let image = container["image"].as_str().unwrap_or_default();
            let tag = image.rsplit('/').next().unwrap_or_default();
            let pull = if tag.contains(':') && !tag.ends_with(":latest") || image.contains('@') {
                "IfNotPresent"
            } else {
                "Always"
            };
            for (key, value) in [
                ("imagePullPolicy", json!(pull)),
                ("terminationMessagePath", json!("/dev/termination-log")),
                ("terminationMessagePolicy", json!("File")),
                ("resources", json!({})),
            ] {
                default_field(container, key, value);
            }
            let ports = container.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                default_field(port, "protocol", json!("TCP"));
            }
        }
    }
}

fn default_service(object: &mut Value, allocator: &Allocator) {
    let spec = &mut object["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    default_field(spec, "type", json!("ClusterIP"));
    default_field(spec, "sessionAffinity", json!("None"));
    let service_type = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if service_type != "ExternalName" {
        if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
            spec["clusterIP"] = json!(allocator.cluster_ip());
        }
        let ip = spec["clusterIP"].clone();
        default_field(spec, "clusterIPs", json!([ip]));
        default_field(spec, "ipFamilies", json!(["IPv4"]));
        default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    let node_ports = service_type == "NodePort" || service_type == "LoadBalancer";
    if node_ports {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
    for port in ports.into_iter().flatten() {
        default_field(port, "protocol", json!("TCP"));
        let number = port["port"].clone();
        default_field(port, "targetPort", number);
        if node_ports && port["nodePort"].is_null() {
            port["nodePort"] = json!(allocator.node_port());
        }
    }
}

/// Secret `stringData` is write-only: its entries are base64-encoded into `data` (winning over `data`).
fn move_string_data(object: &mut Value) {
    let Some(string_data) = object.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if !object["data"].is_object() {
        object["data"] = json!({});
    }
    for (key, value) in string_data.as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        object["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

type Cause = (String, &'static str, String);

fn required(field: &str) -> Cause {
    (
        field.to_string(),
        "FieldValueRequired",
        "Required value".into(),
    )
}

fn invalid_value(field: &str, value: &str, why: &str) -> Cause {
    (
        field.to_string(),
        "FieldValueInvalid",
        format!("Invalid value: {value:?}: {why}"),
    )
}

const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Names that must be DNS labels rather than subdomains.
fn needs_dns_label(res: &ResourceInfo) -> bool {
    res.group.is_empty() && (res.kind == "Namespace" || res.kind == "Service")
}

/// Validates an object about to be stored; 422 `Invalid` with one cause per problem.
pub fn validate(res: &ResourceInfo, object: &Value) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push((
            "metadata.name".to_string(),
            "FieldValueRequired",
            "Required value: name or generateName is required".to_string(),
        ));
    } else if needs_dns_label(res) && !is_dns_label(name) {
        causes.push(invalid_value("metadata.name", name, LABEL_RULE));
    } else if !needs_dns_label(res)
        && !is_dns_subdomain(name)
        && res.group.as_str() != "rbac.authorization.k8s.io"
    {
        causes.push(invalid_value("metadata.name", name, SUBDOMAIN_RULE));
    }
    for (key, value) in object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let value = value.as_str().unwrap_or_default();
        if !is_label_value(value) {
            causes.push(invalid_value("metadata.labels", value, LABEL_VALUE_RULE));
        }
        if key.is_empty() {
            causes.push(invalid_value(
                "metadata.labels",
                key,
                "name part must be non-empty",
            ));
        }
    }
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => validate_pod_spec(&object["spec"], "spec", &mut causes),
        ("apps", "Deployment") | ("apps", "ReplicaSet") => {
            validate_selector_and_template(&object["spec"], &mut causes)
        }
        ("batch", "Job") => validate_pod_spec(
            &object["spec"]["template"]["spec"],
            "spec.template.spec",
            &mut causes,
        ),
        ("", "Secret") => {
            for (key, value) in object["data"].as_object().into_iter().flatten() {
                let decodes = value
                    .as_str()
                    .is_some_and(|v| base64::engine::general_purpose::STANDARD.decode(v).is_ok());
                if !decodes {
                    causes.push(invalid_value(
                        &format!("data[{key}]"),
                        "<secret contents redacted>",
                        "illegal base64 data",
                    ));
                }
            }
        }
        ("", "Service") => {
            let headless = object["spec"]["clusterIP"] == "None";
            let external = object["spec"]["type"] == "ExternalName";
            if !headless
                && !external
                && object["spec"]["ports"].as_array().is_none_or(Vec::is_empty)
            {
                causes.push(required("spec.ports"));
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(res, name, &causes))
    }
}

fn validate_pod_spec(spec: &Value, at: &str, causes: &mut Vec<Cause>) {
    let Some(containers) = spec["containers"].as_array().filter(|c| !c.is_empty()) else {
        causes.push(required(&format!("{at}.containers")));
        return;
    };
    for (i, container) in containers.iter().enumerate() {
        let name = container["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            causes.push(required(&format!("{at}.containers[{i}].name")));
        } else if !is_dns_label(name) {
            causes.push(invalid_value(
                &format!("{at}.containers[{i}].name"),
                name,
                LABEL_RULE,
            ));
        }
        if container["image"].as_str().is_none_or(str::is_empty) {
            causes.push(required(&format!("{at}.containers[{i}].image")));
        }
    }
}

fn validate_selector_and_template(spec: &Value, causes: &mut Vec<Cause>) {
    let selector = &spec["selector"];
    let empty_selector = selector["matchLabels"]
        .as_object()
        .is_none_or(Map::is_empty)
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty);
    if empty_selector {
        causes.push(required("spec.selector"));
    } else {
        let template = json!({"metadata": {"labels": spec["template"]["metadata"]["labels"]}});
        if !LabelSelector::from_object(selector).matches(&template) {
            causes.push((
                "spec.template.metadata.labels".into(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    spec["template"]["metadata"]["labels"]
                ),
            ));
        }
    }
    validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn res(group: &str, plural: &str) -> std::sync::Arc<ResourceInfo> {
        Registry::builtin().find(group, "v1", plural).unwrap()
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let mut secret = json!({"metadata": {"name": "s"}, "stringData": {"a": "hello"}});
        default_object(&res("", "secrets"), &mut secret, &Allocator::default());
        assert_eq!(secret["data"]["a"], "aGVsbG8=");
        assert!(secret.get("stringData").is_none());
        assert_eq!(secret["type"], "Opaque");
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let deploy = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        }});
        let err = validate(&res("apps", "deployments"), &deploy).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .starts_with("Deployment.apps \"d\" is invalid: spec.template.metadata.labels")
        );
        let bad_name = json!({"metadata": {"name": "Bad_Name"}});
        assert_eq!(
            validate(&res("", "configmaps"), &bad_name)
                .unwrap_err()
                .code,
            422
        );
    }
}
