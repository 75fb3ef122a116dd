//! Conformance of the emulator against the `kube` client: discovery, server-side apply, resourceVersion and
//! generation semantics, errors, watches (raw and kube-runtime `watcher`), status, logs, controllers and auth.

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::config::Kubeconfig;
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::{Client, ResourceExt};
use kube_emulator::{CERT_CONTEXT, Config, Emulator};
use serde_json::{Value, json};

mod common;
use common::{client_for, client_from, eventually};

async fn start_with(config: Config) -> (Emulator, Client) {
    let emulator = Emulator::start(config).await.expect("emulator starts");
    let client = client_for(&emulator, None).await;
    (emulator, client)
}

async fn start() -> (Emulator, Client) {
    start_with(Config::default()).await
}

/// The API error a call failed with.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A status condition of any object, as JSON (condition field types differ between k8s-openapi types).
fn condition(object: &impl serde::Serialize, kind: &str) -> Option<Value> {
    let value = serde_json::to_value(object).ok()?;
    value["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

fn rv_and_generation(object: &DynamicObject) -> (String, Option<i64>) {
    (
        object.resource_version().unwrap(),
        object.metadata.generation,
    )
}

fn configmap(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
    .unwrap()
}

fn deployment(name: &str, image: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]}
            }
        }
    })
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn discovery_serves_builtin_kinds_and_registered_crds() {
    let (_emulator, client) = start().await;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("legacy discovery");
    for (group, version, kind) in [
        ("", "v1", "Pod"),
        ("", "v1", "Node"),
        ("apps", "v1", "Deployment"),
        ("batch", "v1", "Job"),
        ("networking.k8s.io", "v1", "NetworkPolicy"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ] {
        assert!(
            discovery
                .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
                .is_some(),
            "{kind} missing from discovery"
        );
    }
    let widget = GroupVersionKind::gvk("example.com", "v1", "Widget");
    assert!(discovery.resolve_gvk(&widget).is_none());

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&widget)
        .expect("CRD kind is discovered");
    assert_eq!(resource.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let aggregated = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    assert!(aggregated.resolve_gvk(&widget).is_some());
    assert!(
        aggregated
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "ReplicaSet"))
            .is_some()
    );

    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["size"], 3);

    let established = eventually(5, "CRD Established", || {
        let crds = crds.clone();
        async move {
            let crd = crds.get("widgets.example.com").await.ok()?;
            (condition(&crd, "Established")?["status"] == "True").then_some(())
        }
    });
    established.await;

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api_error(widgets.list(&ListParams::default()).await);
    assert_eq!(
        gone.code, 404,
        "objects of a deleted CRD are no longer served"
    );
}

#[tokio::test]
async fn server_side_apply_tracks_resource_version_and_generation() {
    let (_emulator, client) = start().await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let params = PatchParams::apply("tester");
    let manifest = deployment("web", "nginx:1.25", 1);

    let created = api
        .patch("web", &params, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let entry = created
        .metadata
        .managed_fields
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.manager.as_deref() == Some("tester"))
        .expect("managedFields entry for the applier");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    let fields = &entry.fields_v1.as_ref().unwrap().0;
    assert_eq!(fields["f:metadata"]["f:labels"]["f:app"], json!({}));
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));

    // Wait for the controller to settle so only our writes change the object.
    let settled = eventually(10, "deployment available", || {
        let api = api.clone();
        async move {
            let d = api.get("web").await.ok()?;
            (d.data["status"]["availableReplicas"] == 1).then_some(d)
        }
    })
    .await;
    let (rv_settled, _) = rv_and_generation(&settled);

    let again = api
        .patch("web", &params, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(
        rv_and_generation(&again),
        (rv_settled.clone(), Some(1)),
        "no-op apply changes nothing"
    );

    let mut relabeled = manifest.clone();
    relabeled["metadata"]["labels"]["tier"] = json!("web");
    let labeled = api
        .patch("web", &params, &Patch::Apply(&relabeled))
        .await
        .unwrap();
    let (rv_labeled, gen_labeled) = rv_and_generation(&labeled);
    assert_ne!(rv_labeled, rv_settled, "label change bumps resourceVersion");
    assert_eq!(gen_labeled, Some(1), "label change keeps generation");

    let mut changed = relabeled.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    let updated = api
        .patch("web", &params, &Patch::Apply(&changed))
        .await
        .unwrap();
    let (rv_spec, gen_spec) = rv_and_generation(&updated);
    assert_ne!(rv_spec, rv_labeled);
    assert_eq!(gen_spec, Some(2), "spec change bumps generation");

    // Dropping a field from the applied configuration removes it.
    let dropped = api
        .patch(
            "web",
            &params,
            &Patch::Apply(&changed_without_tier(&changed)),
        )
        .await
        .unwrap();
    assert!(dropped.labels().get("tier").is_none());
    assert_eq!(dropped.labels().get("app").map(String::as_str), Some("web"));
}

