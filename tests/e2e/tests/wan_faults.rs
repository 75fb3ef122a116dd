//! A region far from its control plane, over an emulated WAN (`harness::Wan`: the agent runs in its own network
//! namespace, its cluster's API server stays local to it): 80 ms +/- 10 ms each way with 0.5 % packet loss, then
//! a partition of the region, under a steady stream of tasks and of log lines. Invariants checked: the measured
//! round trip shows the link; every task ends succeeded, once, with its object in the cluster; during the
//! partition the API says the agent is disconnected and tasks submitted meanwhile stay pending (no progress it has
//! not seen); after the partition the agent is back by itself; every log line printed is in ClickHouse once.

use std::time::{Duration, Instant};

use e2e::api::field;
use e2e::load::{LogLoad, RollingLoad};
use e2e::stack::AgentState;
use e2e::{Stack, StackOptions, env_or};
use harness::LinkProfile;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
/// The steady log load in the region: a busy pod's worth, through the 80 ms link.
const LINES_PER_SECOND: u64 = 500;
/// How long the lines printed through a fault may take to reach ClickHouse once it is over.
const LOG_DRAIN: Duration = Duration::from_secs(300);

fn far() -> LinkProfile {
    LinkProfile {
        latency: Duration::from_millis(80),
        jitter: Duration::from_millis(10),
        loss: 0.005,
    }
}

/// Submits an apply of ConfigMap `wan-{n}` and returns the task's id.
async fn submit(stack: &Stack, cluster_id: &str, n: u32) -> String {
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wan-{n}\n  namespace: default\ndata:\n  n: \"{n}\"\n"
    );
    let task = stack
        .api
        .post(
            &format!("/clusters/{cluster_id}/tasks"),
            &json!({"kind": "apply", "manifest": manifest, "idempotency_key": format!("wan-{n}")}),
        )
        .await
        .unwrap();
    field(&task, "id").unwrap()
}

