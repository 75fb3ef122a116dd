//! Apply tasks against a real Kubernetes API server: server-side apply with the agent's field manager, APPLIED vs
//! UNCHANGED, readiness waits, conflicts, CRDs applied in the same manifest, and failures naming the document.

use std::sync::Mutex;

use agent_protocol::policy::ApplyPolicy;
use agent_protocol::{ApplySpec, ApplyTier, ObjectKind, ObjectOutcome, ObjectResult, ObjectSet};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use node_agent::apply::{Applier, ApplyFailure, FIELD_MANAGER};
use node_agent::tasklog::TaskLog;
use tokio::sync::mpsc;

mod support {
    pub mod cluster;
}

const DEMO: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  # A field the agent owns: an applied object that sets none gets a one-time `before-first-apply` bookkeeping
  # update from the API server on the next apply, which would not be "unchanged".
  labels: {team: ml}
"#;

struct Harness {
    // Dropping the cluster stops it, so it lives as long as the test.
    _cluster: kube_cluster::Cluster,
    client: kube::Client,
    applier: Applier,
}

impl Harness {
    async fn start() -> Self {
        let (cluster, client) = support::cluster::start().await;
        Self {
            _cluster: cluster,
            // The custom kinds and CRDs these tests apply, as a cluster owner would allow them.
            applier: Applier::new(
                client.clone(),
                ApplyPolicy::new(
                    [],
                    [
                        "Widget.example.com",
                        "Gadget.example.com",
                        "CustomResourceDefinition.apiextensions.k8s.io",
                    ]
                    .map(|kind| kind.parse().unwrap()),
                ),
            ),
            client,
        }
    }

    /// Applies `manifest` and returns the outcome plus every progress report.
    async fn apply(
        &self,
        manifest: &str,
        wait_timeout_seconds: u32,
        force_conflicts: bool,
    ) -> (Result<Vec<ObjectResult>, ApplyFailure>, Vec<ObjectResult>) {
        let (sink, _lines) = mpsc::unbounded_channel();
        let log = TaskLog::new("task-under-test", sink);
        let reported = Mutex::new(Vec::new());
        let progress =
            |_: &str, objects: Vec<ObjectResult>| reported.lock().unwrap().extend(objects);
        let spec = ApplySpec {
            manifest_yaml: manifest.into(),
            wait_timeout_seconds,
            force_conflicts,
            prune: None,
            tier: ApplyTier::Operator.into(),
        };
        let outcome = self.applier.apply(&spec, &log, &progress).await;
        (outcome, reported.into_inner().unwrap())
    }
}

fn outcomes(objects: &[ObjectResult]) -> Vec<(String, ObjectOutcome)> {
    objects
        .iter()
        .map(|object| (format!("{} {}", object.kind, object.name), object.outcome()))
        .collect()
}

#[tokio::test]
async fn a_multi_document_manifest_is_applied_in_order_and_a_reapply_is_unchanged() {
    let harness = Harness::start().await;
    let (outcome, progress) = harness.apply(DEMO, 30, false).await;
    let objects = outcome.unwrap();
    assert_eq!(
        outcomes(&objects),
        [
            ("Namespace demo".to_owned(), ObjectOutcome::Applied),
            ("ConfigMap settings".to_owned(), ObjectOutcome::Applied),
            ("Deployment web".to_owned(), ObjectOutcome::Applied),
            ("Deployment web".to_owned(), ObjectOutcome::Ready),
        ]
    );
    assert_eq!(
        objects[0].document_index, 2,
        "indices are positions in the manifest"
    );
    assert_eq!(
        progress, objects,
        "every object was reported as progress too"
    );

    let config_maps: Api<ConfigMap> = Api::namespaced(harness.client.clone(), "demo");
    let settings = config_maps.get("settings").await.unwrap();
    let managers: Vec<String> = settings
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| entry.operation.as_deref() == Some("Apply"))
        .filter_map(|entry| entry.manager)
        .collect();
    assert_eq!(managers, [FIELD_MANAGER]);
    assert_eq!(FIELD_MANAGER, "edgefleet-agent");
    Api::<Namespace>::all(harness.client.clone())
        .get("demo")
        .await
        .unwrap();
    Api::<Deployment>::namespaced(harness.client.clone(), "demo")
        .get("web")
        .await
        .unwrap();

    let (again, _) = harness.apply(DEMO, 30, false).await;
    let again = again.unwrap();
    let unchanged: Vec<ObjectOutcome> = again.iter().take(3).map(ObjectResult::outcome).collect();
    assert_eq!(unchanged, [ObjectOutcome::Unchanged; 3]);
    assert_eq!(again[3].outcome(), ObjectOutcome::Ready);
}

