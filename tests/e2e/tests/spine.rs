//! End-to-end tests of the spine: control plane on PostgreSQL, agent bootstrap and mTLS task pull, server-side
//! apply into a real Kubernetes API server, and task logs in ClickHouse. Every process is real and separate.

use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{TaskAccepted, TaskResult};
use e2e::api::{field, problem_fields};
use e2e::raw_agent::{self, open_session};
use e2e::{AgentState, Stack, StackOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEMO: &str = include_str!("../fixtures/sample-demo.yaml");
const WAIT: Duration = Duration::from_secs(60);

fn apply_body(manifest: &str, key: Option<&str>) -> Value {
    let mut body = json!({"kind": "apply", "manifest": manifest, "wait_timeout_seconds": 60});
    if let Some(key) = key {
        body["idempotency_key"] = json!(key);
    }
    body
}

/// Waits until the agent Deployment has a Running pod other than `replaced` and returns it.
async fn running_agent_pod(stack: &Stack, replaced: Option<&str>) -> Value {
    harness::wait_until(
        "a running agent pod",
        WAIT,
        Duration::from_millis(200),
        || async {
            let pods = kube_json(
                stack,
                &[
                    "get",
                    "pods",
                    "-n",
                    "edgefleet-system",
                    "-l",
                    "app.kubernetes.io/name=edgefleet-agent",
                ],
            );
            pods["items"].as_array().and_then(|items| {
                items
                    .iter()
                    .find(|pod| {
                        pod["status"]["phase"] == "Running"
                            && pod["metadata"]["deletionTimestamp"].is_null()
                            && Some(pod["metadata"]["name"].as_str().unwrap_or_default())
                                != replaced
                    })
                    .cloned()
            })
        },
    )
    .await
    .unwrap()
}

fn kube_json(stack: &Stack, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&stack.kubectl(&all).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_task_reaches_the_cluster_and_its_logs_reach_clickhouse() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let cluster = stack.register_cluster("east").await.unwrap();
    let registered = stack
        .api
        .get(&format!("/clusters/{}", cluster.cluster_id))
        .await
        .unwrap();
    assert_eq!(registered["status"], "registered");
    assert_eq!(registered["agent"]["connected"], false);

    let state_dir = stack.dir.join("agent-east");
    let _agent = stack
        .start_agent(
            "agent-east",
            &cluster.cluster_id,
            AgentState::Dir(&state_dir),
        )
        .await
        .unwrap();
    let connected = stack
        .wait_agent_connected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    assert_eq!(connected["agent"]["node_count"], 2, "{connected}");
    assert!(
        connected["agent"]["kubernetes_version"]
            .as_str()
            .unwrap()
            .starts_with("v1."),
        "{connected}"
    );
    assert!(
        connected["agent"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let expires = chrono::DateTime::parse_from_rfc3339(
        connected["agent"]["certificate_expires_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let hours_left =
        (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds() as f64 / 3600.0;
    assert!(
        (23.0..=24.2).contains(&hours_left),
        "certificate should live ~24 h, has {hours_left} h"
    );

    let path = format!("/clusters/{}/tasks", cluster.cluster_id);
    let task = stack
        .api
        .post(&path, &apply_body(DEMO, Some("demo-1")))
        .await
        .unwrap();
    let task_id = field(&task, "id").unwrap();
    // The same idempotency key returns the same task; reused with another request it is refused.
    let (status, again) = stack
        .api
        .call(Method::POST, &path, Some(&apply_body(DEMO, Some("demo-1"))))
        .await
        .unwrap();
    assert_eq!(
        (status, field(&again, "id").unwrap()),
        (StatusCode::OK, task_id.clone())
    );
    let (status, conflict) = stack
        .api
        .call(
            Method::POST,
            &path,
            Some(&apply_body(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n",
                Some("demo-1"),
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");

    let done = stack.wait_task(&task_id, WAIT).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);
    let outcomes: Vec<(String, String)> = done["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for kind in ["Namespace", "ConfigMap", "Deployment", "Service"] {
        assert!(
            outcomes.contains(&(kind.to_string(), "applied".to_string())),
            "{kind} not applied: {outcomes:?}"
        );
    }
    assert!(
        outcomes.contains(&("Deployment".to_string(), "ready".to_string())),
        "{outcomes:?}"
    );

    // The objects exist, owned by the agent's field manager, and the Deployment rolled out.
    let deployment = kube_json(
        &stack,
        &["get", "deployment", "hello-model", "-n", "demo-hello"],
    );
    let managers: Vec<&str> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"edgefleet-agent"), "{managers:?}");
    assert_eq!(deployment["status"]["availableReplicas"], 2);
    let config = kube_json(
        &stack,
        &["get", "configmap", "hello-model-config", "-n", "demo-hello"],
    );
    assert_eq!(config["data"]["MODEL_NAME"], "distilbert-base-uncased");

    // Task log lines are in ClickHouse (asked directly), tagged with the cluster from the certificate. They
    // travel beside the result, so they may land a moment after it.
    let query = format!(
        "SELECT cluster_id, level, message FROM {{db}}.task_logs WHERE task_id = '{task_id}' ORDER BY ts_nanos FORMAT TSV"
    );
    let rows = harness::wait_until(
        "task logs in ClickHouse",
        WAIT,
        Duration::from_millis(100),
        || async {
            stack
                .clickhouse_query(&query)
                .ok()
                .filter(|rows| rows.contains("task succeeded"))
        },
    )
    .await
    .unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert!(lines.len() >= 3, "expected several log lines, got {rows:?}");
    assert!(
        lines.iter().all(|l| l.starts_with(&cluster.cluster_id)),
        "{rows}"
    );
    assert!(
        rows.contains("hello-model"),
        "log lines should name the objects: {rows}"
    );
    let via_api = stack
        .api
        .get(&format!("/tasks/{task_id}/logs"))
        .await
        .unwrap();
    assert_eq!(via_api["lines"].as_array().unwrap().len(), lines.len());

    // Re-applying the same manifest changes nothing in the cluster.
    let rv_before = deployment["metadata"]["resourceVersion"].clone();
    let second = stack
        .api
        .post(&path, &apply_body(DEMO, None))
        .await
        .unwrap();
    let second = stack
        .wait_task(&field(&second, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(second["state"], "succeeded", "{second}");
    assert!(
        second["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "Deployment" && o["outcome"] == "unchanged"),
        "{second}"
    );
    let after = kube_json(
        &stack,
        &["get", "deployment", "hello-model", "-n", "demo-hello"],
    );
    assert_eq!(after["metadata"]["resourceVersion"], rv_before);

    // Metrics count what happened.
    let metrics = reqwest::get(stack.api.base().replace("/api/v1", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("edgefleet_tasks_delivered_total 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_killed_during_a_task_gets_it_again_and_applies_it_once() {
    let stack = Stack::start(StackOptions {
        lease_seconds: 3,
        ready_delay_ms: 4000,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let cluster = stack.register_cluster("crashy").await.unwrap();
    let state_dir = stack.dir.join("agent-crashy");
    let mut agent = stack
        .start_agent(
            "agent-crashy",
            &cluster.cluster_id,
            AgentState::Dir(&state_dir),
        )
        .await
        .unwrap();
    stack
        .wait_agent_connected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();

    let task = stack
        .api
        .post(
            &format!("/clusters/{}/tasks", cluster.cluster_id),
            &apply_body(DEMO, None),
        )
        .await
        .unwrap();
    let task_id = field(&task, "id").unwrap();
    // Wait until the agent is inside the task (applied, waiting for the rollout), then kill it.
    harness::wait_until("task running", WAIT, Duration::from_millis(50), || async {
        stack
            .api
            .get(&format!("/tasks/{task_id}"))
            .await
            .is_ok_and(|t| t["state"] == "running")
    })
    .await
    .unwrap();
    agent.kill_9().unwrap();

    // The restarted agent reuses its stored certificate: the one-time token is already spent.
    let _agent = stack
        .spawn_agent(
            "agent-crashy-2",
            "efb_spent",
            &std::fs::read_to_string(state_dir.join("ca.pem")).unwrap(),
            AgentState::Dir(&state_dir),
        )
        .await
        .unwrap();
    let done = stack
        .wait_task(&task_id, Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    let events: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(events.iter().any(|e| e.contains("expired")), "{events:?}");

    // Applied once: one generation, one ReplicaSet, the agent the only applier.
    let deployment = kube_json(
        &stack,
        &["get", "deployment", "hello-model", "-n", "demo-hello"],
    );
    assert_eq!(deployment["metadata"]["generation"], 1);
    let replica_sets = kube_json(&stack, &["get", "replicasets", "-n", "demo-hello"]);
    assert_eq!(replica_sets["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_are_refused_without_a_valid_identity() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let a = stack.register_cluster("alpha").await.unwrap();
    let b = stack.register_cluster("beta").await.unwrap();
    let endpoint = stack.agent_endpoint.clone();

    // A token works once.
    let bundle = stack.bootstrap_token(&a.cluster_id).await.unwrap();
    let token = field(&bundle, "token").unwrap();
    let ca = field(&bundle["install"], "ca_pem").unwrap();
    let creds_a = raw_agent::bootstrap(&endpoint, &ca, &token).await.unwrap();
    assert_eq!(creds_a.response.cluster_id, a.cluster_id);
    let reused = raw_agent::bootstrap(&endpoint, &ca, &token)
        .await
        .err()
        .expect("reused token must fail");
    assert_eq!(reused.code(), tonic::Code::Unauthenticated);
    assert!(reused.message().contains("already used"), "{reused:?}");

    // An expired token is refused (time is moved by editing the expiry).
    let bundle = stack.bootstrap_token(&b.cluster_id).await.unwrap();
    stack
        .postgres_query("UPDATE bootstrap_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .unwrap();
    let expired = raw_agent::bootstrap(&endpoint, &ca, &field(&bundle, "token").unwrap())
        .await
        .err()
        .expect("expired token must fail");
    assert!(expired.message().contains("expired"), "{expired:?}");
    let unknown = raw_agent::bootstrap(&endpoint, &ca, "efb_not-a-real-token")
        .await
        .err()
        .unwrap();
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);

    // No client certificate: no session.
    let anonymous = raw_agent::channel(&endpoint, &ca, None).await.unwrap();
    let refused = open_session(anonymous, 1)
        .await
        .err()
        .expect("session without a certificate must fail");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // A certificate from another CA naming cluster A: refused during the TLS handshake.
    let (forged_cert, forged_key) = forged_identity(&a.cluster_id);
    let forged = match raw_agent::channel(&endpoint, &ca, Some((&forged_cert, &forged_key))).await {
        Err(_) => true,
        Ok(channel) => open_session(channel, 1).await.is_err(),
    };
    assert!(forged, "a certificate from another CA must be refused");

    // Agent A cannot see or touch cluster B's tasks.
    let channel_a = raw_agent::channel(&endpoint, &ca, Some((&creds_a.cert_pem, &creds_a.key_pem)))
        .await
        .unwrap();
    let mut session_a = open_session(channel_a.clone(), 4).await.unwrap();
    match session_a.next(WAIT).await.unwrap().unwrap().msg {
        Some(Down::Welcome(welcome)) => assert_eq!(welcome.cluster_id, a.cluster_id),
        other => panic!("expected Welcome, got {other:?}"),
    }
    let task_b = stack
        .api
        .post(
            &format!("/clusters/{}/tasks", b.cluster_id),
            &apply_body(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
                None,
            ),
        )
        .await
        .unwrap();
    let task_b_id = field(&task_b, "id").unwrap();
    assert!(
        session_a.next(Duration::from_secs(2)).await.is_err(),
        "agent A must not receive B's task"
    );
    let fake_lease = uuid::Uuid::new_v4().to_string();
    session_a
        .send(Up::Accepted(TaskAccepted {
            task_id: task_b_id.clone(),
            lease_id: fake_lease.clone(),
        }))
        .await
        .unwrap();
    session_a
        .send(Up::Result(TaskResult {
            task_id: task_b_id.clone(),
            lease_id: fake_lease,
            success: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let untouched = stack.api.get(&format!("/tasks/{task_b_id}")).await.unwrap();
    assert_eq!(untouched["state"], "pending", "{untouched}");

    // Deleting cluster A closes its open stream and refuses reconnects with its certificate.
    let (status, _) = stack
        .api
        .call(Method::DELETE, &format!("/clusters/{}", a.cluster_id), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let closing = loop {
        match session_a.next(WAIT).await.unwrap() {
            Ok(_) => continue,
            Err(status) => break status,
        }
    };
    assert_eq!(closing.code(), tonic::Code::PermissionDenied, "{closing:?}");
    let again = open_session(channel_a, 1)
        .await
        .err()
        .expect("a deleted cluster's agent must be refused");
    assert_eq!(again.code(), tonic::Code::PermissionDenied, "{again:?}");

    // No token ever reached the control plane's log.
    assert!(!stack.control_plane.log_text().contains(&token));
}

/// Opens a session with `credentials` and returns it once Welcome arrived, or the status it was refused with.
async fn session_with(
    stack: &Stack,
    ca: &str,
    credentials: &raw_agent::Credentials,
) -> Result<raw_agent::RawSession, tonic::Status> {
    let identity = Some((credentials.cert_pem.as_str(), credentials.key_pem.as_str()));
    let channel = raw_agent::channel(&stack.agent_endpoint, ca, identity)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut session = open_session(channel, 1).await?;
    match session.next(WAIT).await.unwrap()? {
        message if matches!(message.msg, Some(Down::Welcome(_))) => Ok(session),
        other => panic!("expected Welcome, got {other:?}"),
    }
}

/// An agent whose certificate expired (cut off for longer than its lifetime) gets a new one without a bootstrap
/// token by proving it holds the expired certificate's key, within the grace period only; the expired certificate
/// is revoked by the recovery, and a thief with the certificate but not the key is refused.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_recovers_only_with_its_key_within_the_grace_period() {
    const GRACE_SECONDS: i64 = 10;
    let stack = Stack::start(StackOptions {
        cluster: false,
        certificate_ttl_seconds: 30,
        recovery_grace_seconds: GRACE_SECONDS as u64,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let endpoint = stack.agent_endpoint.clone();
    let mut agents = Vec::new();
    let mut ca = String::new();
    for name in ["recovers", "too-late"] {
        let cluster = stack.register_cluster(name).await.unwrap();
        let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
        ca = field(&bundle["install"], "ca_pem").unwrap();
        let credentials = raw_agent::bootstrap(&endpoint, &ca, &field(&bundle, "token").unwrap())
            .await
            .unwrap();
        agents.push(credentials);
    }
    let expired_at = |credentials: &raw_agent::Credentials| {
        chrono::DateTime::from_timestamp(credentials.response.not_after_unix, 0).unwrap()
    };
    harness::wait_until(
        "the certificates to expire",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async { chrono::Utc::now() > expired_at(&agents[0]) + chrono::Duration::seconds(1) },
    )
    .await
    .unwrap();
    assert!(
        session_with(&stack, &ca, &agents[0]).await.is_err(),
        "an expired certificate opens no session"
    );

    let (thief_key, _) = raw_agent::key_and_csr().unwrap();
    let stolen = raw_agent::recover(&endpoint, &ca, &agents[0], &thief_key.serialize_pem())
        .await
        .err()
        .unwrap();
    assert_eq!(stolen.code(), tonic::Code::PermissionDenied, "{stolen:?}");
    assert!(
        stolen
            .message()
            .contains("not for the expired certificate's key"),
        "{stolen:?}"
    );

    let recovered = raw_agent::recover(&endpoint, &ca, &agents[0], &agents[0].key_pem)
        .await
        .unwrap();
    session_with(&stack, &ca, &recovered).await.unwrap();
    let replayed = raw_agent::recover(&endpoint, &ca, &agents[0], &agents[0].key_pem)
        .await
        .err()
        .unwrap();
    assert!(replayed.message().contains("revoked"), "{replayed:?}");
    let issued_via = stack
        .postgres_query("SELECT issued_via FROM agent_certificates ORDER BY issued_at")
        .unwrap();
    assert_eq!(
        issued_via.split_whitespace().collect::<Vec<_>>(),
        ["bootstrap", "bootstrap", "recovery"]
    );

    harness::wait_until(
        "the grace period to pass",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            chrono::Utc::now()
                > expired_at(&agents[1]) + chrono::Duration::seconds(GRACE_SECONDS + 1)
        },
    )
    .await
    .unwrap();
    let late = raw_agent::recover(&endpoint, &ca, &agents[1], &agents[1].key_pem)
        .await
        .err()
        .unwrap();
    assert_eq!(late.code(), tonic::Code::PermissionDenied, "{late:?}");
    assert!(late.message().contains("grace period"), "{late:?}");
}

/// Renewing revokes the certificate it replaces once the overlap has passed (closing a stream still open with
/// it), a second renewal from the same certificate revokes the first one's result at once, and an admin can
/// revoke a cluster's agent without deleting the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn renewal_revokes_the_old_certificate_and_admins_revoke_agents() {
    let stack = Stack::start(StackOptions {
        cluster: false,
        renewal_overlap_seconds: 3,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let cluster = stack.register_cluster("lineage").await.unwrap();
    let endpoint = stack.agent_endpoint.clone();
    let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
    let ca = field(&bundle["install"], "ca_pem").unwrap();
    let first = raw_agent::bootstrap(&endpoint, &ca, &field(&bundle, "token").unwrap())
        .await
        .unwrap();
    let renewed = raw_agent::renew(&endpoint, &ca, &first).await.unwrap();
    // Within the overlap the old certificate still works: a stream open with it is not cut short.
    let mut old_stream = session_with(&stack, &ca, &first).await.unwrap();
    // A thief renewing the same certificate again: the owner's renewal is revoked at once.
    let stolen = raw_agent::renew(&endpoint, &ca, &first).await.unwrap();
    let refused = session_with(&stack, &ca, &renewed).await.err().unwrap();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("revoked"), "{refused:?}");
    // After the overlap the old certificate is refused, and its open stream is closed, heartbeats or not.
    let status = old_stream
        .heartbeat_until_end(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    let refused = session_with(&stack, &ca, &first).await.err().unwrap();
    assert!(refused.message().contains("revoked"), "{refused:?}");

    // An admin revokes the agent: its open stream ends on every replica at once, it cannot renew, and a
    // new bootstrap token brings it back.
    let mut current = session_with(&stack, &ca, &stolen).await.unwrap();
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            &format!("/clusters/{}/revoke-agent", cluster.cluster_id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "lineage", "the cluster stays");
    let ended = current.next(Duration::from_secs(10)).await.unwrap();
    let status = ended.expect_err("the stream ends");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    let renewal = raw_agent::renew(&endpoint, &ca, &stolen)
        .await
        .err()
        .unwrap();
    assert_eq!(renewal.code(), tonic::Code::PermissionDenied, "{renewal:?}");
    let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
    let again = raw_agent::bootstrap(&endpoint, &ca, &field(&bundle, "token").unwrap())
        .await
        .unwrap();
    session_with(&stack, &ca, &again).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_manifests_fail_clearly_and_the_agent_keeps_working() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let (cluster, _agent) = stack.connected_cluster("strict").await.unwrap();
    let path = format!("/clusters/{}/tasks", cluster.cluster_id);

    // Rejected by the API, with the document and field named.
    let (status, body) = stack
        .api
        .call(Method::POST, &path, Some(&apply_body("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\napiVersion: v1\nmetadata:\n  name: x\n", None)))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(body["error"]["details"][0]["field"], "manifest[document 1]");
    assert_eq!(
        body["error"]["details"][0]["message"],
        "missing or empty `kind`"
    );

    // Well-formed and allowed, but a version the cluster no longer serves (removed in Kubernetes 1.26): the
    // task fails, naming the document and kind.
    let unknown = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fine\n---\napiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: w\n  namespace: fine\n";
    let task = stack
        .api
        .post(&path, &apply_body(unknown, None))
        .await
        .unwrap();
    let failed = stack
        .wait_task(&field(&task, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("document 1")
            && error.contains("unknown kind HorizontalPodAutoscaler in autoscaling/v2beta2"),
        "{error}"
    );

    // A rollout that never becomes available fails with the Deployment named, once the wait times out.
    let stuck = DEMO.replace(
        "ghcr.io/edgefleet/demo-gradio:0.1.0",
        "example/never-ready:1",
    );
    let mut body = apply_body(&stuck, None);
    body["wait_timeout_seconds"] = json!(2);
    let task = stack.api.post(&path, &body).await.unwrap();
    let timed_out = stack
        .wait_task(&field(&task, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(timed_out["state"], "failed", "{timed_out}");
    assert!(
        timed_out["error"].as_str().unwrap().contains("hello-model"),
        "{timed_out}"
    );

    // The agent is still there and working.
    let ok = stack
        .api
        .post(
            &path,
            &apply_body(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: after\n",
                None,
            ),
        )
        .await
        .unwrap();
    let ok = stack
        .wait_task(&field(&ok, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(ok["state"], "succeeded", "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_running_task_stops_it() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let (cluster, _agent) = stack.connected_cluster("cancel").await.unwrap();
    let path = format!("/clusters/{}/tasks", cluster.cluster_id);
    let stuck = DEMO.replace(
        "ghcr.io/edgefleet/demo-gradio:0.1.0",
        "example/never-ready:1",
    );
    let task = stack
        .api
        .post(&path, &apply_body(&stuck, None))
        .await
        .unwrap();
    let task_id = field(&task, "id").unwrap();
    harness::wait_until("task running", WAIT, Duration::from_millis(50), || async {
        stack
            .api
            .get(&format!("/tasks/{task_id}"))
            .await
            .is_ok_and(|t| t["state"] == "running")
    })
    .await
    .unwrap();
    let cancelled = stack
        .api
        .post(&format!("/tasks/{task_id}/cancel"), &json!({}))
        .await
        .unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let (status, _) = stack
        .api
        .call(Method::POST, &format!("/tasks/{task_id}/cancel"), None)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a finished task cannot be cancelled again"
    );
    // The agent was told and stopped waiting for the rollout: it says so in the task's log.
    let query =
        format!("SELECT message FROM {{db}}.task_logs WHERE task_id = '{task_id}' FORMAT TSV");
    harness::wait_until(
        "the agent's cancellation log line",
        WAIT,
        Duration::from_millis(100),
        || async {
            stack
                .clickhouse_query(&query)
                .is_ok_and(|rows| rows.contains("task cancelled by the control plane"))
        },
    )
    .await
    .unwrap();
    let next = stack
        .api
        .post(
            &path,
            &apply_body(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: next\n",
                None,
            ),
        )
        .await
        .unwrap();
    let next = stack
        .wait_task(&field(&next, "id").unwrap(), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(next["state"], "succeeded");
    let final_state = stack.api.get(&format!("/tasks/{task_id}")).await.unwrap();
    assert_eq!(
        final_state["state"], "cancelled",
        "a late result must not overwrite the cancellation"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_refuses_bad_input_and_bad_tokens() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let (status, body) = stack
        .api
        .with_token("efa_wrong")
        .call(Method::GET, "/clusters", None)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthenticated"))
    );
    let (status, body) = stack
        .api
        .call(Method::POST, "/clouds", Some(&json!({"name": "tc", "provider": "tencentcloud", "credentials": {"secret_id": "AKID1"}})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["details"][0]["field"],
        "credentials.secret_key"
    );
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            "/clouds",
            Some(&json!({"name": "tc", "provider": 7})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["field"], "provider");

    // Credentials are write-only and sealed at rest.
    let secret = "SECRET-KEY-VALUE-123456";
    let cloud = stack
        .api
        .post("/clouds", &json!({"name": "tc", "provider": "tencentcloud", "credentials": {"secret_id": "AKID1", "secret_key": secret}}))
        .await
        .unwrap();
    assert_eq!(
        cloud["credential_fields"],
        json!(["secret_id", "secret_key"])
    );
    assert!(!cloud.to_string().contains(secret));
    let dump = stack
        .postgres_query("SELECT encode(credentials_sealed, 'escape') FROM cloud_accounts")
        .unwrap();
    assert!(
        !dump.contains(secret) && !dump.contains("AKID1"),
        "credentials must be sealed"
    );
    assert!(!stack.control_plane.log_text().contains(secret));

    // A cloud used by a region cannot be deleted, and the error says why.
    stack
        .api
        .post(
            "/regions",
            &json!({"cloud_account_id": cloud["id"], "code": "ap-shanghai"}),
        )
        .await
        .unwrap();
    let (status, body) = stack
        .api
        .call(
            Method::DELETE,
            &format!("/clouds/{}", cloud["id"].as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 region"),
        "{body}"
    );

    let openapi: Value = reqwest::get(format!("{}/openapi.json", stack.api.base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["paths"]["/clusters/{id}/bootstrap-tokens"]["post"].is_object());
    let ready = reqwest::get(stack.api.base().replace("/api/v1", "/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// A client certificate that claims to be an agent of `cluster_id`, signed by a CA the control plane never saw.
fn forged_identity(cluster_id: &str) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("cluster:{cluster_id}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "edgefleet-agent");
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn install_manifest_applies_and_an_in_cluster_agent_keeps_its_identity_in_the_secret() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let cluster = stack.register_cluster("incluster").await.unwrap();
    let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
    let manifest_path = stack.dir.join("install.yaml");
    std::fs::write(
        &manifest_path,
        bundle["install"]["manifest"].as_str().unwrap(),
    )
    .unwrap();
    stack
        .kubectl(&[
            "apply",
            "--server-side",
            "-f",
            manifest_path.to_str().unwrap(),
        ])
        .unwrap();
    let role = kube_json(&stack, &["get", "clusterrole", "edgefleet-agent"]);
    assert!(
        !role["rules"].to_string().contains("\"secrets\""),
        "no cluster-wide Secret access: {role}"
    );
    let deployment = kube_json(
        &stack,
        &[
            "get",
            "deployment",
            "edgefleet-agent",
            "-n",
            "edgefleet-system",
        ],
    );
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--state-secret") && !args.contains(bundle["token"].as_str().unwrap()),
        "{args}"
    );

    // The Deployment's pod comes up through the real scheduler and the node simulator, which runs the agent's
    // image as a local process with the pod's service-account token: the agent uses its in-cluster
    // configuration and acts as its service account.
    stack
        .wait_agent_connected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    let first_pod = running_agent_pod(&stack, None).await;
    assert_eq!(first_pod["spec"]["serviceAccountName"], "edgefleet-agent");
    assert!(
        first_pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|node| node.starts_with("node-")),
        "{first_pod}"
    );
    let pod_name = first_pod["metadata"]["name"].as_str().unwrap().to_string();
    // Its log, through the API server's proxy to the (simulated) kubelet.
    let log = stack
        .kubectl(&["logs", "-n", "edgefleet-system", &pod_name])
        .unwrap();
    assert!(log.contains("session established"), "{log}");
    let stored = kube_json(
        &stack,
        &[
            "get",
            "secret",
            "edgefleet-agent-identity",
            "-n",
            "edgefleet-system",
        ],
    );
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            stored["data"][key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} missing: {stored}"
        );
    }

    // What the apply policy allows works; the rest is refused before it is queued, and the API server would
    // refuse it to the agent too: RBAC for kinds outside the policy, the install manifest's
    // ValidatingAdmissionPolicy for protected namespaces (which RBAC cannot express).
    let allowed = stack
        .run_task(
            &cluster.cluster_id,
            &apply_body(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-pod\n",
                None,
            ),
        )
        .await
        .unwrap();
    assert_eq!(allowed["state"], "succeeded", "{allowed}");
    let escalation = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: take-over\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}]\n";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n  namespace: kube-system\nstringData: {a: b}\n";
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: planted\n  namespace: kube-system\ndata: {a: b}\n";
    let as_agent = "--as=system:serviceaccount:edgefleet-system:edgefleet-agent";
    for (manifest, refusal) in [
        (escalation, "cannot patch resource \"clusterrolebindings\""),
        (
            secret,
            "cannot patch resource \"secrets\" in API group \"\" in the namespace \"kube-system\"",
        ),
        (
            config_map,
            "edgefleet-agent-protected-namespaces' with binding 'edgefleet-agent-protected-namespaces' denied request: the edgefleet agent may not write to a protected namespace",
        ),
    ] {
        let (status, body) = stack
            .api
            .call(
                Method::POST,
                &format!("/clusters/{}/tasks", cluster.cluster_id),
                Some(&apply_body(manifest, None)),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("refused by the apply policy"),
            "{body}"
        );
        let error = stack
            .kubectl_with_input(&["apply", "--server-side", as_agent, "-f", "-"], manifest)
            .unwrap_err()
            .to_string();
        assert!(error.contains(refusal), "{error}");
    }
    let permitted =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: permitted\n  namespace: from-pod\n";
    stack
        .kubectl_with_input(&["apply", "--server-side", as_agent, "-f", "-"], permitted)
        .expect("the agent's own rights, as a control");
    let leftovers = stack
        .kubectl(&[
            "get",
            "clusterrolebinding",
            "take-over",
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .unwrap()
        + &stack
            .kubectl(&[
                "get",
                "secret,configmap",
                "planted",
                "-n",
                "kube-system",
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .unwrap();
    assert_eq!(leftovers, "", "refused objects must not exist");

    // A rescheduled pod reuses the identity from the Secret: the token is spent.
    stack
        .kubectl(&["delete", "pod", "-n", "edgefleet-system", &pod_name])
        .unwrap();
    running_agent_pod(&stack, Some(&pod_name)).await;
    let task = stack
        .api
        .post(
            &format!("/clusters/{}/tasks", cluster.cluster_id),
            &apply_body(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-new-pod\n",
                None,
            ),
        )
        .await
        .unwrap();
    let done = stack
        .wait_task(&field(&task, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    let issued = stack
        .postgres_query(&format!(
            "SELECT count(*) FROM agent_certificates WHERE cluster_id = '{}'",
            cluster.cluster_id
        ))
        .unwrap();
    assert_eq!(
        issued.trim(),
        "1",
        "the restarted agent must not have bootstrapped again"
    );
}

/// A batch of tasks for several clusters is one request and one transaction: each agent gets exactly its own
/// tasks; a problem anywhere refuses the whole batch, naming the task; idempotency keys behave per task.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_batch_reaches_each_cluster_once_or_is_refused_whole() {
    let stack = Stack::start(StackOptions {
        cluster: false,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let mut agents = Vec::new();
    let mut cluster_ids = Vec::new();
    for name in ["batch-a", "batch-b"] {
        let cluster = stack.register_cluster(name).await.unwrap();
        let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
        let ca = field(&bundle["install"], "ca_pem").unwrap();
        let credentials = raw_agent::bootstrap(
            &stack.agent_endpoint,
            &ca,
            &field(&bundle, "token").unwrap(),
        )
        .await
        .unwrap();
        agents.push((ca, credentials));
        cluster_ids.push(cluster.cluster_id);
    }
    let entry = |cluster: usize, name: &str, key: Option<&str>| {
        json!({
            "cluster_id": cluster_ids[cluster],
            "task": apply_body(&format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"), key),
        })
    };
    let task_count = || async {
        let count = stack.postgres_query("SELECT count(*) FROM tasks").unwrap();
        count.trim().parse::<u64>().unwrap()
    };

    // Refused whole: a bad manifest and an unknown cluster are named by index, nothing is created.
    let mut unknown = entry(0, "c", None);
    unknown["cluster_id"] = json!(uuid::Uuid::new_v4());
    let mut bad = entry(1, "b", None);
    bad["task"]["manifest"] = json!("kind: Namespace\n");
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            "/tasks/batch",
            Some(&json!({"tasks": [entry(0, "a", None), bad, unknown]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = problem_fields(&body);
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("tasks[1].task.manifest")),
        "{body}"
    );
    assert!(fields.contains(&"tasks[2].cluster_id"), "{body}");
    assert!(!fields.iter().any(|f| f.starts_with("tasks[0]")), "{body}");
    let (status, body) = stack
        .api
        .call(Method::POST, "/tasks/batch", Some(&json!({"tasks": []})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(task_count().await, 0, "a refused batch creates nothing");

    // Accepted: two tasks for each cluster, in the order given; each agent receives exactly its two. (The
    // streams open only now: they send no heartbeats, so they would be closed as silent after three intervals.)
    let mut sessions = Vec::new();
    for (ca, credentials) in &agents {
        let identity = Some((credentials.cert_pem.as_str(), credentials.key_pem.as_str()));
        let channel = raw_agent::channel(&stack.agent_endpoint, ca, identity)
            .await
            .unwrap();
        let mut session = open_session(channel, 4).await.unwrap();
        let welcome = session.next(WAIT).await.unwrap().unwrap();
        assert!(matches!(welcome.msg, Some(Down::Welcome(_))), "{welcome:?}");
        sessions.push(session);
    }
    let batch = json!({"tasks": [
        entry(0, "a1", Some("k-a1")), entry(1, "b1", None), entry(0, "a2", None), entry(1, "b2", Some("k-b2")),
    ]});
    let accepted = stack.api.post("/tasks/batch", &batch).await.unwrap();
    let outcomes = accepted["tasks"].as_array().unwrap();
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes.iter().all(|o| o["created"] == true), "{accepted}");
    let expected_cluster = [0, 1, 0, 1];
    for (outcome, cluster) in outcomes.iter().zip(expected_cluster) {
        assert_eq!(outcome["task"]["cluster_id"], json!(cluster_ids[cluster]));
    }
    for (index, session) in sessions.iter_mut().enumerate() {
        let mut received = Vec::new();
        while received.len() < 2 {
            match session.next(WAIT).await.unwrap().unwrap().msg {
                Some(Down::Task(task)) => received.push(task.task_id),
                _ => continue,
            }
        }
        let mut expected: Vec<String> = outcomes
            .iter()
            .zip(expected_cluster)
            .filter(|(_, cluster)| *cluster == index)
            .map(|(o, _)| o["task"]["id"].as_str().unwrap().to_string())
            .collect();
        received.sort();
        expected.sort();
        assert_eq!(received, expected, "cluster {index} gets its own tasks");
    }

    // Sent again: the keyed tasks come back as they were, the others are new; a key reused for another
    // manifest refuses the batch and names the task.
    let again = stack.api.post("/tasks/batch", &batch).await.unwrap();
    let created: Vec<bool> = again["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["created"].as_bool().unwrap())
        .collect();
    assert_eq!(created, [false, true, true, false]);
    assert_eq!(again["tasks"][0]["task"]["id"], outcomes[0]["task"]["id"]);
    assert_eq!(task_count().await, 6);
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            "/tasks/batch",
            Some(&json!({"tasks": [entry(0, "a3", None), entry(1, "other", Some("k-b2"))]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task 1 of the batch"),
        "{body}"
    );
    assert_eq!(
        task_count().await,
        6,
        "the conflicting batch created nothing"
    );
}

/// The names on a page of `GET /clusters` and the URL of the next page from its `Link` header.
async fn clusters_page(stack: &Stack, path: &str) -> (Vec<String>, Option<String>) {
    let (status, headers, body) = stack
        .api
        .call_with_headers(Method::GET, path, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let names = body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let next = headers.get("link").map(|link| {
        let link = link.to_str().unwrap();
        let url = link
            .strip_prefix("</api/v1")
            .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("unexpected Link header {link:?}"));
        url.to_owned()
    });
    (names, next)
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_page_by_name_without_skips_or_repeats_while_the_list_changes() {
    let stack = Stack::start(StackOptions {
        cluster: false,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (_, region_id) = stack.register_region("paging", "eu").await.unwrap();
    let register = |name: &str| {
        let body = json!({"region_id": region_id, "name": name});
        let api = stack.api.clone();
        async move { field(&api.post("/clusters", &body).await.unwrap(), "id").unwrap() }
    };
    let mut ids = std::collections::HashMap::new();
    for name in [
        "page-b", "page-c", "page-d", "page-e", "page-f", "page-g", "page-h",
    ] {
        ids.insert(name, register(name).await);
    }
    let everything = clusters_page(&stack, "/clusters").await;
    assert_eq!(everything.1, None, "an unpaged list has no next page");
    assert!(everything.0.is_sorted(), "{:?}", everything.0);

    let (first, next) = clusters_page(&stack, "/clusters?limit=3").await;
    assert_eq!(first, everything.0[..3]);
    // Between pages: one cluster of the first page and one of the rest are deleted, and one is added on each
    // side of the cut. A later page must hold every live cluster after the cut once and nothing before it.
    let cut = first.last().unwrap().clone();
    let gone_later = everything.0[4].clone();
    for name in [&first[0], &gone_later] {
        let id = &ids[name.as_str()];
        stack
            .api
            .ok(Method::DELETE, &format!("/clusters/{id}"), None)
            .await
            .unwrap();
    }
    register("page-a").await;
    register("page-i").await;
    let mut rest = Vec::new();
    let mut next = next;
    while let Some(path) = next {
        let (names, following) = clusters_page(&stack, &path).await;
        assert!(names.len() <= 3, "{path}: {names:?}");
        rest.extend(names);
        next = following;
    }
    let now = clusters_page(&stack, "/clusters").await.0;
    let expected: Vec<_> = now.iter().filter(|name| **name > cut).cloned().collect();
    assert_eq!(rest, expected);
    assert!(rest.contains(&"page-i".to_owned()) && !rest.contains(&gone_later));

    for bad in ["limit=0", "limit=501", "limit=many"] {
        let (status, body) = stack
            .api
            .call(Method::GET, &format!("/clusters?{bad}"), None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body.to_string().contains("limit"), "{bad}: {body}");
    }

    // A token's last use is recorded, but not rewritten by every request within the minute.
    let used = |tokens: Value| -> Vec<Value> {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|token| token["last_used_at"].clone())
            .collect()
    };
    let before = used(stack.api.get("/api-tokens").await.unwrap());
    assert!(before.iter().any(|at| !at.is_null()), "{before:?}");
    for _ in 0..5 {
        stack.api.get("/regions").await.unwrap();
    }
    assert_eq!(used(stack.api.get("/api-tokens").await.unwrap()), before);
}
