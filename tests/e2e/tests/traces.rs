//! Traces across processes: the control plane and an agent export OTLP to a receiver in the test, and one trace
//! shows a task from the `POST` (continuing the caller's `traceparent`) through its delivery, the agent's run and
//! each object applied, to the result recorded; a demo's deploy continues the trace of its `POST` through the
//! planner's steps to the agent.

use std::time::Duration;

use e2e::api::field;
use e2e::otlp::{OtlpReceiver, ReceivedSpan};
use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// Waits until the receiver holds spans of `trace_id` that satisfy `complete`, and returns them.
async fn trace(
    receiver: &OtlpReceiver,
    trace_id: &str,
    what: &str,
    complete: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    harness::wait_until(what, WAIT, Duration::from_millis(250), || async {
        let spans: Vec<ReceivedSpan> = receiver
            .spans()
            .into_iter()
            .filter(|span| span.trace_id == trace_id)
            .collect();
        complete(&spans).then_some(spans)
    })
    .await
    .unwrap_or_else(|error| {
        let names: Vec<String> = receiver
            .spans()
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .map(|span| format!("{}:{}", span.service, span.name))
            .collect();
        panic!("{error}; spans of the trace so far: {names:?}")
    })
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.service == service && span.name == name)
}

fn one<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    find(spans, service, name).unwrap_or_else(|| panic!("no {service} span {name:?} in {spans:#?}"))
}