fn rest_is_last(first: &kube::core::ObjectList<ConfigMap>) -> bool {
    first.metadata.remaining_item_count == Some(1)
}

fn changed_without_tier(manifest: &Value) -> Value {
    let mut m = manifest.clone();
    m["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("tier");
    m
}

#[tokio::test]
async fn apply_conflicts_co_ownership_and_force() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
        "data": {"key": "a", "mine": "1"}});
    api.patch(
        "shared",
        &PatchParams::apply("first"),
        &Patch::Apply(&first),
    )
    .await
    .unwrap();

    let conflicting = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
        "data": {"key": "b"}});
    let err = api_error(
        api.patch(
            "shared",
            &PatchParams::apply("second"),
            &Patch::Apply(&conflicting),
        )
        .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"first\": .data.key"
    );
    let cause = &err.details.as_ref().unwrap().causes[0];
    assert_eq!(cause.field, ".data.key");
    assert_eq!(cause.reason, "FieldManagerConflict");

    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
        "data": {"key": "a"}});
    let co_owned = api
        .patch(
            "shared",
            &PatchParams::apply("second"),
            &Patch::Apply(&same),
        )
        .await
        .unwrap();
    let managers: Vec<String> = co_owned
        .managed_fields()
        .iter()
        .filter_map(|e| e.manager.clone())
        .collect();
    assert!(managers.contains(&"first".into()) && managers.contains(&"second".into()));

    // "first" stops sending `key`; "second" still owns it, so it stays.
    let first_without_key = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
        "data": {"mine": "1"}});
    let kept = api
        .patch(
            "shared",
            &PatchParams::apply("first"),
            &Patch::Apply(&first_without_key),
        )
        .await
        .unwrap();
    assert_eq!(kept.data.as_ref().unwrap()["key"], "a");

    // Now "third" conflicts only with "second", and force takes the field over.
    let err = api_error(
        api.patch(
            "shared",
            &PatchParams::apply("third"),
            &Patch::Apply(&conflicting),
        )
        .await,
    );
    assert!(
        err.message.contains("conflict with \"second\""),
        "{}",
        err.message
    );
    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("third").force(),
            &Patch::Apply(&conflicting),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["key"], "b");
    let second = forced
        .managed_fields()
        .iter()
        .find(|e| e.manager.as_deref() == Some("second"));
    assert!(
        second.is_none(),
        "second lost its only field to the forced apply"
    );

    // Merge patches record an Update entry and take ownership from appliers without conflicts.
    let patched = api
        .patch(
            "shared",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"key": "c"}})),
        )
        .await
        .unwrap();
    let editor = patched
        .managed_fields()
        .iter()
        .find(|e| e.manager.as_deref() == Some("editor"))
        .unwrap();
    assert_eq!(editor.operation.as_deref(), Some("Update"));
    let err = api_error(
        api.patch(
            "shared",
            &PatchParams::apply("third"),
            &Patch::Apply(&conflicting),
        )
        .await,
    );
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.key"
    );
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let created = api
        .create(
            &PostParams::default(),
            &configmap("cm", json!({}), json!({"a": "1"})),
        )
        .await
        .unwrap();
    let mut first = created.clone();
    first.data = Some([("a".to_string(), "2".to_string())].into());
    let replaced = api
        .replace("cm", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version(), created.resource_version());

    let mut stale = created.clone();
    stale.data = Some([("a".to_string(), "3".to_string())].into());
    let err = api_error(api.replace("cm", &PostParams::default(), &stale).await);
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(api.get("cm").await.unwrap().data.unwrap()["a"], "2");

    // An update that changes nothing keeps the resourceVersion.
    let unchanged = api
        .replace("cm", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(unchanged.resource_version(), replaced.resource_version());
}

