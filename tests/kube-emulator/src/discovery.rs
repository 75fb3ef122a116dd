//! Discovery documents: `/version`, legacy `/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`, the
//! aggregated (apidiscovery.k8s.io v2/v2beta1) form when a client asks for it, and a minimal OpenAPI v2
//! document (kubectl's create/apply validation needs one to exist).

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceInfo};

/// The Kubernetes version the emulator claims to be (the kubectl on these machines is v1.32).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "kube-emulator",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Which aggregated discovery version an `Accept` header asks for, if any (v2 preferred).
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    let wants = |version: &str| {
        accept.split(',').any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&format!("v={version}").as_str())
        })
    };
    if wants("v2") {
        Some("v2")
    } else if wants("v2beta1") {
        Some("v2beta1")
    } else {
        None
    }
}

/// Content type of an aggregated discovery response.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// `/api` (legacy form).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0]),
    })
}

/// `/apis` (legacy form).
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(g, versions)| group_entry(g, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group(registry: &Registry, group: &str) -> Option<Value> {
    let groups = registry.groups();
    let (name, versions) = groups.iter().find(|(g, _)| g == group)?;
    let mut entry = group_entry(name, versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn in_group_version<'a>(
    registry: &'a Registry,
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a ResourceInfo> {
    registry
        .all()
        .iter()
        .map(|r| r.as_ref())
        .filter(move |r| r.group == group && r.version == version)
}

/// `/api/v1` or `/apis/{group}/{version}` (legacy form); `None` when nothing is served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in in_group_version(registry, group, version) {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        resources.push(main);
        for (sub, verbs) in r.subresources() {
            let mut entry = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            });
            if sub == "scale" {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
                entry["kind"] = json!("Scale");
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_version_entry(registry: &Registry, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = in_group_version(registry, group, version)
        .map(|r| {
            let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
            let subresources: Vec<Value> = r
                .subresources()
                .into_iter()
                .map(|(sub, verbs)| {
                    let response = if sub == "scale" {
                        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
                    } else {
                        kind.clone()
                    };
                    json!({"subresource": sub, "responseKind": response, "verbs": verbs})
                })
                .collect();
            let mut entry = json!({
                "resource": r.plural,
                "responseKind": kind,
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs(),
                "subresources": subresources,
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            entry
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery for `/api` (`core == true`) or `/apis`.
pub fn aggregated(registry: &Registry, core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({"metadata": {}, "versions": [aggregated_version_entry(registry, "", "v1")]})]
    } else {
        registry
            .groups()
            .iter()
            .map(|(g, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|v| aggregated_version_entry(registry, g, v))
                    .collect();
                json!({"metadata": {"name": g}, "versions": versions})
            })
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{api_version}"),
        "metadata": {},
        "items": items,
    })
}

/// Content type of the protobuf OpenAPI v2 document (clients ask with `...spec.v2@v1.0+protobuf`).
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// An OpenAPI v2 document with no paths or definitions, so clients validate nothing client-side and
/// learn that the server does not advertise `fieldValidation`. Protobuf when asked for, else JSON.
pub fn openapi_v2(protobuf: bool) -> Vec<u8> {
    const TITLE: &str = "Kubernetes";
    const VERSION: &str = "v1.32.0";
    if !protobuf {
        let doc = json!({"swagger": "2.0", "info": {"title": TITLE, "version": VERSION}, "paths": {}, "definitions": {}});
        return doc.to_string().into_bytes();
    }
    // openapi_v2.Document: field 1 `swagger` (string), field 2 `info` (Info: 1 title, 2 version).
    fn field(number: u8, payload: &[u8]) -> Vec<u8> {
        let len = u8::try_from(payload.len()).expect("short fields only");
        assert!(len < 0x80, "single-byte length varint");
        let mut out = vec![(number << 3) | 2, len];
        out.extend_from_slice(payload);
        out
    }
    let info = [field(1, TITLE.as_bytes()), field(2, VERSION.as_bytes())].concat();
    [field(1, b"2.0"), field(2, &info)].concat()
}
