//! Two control-plane replicas on one database behind one agent address (a least-connections TCP balancer,
//! `harness::Relay`), and one of them killed with `SIGKILL` while its agents' tasks are in flight.
//!
//! Invariants checked: the killed replica's agents reconnect to the survivor by themselves; every task of the
//! load on each cluster ends succeeded and takes effect once (the load's Deployment generation); no API answer
//! of the survivor is an error; every line of a steady log load is in ClickHouse once for each cluster (the three
//! agents watch the same Kubernetes cluster, so each ships every line: batches the killed replica took but never
//! acknowledged go again to the survivor).

use std::time::{Duration, Instant};

use e2e::Api;
use e2e::load::{LogLoad, RollingLoad};
use e2e::{Stack, StackOptions};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);
const LINES_PER_SECOND: u64 = 1_000;

/// The instance holding the cluster's open agent stream, once it has one.
async fn stream_holder(api: &Api, cluster_id: &str) -> Option<String> {
    let cluster: Value = api.get(&format!("/clusters/{cluster_id}")).await.ok()?;
    if cluster["agent"]["connected"] != true {
        return None;
    }
    let open = cluster["sessions"]
        .as_array()?
        .iter()
        .find(|session| session["disconnected_at"].is_null())?;
    Some(open["instance"].as_str()?.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_under_load_hands_its_agents_to_the_survivor() {
    let mut stack = Stack::start(StackOptions {
        agent_relay: true,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let mut peer = stack
        .start_peer_control_plane("control-plane-2")
        .await
        .unwrap();
    stack
        .agent_relay
        .as_ref()
        .unwrap()
        .add_target(peer.agent_addr);
    let mut clusters = Vec::new();
    for name in ["east", "west", "north"] {
        clusters.push(stack.connected_cluster(name).await.unwrap());
    }
    let mut holders = Vec::new();
    for (cluster, _) in &clusters {
        holders.push(
            harness::wait_until(
                "the stream's holder",
                WAIT,
                Duration::from_millis(100),
                || stream_holder(&stack.api, &cluster.cluster_id),
            )
            .await
            .unwrap(),
        );
    }
    // Three agents over two replicas: one holds two streams. Kill that one.
    let (victim, survivor_api) = if holders.iter().filter(|h| *h == "control-plane-2").count() >= 2
    {
        ("control-plane-2", stack.api.clone())
    } else {
        ("control-plane-1", peer.api.clone())
    };
    let loads: Vec<RollingLoad> = clusters
        .iter()
        .map(|(cluster, _)| {
            RollingLoad::start(
                &survivor_api,
                &cluster.cluster_id,
                &format!("roll-{}", cluster.name),
            )
        })
        .collect();
    let logs = LogLoad::start_pod(&stack, "replica-logger", LINES_PER_SECOND)
        .await
        .unwrap();
    for load in &loads {
        load.wait_for_versions(2, WAIT).await.unwrap();
    }

    if victim == "control-plane-2" {
        peer.process.kill_9().unwrap();
    } else {
        stack.control_plane.kill_9().unwrap();
    }
    let killed = Instant::now();
    let mut moved = Vec::new();
    for ((cluster, _), holder) in clusters.iter().zip(&holders) {
        if holder != victim {
            continue;
        }
        harness::wait_until(
            "the agent to be back on the survivor",
            WAIT,
            Duration::from_millis(20),
            || async {
                stream_holder(&survivor_api, &cluster.cluster_id)
                    .await
                    .is_some_and(|now| now != victim)
            },
        )
        .await
        .unwrap();
        moved.push((cluster.name.clone(), killed.elapsed()));
    }
    assert!(!moved.is_empty(), "the victim held no agent: {holders:?}");
    for load in &loads {
        load.wait_for_more(2, WAIT).await.unwrap();
    }
    let flowing = killed.elapsed();

    let mut versions = 0;
    let mut attempts = 0;
    for load in loads {
        let report = load.finish(&stack).await.unwrap();
        assert!(
            report.unexpected_answers.is_empty(),
            "{:#?}",
            report.unexpected_answers
        );
        versions += report.tasks.len();
        attempts += report.attempts();
    }
    let cluster_ids: Vec<&str> = clusters
        .iter()
        .map(|(cluster, _)| cluster.cluster_id.as_str())
        .collect();
    let lines = logs.finish(&stack, &cluster_ids, WAIT).await.unwrap();
    eprintln!(
        "killed {victim} holding {holders:?}: agents back on the survivor {moved:?} after the kill; every load \
         flowing {flowing:?} after it; {versions} versions in all, {attempts} attempts; {} log lines printed, \
         each stored once per cluster {:?} after the printing stopped ({} rows over the three)",
        lines.written, lines.drained, lines.rows
    );
}