#[tokio::test]
async fn errors_defaults_and_generate_name() {
    let (_emulator, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let missing = api_error(cms.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "configmaps \"nope\" not found");
    let details = missing.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("nope", "configmaps")
    );

    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "no-such-ns");
    let err = api_error(
        elsewhere
            .create(
                &PostParams::default(),
                &configmap("x", json!({}), json!({})),
            )
            .await,
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"no-such-ns\" not found")
    );

    cms.create(
        &PostParams::default(),
        &configmap("dup", json!({}), json!({})),
    )
    .await
    .unwrap();
    let err = api_error(
        cms.create(
            &PostParams::default(),
            &configmap("dup", json!({}), json!({})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "configmaps \"dup\" already exists");

    let err = api_error(
        cms.create(
            &PostParams::default(),
            &configmap("Bad_Name", json!({}), json!({})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value")
    );

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut bad = deployment("bad", "nginx", 1);
    bad["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let err = api_error(
        deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(bad).unwrap(),
            )
            .await,
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        err.message
    );

    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let made = cms
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = made.name_any();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let secrets: Api<Secret> = Api::default_namespaced(client);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let stored = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert_eq!(stored.data.unwrap()["password"].0, b"hunter2");
    assert!(stored.string_data.is_none());
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn watches_stream_added_modified_deleted() {
    let (_emulator, client) = start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut raw = api
        .watch(&WatchParams::default().labels("watched=yes"), &rv)
        .await
        .unwrap()
        .boxed();
    let mut runtime = kube::runtime::watcher(
        api.clone(),
        kube::runtime::watcher::Config::default().labels("watched=yes"),
    )
    .boxed();

    // The runtime watcher starts with a (here empty) initial list.
    let mut saw_init_done = false;
    while !saw_init_done {
        match runtime.try_next().await.unwrap().unwrap() {
            kube::runtime::watcher::Event::InitDone => saw_init_done = true,
            kube::runtime::watcher::Event::Init => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    api.create(
        &PostParams::default(),
        &configmap("w", json!({"watched": "yes"}), json!({"v": "1"})),
    )
    .await
    .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    // Leaving the selection is a DELETED for this watcher, coming back an ADDED.
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watched": "no"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watched": "yes"}}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    let mut kinds = Vec::new();
    for _ in 0..5 {
        let event = tokio::time::timeout(Duration::from_secs(5), raw.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        kinds.push(match event {
            WatchEvent::Added(cm) => format!("ADDED {}", cm.data.unwrap()["v"]),
            WatchEvent::Modified(cm) => format!("MODIFIED {}", cm.data.unwrap()["v"]),
            WatchEvent::Deleted(cm) => format!("DELETED {}", cm.data.unwrap()["v"]),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(
        kinds,
        ["ADDED 1", "MODIFIED 2", "DELETED 2", "ADDED 2", "DELETED 2"]
    );

    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(5), runtime.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            kube::runtime::watcher::Event::Apply(cm) => {
                seen.push(format!("apply {}", cm.data.unwrap()["v"]))
            }
            kube::runtime::watcher::Event::Delete(cm) => {
                seen.push(format!("delete {}", cm.name_any()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["apply 1", "apply 2", "delete w", "apply 2", "delete w"]
    );
}

#[tokio::test]
async fn too_old_watch_gets_410_and_recent_watch_resumes() {
    let (_emulator, client) = start_with(Config {
        watch_history: 5,
        ..Config::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    for i in 0..20 {
        api.create(
            &PostParams::default(),
            &configmap(&format!("c{i}"), json!({}), json!({})),
        )
        .await
        .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
            assert!(
                status.message.starts_with("too old resource version: 1"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    let rv = api.get("c19").await.unwrap().resource_version().unwrap();
    api.create(
        &PostParams::default(),
        &configmap("after", json!({}), json!({})),
    )
    .await
    .unwrap();
    let mut resumed = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), resumed.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.name_any(), "after"),
        other => panic!("expected the event after {rv}, got {other:?}"),
    }
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status() {
    let (_emulator, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"phase": "Ignored"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    let patched = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(
        patched.data["spec"]["size"], 1,
        "spec is ignored on /status"
    );
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes keep generation"
    );
    let status_entry = patched
        .managed_fields()
        .iter()
        .find(|e| e.subresource.as_deref() == Some("status"));
    assert!(
        status_entry.is_some(),
        "status writes are recorded with subresource status"
    );

    let main = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.data["status"]["phase"], "Ready",
        "status is ignored on the main resource"
    );
    assert_eq!(main.data["spec"]["size"], 2);
    assert_eq!(main.metadata.generation, Some(2));
    assert_eq!(
        api.get_status("w").await.unwrap().data["status"]["phase"],
        "Ready"
    );
}

#[tokio::test]
async fn log_stream_follows_appended_lines_until_pod_deletion() {
    let (emulator, client) = start_with(Config {
        cluster: kube_emulator::Settings {
            ready_delay: Duration::ZERO,
            ..Config::default().cluster
        },
        ..Config::default()
    })
    .await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "talker"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    emulator
        .append_log("default", "talker", Some("app"), "early line")
        .unwrap();
    emulator
        .append_log("default", "talker", Some("side"), "sidecar line")
        .unwrap();

    let params = LogParams {
        container: Some("app".into()),
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream("talker", &params).await.unwrap().lines();
    assert_eq!(lines.next().await.unwrap().unwrap(), "early line");

    // The test-only HTTP endpoint, as a harness outside the process would use it.
    let request =
        http::Request::post("/emulator/v1/namespaces/default/pods/talker/log?container=app")
            .body(b"second\nthird\n".to_vec())
            .unwrap();
    client.request_text(request).await.unwrap();
    assert_eq!(lines.next().await.unwrap().unwrap(), "second");
    assert_eq!(lines.next().await.unwrap().unwrap(), "third");

    let tail = pods
        .logs(
            "talker",
            &LogParams {
                container: Some("app".into()),
                tail_lines: Some(1),
                timestamps: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (timestamp, text) = tail.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "third");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{timestamp}"
    );
    let err = api_error(pods.logs("talker", &LogParams::default()).await);
    assert_eq!(err.code, 400, "two containers and none named");

    pods.delete("talker", &DeleteParams::default())
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), lines.next())
        .await
        .expect("stream ends");
    assert!(end.is_none(), "follow ends when the pod is deleted");
}

#[tokio::test]
async fn deployments_roll_out_scale_and_can_be_never_ready() {
    let (_emulator, client) = start_with(Config {
        cluster: kube_emulator::Settings {
            nodes: 2,
            ..Config::default().cluster
        },
        ..Config::default()
    })
    .await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let apply = PatchParams::apply("tester");
    deployments
        .patch("app", &apply, &Patch::Apply(deployment("app", "app:v1", 2)))
        .await
        .unwrap();

    let available = |want_image: &'static str| {
        let deployments = deployments.clone();
        let pods = pods.clone();
        async move {
            let d = deployments.get("app").await.ok()?;
            let status = d.status.clone()?;
            let available = condition(&d, "Available")?;
            let available =
                available["status"] == "True" && available["reason"] == "MinimumReplicasAvailable";
            let progressed = condition(&d, "Progressing")?["reason"] == "NewReplicaSetAvailable";
            let list = pods
                .list(&ListParams::default().labels("app=app"))
                .await
                .ok()?;
            let all_new = list.items.len() == 2
                && list.items.iter().all(|p| {
                    p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(want_image)
                });
            (available
                && progressed
                && all_new
                && status.available_replicas == Some(2)
                && status.observed_generation == d.metadata.generation)
                .then_some(list)
        }
    };
    let list = eventually(10, "first rollout", || available("app:v1")).await;
    let rs_list = replica_sets.list(&ListParams::default()).await.unwrap();
    assert_eq!(rs_list.items.len(), 1);
    let rs = &rs_list.items[0];
    let deployment_uid = deployments.get("app").await.unwrap().uid().unwrap();
    assert_eq!(rs.owner_references()[0].uid, deployment_uid);
    let hash = rs.labels()["pod-template-hash"].clone();
    for pod in &list.items {
        assert_eq!(pod.owner_references()[0].uid, rs.uid().unwrap());
        assert_eq!(pod.labels()["pod-template-hash"], hash);
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.container_statuses.as_ref().unwrap()[0].ready);
        assert!(
            pod.spec
                .as_ref()
                .unwrap()
                .node_name
                .as_deref()
                .unwrap()
                .starts_with("emulator-node-")
        );
    }

    deployments
        .patch("app", &apply, &Patch::Apply(deployment("app", "app:v2", 2)))
        .await
        .unwrap();
    eventually(10, "second rollout", || available("app:v2")).await;
    let rs_list = replica_sets.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        rs_list.items.len(),
        2,
        "a changed template makes a new ReplicaSet"
    );
    let old = rs_list
        .items
        .iter()
        .find(|r| r.labels()["pod-template-hash"] == hash)
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0));

    deployments
        .patch("app", &apply, &Patch::Apply(deployment("app", "app:v2", 0)))
        .await
        .unwrap();
    eventually(10, "scale to zero", || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("app=app"))
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;

    let mut stuck = deployment("stuck", "registry/never-ready:1", 1);
    stuck["spec"]["progressDeadlineSeconds"] = json!(1);
    deployments
        .patch("stuck", &apply, &Patch::Apply(stuck))
        .await
        .unwrap();
    let stuck = eventually(10, "never-ready pod running", || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=stuck"))
                .await
                .ok()?;
            let pod = list.items.into_iter().next()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
        }
    })
    .await;
    assert!(!stuck.status.unwrap().container_statuses.unwrap()[0].ready);
    let d = deployments.get("stuck").await.unwrap();
    let available = condition(&d, "Available").unwrap();
    assert_eq!(
        (&available["status"], &available["reason"]),
        (&json!("False"), &json!("MinimumReplicasUnavailable"))
    );
    // Past progressDeadlineSeconds the rollout is reported as failed, as `kubectl rollout status` expects.
    eventually(10, "progress deadline", || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("stuck").await.ok()?;
            let progressing = condition(&d, "Progressing")?;
            (progressing["status"] == "False"
                && progressing["reason"] == "ProgressDeadlineExceeded")
                .then_some(())
        }
    })
    .await;

    // Deleting the deployment garbage-collects its ReplicaSets and pods.
    deployments
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "garbage collection", || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("app=stuck"))
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn jobs_complete_and_nodes_are_counted() {
    let (_emulator, client) = start_with(Config {
        cluster: kube_emulator::Settings {
            nodes: 3,
            ready_delay: Duration::from_millis(50),
            ..Config::default().cluster
        },
        ..Config::default()
    })
    .await;
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 3);
    assert_eq!(
        condition(&list.items[0], "Ready").unwrap()["status"],
        "True"
    );

    let jobs: Api<Job> = Api::default_namespaced(client);
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let done = eventually(10, "job completion", || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get("once").await.ok()?;
            (condition(&job, "Complete")?["status"] == "True").then_some(job)
        }
    })
    .await;
    assert_eq!(done.status.unwrap().succeeded, Some(1));
}

