//! Benchmark: one-click demo deploys against a connected cluster (a real node agent and a real Kubernetes control
//! plane with simulated nodes). Measures request -> objects applied and request -> online, one deploy at a time and many at once.
//! See docs/benchmarks.md for the method and how to rerun it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Parser;
use e2e::api::field;
use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Deploy demos in one click and measure request -> objects applied -> online")]
struct Args {
    /// Deploys one after the other.
    #[arg(long, default_value_t = 20)]
    sequential: usize,
    /// Deploys submitted at once, after the sequential ones.
    #[arg(long, default_value_t = 20)]
    concurrent: usize,
    /// The control plane's task and planner poll interval (the shipped default is 2000).
    #[arg(long, default_value_t = 2000)]
    poll_interval_ms: u64,
    /// How long the node simulator keeps a new container unready (a stand-in for image pull and start-up).
    #[arg(long, default_value_t = 0)]
    pod_ready_delay_ms: u64,
}

/// Seconds from the request to the apply step and to the demo going online, from the server's step times.
struct Sample {
    applied: f64,
    online: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(label: &str, samples: &[Sample], wall: Duration) {
    let mut applied: Vec<f64> = samples.iter().map(|s| s.applied * 1000.0).collect();
    let mut online: Vec<f64> = samples.iter().map(|s| s.online * 1000.0).collect();
    applied.sort_by(f64::total_cmp);
    online.sort_by(f64::total_cmp);
    println!(
        "{label}: {} deploys in {:.1} s; request -> applied p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; \
         request -> online p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        samples.len(),
        wall.as_secs_f64(),
        percentile(&applied, 50.0),
        percentile(&applied, 95.0),
        applied.last().copied().unwrap_or(f64::NAN),
        percentile(&online, 50.0),
        percentile(&online, 95.0),
        online.last().copied().unwrap_or(f64::NAN),
    );
}

fn time(value: &Value) -> anyhow::Result<DateTime<Utc>> {
    Ok(value
        .as_str()
        .context("missing time")?
        .parse::<DateTime<Utc>>()?)
}

/// Posts a deploy and returns its id with the client-side request time.
async fn deploy(
    stack: &Stack,
    name: &str,
    region: &str,
) -> anyhow::Result<(String, DateTime<Utc>)> {
    let sent = Utc::now();
    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": name, "template": "static-web", "region": region}),
        )
        .await?;
    Ok((field(&demo, "id")?, sent))
}

async fn wait_online(stack: &Stack, id: &str, sent: DateTime<Utc>) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let demo = stack.api.get(&format!("/demos/{id}")).await?;
        if demo["error"].is_string() {
            bail!("deploy {id} failed: {}", demo["error"]);
        }
        if demo["status"] == "online" {
            let steps = demo["steps"].as_array().context("no steps")?;
            let finished = |name: &str| -> anyhow::Result<DateTime<Utc>> {
                let step = steps
                    .iter()
                    .find(|s| s["name"] == name)
                    .context("missing step")?;
                time(&step["finished_at"])
            };
            let seconds = |at: DateTime<Utc>| (at - sent).as_seconds_f64();
            return Ok(Sample {
                applied: seconds(finished("apply")?),
                online: seconds(finished("publish_url")?),
            });
        }
        if Instant::now() > deadline {
            bail!("deploy {id} not online after 300 s: {demo}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start(
        StackOptions {
            poll_interval_ms: args.poll_interval_ms,
            ready_delay_ms: args.pod_ready_delay_ms,
            ..StackOptions::default()
        }
        .with_templates(),
    )
    .await?;
    let (cluster, _agent) = stack.connected_cluster("bench").await?;
    let region = cluster.region_id.clone();

    let started = Instant::now();
    let mut samples = Vec::new();
    for i in 0..args.sequential {
        let (id, sent) = deploy(&stack, &format!("seq-{i}"), &region).await?;
        samples.push(wait_online(&stack, &id, sent).await?);
    }
    if !samples.is_empty() {
        report("one at a time", &samples, started.elapsed());
    }

    let started = Instant::now();
    let mut sent = Vec::new();
    for i in 0..args.concurrent {
        sent.push(deploy(&stack, &format!("burst-{i}"), &region).await?);
    }
    let waits = sent.iter().map(|(id, at)| wait_online(&stack, id, *at));
    let samples = futures::future::try_join_all(waits).await?;
    if !samples.is_empty() {
        report("all at once", &samples, started.elapsed());
    }
    Ok(())
}
