//! Failure modes the spine claims to survive: several control planes on one database, a control-plane
//! restart under a connected agent, and certificate renewal while the agent keeps working.

use std::collections::HashMap;
use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{TaskAccepted, TaskResult};
use e2e::api::field;
use e2e::load::LogLoad;
use e2e::raw_agent::{self, RawSession, open_session};
use e2e::{AgentState, Stack, StackOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn namespace(name: &str) -> serde_json::Value {
    json!({"kind": "apply", "manifest": format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")})
}

/// Completes every assignment at once and returns the task ids this session received, until `stop` says so.
async fn serve_tasks(
    mut session: RawSession,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut received = Vec::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return received,
            message = session.rx.message() => {
                let Ok(Some(message)) = message else { return received };
                if let Some(Down::Task(task)) = message.msg {
                    received.push(task.task_id.clone());
                    let accepted = TaskAccepted { task_id: task.task_id.clone(), lease_id: task.lease_id.clone() };
                    session.send(Up::Accepted(accepted)).await.unwrap();
                    let result = TaskResult { task_id: task.task_id, lease_id: task.lease_id, success: true, ..Default::default() };
                    session.send(Up::Result(result)).await.unwrap();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_share_one_queue_without_double_delivery() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let peer = stack
        .start_peer_control_plane("control-plane-2")
        .await
        .unwrap();
    let cluster = stack.register_cluster("shared").await.unwrap();
    let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
    let ca = field(&bundle["install"], "ca_pem").unwrap();
    // The peer shares the CA: a certificate it issues is accepted by the first process and vice versa.
    let creds = raw_agent::bootstrap(&peer.agent_endpoint, &ca, &field(&bundle, "token").unwrap())
        .await
        .unwrap();
    let identity = Some((creds.cert_pem.as_str(), creds.key_pem.as_str()));

    // A task created through the peer's API reaches a stream held by the first process: notifications cross
    // processes (streams lease only when notified, so nothing else could deliver it).
    let mut first = open_session(
        raw_agent::channel(&stack.agent_endpoint, &ca, identity)
            .await
            .unwrap(),
        4,
    )
    .await
    .unwrap();
    assert!(matches!(
        first.next(WAIT).await.unwrap().unwrap().msg,
        Some(Down::Welcome(_))
    ));
    let task = peer
        .api
        .post(
            &format!("/clusters/{}/tasks", cluster.cluster_id),
            &namespace("cross"),
        )
        .await
        .unwrap();
    match first
        .next(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap()
        .msg
    {
        Some(Down::Task(assignment)) => assert_eq!(assignment.task_id, field(&task, "id").unwrap()),
        other => panic!("expected the task, got {other:?}"),
    }

    // Two streams of the same cluster on different processes, tasks submitted through both APIs: every task is
    // delivered exactly once.
    let mut second = open_session(
        raw_agent::channel(&peer.agent_endpoint, &ca, identity)
            .await
            .unwrap(),
        4,
    )
    .await
    .unwrap();
    assert!(matches!(
        second.next(WAIT).await.unwrap().unwrap().msg,
        Some(Down::Welcome(_))
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = [
        tokio::spawn(serve_tasks(first, stop_rx.clone())),
        tokio::spawn(serve_tasks(second, stop_rx)),
    ];
    let mut created = vec![field(&task, "id").unwrap()];
    for i in 0..40 {
        let api = if i % 2 == 0 { &stack.api } else { &peer.api };
        let task = api
            .post(
                &format!("/clusters/{}/tasks", cluster.cluster_id),
                &namespace(&format!("ns-{i}")),
            )
            .await
            .unwrap();
        created.push(field(&task, "id").unwrap());
    }
    for id in &created[1..] {
        let done = stack.wait_task(id, WAIT).await.unwrap();
        assert_eq!(
            (done["state"].as_str(), done["attempts"].as_i64()),
            (Some("succeeded"), Some(1)),
            "{done}"
        );
    }
    stop_tx.send(true).unwrap();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for worker in workers {
        for id in worker.await.unwrap() {
            *deliveries.entry(id).or_default() += 1;
        }
    }
    for id in &created[1..] {
        assert_eq!(
            deliveries.get(id),
            Some(&1),
            "task {id} delivered {:?} times",
            deliveries.get(id)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_reconnects_after_a_control_plane_restart() {
    let mut stack = Stack::start(StackOptions::default()).await.unwrap();
    let (cluster, _agent) = stack.connected_cluster("steady").await.unwrap();
    stack.restart_control_plane().await.unwrap();
    let task = stack
        .api
        .post(
            &format!("/clusters/{}/tasks", cluster.cluster_id),
            &namespace("after-restart"),
        )
        .await
        .unwrap();
    let done = stack
        .wait_task(&field(&task, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    let detail = stack
        .api
        .get(&format!("/clusters/{}", cluster.cluster_id))
        .await
        .unwrap();
    let sessions = detail["sessions"].as_array().unwrap();
    assert!(
        sessions.len() >= 2,
        "the agent should have opened a new session: {detail}"
    );
    assert!(
        sessions[1]["disconnected_at"].is_string(),
        "the old session is recorded as closed: {detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_renews_its_certificate_before_expiry_and_keeps_working() {
    let stack = Stack::start(StackOptions {
        certificate_ttl_seconds: 30,
        agent_env: vec![("EDGEFLEET_RENEW_CHECK_INTERVAL".into(), "1s".into())],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let cluster = stack.register_cluster("renewing").await.unwrap();
    let _agent = stack
        .start_agent(
            "agent-renewing",
            &cluster.cluster_id,
            AgentState::Dir(&stack.dir.join("agent-renewing")),
        )
        .await
        .unwrap();
    let first = stack
        .wait_agent_connected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    let first_expiry = first["agent"]["certificate_expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    // A third of the 33 s lifetime is left after ~22 s: the agent renews over mTLS with a new key.
    let renewals_sql = format!(
        "SELECT count(*) FROM agent_certificates WHERE cluster_id = '{}' AND issued_via = 'renewal'",
        cluster.cluster_id
    );
    harness::wait_until(
        "a certificate renewal",
        Duration::from_secs(45),
        Duration::from_millis(250),
        || async {
            stack
                .postgres_query(&renewals_sql)
                .is_ok_and(|count| count.trim() != "0")
        },
    )
    .await
    .unwrap();
    let renewed = stack
        .wait_agent_connected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    assert!(
        renewed["agent"]["certificate_expires_at"].as_str().unwrap() > first_expiry.as_str(),
        "{renewed}"
    );
    // Past the first certificate's expiry the agent still works: it reconnected with the new one.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let task = stack
        .api
        .post(
            &format!("/clusters/{}/tasks", cluster.cluster_id),
            &namespace("renewed"),
        )
        .await
        .unwrap();
    let done = stack
        .wait_task(&field(&task, "id").unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// The agent is killed with `SIGKILL` while it applies a task of 300 objects, and started again from its state
/// directory, while a pod's logs stream at 1,000 lines a second. Invariants: the task ends succeeded; every object
/// is there; no object is applied twice in effect: exactly the objects that existed when the agent died come back
/// `unchanged` from the second attempt, and the rest `applied`; every log line is in ClickHouse once.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_in_the_middle_of_a_multi_object_apply_finishes_it_once() {
    const OBJECTS: usize = 300;
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let (cluster, mut agent) = stack.connected_cluster("killed").await.unwrap();
    let logs = LogLoad::start_pod(&stack, "killed-logger", 1_000)
        .await
        .unwrap();
    let manifest: String = (0..OBJECTS)
        .map(|n| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many-{n}\n  namespace: default\n  labels:\n    \
                 edgefleet.test/set: many\ndata:\n  n: \"{n}\"\n---\n"
            )
        })
        .collect();
    let task = stack
        .api
        .post(
            &format!("/clusters/{}/tasks", cluster.cluster_id),
            &json!({"kind": "apply", "manifest": manifest}),
        )
        .await
        .unwrap();
    let task_id = field(&task, "id").unwrap();
    let applied_so_far = || -> anyhow::Result<usize> {
        let names = stack.kubectl(&[
            "get",
            "configmaps",
            "-n",
            "default",
            "-l",
            "edgefleet.test/set=many",
            "-o",
            "name",
        ])?;
        Ok(names.lines().count())
    };
    harness::wait_until(
        "the apply to be part way through",
        WAIT,
        Duration::from_millis(20),
        || async { applied_so_far().is_ok_and(|n| n > 0) },
    )
    .await
    .unwrap();
    agent.kill_9().unwrap();
    // A request the agent sent just before it died may still be finishing in the API server.
    let mut last = usize::MAX;
    let existed = harness::wait_until(
        "the count of objects to settle",
        WAIT,
        Duration::from_millis(200),
        || {
            let now = applied_so_far().unwrap();
            let settled = (now == last).then_some(now);
            last = now;
            async move { settled }
        },
    )
    .await
    .unwrap();
    assert!(
        existed < OBJECTS,
        "the agent finished all {OBJECTS} objects before it was killed; nothing was tested"
    );

    let _agent = stack
        .start_agent(
            "agent-killed-again",
            &cluster.cluster_id,
            AgentState::Dir(&stack.dir.join("agent-killed")),
        )
        .await
        .unwrap();
    let done = stack.wait_task(&task_id, WAIT).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(applied_so_far().unwrap(), OBJECTS);
    let outcomes = |outcome: &str| {
        done["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|object| object["outcome"] == outcome)
            .count()
    };
    assert_eq!(
        (outcomes("unchanged"), outcomes("applied")),
        (existed, OBJECTS - existed),
        "objects the first attempt applied are unchanged by the second, the rest applied once"
    );
    let lines = logs
        .finish(&stack, &[&cluster.cluster_id], WAIT)
        .await
        .unwrap();
    eprintln!(
        "killed with {existed} of {OBJECTS} objects applied; the second attempt ({} in all) left {} unchanged \
         and applied {}; {} log lines printed, all stored once {:?} after the printing stopped ({} rows)",
        done["attempts"],
        outcomes("unchanged"),
        outcomes("applied"),
        lines.written,
        lines.drained,
        lines.rows
    );
}