#[tokio::test]
async fn a_deployment_that_never_becomes_ready_times_out_as_not_ready() {
    let harness = Harness::start().await;
    let manifest = DEMO.replace("nginx:1.27", "registry.local/never-ready:1");
    let (outcome, progress) = harness.apply(&manifest, 2, false).await;
    let failure = outcome.unwrap_err();
    let last = failure.objects.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.outcome()),
        ("web", ObjectOutcome::NotReady)
    );
    assert!(
        last.message.contains("replicas available"),
        "{}",
        last.message
    );
    let error = failure.error.to_string();
    assert!(
        error.starts_with("not available within 2s: deployment demo/web: "),
        "{error}"
    );
    assert!(!failure.error.is_retryable());
    assert_eq!(progress.last(), Some(last));
}

#[tokio::test]
async fn namespaced_objects_without_a_namespace_go_to_default() {
    let harness = Harness::start().await;
    let (outcome, _) = harness
        .apply(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loose}\n",
            0,
            false,
        )
        .await;
    assert_eq!(outcome.unwrap()[0].namespace, "default");
    Api::<ConfigMap>::namespaced(harness.client.clone(), "default")
        .get("loose")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_kind_fails_the_task_naming_the_document_and_what_was_not_attempted() {
    let harness = Harness::start().await;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n\
                    apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata: {name: last}\n";
    let (outcome, _) = harness.apply(manifest, 0, false).await;
    let failure = outcome.unwrap_err();
    assert_eq!(
        failure.error.to_string(),
        "document 1 (Gadget g): unknown kind Gadget in example.com/v1: the API server does not serve it; \
         not attempted: document 2"
    );
    assert_eq!(
        outcomes(&failure.objects).last().unwrap().1,
        ObjectOutcome::Failed
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(harness.client.clone(), "default");
    assert!(config_maps.get_opt("first").await.unwrap().is_some());
    assert!(
        config_maps.get_opt("last").await.unwrap().is_none(),
        "nothing after the failure is applied"
    );
}

#[tokio::test]
async fn a_manifest_the_policy_refuses_changes_nothing_on_the_cluster() {
    let harness = Harness::start().await;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: harmless}\n---\n\
                    apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: root, namespace: demo}\n\
                    spec:\n  selector: {matchLabels: {app: root}}\n  template:\n    metadata: {labels: {app: root}}\n\
                    \x20   spec:\n      hostPID: true\n      containers: [{name: sh, image: busybox}]\n";
    let (outcome, progress) = harness.apply(manifest, 0, false).await;
    let failure = outcome.unwrap_err();
    assert_eq!(
        failure.error.to_string(),
        "document 1 (Deployment demo/root): refused by the apply policy (rule no-host-access): the pod sets \
         hostPID: true; nothing was applied"
    );
    assert!(!failure.error.is_retryable());
    assert!(progress.is_empty() && failure.objects.is_empty());
    let config_maps: Api<ConfigMap> = Api::namespaced(harness.client.clone(), "default");
    assert!(config_maps.get_opt("harmless").await.unwrap().is_none());

    for manifest in [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\n",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: own}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
         subjects: [{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}]\n",
    ] {
        let (outcome, _) = harness.apply(manifest, 0, false).await;
        let message = outcome.unwrap_err().error.to_string();
        assert!(message.contains("refused by the apply policy"), "{message}");
    }
    let maps: Api<ConfigMap> = Api::namespaced(harness.client.clone(), "kube-system");
    assert!(maps.get_opt("x").await.unwrap().is_none());
}

#[tokio::test]
async fn a_crd_applied_earlier_in_the_manifest_makes_its_kind_known() {
    let harness = Harness::start().await;
    let manifest = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;
    let (outcome, _) = harness.apply(manifest, 0, false).await;
    let objects = outcome.unwrap();
    assert_eq!(
        outcomes(&objects),
        [
            (
                "CustomResourceDefinition widgets.example.com".to_owned(),
                ObjectOutcome::Applied
            ),
            ("Widget w1".to_owned(), ObjectOutcome::Applied),
        ]
    );
}

#[tokio::test]
async fn a_field_manager_conflict_names_the_other_manager_and_force_takes_ownership() {
    let harness = Harness::start().await;
    let config_maps: Api<DynamicObject> = Api::namespaced_with(
        harness.client.clone(),
        "default",
        &kube::api::ApiResource::erase::<ConfigMap>(&()),
    );
    let theirs: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "shared", "namespace": "default"},
        "data": {"mode": "theirs"}
    }))
    .unwrap();
    config_maps
        .patch(
            "shared",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();

    let ours = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {mode: ours}\n";
    let (outcome, _) = harness.apply(ours, 0, false).await;
    let failure = outcome.unwrap_err();
    let error = failure.error.to_string();
    assert!(
        error.starts_with(
            "document 0 (ConfigMap default/shared): field manager conflict with \"someone-else\""
        ),
        "{error}"
    );
    assert!(!failure.error.is_retryable());

    let (forced, _) = harness.apply(ours, 0, true).await;
    assert_eq!(forced.unwrap()[0].outcome(), ObjectOutcome::Applied);
    let shared = Api::<ConfigMap>::namespaced(harness.client.clone(), "default")
        .get("shared")
        .await
        .unwrap();
    assert_eq!(shared.data.unwrap()["mode"], "ours");
}

