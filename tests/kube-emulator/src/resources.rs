//! Registry of served resource types: the built-in kinds plus the kinds of registered CustomResourceDefinitions.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

/// One served group/version/resource and the behaviour the emulator gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: status is ignored on the main resource and spec on `/status`.
    pub status_subresource: bool,
    /// Has a `/scale` subresource (autoscaling/v1 Scale over `spec.replicas`).
    pub scale_subresource: bool,
    /// Sets and bumps `metadata.generation` (real servers only do so for some kinds).
    pub generation: bool,
    /// Name of the CustomResourceDefinition that defines it, for custom resources.
    pub crd: Option<String>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `deployments.apps`, or `pods` for the core group, as real error messages spell it.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod` for the core group, as real validation messages spell it.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Discovery verbs of the main resource.
    pub fn verbs(&self) -> Vec<&'static str> {
        let mut verbs = vec!["create", "delete"];
        if self.plural != "namespaces" {
            verbs.push("deletecollection");
        }
        verbs.extend(["get", "list", "patch", "update", "watch"]);
        verbs
    }

    /// Subresources as `(name, verbs)`, in discovery order.
    pub fn subresources(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut subs = Vec::new();
        if self.plural == "namespaces" {
            subs.push(("finalize", vec!["update"]));
        }
        if self.plural == "pods" {
            subs.push(("log", vec!["get"]));
        }
        if self.scale_subresource {
            subs.push(("scale", vec!["get", "patch", "update"]));
        }
        if self.status_subresource {
            subs.push(("status", vec!["get", "patch", "update"]));
        }
        subs
    }
}

/// Compact description of a built-in kind, expanded into a [`ResourceInfo`].
struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    in_all: bool,
    status: bool,
    scale: bool,
    generation: bool,
}

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true, short_names: &["cm"], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "Event", plural: "events", namespaced: true, short_names: &["ev"], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false, short_names: &["ns"], in_all: false, status: true, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false, short_names: &["no"], in_all: false, status: true, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true, short_names: &["po"], in_all: true, status: true, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true, short_names: &[], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "Service", plural: "services", namespaced: true, short_names: &["svc"], in_all: true, status: true, scale: false, generation: false },
    Builtin { group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true, short_names: &["sa"], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true, short_names: &["deploy"], in_all: true, status: true, scale: true, generation: true },
    Builtin { group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", namespaced: true, short_names: &["rs"], in_all: true, status: true, scale: true, generation: true },
    Builtin { group: "batch", version: "v1", kind: "Job", plural: "jobs", namespaced: true, short_names: &[], in_all: true, status: true, scale: false, generation: true },
    Builtin { group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses", namespaced: true, short_names: &["ing"], in_all: false, status: true, scale: false, generation: true },
    Builtin { group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true, short_names: &["netpol"], in_all: false, status: false, scale: false, generation: true },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRole", plural: "clusterroles", namespaced: false, short_names: &[], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", namespaced: false, short_names: &[], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "Role", plural: "roles", namespaced: true, short_names: &[], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "RoleBinding", plural: "rolebindings", namespaced: true, short_names: &[], in_all: false, status: false, scale: false, generation: false },
    Builtin { group: "apiextensions.k8s.io", version: "v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions", namespaced: false, short_names: &["crd", "crds"], in_all: false, status: true, scale: false, generation: true },
];

/// All served resource types; lives inside the store so CRD registration is atomic with the CRD write.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
}

impl Registry {
    pub fn builtin() -> Self {
        let resources = BUILTINS
            .iter()
            .map(|b| {
                Arc::new(ResourceInfo {
                    group: b.group.into(),
                    version: b.version.into(),
                    kind: b.kind.into(),
                    plural: b.plural.into(),
                    singular: b.kind.to_lowercase(),
                    namespaced: b.namespaced,
                    short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                    categories: if b.in_all { vec!["all".into()] } else { vec![] },
                    status_subresource: b.status,
                    scale_subresource: b.scale,
                    generation: b.generation,
                    crd: None,
                })
            })
            .collect();
        Self { resources }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    /// Groups other than core with their served versions, most preferred first, in registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => {
                    versions.push(r.version.clone())
                }
                Some(_) => {}
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| version_priority(a, b));
        }
        groups
    }

    /// Serves the kinds of a CustomResourceDefinition (replacing what an earlier version of it served).
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), Vec<(String, String)>> {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or_default();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or_default();
        let kind = names["kind"].as_str().unwrap_or_default();
        let mut errors = Vec::new();
        if group.is_empty() {
            errors.push(("spec.group".into(), "Required value".into()));
        }
        if plural.is_empty() {
            errors.push(("spec.names.plural".into(), "Required value".into()));
        }
        if kind.is_empty() {
            errors.push(("spec.names.kind".into(), "Required value".into()));
        }
        if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
            errors.push((
                "metadata.name".into(),
                format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            ));
        }
        let scope = spec["scope"].as_str().unwrap_or_default();
        if scope != "Namespaced" && scope != "Cluster" {
            errors.push((
                "spec.scope".into(),
                format!(
                    "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        if versions
            .iter()
            .filter(|v| v["storage"] == Value::Bool(true))
            .count()
            != 1
        {
            errors.push((
                "spec.versions".into(),
                "Invalid value: must have exactly one version marked as storage version".into(),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.unregister_crd(&name);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        for version in versions
            .iter()
            .filter(|v| v["served"] != Value::Bool(false))
        {
            self.resources.push(Arc::new(ResourceInfo {
                group: group.into(),
                version: version["name"].as_str().unwrap_or_default().into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                namespaced: scope == "Namespaced",
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status_subresource: version["subresources"]["status"].is_object(),
                scale_subresource: version["subresources"]["scale"].is_object(),
                generation: true,
                crd: Some(name.clone()),
            }));
        }
        Ok(())
    }

    pub fn unregister_crd(&mut self, name: &str) {
        self.resources.retain(|r| r.crd.as_deref() != Some(name));
    }
}

/// Kubernetes version ordering (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1` > anything else).
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        let (stability, minor) = if tail.is_empty() {
            (2, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (1, n.parse().ok()?)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n.parse().ok()?)
        } else {
            return None;
        };
        Some((major, stability, minor))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}