const CONTROL_PLANE: &str = "edgefleet-control-plane";
const AGENT: &str = "edgefleet-agent";

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_follows_a_task_from_the_request_to_the_objects_applied_and_back() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let stack = Stack::start(StackOptions {
        otlp_endpoint: Some(receiver.endpoint.clone()),
        ..StackOptions::default().with_templates()
    })
    .await
    .unwrap();
    let (cluster, _agent) = stack.connected_cluster("traced").await.unwrap();

    // The caller (a CLI, a CI job) sends its own trace context; the task joins that trace.
    let caller_trace = format!("{:032x}", rand::random::<u128>());
    let caller_span = format!("{:016x}", rand::random::<u64>() | 1);
    let response = reqwest::Client::new()
        .post(format!(
            "{}/clusters/{}/tasks",
            stack.api.base(),
            cluster.cluster_id
        ))
        .bearer_auth(&stack.admin_token)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({
            "kind": "apply",
            "manifest": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: traced\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: traced\ndata:\n  mode: fast\n",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.unwrap();
    let task_id = field(&task, "id").unwrap();
    let finished = stack.wait_task(&task_id, WAIT).await.unwrap();
    assert_eq!(finished["state"], "succeeded", "{finished}");
    assert_eq!(finished["trace_id"], caller_trace.as_str(), "{finished}");

    let spans = trace(
        &receiver,
        &caller_trace,
        "the task's spans from both processes",
        |spans| {
            find(spans, CONTROL_PLANE, "queue complete").is_some()
                && find(spans, AGENT, "apply ConfigMap").is_some()
        },
    )
    .await;
    let request = spans
        .iter()
        .find(|span| {
            span.service == CONTROL_PLANE
                && span.name.starts_with("POST ")
                && span.name.ends_with("/clusters/{id}/tasks")
        })
        .unwrap_or_else(|| panic!("no request span named by its route: {spans:#?}"));
    assert_eq!(
        request.parent_span_id, caller_span,
        "the caller's span is the parent"
    );
    assert_eq!(request.attributes["http.response.status_code"], "201");
    // The queue: the insert inside the request, the delivery (lease) continuing it later.
    let insert = one(&spans, CONTROL_PLANE, "queue insert");
    assert_eq!(insert.parent_span_id, request.span_id);
    assert_eq!(insert.attributes["task_id"], task_id);
    let deliver = one(&spans, CONTROL_PLANE, "task deliver");
    assert_eq!(deliver.parent_span_id, request.span_id);
    assert_eq!(deliver.attributes["task_id"], task_id);
    // Across the agent stream: the agent's run is a child of the control plane's delivery...
    let run = one(&spans, AGENT, "task run");
    assert_eq!(run.parent_span_id, deliver.span_id);
    assert_eq!(run.attributes["cluster"], cluster.cluster_id);
    for kind in ["Namespace", "ConfigMap"] {
        let object = one(&spans, AGENT, &format!("apply {kind}"));
        assert_eq!(object.parent_span_id, run.span_id, "{object:?}");
    }
    // ...and the result the control plane records is a child of the agent's run.
    let result = one(&spans, CONTROL_PLANE, "task result");
    assert_eq!(result.parent_span_id, run.span_id);
    assert_eq!(result.attributes["success"], "true");
    let complete = one(&spans, CONTROL_PLANE, "queue complete");
    assert_eq!(complete.parent_span_id, result.span_id);

    // A demo: its POST starts a trace that the planner's steps continue, and the tasks they queue reach the agent
    // in the same trace.
    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": "traced-demo", "template": "static-web", "region": "auto"}),
        )
        .await
        .unwrap();
    let demo_id = field(&demo, "id").unwrap();
    let online = harness::wait_until(
        "the demo online",
        WAIT,
        Duration::from_millis(250),
        || async {
            let demo = stack.api.get(&format!("/demos/{demo_id}")).await.ok()?;
            (demo["status"] == "online" || demo["error"].is_string()).then_some(demo)
        },
    )
    .await
    .unwrap();
    assert_eq!(online["status"], "online", "{online}");
    let apply_task = online["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == "apply")
        .and_then(|step| step["task_id"].as_str())
        .unwrap_or_else(|| panic!("the apply step names its task: {online}"));
    let apply = stack
        .api
        .get(&format!("/tasks/{apply_task}"))
        .await
        .unwrap();
    let demo_trace = apply["trace_id"]
        .as_str()
        .expect("the planner's task is traced")
        .to_owned();
    let spans = trace(&receiver, &demo_trace, "the demo's spans", |spans| {
        find(spans, CONTROL_PLANE, "planner apply").is_some()
            && spans
                .iter()
                .any(|span| span.service == AGENT && span.name == "apply Deployment")
    })
    .await;
    let post = spans
        .iter()
        .find(|span| span.service == CONTROL_PLANE && span.name.ends_with("/demos"))
        .unwrap_or_else(|| panic!("the demo's POST is the root: {spans:#?}"));
    assert!(post.parent_span_id.is_empty(), "{post:?}");
    let apply_step = one(&spans, CONTROL_PLANE, "planner apply");
    assert_eq!(apply_step.parent_span_id, post.span_id);
    assert_eq!(apply_step.attributes["demo"], "traced-demo");
    let deliver = spans
        .iter()
        .find(|span| span.name == "task deliver" && span.parent_span_id == apply_step.span_id)
        .unwrap_or_else(|| panic!("the apply step's task is delivered in its trace: {spans:#?}"));
    assert!(
        spans.iter().any(|span| span.service == AGENT
            && span.name == "task run"
            && span.parent_span_id == deliver.span_id),
        "{spans:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_endpoint_nothing_is_traced_and_a_bad_endpoint_is_refused_at_start() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let (cluster, _agent) = stack.connected_cluster("untraced").await.unwrap();
    let task = stack
        .run_task(
            &cluster.cluster_id,
            &json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: untraced\n"}),
        )
        .await
        .unwrap();
    assert_eq!(task["state"], "succeeded", "{task}");
    assert!(task["trace_id"].is_null(), "{task}");

    let config = stack.dir.join("bad-telemetry.yaml");
    std::fs::write(
        &config,
        "agent_endpoint: https://127.0.0.1:1\ndatabase_url: postgres://x@127.0.0.1/x\nclickhouse:\n  url: http://127.0.0.1:1\ntelemetry:\n  otlp_endpoint: https://collector:4318\n",
    )
    .unwrap();
    let output = std::process::Command::new(harness::workspace_bin("control-plane").unwrap())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("telemetry.otlp_endpoint") && error.contains("http://"),
        "{error}"
    );
    let output = std::process::Command::new(harness::workspace_bin("node-agent").unwrap())
        .args([
            "run",
            "--control-plane",
            "https://127.0.0.1:1",
            "--otlp-endpoint",
            "collector:4318",
            "--state-dir",
        ])
        .arg(stack.dir.join("agent-state"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("otlp_endpoint"), "{error}");
}