#[tokio::test]
async fn selectors_paging_delete_collection_and_namespace_deletion() {
    let (_emulator, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    for (name, labels) in [
        ("a1", json!({"app": "a", "tier": "web"})),
        ("b1", json!({"app": "b"})),
        ("c1", json!({"app": "c"})),
        ("none", json!({})),
    ] {
        api.create(&PostParams::default(), &configmap(name, labels, json!({})))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    let by = |selector: &'static str| {
        let api = api.clone();
        async move {
            names(
                api.list(&ListParams::default().labels(selector))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(by("app in (a,b)").await, ["a1", "b1"]);
    assert_eq!(by("app notin (a),app").await, ["b1", "c1"]);
    assert_eq!(by("app,!tier").await, ["b1", "c1"]);
    assert_eq!(by("app!=c,tier=web").await, ["a1"]);
    let by_field = api
        .list(&ListParams::default().fields("metadata.name=c1"))
        .await
        .unwrap();
    assert_eq!(names(by_field), ["c1"]);
    let all_namespaces: Api<ConfigMap> = Api::all(client.clone());
    let across = all_namespaces
        .list(&ListParams::default().labels("app=b"))
        .await
        .unwrap();
    assert_eq!(across.items[0].namespace().as_deref(), Some("team"));

    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("continue token");
    let rest = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest), ["none"]);
    assert!(
        rest_is_last(&first),
        "remainingItemCount counts what the continue token yields"
    );

    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app in (a,b)"),
    )
    .await
    .unwrap();
    assert_eq!(by("app").await, ["c1"]);

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    eventually(5, "namespace removal", || {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .get_opt("team")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(
        all_namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|c| c.namespace().as_deref() != Some("team"))
    );
}

#[tokio::test]
async fn client_certificate_token_and_plain_http() {
    let emulator = Emulator::start(Config::default()).await.unwrap();
    let by_cert = client_for(&emulator, Some(CERT_CONTEXT)).await;
    let namespaces: Api<Namespace> = Api::all(by_cert);
    assert!(
        namespaces.get("default").await.is_ok(),
        "client certificate authenticates"
    );

    let mut kubeconfig = Kubeconfig::from_yaml(emulator.kubeconfig_yaml()).unwrap();
    kubeconfig.auth_infos[0].auth_info.as_mut().unwrap().token = None;
    let anonymous: Api<Namespace> = Api::all(client_from(kubeconfig, None).await);
    let err = api_error(anonymous.get("default").await);
    assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));

    let (plain, client) = start_with(Config {
        tls: false,
        ..Config::default()
    })
    .await;
    assert!(plain.url().starts_with("http://"));
    assert!(plain.token().is_none());
    let namespaces: Api<Namespace> = Api::all(client);
    assert_eq!(
        namespaces.get("kube-system").await.unwrap().name_any(),
        "kube-system"
    );
}