#[tokio::test]
async fn an_object_the_api_server_rejects_fails_with_its_message() {
    let harness = Harness::start().await;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Valid_Name}\n";
    let (outcome, _) = harness.apply(manifest, 0, false).await;
    let error = outcome.unwrap_err().error.to_string();
    assert!(
        error.starts_with(
            "document 0 (ConfigMap default/Not_A_Valid_Name): rejected by the API server (422"
        ),
        "{error}"
    );
}

/// A Deployment with one container, as a server-side apply body.
fn deployment(container: &str, image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": container, "image": image}]},
            },
        },
    })
}

#[tokio::test]
async fn managers_of_different_containers_merge_and_a_conflict_names_the_keyed_field() {
    let harness = Harness::start().await;
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        harness.client.clone(),
        "default",
        &kube::api::ApiResource::erase::<Deployment>(&()),
    );
    let theirs: DynamicObject = serde_json::from_value(deployment("sidecar", "envoy:1")).unwrap();
    deployments
        .patch(
            "web",
            &PatchParams::apply("mesh-injector"),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();

    // Containers are a list keyed by name: each manager keeps its own.
    let ours = serde_yaml::to_string(&deployment("app", "demo:1")).unwrap();
    let (merged, _) = harness.apply(&ours, 0, false).await;
    assert_eq!(merged.unwrap()[0].outcome(), ObjectOutcome::Applied);
    let web = Api::<Deployment>::namespaced(harness.client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let web = serde_json::to_value(web).unwrap();
    let mut containers: Vec<String> = web["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["image"].as_str().unwrap()
            )
        })
        .collect();
    containers.sort();
    assert_eq!(containers, ["app=demo:1", "sidecar=envoy:1"]);

    // Taking the other manager's container is a conflict on that container's field, named by its key.
    let takeover = serde_yaml::to_string(&deployment("sidecar", "envoy:2")).unwrap();
    let (outcome, _) = harness.apply(&takeover, 0, false).await;
    let error = outcome.unwrap_err().error.to_string();
    assert!(
        error.contains("field manager conflict with \"mesh-injector\"")
            && error.contains(r#".spec.template.spec.containers[name="sidecar"].image"#),
        "{error}"
    );
    let (forced, _) = harness.apply(&takeover, 0, true).await;
    assert_eq!(forced.unwrap()[0].outcome(), ObjectOutcome::Applied);
    let web = Api::<Deployment>::namespaced(harness.client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let sidecar_owners: Vec<String> = web
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| {
            entry.fields_v1.as_ref().is_some_and(|fields| {
                fields.0.to_string().contains(r#"k:{\"name\":\"sidecar\"}"#)
                    && fields.0.to_string().contains("f:image")
            })
        })
        .filter_map(|entry| entry.manager)
        .collect();
    assert_eq!(
        sidecar_owners,
        [FIELD_MANAGER],
        "the forced apply owns the image now"
    );
}

#[tokio::test]
async fn pruning_a_deployment_lets_the_garbage_collector_remove_its_replicasets_and_pods() {
    let harness = Harness::start().await;
    let mut web = deployment("app", "demo:1");
    web["metadata"]["labels"] = serde_json::json!({"edgefleet.io/demo": "d1"});
    web["spec"]["replicas"] = serde_json::json!(2);
    let (applied, _) = harness
        .apply(&serde_yaml::to_string(&web).unwrap(), 60, false)
        .await;
    let applied = applied.unwrap();
    assert_eq!(applied.last().unwrap().outcome(), ObjectOutcome::Ready);
    let pods: Api<Pod> = Api::namespaced(harness.client.clone(), "default");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(harness.client.clone(), "default");
    let by_app = ListParams::default().labels("app=web");
    assert_eq!(pods.list(&by_app).await.unwrap().items.len(), 2);
    assert_eq!(replica_sets.list(&by_app).await.unwrap().items.len(), 1);

    let set = ObjectSet {
        label_selector: "edgefleet.io/demo=d1".into(),
        kinds: vec![ObjectKind {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
        }],
    };
    let (sink, _lines) = mpsc::unbounded_channel();
    let log = TaskLog::new("prune-under-test", sink);
    let deleted = harness
        .applier
        .prune(&set, ApplyTier::Operator, &[], &log, &|_: &str,
                                                       _: Vec<
            ObjectResult,
        >| {})
        .await
        .unwrap();
    assert_eq!(
        outcomes(&deleted),
        [("Deployment web".into(), ObjectOutcome::Deleted)]
    );
    // Only the Deployment was deleted; the controller-manager's garbage collector removes what it owned.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = (
            replica_sets.list(&by_app).await.unwrap().items.len(),
            pods.list(&by_app).await.unwrap().items.len(),
        );
        if left == (0, 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica sets and pods left after 60 s: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
