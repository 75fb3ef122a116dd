//! Benchmark: many simulated agents (one mTLS stream each, all in this process) connected to one control
//! plane. Measures task-created -> agent-received -> result-recorded latency and the control plane's memory.
//! See docs/benchmarks.md for the method and how to rerun it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{TaskAccepted, TaskResult};
use anyhow::Context;
use clap::Parser;
use e2e::api::field;
use e2e::raw_agent::{self, open_session};
use e2e::{Stack, StackOptions};
use futures::stream::{self, StreamExt};
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Connect N simulated agents to one control plane and measure task delivery latency"
)]
struct Args {
    /// Simulated agents (one cluster each).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Tasks to submit in total, spread round-robin over the clusters.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Task submissions in flight at once.
    #[arg(long, default_value_t = 16)]
    submit_concurrency: usize,
}

/// When a task was created, received by its agent, and its result acknowledged by the control plane.
#[derive(Default)]
struct TaskTimes {
    created: Option<SystemTime>,
    received: Option<SystemTime>,
    recorded: Option<SystemTime>,
}

#[derive(Default)]
struct Timings {
    tasks: HashMap<String, TaskTimes>,
}

type Shared = Arc<Mutex<Timings>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32, field_name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field_name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start(StackOptions {
        lease_seconds: 30,
        heartbeat_seconds: 10,
        poll_interval_ms: 2000,
        // The simulated agents speak the protocol only; no cluster is needed.
        cluster: false,
        ..StackOptions::default()
    })
    .await?;
    let cp_pid = stack.control_plane.pid();
    let rss_idle = rss_kib(cp_pid, "VmRSS:");

    let cloud = stack
        .api
        .post("/clouds", &json!({"name": "swarm", "provider": "local"}))
        .await?;
    let region = stack
        .api
        .post(
            "/regions",
            &json!({"cloud_account_id": field(&cloud, "id")?, "code": "swarm-1"}),
        )
        .await?;
    let region_id = field(&region, "id")?;

    let connect_started = Instant::now();
    let timings: Shared = Arc::default();
    let endpoint = stack.agent_endpoint.clone();
    let clusters: Vec<String> = stream::iter(0..args.agents)
        .map(|i| {
            let api = stack.api.clone();
            let region_id = region_id.clone();
            let endpoint = endpoint.clone();
            let timings = timings.clone();
            async move {
                let cluster = api
                    .post(
                        "/clusters",
                        &json!({"region_id": region_id, "name": format!("swarm-{i}")}),
                    )
                    .await?;
                let cluster_id = field(&cluster, "id")?;
                let bundle = api
                    .post(
                        &format!("/clusters/{cluster_id}/bootstrap-tokens"),
                        &json!({}),
                    )
                    .await?;
                let ca = field(&bundle["install"], "ca_pem")?;
                let creds = raw_agent::bootstrap(&endpoint, &ca, &field(&bundle, "token")?).await?;
                let channel =
                    raw_agent::channel(&endpoint, &ca, Some((&creds.cert_pem, &creds.key_pem)))
                        .await?;
                let mut session = open_session(channel, 8).await?;
                match session.next(Duration::from_secs(30)).await??.msg {
                    Some(Down::Welcome(_)) => {}
                    other => anyhow::bail!("expected Welcome, got {other:?}"),
                }
                tokio::spawn(simulate_agent(session, timings));
                Ok::<_, anyhow::Error>(cluster_id)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let rss_connected = rss_kib(cp_pid, "VmRSS:");
    eprintln!("{} agents connected in {connect_secs:.1} s", clusters.len());

    let run_started = Instant::now();
    let submitted: Vec<anyhow::Result<()>> = stream::iter(0..args.tasks)
        .map(|i| {
            let api = stack.api.clone();
            let cluster_id = clusters[i % clusters.len()].clone();
            let timings = timings.clone();
            async move {
                let manifest =
                    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{i}\n");
                let task = api
                    .post(
                        &format!("/clusters/{cluster_id}/tasks"),
                        &json!({"kind": "apply", "manifest": manifest}),
                    )
                    .await?;
                let created = chrono::DateTime::parse_from_rfc3339(&field(&task, "created_at")?)?;
                let created = SystemTime::UNIX_EPOCH
                    + Duration::from_nanos(created.timestamp_nanos_opt().unwrap_or(0) as u64);
                timings
                    .lock()
                    .unwrap()
                    .tasks
                    .entry(field(&task, "id")?)
                    .or_default()
                    .created = Some(created);
                Ok(())
            }
        })
        .buffer_unordered(args.submit_concurrency)
        .collect()
        .await;
    for result in submitted {
        result?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = timings
            .lock()
            .unwrap()
            .tasks
            .values()
            .filter(|t| t.created.is_some() && t.recorded.is_some())
            .count();
        if done >= args.tasks {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {} tasks completed",
            args.tasks
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run_secs = run_started.elapsed().as_secs_f64();
    let rss_peak = rss_kib(cp_pid, "VmHWM:");

    let (mut received, mut recorded) = (Vec::new(), Vec::new());
    for times in timings.lock().unwrap().tasks.values() {
        let (Some(created), Some(got), Some(acked)) =
            (times.created, times.received, times.recorded)
        else {
            continue;
        };
        received.push(
            got.duration_since(created)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );
        recorded.push(
            acked
                .duration_since(created)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );
    }
    received.sort_by(f64::total_cmp);
    recorded.sort_by(f64::total_cmp);
    println!(
        "| agents | tasks | connect all (s) | created->received p50 / p99 (ms) | created->recorded p50 / p99 (ms) | tasks/s | CP RSS idle / connected / peak (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {:.0} / {:.0} / {:.0} |",
        args.agents,
        received.len(),
        connect_secs,
        percentile(&received, 50.0),
        percentile(&received, 99.0),
        percentile(&recorded, 50.0),
        percentile(&recorded, 99.0),
        args.tasks as f64 / run_secs,
        rss_idle as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
    );
    Ok(())
}

/// Accepts every assignment and reports success at once; records when the task arrived and when the control
/// plane acknowledged the result (it acknowledges only after recording it in PostgreSQL).
async fn simulate_agent(mut session: raw_agent::RawSession, timings: Shared) -> anyhow::Result<()> {
    loop {
        let message = session
            .rx
            .message()
            .await
            .context("session broke")?
            .context("session ended")?;
        match message.msg {
            Some(Down::Task(task)) => {
                timings
                    .lock()
                    .unwrap()
                    .tasks
                    .entry(task.task_id.clone())
                    .or_default()
                    .received = Some(SystemTime::now());
                session
                    .send(Up::Accepted(TaskAccepted {
                        task_id: task.task_id.clone(),
                        lease_id: task.lease_id.clone(),
                    }))
                    .await?;
                session
                    .send(Up::Result(TaskResult {
                        task_id: task.task_id,
                        lease_id: task.lease_id,
                        success: true,
                        ..Default::default()
                    }))
                    .await?;
            }
            Some(Down::ResultAck(ack)) => {
                timings
                    .lock()
                    .unwrap()
                    .tasks
                    .entry(ack.task_id)
                    .or_default()
                    .recorded = Some(SystemTime::now());
            }
            _ => {}
        }
    }
}
