//! A region far from its control plane, over an emulated WAN (`harness::Wan`: the agent runs in its own network
//! namespace, its cluster's API server stays local to it): 80 ms +/- 10 ms each way with 0.5 % packet loss, then
//! a partition of the region, under a steady stream of tasks. Invariants checked: the measured round trip shows
//! the link; every task ends succeeded, once, with its object in the cluster; during the partition the API says
//! the agent is disconnected and tasks submitted meanwhile stay pending (no progress it has not seen); after the
//! partition the agent is back by itself.

use std::time::{Duration, Instant};

use e2e::api::field;
use e2e::{Stack, StackOptions};
use harness::LinkProfile;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

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
    let partition_for = Duration::from_secs(
        std::env::var("WAN_PARTITION_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
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

    // A steady stream of tasks through the lossy link.
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
    harness::wait_until(
        "the API to say the agent is disconnected",
        WAIT,
        Duration::from_millis(250),
        || async { stack.api.get(&cluster_path).await.unwrap()["agent"]["connected"] == false },
    )
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
    let stats = region.stats();
    eprintln!(
        "round trip {rtt:.1} ms; partition noticed after {noticed:?}; agent back {back:?} after healing; \
         link: {stats:?}"
    );
}
