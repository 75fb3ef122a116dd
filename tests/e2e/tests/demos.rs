//! One-click demo deploys: a region without a cluster gets one provisioned, the demo's objects are rendered
//! from its template and applied by the agent, and the demo goes online with a URL; `auto` placement;
//! failing steps say why.

use std::time::Duration;

use e2e::api::field;
use e2e::{Stack, StackOptions, kubectl, restart_container, write_container_log};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

async fn wait_demo(stack: &Stack, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        last = stack.api.get(&format!("/demos/{id}")).await.unwrap();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("demo {id} did not get there in time: {last}");
}

/// Reads `GET /demos/{id}/events` to its end: (event, JSON data) pairs; `done` carries plain text.
async fn sse_events(stack: &Stack, id: &str) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let response = reqwest::Client::new()
        .get(format!("{}/demos/{id}/events", stack.api.base()))
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the event stream ends when the deploy is done");
    text.split("\n\n")
        .filter_map(|block| {
            let kind = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))?
                .to_string();
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((
                kind,
                serde_json::from_str(data).unwrap_or(Value::String(data.to_string())),
            ))
        })
        .collect()
}

fn kube(kubeconfig: &std::path::Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(kubeconfig, &args, None).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_click_deploy_to_a_region_without_a_cluster_provisions_it_and_goes_online() {
    let stack = Stack::start(
        StackOptions {
            provisioning: true,
            ..StackOptions::default()
        }
        .with_templates(),
    )
    .await
    .unwrap();
    let (_, region_id) = stack.register_region("lab", "lab-east").await.unwrap();
    let body = json!({"name": "hello", "template": "fastapi-inference", "region": region_id,
                      "env": {"MODEL_NAME": "tiny-bert"}, "idempotency_key": "click-1"});
    // Repeated clicks racing each other: one demo, one deploy, every response names it.
    let responses = futures::future::join_all(
        (0..6).map(|_| stack.api.call(Method::POST, "/demos", Some(&body))),
    )
    .await;
    let responses: Vec<(StatusCode, Value)> = responses.into_iter().map(Result::unwrap).collect();
    let created: Vec<_> = responses
        .iter()
        .filter(|r| r.0 == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(created.len(), 1, "{responses:?}");
    assert!(
        responses
            .iter()
            .all(|r| r.0 == StatusCode::ACCEPTED || r.0 == StatusCode::OK),
        "{responses:?}"
    );
    let first = created[0];
    assert!(
        responses.iter().all(|r| r.1["id"] == first.1["id"]),
        "{responses:?}"
    );
    let id = field(&first.1, "id").unwrap();
    assert_eq!(first.1["status"], "developing");
    assert_eq!(first.1["steps"].as_array().unwrap().len(), 6);

    let online = wait_demo(&stack, &id, |d| {
        d["status"] == "online" || d["error"].is_string()
    })
    .await;
    assert_eq!(online["status"], "online", "{online}");
    assert!(
        online["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "succeeded"),
        "{online}"
    );
    assert_eq!(
        online["url"],
        "http://hello.lab-east-demos.demos.localhost/"
    );
    assert!(
        online["region_reason"]
            .as_str()
            .unwrap()
            .contains("provisioning lab-east-demos"),
        "{online}"
    );
    let demos = stack.api.get("/demos").await.unwrap();
    assert_eq!(
        demos.as_array().unwrap().len(),
        1,
        "one demo for the double click"
    );

    // The objects in the provisioned cluster follow the template: port, probes, resources, env.
    let cluster_id = field(&online, "cluster_id").unwrap();
    let kubeconfig = stack.dir.join(format!(
        "terraform-work/{cluster_id}/terraform/region-cluster/local/.local-clusters/lab-east-demos/kubeconfig"
    ));
    let deployment = kube(
        &kubeconfig,
        &["get", "deployment", "hello", "-n", "demo-hello"],
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "ghcr.io/edgefleet/templates/fastapi-inference:1.0.0"
    );
    assert_eq!(container["ports"][0]["containerPort"], 8000);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "MODEL_NAME", "value": "tiny-bert"}))
    );
    assert!(
        container["resources"]["limits"]["memory"].is_string(),
        "{container}"
    );
    assert_eq!(deployment["status"]["availableReplicas"], 1);
    let ingress = kube(
        &kubeconfig,
        &["get", "ingress", "hello", "-n", "demo-hello"],
    );
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "hello.lab-east-demos.demos.localhost"
    );
    kube(
        &kubeconfig,
        &[
            "get",
            "networkpolicy",
            "hello-http-only",
            "-n",
            "demo-hello",
        ],
    );
    kube(
        &kubeconfig,
        &["get", "service", "hello", "-n", "demo-hello"],
    );

    // Lifecycle: each change is a new version rolled out by the same steps.
    let deployment_image = |k: &std::path::Path| {
        kube(k, &["get", "deployment", "hello", "-n", "demo-hello"])["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let is_done = |version: i64| {
        move |d: &Value| {
            d["version"] == version && (d["current_step"].is_null() || d["error"].is_string())
        }
    };
    stack
        .api
        .post(
            &format!("/demos/{id}/update"),
            &json!({"image": "ghcr.io/example/hello-model:2.0"}),
        )
        .await
        .unwrap();
    let updated = wait_demo(&stack, &id, is_done(2)).await;
    assert_eq!(updated["status"], "online", "{updated}");
    assert_eq!(
        deployment_image(&kubeconfig),
        "ghcr.io/example/hello-model:2.0"
    );
    stack
        .api
        .post(&format!("/demos/{id}/rollback"), &json!({"version": 1}))
        .await
        .unwrap();
    let rolled_back = wait_demo(&stack, &id, is_done(3)).await;
    assert_eq!(rolled_back["status"], "online", "{rolled_back}");
    assert_eq!(
        deployment_image(&kubeconfig),
        "ghcr.io/edgefleet/templates/fastapi-inference:1.0.0"
    );
    stack
        .api
        .post(&format!("/demos/{id}/stop"), &json!({}))
        .await
        .unwrap();
    let stopped = wait_demo(&stack, &id, is_done(4)).await;
    assert_eq!(
        (stopped["status"].as_str(), stopped["url"].is_null()),
        (Some("offline"), true),
        "{stopped}"
    );
    let scaled = kube(
        &kubeconfig,
        &["get", "deployment", "hello", "-n", "demo-hello"],
    );
    assert_eq!(scaled["spec"]["replicas"], 0);
    stack
        .api
        .post(&format!("/demos/{id}/start"), &json!({}))
        .await
        .unwrap();
    let started = wait_demo(&stack, &id, is_done(5)).await;
    assert_eq!(started["status"], "online", "{started}");
    let versions = stack
        .api
        .get(&format!("/demos/{id}/versions"))
        .await
        .unwrap();
    let reasons: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "start (1 replica(s))",
            "stop (scale to zero)",
            "rollback to version 1",
            "update to image ghcr.io/example/hello-model:2.0",
            "created"
        ]
    );

    // Pruning: an object of the demo (by label) that the new version does not render is deleted on the next
    // rollout; an object of another demo and one without the label are left alone.
    let kubectl_apply = |manifest: String| {
        kubectl(
            &kubeconfig,
            &["apply", "--server-side", "-f", "-"],
            Some(&manifest),
        )
        .unwrap()
    };
    let service = |name: &str, namespace: &str, demo: Option<&str>| {
        let labels = demo
            .map(|demo| format!("\n  labels:\n    edgefleet.io/demo: \"{demo}\""))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}{labels}\nspec:\n  ports:\n  - port: 80\n"
        )
    };
    let kubectl_get = |args: &[&str]| kubectl(&kubeconfig, args, None).unwrap();
    kubectl_apply(service("hello-legacy", "demo-hello", Some(&id)));
    kubectl_apply(service("other-demo", "default", Some("another-demo-id")));
    kubectl_apply(service("hand-made", "default", None));
    stack
        .api
        .post(
            &format!("/demos/{id}/update"),
            &json!({"env": {"MODEL_NAME": "tiny-bert-2"}}),
        )
        .await
        .unwrap();
    let pruned = wait_demo(&stack, &id, is_done(6)).await;
    assert_eq!(pruned["status"], "online", "{pruned}");
    let services = kubectl_get(&["get", "services", "-A", "-o", "name"]);
    assert!(!services.contains("hello-legacy"), "{services}");
    for kept in ["service/hello\n", "other-demo", "hand-made"] {
        assert!(services.contains(kept), "{kept} should stay: {services}");
    }
    let apply_task = pruned["steps"][3]["task_id"].as_str().unwrap().to_string();
    let task = stack
        .api
        .get(&format!("/tasks/{apply_task}"))
        .await
        .unwrap();
    assert!(
        task["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "hello-legacy" && o["outcome"] == "deleted"),
        "{task}"
    );

    // Delete: the objects are pruned from the cluster, then the demo is closed and soft deleted.
    let (status, deleting) = stack
        .api
        .call(Method::DELETE, &format!("/demos/{id}"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{deleting}");
    assert_eq!(deleting["status"], "offline", "{deleting}");
    let steps: Vec<&str> = deleting["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["prune", "close"]);
    let (status, _) = stack
        .api
        .call(Method::POST, &format!("/demos/{id}/stop"), Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "no changes while deleting");
    // The name is free at once: a new demo of that name deploys while the old namespace is still being deleted
    // (Terminating on the real API server); its apply waits for the earlier delete to finish and for the namespace
    // to be gone.
    let again = stack
        .api
        .post(
            "/demos",
            &json!({"name": "hello", "template": "gradio-demo", "region": region_id}),
        )
        .await
        .unwrap();
    let again_id = field(&again, "id").unwrap();
    let closed = wait_demo(&stack, &id, |d| {
        d["deleted_at"].is_string() || d["error"].is_string()
    })
    .await;
    assert_eq!(closed["status"], "closed", "{closed}");
    assert!(closed["url"].is_null(), "{closed}");
    assert!(
        closed["steps"][0]["message"]
            .as_str()
            .unwrap()
            .contains("objects deleted by the agent"),
        "{closed}"
    );
    let online = wait_demo(&stack, &again_id, |d| {
        d["status"] == "online" || d["error"].is_string()
    })
    .await;
    assert_eq!(online["status"], "online", "{online}");
    // What runs now is the new demo's, in a namespace of its own labels; the old demo's objects are gone.
    let namespace = kube(&kubeconfig, &["get", "namespace", "demo-hello"]);
    assert_eq!(
        namespace["metadata"]["labels"]["edgefleet.io/demo"],
        again_id.as_str(),
        "{namespace}"
    );
    assert!(
        namespace["metadata"]["deletionTimestamp"].is_null(),
        "{namespace}"
    );
    let deployment = kube(
        &kubeconfig,
        &["get", "deployment", "hello", "-n", "demo-hello"],
    );
    assert_eq!(
        deployment["metadata"]["labels"]["edgefleet.io/demo"],
        again_id.as_str()
    );
    assert_eq!(deployment["status"]["availableReplicas"], 1, "{deployment}");
    let old_objects = kubectl_get(&[
        "get",
        "all,ingress,networkpolicy",
        "-A",
        "-l",
        &format!("edgefleet.io/demo={id}"),
        "-o",
        "name",
    ]);
    assert_eq!(old_objects.trim(), "", "the deleted demo's objects remain");
    let services = kubectl_get(&["get", "services", "-A", "-o", "name"]);
    assert!(
        services.contains("other-demo") && services.contains("hand-made"),
        "{services}"
    );
    let demos = stack.api.get("/demos").await.unwrap();
    let listed: Vec<&str> = demos
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [again_id.as_str()], "{demos}");
    let versions = stack
        .api
        .get(&format!("/demos/{id}/versions"))
        .await
        .unwrap();
    assert_eq!(versions[0]["reason"], "delete");

    let destroyed = stack.destroy_cluster(&cluster_id, WAIT).await.unwrap();
    assert_eq!(destroyed["state"], "succeeded", "{destroyed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_placement_and_failing_steps_say_why() {
    let stack = Stack::start(StackOptions::default().with_templates())
        .await
        .unwrap();
    let (cluster, _agent) = stack.connected_cluster("west").await.unwrap();
    // A second ready cluster, equally idle but far away: `auto` prefers the shorter round trip.
    let (far, _far_agent) = stack.connected_cluster("east").await.unwrap();
    for id in [&cluster.cluster_id, &far.cluster_id] {
        harness::wait_until(
            "the agent round trip is measured",
            WAIT,
            Duration::from_millis(100),
            || async {
                let c = stack.api.get(&format!("/clusters/{id}")).await.ok()?;
                c["agent"]["rtt_ms"].as_f64()
            },
        )
        .await
        .unwrap();
    }
    stack
        .postgres_query(&format!(
            "UPDATE clusters SET agent_rtt_ms = 900 WHERE id = '{}'",
            far.cluster_id
        ))
        .unwrap();

    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": "auto-demo", "template": "static-web", "region": "auto"}),
        )
        .await
        .unwrap();
    // Live progress: every step's transitions arrive as server-sent events, in order, then `done`.
    let events = sse_events(&stack, &field(&demo, "id").unwrap()).await;
    let succeeded: Vec<String> = events
        .iter()
        .filter(|(kind, data)| kind == "step" && data["state"] == "succeeded")
        .map(|(_, data)| data["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        succeeded,
        [
            "ensure_cluster",
            "ensure_agent",
            "render",
            "apply",
            "wait_ready",
            "publish_url"
        ],
        "{events:?}"
    );
    assert_eq!(
        events.last().map(|(k, _)| k.as_str()),
        Some("done"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(kind, data)| kind == "demo" && data["status"] == "online"),
        "{events:?}"
    );
    let online = wait_demo(&stack, &field(&demo, "id").unwrap(), |d| {
        d["status"] == "online" || d["error"].is_string()
    })
    .await;
    assert_eq!(online["status"], "online", "{online}");
    assert_eq!(online["cluster_id"], json!(cluster.cluster_id));
    assert!(
        online["region_reason"]
            .as_str()
            .unwrap()
            .starts_with("auto: region west-region"),
        "{online}"
    );
    assert!(
        online["region_reason"]
            .as_str()
            .unwrap()
            .contains("agent round trip"),
        "{online}"
    );

    // Invalid input is refused before anything starts.
    let (status, body) = stack
        .api
        .call(Method::POST, "/demos", Some(&json!({"name": "bad", "template": "custom-image", "image": "Not A/Valid:Ref", "region": "auto"})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["field"], "image", "{body}");
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            "/demos",
            Some(&json!({"name": "bad", "template": "no-such-template", "region": "auto"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["field"], "template", "{body}");

    // A disabled region fails the first step, and the demo says why; nothing was applied.
    let disabled = stack
        .api
        .post(
            "/regions",
            &json!({"cloud_account_id": cluster.cloud_id, "code": "closed", "enabled": false}),
        )
        .await
        .unwrap();
    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": "nowhere", "template": "static-web", "region": disabled["id"]}),
        )
        .await
        .unwrap();
    let failed = wait_demo(&stack, &field(&demo, "id").unwrap(), |d| {
        d["error"].is_string()
    })
    .await;
    assert_eq!(
        failed["error"], "ensure_cluster failed: region closed is disabled",
        "{failed}"
    );
    assert_eq!(failed["status"], "developing");
    let steps = failed["steps"].as_array().unwrap();
    assert_eq!(steps[0]["state"], "failed");
    assert!(
        steps[1..].iter().all(|s| s["state"] == "pending"),
        "{failed}"
    );
    let namespaces = stack.kubectl(&["get", "namespaces", "-o", "name"]).unwrap();
    assert!(!namespaces.contains("demo-nowhere"), "{namespaces}");

    // A retry resumes at the failed step as a new attempt: with the region enabled the step gets further and
    // says the next reason (this stack cannot provision).
    let (status, region) = stack
        .api
        .call(
            Method::PATCH,
            &format!("/regions/{}", disabled["id"].as_str().unwrap()),
            Some(&json!({"enabled": true})),
        )
        .await
        .unwrap();
    assert_eq!((status, &region["enabled"]), (StatusCode::OK, &json!(true)));
    let nowhere = field(&demo, "id").unwrap();
    let (status, retried) = stack
        .api
        .call(Method::POST, &format!("/demos/{nowhere}/retry"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["steps"][0]["attempt"], 2, "{retried}");
    let failed_again = wait_demo(&stack, &nowhere, |d| d["error"].is_string()).await;
    assert_eq!(
        failed_again["error"],
        "ensure_cluster failed: region closed has no cluster and the control plane cannot provision one: it provisions no clusters there",
        "{failed_again}"
    );
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            &format!("/demos/{}/retry", field(&online, "id").unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Deleting a demo that never reached a cluster closes it without a task.
    stack
        .api
        .call(Method::DELETE, &format!("/demos/{nowhere}"), None)
        .await
        .unwrap();
    let closed = wait_demo(&stack, &nowhere, |d| d["deleted_at"].is_string()).await;
    assert_eq!(closed["status"], "closed", "{closed}");
    assert_eq!(
        closed["steps"][0]["message"],
        "the demo was never placed on a cluster"
    );
}

/// Writes lines to the `demo` container's log of a pod in the stack's cluster, as the container would print them.
async fn write_pod_log(stack: &Stack, namespace: &str, pod: &str, lines: &str) {
    let cluster = stack
        .cluster
        .as_ref()
        .expect("the stack runs its own cluster");
    write_container_log(cluster.state_dir(), namespace, pod, "demo", lines)
        .await
        .unwrap();
}

/// The demo's container lines (its Kubernetes events are checked apart).
async fn demo_logs(stack: &Stack, id: &str, query: &str) -> Value {
    stack
        .api
        .get(&format!("/demos/{id}/logs?stream=container&{query}"))
        .await
        .unwrap()
}

fn messages(page: &Value) -> Vec<String> {
    page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_pod_logs_reach_clickhouse_tagged_and_come_back_filtered_paged_and_live() {
    let stack = Stack::start(StackOptions::default().with_templates())
        .await
        .unwrap();
    let (cluster, _agent) = stack.connected_cluster("logs").await.unwrap();
    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": "chatty", "template": "static-web", "region": "auto"}),
        )
        .await
        .unwrap();
    let id = field(&demo, "id").unwrap();
    let online = wait_demo(&stack, &id, |d| {
        d["status"] == "online" || d["error"].is_string()
    })
    .await;
    assert_eq!(online["status"], "online", "{online}");
    let pod = stack.first_pod("demo-chatty").unwrap();

    // A pod on this cluster that claims a demo placed elsewhere: its lines are dropped by the control plane.
    let impostor = "00000000-0000-4000-8000-000000000000";
    stack
        .kubectl_with_input(
            &["apply", "--server-side", "-f", "-"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: impostor\n  namespace: default\n  labels:\n    edgefleet.io/demo: \"{impostor}\"\nspec:\n  containers:\n  - name: demo\n    image: busybox\n"
            ),
        )
        .unwrap();
    write_pod_log(&stack, "default", "impostor", "not my demo\n").await;

    let first = [
        "INFO:     Uvicorn running on http://0.0.0.0:8080",
        "WARNING: slow warm-up",
        "ERROR:root:model failed to load shard 3",
        "GET /healthz 200",
    ];
    // Lines written before the follower attaches are read from the start of the log.
    write_pod_log(&stack, "demo-chatty", &pod, &(first.join("\n") + "\n")).await;
    let all = wait_logs(&stack, &id, "", 4).await;
    assert_eq!(messages(&all), first, "in order: {all}");
    let line = &all["lines"][2];
    assert_eq!(line["level"], "error");
    assert_eq!(line["demo_id"], id.as_str());
    assert_eq!(line["cluster_id"], cluster.cluster_id.as_str());
    assert_eq!(line["region"], "logs-region");
    assert_eq!(line["namespace"], "demo-chatty");
    assert_eq!(line["pod"], pod.as_str());
    assert_eq!(line["container"], "demo");
    let stored = stack
        .clickhouse_query(&format!(
            "SELECT level, region, namespace, container FROM {{db}}.demo_logs WHERE demo_id = '{id}' AND stream = 'container' ORDER BY ts_nanos FORMAT TSV"
        ))
        .unwrap();
    assert_eq!(
        stored
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        ["info", "warn", "error", "info"],
        "{stored}"
    );
    assert!(
        stored
            .lines()
            .all(|l| l.ends_with("logs-region\tdemo-chatty\tdemo")),
        "{stored}"
    );
    // The demo's Kubernetes events are its lines too: the real scheduler placing its pod.
    let events = stack
        .api
        .get(&format!("/demos/{id}/logs?stream=event"))
        .await
        .unwrap();
    assert!(
        events["lines"].as_array().unwrap().iter().any(|event| {
            event["pod"] == format!("Pod/{pod}")
                && event["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Scheduled: "))
        }),
        "{events}"
    );

    // Filters: level (and above), text, time range.
    assert_eq!(
        messages(&demo_logs(&stack, &id, "level=warn").await),
        &first[1..3]
    );
    assert_eq!(
        messages(&demo_logs(&stack, &id, "q=SHARD").await),
        [first[2]]
    );
    assert!(messages(&demo_logs(&stack, &id, "since=2200-01-01T00:00:00Z").await).is_empty());
    let (status, body) = stack
        .api
        .call(Method::GET, &format!("/demos/{id}/logs?level=loud"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["field"], "level", "{body}");

    // Pages follow each other without gaps or repeats.
    let page = demo_logs(&stack, &id, "limit=3").await;
    assert_eq!(messages(&page), &first[..3]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = demo_logs(&stack, &id, &format!("limit=3&cursor={cursor}")).await;
    assert_eq!(messages(&rest), &first[3..]);
    assert!(rest["next_cursor"].is_null());

    // A container restart ends the follow stream; the agent resumes without repeating a line.
    let cluster = stack.cluster.as_ref().unwrap();
    restart_container(cluster.state_dir(), "demo-chatty", &pod, "demo", 1)
        .await
        .unwrap();
    write_pod_log(&stack, "demo-chatty", &pod, "after restart\n").await;
    let all = wait_logs(&stack, &id, "", 5).await;
    assert_eq!(messages(&all)[4], "after restart");
    let count = stack
        .clickhouse_query(&format!(
            "SELECT count() FROM {{db}}.demo_logs WHERE demo_id = '{id}' AND stream = 'container'"
        ))
        .unwrap();
    assert_eq!(count.trim(), "5", "no line stored twice");
    let impostor_lines = stack
        .clickhouse_query(&format!(
            "SELECT count() FROM {{db}}.demo_logs WHERE demo_id = '{impostor}'"
        ))
        .unwrap();
    assert_eq!(impostor_lines.trim(), "0");

    // Live tail: the stored lines, then a new one as it arrives.
    use futures::StreamExt;
    let response = reqwest::Client::new()
        .get(format!(
            "{}/demos/{id}/logs?follow=true&level=info&stream=container",
            stack.api.base()
        ))
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut wrote = false;
    let tail = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if !wrote && text.contains("after restart") {
                write_pod_log(&stack, "demo-chatty", &pod, "live line\n").await;
                wrote = true;
            }
            if text.contains("live line") {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, tail)
        .await
        .expect("the live line arrives on the tail");
    let tailed: Vec<String> = text
        .split("\n\n")
        .filter(|block| block.contains("event: line"))
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| {
            serde_json::from_str::<Value>(data).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut expected: Vec<&str> = first.to_vec();
    expected.extend(["after restart", "live line"]);
    assert_eq!(tailed, expected);
}

async fn wait_logs(stack: &Stack, id: &str, query: &str, lines: usize) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = demo_logs(stack, id, query).await;
        if page["lines"].as_array().unwrap().len() >= lines {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {lines} log lines, have {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