async fn task_state(stack: &Stack, task_id: &str) -> String {
    let task: Value = stack.api.get(&format!("/tasks/{task_id}")).await.unwrap();
    task["state"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_region_works_through_loss_and_comes_back_by_itself_after_a_partition() {
    let partition_for = Duration::from_secs(env_or("WAN_PARTITION_SECONDS", 60));
    let stack = Stack::start(StackOptions {
        wan_region: Some(far()),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (cluster, _agent) = stack.connected_cluster("far").await.unwrap();
    let cluster_id = cluster.cluster_id.as_str();
    let cluster_path = format!("/clusters/{cluster_id}");

    // The round trip the control plane measures is the link's: two crossings of 80 ms +/- 10 ms.
    let rtt = harness::wait_until(
        "a measured round trip",
        WAIT,
        Duration::from_millis(250),
        || async {
            let cluster: Value = stack.api.get(&cluster_path).await.ok()?;
            cluster["agent"]["rtt_ms"].as_f64()
        },
    )
    .await
    .unwrap();
    assert!((140.0..400.0).contains(&rtt), "round trip {rtt} ms");

    // A steady stream of tasks and log lines through the lossy link.
    let logs = LogLoad::start_pod(&stack, "far-logger", LINES_PER_SECOND)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..10 {
        tasks.push(submit(&stack, cluster_id, n).await);
    }
    for task in &tasks {
        let done = stack.wait_task(task, WAIT).await.unwrap();
        assert_eq!(done["state"], "succeeded", "{done}");
    }

    // The region is cut off: the API says so, and tasks submitted meanwhile wait.
    let region = stack.region().unwrap();
    region.partition();
    let cut_at = Instant::now();
    stack
        .wait_agent_disconnected(cluster_id, WAIT)
        .await
        .unwrap();
    let noticed = cut_at.elapsed();
    let mut during = Vec::new();
    for n in 10..15 {
        during.push(submit(&stack, cluster_id, n).await);
    }
    tokio::time::sleep(partition_for.saturating_sub(cut_at.elapsed())).await;
    for task in &during {
        assert_eq!(
            task_state(&stack, task).await,
            "pending",
            "a task claims progress through a partition"
        );
    }
    let offline = stack.api.get(&cluster_path).await.unwrap()["agent"].clone();
    assert_eq!(offline["connected"], false, "{offline}");
    assert!(
        offline["offline_since"].is_string(),
        "how long it has been offline: {offline}"
    );

    // Healed: the agent comes back by itself and the waiting tasks are applied, each once.
    region.heal();
    let healed = Instant::now();
    stack.wait_agent_connected(cluster_id, WAIT).await.unwrap();
    let back = healed.elapsed();
    let online = stack.api.get(&cluster_path).await.unwrap()["agent"].clone();
    assert!(online["offline_since"].is_null(), "{online}");
    for task in &during {
        let done = stack.wait_task(task, WAIT).await.unwrap();
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "applied once: {done}");
    }
    for n in 0..15 {
        let data = stack
            .kubectl(&[
                "get",
                "configmap",
                &format!("wan-{n}"),
                "-o",
                "jsonpath={.data.n}",
            ])
            .unwrap();
        assert_eq!(data.trim(), n.to_string());
    }
    let lines = logs.finish(&stack, &[cluster_id], LOG_DRAIN).await.unwrap();
    let stats = region.stats();
    eprintln!(
        "round trip {rtt:.1} ms; partition noticed after {noticed:?}; agent back {back:?} after healing; \
         {} log lines printed, all stored once {:?} after the printing stopped ({} rows); link: {stats:?}",
        lines.written, lines.drained, lines.rows
    );
}

/// 30 % of the packets on the region's link lost in each direction for a minute, under a steady load of tasks and
/// log lines. Invariants: every task of the load succeeds and takes effect once (the load's Deployment
/// generation), after the loss ends tasks flow again with no human action, and every log line printed is in
/// ClickHouse once.
#[tokio::test(flavor = "multi_thread")]
async fn a_minute_of_heavy_loss_loses_nothing_and_the_agent_recovers_by_itself() {
    let loss_for = Duration::from_secs(env_or("WAN_LOSS_SECONDS", 60));
    let stack = Stack::start(StackOptions {
        wan_region: Some(far()),
        // The default lease: heartbeats that renew it cross the lossy link too.
        lease_seconds: 30,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (cluster, _agent) = stack.connected_cluster("lossy").await.unwrap();
    let cluster_id = cluster.cluster_id.as_str();
    let load = RollingLoad::start(&stack.api, cluster_id, "roll-lossy");
    let logs = LogLoad::start_pod(&stack, "lossy-logger", LINES_PER_SECOND)
        .await
        .unwrap();
    load.wait_for_versions(3, WAIT).await.unwrap();

    let region = stack.region().unwrap();
    let before = region.stats();
    let streams_opened = || -> u64 {
        stack
            .postgres_query(&format!(
                "SELECT count(*) FROM agent_sessions WHERE cluster_id = '{cluster_id}'"
            ))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let streams_before = streams_opened();
    region.set_profile(LinkProfile { loss: 0.3, ..far() });
    let versions_at_start = load.versions_done();
    tokio::time::sleep(loss_for).await;
    let during = load.versions_done() - versions_at_start;
    let lossy = region.stats().since(&before);
    let streams_during = streams_opened() - streams_before;
    let printed_by_then = logs.lines_written();
    let stored_by_then = logs.source().stored(&stack, cluster_id).unwrap().distinct;
    region.set_profile(far());
    let healed = Instant::now();
    load.wait_for_more(2, WAIT).await.unwrap();
    let flowing_after = healed.elapsed();
    let lines = logs.finish(&stack, &[cluster_id], LOG_DRAIN).await.unwrap();

    let report = load.finish(&stack).await.unwrap();
    assert!(
        report.unexpected_answers.is_empty(),
        "{:#?}",
        report.unexpected_answers
    );
    // Not asserted: a lease can run out honestly when the link holds a result back longer than the lease.
    eprintln!(
        "{loss_for:?} of 30 % loss: {during} versions finished during it, the agent opened {streams_during} new \
         streams; link: {lossy:?}; tasks flowing again {flowing_after:?} after it ended; {} versions in all, {} \
         attempts; {stored_by_then} of {printed_by_then} log lines stored when the loss ended, all {} once {:?} \
         after the printing stopped",
        report.tasks.len(),
        report.attempts(),
        lines.written,
        lines.drained
    );
}

/// The region is partitioned for longer than the agent's certificate lifetime (30 s here). Invariants: after the
/// link returns the agent is back with no human action and no new bootstrap token (its token is spent): it
/// recovers its expired certificate with its key; a task submitted during the partition is applied once; every log
/// line printed through it is in ClickHouse once.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_cut_off_past_its_certificate_lifetime_recovers_without_a_new_token() {
    let stack = Stack::start(StackOptions {
        wan_region: Some(far()),
        certificate_ttl_seconds: 30,
        agent_env: vec![("EDGEFLEET_RENEW_CHECK_INTERVAL".into(), "1s".into())],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (cluster, _agent) = stack.connected_cluster("expiring").await.unwrap();
    let cluster_id = cluster.cluster_id.as_str();
    let latest_not_after = || -> chrono::DateTime<chrono::Utc> {
        let text = stack
            .postgres_query(&format!(
                "SELECT extract(epoch FROM max(not_after))::bigint FROM agent_certificates \
                 WHERE cluster_id = '{cluster_id}'"
            ))
            .unwrap();
        chrono::DateTime::from_timestamp(text.trim().parse().unwrap(), 0).unwrap()
    };

    let logs = LogLoad::start_pod(&stack, "expiring-logger", LINES_PER_SECOND)
        .await
        .unwrap();
    let region = stack.region().unwrap();
    region.partition();
    let task = submit(&stack, cluster_id, 100).await;
    let expires = latest_not_after();
    harness::wait_until(
        "the agent's certificate to expire during the partition",
        WAIT,
        Duration::from_millis(250),
        || async { chrono::Utc::now() > expires + chrono::Duration::seconds(2) },
    )
    .await
    .unwrap();
    assert_eq!(
        latest_not_after(),
        expires,
        "nothing renewed through the partition"
    );

    region.heal();
    let healed = Instant::now();
    stack.wait_agent_connected(cluster_id, WAIT).await.unwrap();
    let back = healed.elapsed();
    let issued_via = stack
        .postgres_query(&format!(
            "SELECT issued_via FROM agent_certificates WHERE cluster_id = '{cluster_id}' ORDER BY issued_at"
        ))
        .unwrap();
    assert_eq!(
        issued_via.split_whitespace().last(),
        Some("recovery"),
        "certificates: {issued_via}"
    );
    assert!(latest_not_after() > chrono::Utc::now());
    let done = stack.wait_task(&task, WAIT).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    let lines = logs.finish(&stack, &[cluster_id], LOG_DRAIN).await.unwrap();
    eprintln!(
        "certificate expired {expires} during the partition; agent back {back:?} after the link returned, \
         with a recovered certificate; {} log lines printed, all stored once {:?} after the printing stopped",
        lines.written, lines.drained
    );
}

/// Edge autonomy: while the region is partitioned, objects its tasks applied are deleted and changed by hand, and
/// the agent is killed (`kill -9`) and started again, still cut off, before the object is deleted once more.
/// Invariants: the agent, on its own, recreates the deleted object and takes back the field it applied (a field it
/// never set, added by hand, stays), within a few check intervals (1 s here), before and after its restart; once
/// the link is back it reports the whole period in one report with exactly those three corrections (the first
/// two made by the killed process), which the API shows on the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_agent_keeps_what_it_applied_and_reports_what_it_corrected() {
    let stack = Stack::start(StackOptions {
        wan_region: Some(far()),
        agent_env: vec![("EDGEFLEET_OFFLINE_CHECK_INTERVAL".into(), "1s".into())],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (cluster, mut agent) = stack.connected_cluster("autonomous").await.unwrap();
    let cluster_id = cluster.cluster_id.as_str();
    let cluster_path = format!("/clusters/{cluster_id}");
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept-settings\n  namespace: default\n\
                    data:\n  mode: steady\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kept-web\n  \
                    namespace: default\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: kept-web\n  \
                    template:\n    metadata:\n      labels:\n        app: kept-web\n    spec:\n      containers:\n        \
                    - name: app\n          image: registry.example/web:1\n";
    let done = stack
        .run_task(cluster_id, &json!({"kind": "apply", "manifest": manifest}))
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");

    let region = stack.region().unwrap();
    region.partition();
    stack
        .wait_agent_disconnected(cluster_id, WAIT)
        .await
        .unwrap();
    stack
        .kubectl(&["delete", "configmap", "kept-settings", "-n", "default"])
        .unwrap();
    stack
        .kubectl(&[
            "scale",
            "deployment",
            "kept-web",
            "-n",
            "default",
            "--replicas=3",
        ])
        .unwrap();
    stack
        .kubectl(&[
            "label",
            "deployment",
            "kept-web",
            "-n",
            "default",
            "added-by=hand",
        ])
        .unwrap();
    let changed = Instant::now();
    let kept = |args: &[&str]| stack.kubectl(args).map(|out| out.trim().to_owned());
    let settings_mode = || {
        kept(&[
            "get",
            "configmap",
            "kept-settings",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.mode}",
        ])
    };
    harness::wait_until(
        "the agent to restore both objects while cut off",
        WAIT,
        Duration::from_millis(100),
        || async {
            let mode = settings_mode();
            let replicas = kept(&[
                "get",
                "deployment",
                "kept-web",
                "-n",
                "default",
                "-o",
                "jsonpath={.spec.replicas}",
            ]);
            matches!(
                (mode.as_deref(), replicas.as_deref()),
                (Ok("steady"), Ok("1"))
            )
        },
    )
    .await
    .unwrap();
    let restored = changed.elapsed();
    assert_eq!(
        kept(&[
            "get",
            "deployment",
            "kept-web",
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.labels.added-by}"
        ])
        .unwrap(),
        "hand",
        "a field the agent never applied is left alone"
    );
    assert_eq!(
        stack.api.get(&cluster_path).await.unwrap()["agent"]["connected"],
        false,
        "restored by the agent alone, not through the control plane"
    );

    // The edge box restarts while still cut off; the restarted agent keeps the objects and the period's record.
    agent.kill_9().unwrap();
    let _agent = stack
        .start_agent(
            "agent-autonomous-again",
            cluster_id,
            AgentState::Dir(&stack.dir.join("agent-autonomous")),
        )
        .await
        .unwrap();
    stack
        .kubectl(&["delete", "configmap", "kept-settings", "-n", "default"])
        .unwrap();
    let deleted_again = Instant::now();
    harness::wait_until(
        "the restarted agent to restore the object while cut off",
        WAIT,
        Duration::from_millis(100),
        || async { settings_mode().is_ok_and(|mode| mode == "steady") },
    )
    .await
    .unwrap();
    let restored_after_restart = deleted_again.elapsed();

    region.heal();
    let healed = Instant::now();
    let report = harness::wait_until(
        "the agent's report of its time offline",
        WAIT,
        Duration::from_millis(100),
        || async {
            let detail: Value = stack.api.get(&cluster_path).await.ok()?;
            detail["offline_reports"].as_array()?.first().cloned()
        },
    )
    .await
    .unwrap();
    let reported = healed.elapsed();
    let mut corrections: Vec<(String, String, String)> = report["corrections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                format!(
                    "{}/{}",
                    c["kind"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                ),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    corrections.sort();
    assert_eq!(
        corrections,
        [
            (
                "recreated".into(),
                "ConfigMap/kept-settings".into(),
                String::new()
            ),
            (
                "recreated".into(),
                "ConfigMap/kept-settings".into(),
                String::new()
            ),
            (
                "reverted".into(),
                "Deployment/kept-web".into(),
                "spec.replicas".into()
            ),
        ],
        "{report}"
    );
    assert_eq!(report["objects"], 2, "{report}");
    assert!(report["checks"].as_i64().unwrap() >= 2, "{report}");
    // The restarted agent resent nothing the first process had not: one period, one report.
    let detail: Value = stack.api.get(&cluster_path).await.unwrap();
    assert_eq!(
        detail["offline_reports"].as_array().unwrap().len(),
        1,
        "{detail}"
    );
    eprintln!(
        "objects changed by hand during the partition restored {restored:?} after the change (1 s checks), \
         {restored_after_restart:?} after a deletion following the agent's restart; the report in the API \
         {reported:?} after the link returned: {report}"
    );
}
