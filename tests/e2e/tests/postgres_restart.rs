//! PostgreSQL crashes (immediate shutdown) and comes back under a steady load of tasks and log lines. A test binary
//! of its own: it takes down the PostgreSQL server every test of its process shares.
//!
//! Invariants checked: while the database is down the API answers every request within a few seconds with 503
//! `database_unavailable`, never a 500; the control plane and the agent come back by themselves; every task
//! the load submitted (retrying with its idempotency key) ends succeeded, once in effect; every log line printed
//! meanwhile is in ClickHouse once.

use std::time::{Duration, Instant};

use e2e::load::{LogLoad, RollingLoad};
use e2e::{Stack, StackOptions};
use reqwest::{Method, StatusCode};

const WAIT: Duration = Duration::from_secs(120);
/// How long PostgreSQL stays down.
const DOWN: Duration = Duration::from_secs(10);
const LINES_PER_SECOND: u64 = 1_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_costs_no_task_and_the_api_says_what_is_wrong_meanwhile() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack.postgres.durable_commits().unwrap();
    let (cluster, _agent) = stack.connected_cluster("pg").await.unwrap();
    let cluster_id = cluster.cluster_id.as_str();
    let cluster_path = format!("/clusters/{cluster_id}");
    let load = RollingLoad::start(&stack.api, cluster_id, "roll-pg");
    let logs = LogLoad::start_pod(&stack, "pg-logger", LINES_PER_SECOND)
        .await
        .unwrap();
    load.wait_for_versions(3, WAIT).await.unwrap();

    let postgres = stack.postgres;
    tokio::task::spawn_blocking(move || postgres.crash())
        .await
        .unwrap()
        .unwrap();
    let crashed = Instant::now();
    let mut answers = Vec::new();
    while crashed.elapsed() < DOWN {
        let asked = Instant::now();
        let (status, body) = stack
            .api
            .call(Method::GET, &cluster_path, None)
            .await
            .unwrap();
        answers.push((status, asked.elapsed()));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "answered after {:?}",
            asked.elapsed()
        );
    }
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();

    tokio::task::spawn_blocking(move || postgres.start_again())
        .await
        .unwrap()
        .unwrap();
    let restarted = Instant::now();
    harness::wait_until(
        "the API to answer again",
        WAIT,
        Duration::from_millis(10),
        || async {
            let (status, _) = stack
                .api
                .call(Method::GET, &cluster_path, None)
                .await
                .ok()?;
            status.is_success().then_some(())
        },
    )
    .await
    .unwrap();
    let api_back = restarted.elapsed();
    stack.wait_agent_connected(cluster_id, WAIT).await.unwrap();
    let agent_back = restarted.elapsed();
    load.wait_for_more(2, WAIT).await.unwrap();
    let tasks_back = restarted.elapsed();
    let lines = logs.finish(&stack, &[cluster_id], WAIT).await.unwrap();

    let report = load.finish(&stack).await.unwrap();
    assert!(
        report.unexpected_answers.is_empty(),
        "{:#?}",
        report.unexpected_answers
    );
    eprintln!(
        "PostgreSQL down {DOWN:?}: {} API answers meanwhile, all 503 database_unavailable, slowest {slowest:?}; \
         after the restart: API answering in {api_back:?}, agent connected in {agent_back:?}, tasks flowing in \
         {tasks_back:?}; {} versions rolled, {} 503s retried by the load; {} log lines printed, all stored once \
         {:?} after the printing stopped",
        answers.len(),
        report.tasks.len(),
        report.unavailable_answers,
        lines.written,
        lines.drained
    );
}
