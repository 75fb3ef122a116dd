//! Benchmark: pod log lines from simulated containers through the real API server (`pods/log`), the node agent,
//! the control plane and into ClickHouse, against ClickHouse's own insert rate of the same rows measured in the
//! same run. Reports lines per second, CPU seconds per hop and bytes on the agent's wire per line.
//! See docs/benchmarks.md for the method and how to rerun it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use e2e::api::field;
use e2e::procfs::{Memory, cpu_seconds, memory_kib};
use e2e::{Stack, StackOptions, write_container_log};
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Measure pod log throughput from container to ClickHouse against ClickHouse's raw insert rate"
)]
struct Args {
    /// Lines written in all, spread evenly over the pods.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Demo pods writing at once (one demo each).
    #[arg(long, default_value_t = 4)]
    pods: usize,
    /// Lines per append to a container's log file.
    #[arg(long, default_value_t = 10_000)]
    chunk: u64,
    /// Seconds the agent is watched at rest (its demos deployed, no line written) before the lines are
    /// written; 0 skips it.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
}

fn line(pod: usize, n: u64) -> String {
    format!(
        "{{\"level\":\"info\",\"msg\":\"GET /v1/models/resnet50:predict 200\",\"latency_ms\":{},\"pod\":{pod},\"request_id\":\"{:016x}\",\"n\":{n}}}",
        n % 97,
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

async fn clickhouse_count(stack: &Stack, demo_ids: &[String]) -> anyhow::Result<u64> {
    let ids = demo_ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let count = stack.clickhouse_query(&format!(
        "SELECT count() FROM {{db}}.demo_logs WHERE demo_id IN ({ids}) AND stream = 'container'"
    ))?;
    Ok(count.trim().parse()?)
}

/// ClickHouse's insert rate for `rows` rows shaped like the pipeline's, sent as TSV over HTTP in inserts of
/// `per_insert` rows one after another, into a table made like `demo_logs`.
/// The most rows the control plane puts in one insert (`SinkSettings::default().max_lines`).
const PIPELINE_INSERT_ROWS: usize = 50_000;

/// ClickHouse's own rate for `rows` in inserts of `per_insert`, into a fresh table made like `demo_logs`. It
/// starts once no merge is running (the pipeline's parts, or the previous reference's), so one reference does not
/// pay for another's merges.
async fn raw_insert_rate(
    stack: &Stack,
    table: &str,
    rows: &[String],
    per_insert: usize,
) -> anyhow::Result<f64> {
    harness::wait_until(
        "ClickHouse to finish merging",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async {
            let merges = stack
                .clickhouse_query("SELECT count() FROM system.merges")
                .ok()?;
            (merges.trim() == "0").then_some(())
        },
    )
    .await?;
    stack.clickhouse_query(&format!("CREATE TABLE {{db}}.{table} AS {{db}}.demo_logs"))?;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/?query={}",
        stack.clickhouse.http_url(),
        urlencode(&format!(
            "INSERT INTO {}.{table} FORMAT TabSeparated",
            stack.clickhouse_database
        ))
    );
    let started = Instant::now();
    for chunk in rows.chunks(per_insert) {
        let body = chunk.join("");
        let response = client.post(&url).body(body).send().await?;
        if !response.status().is_success() {
            bail!("raw insert: {}", response.text().await?);
        }
    }
    let elapsed = started.elapsed();
    let stored: u64 = stack
        .clickhouse_query(&format!("SELECT count() FROM {{db}}.{table}"))?
        .trim()
        .parse()?;
    if stored != rows.len() as u64 {
        bail!("raw insert stored {stored} of {} rows", rows.len());
    }
    Ok(rows.len() as f64 / elapsed.as_secs_f64())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Process logs stay there for a look afterwards.
    let dir = std::env::temp_dir().join(format!("log-bench-{}", std::process::id()));
    println!("process logs in {}", dir.display());
    // The agent as it runs by default (heartbeats every 10 s, info logging), so its footprint at rest is its own.
    let stack = Stack::start(StackOptions {
        dir: Some(dir),
        agent_relay: true,
        heartbeat_seconds: 10,
        lease_seconds: 30,
        agent_env: vec![("EDGEFLEET_LOG".into(), "info".into())],
        ..StackOptions::default().with_templates()
    })
    .await?;
    let (cluster, agent) = stack.connected_cluster("bench").await?;
    let mut demos = Vec::new();
    for i in 0..args.pods {
        let name = format!("bench-{i}");
        let demo = stack
            .api
            .post(
                "/demos",
                &json!({"name": name, "template": "static-web", "region": "auto"}),
            )
            .await?;
        demos.push((field(&demo, "id")?, name));
    }
    let mut pods = Vec::new();
    for (id, name) in &demos {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let demo = stack.api.get(&format!("/demos/{id}")).await?;
            if demo["status"] == "online" {
                break;
            }
            if Instant::now() > deadline || demo["error"].is_string() {
                bail!("demo {name} did not go online: {demo}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pods.push((
            format!("demo-{name}"),
            stack.first_pod(&format!("demo-{name}"))?,
        ));
    }
    let demo_ids: Vec<String> = demos.iter().map(|(id, _)| id.clone()).collect();
    let kube_state = stack
        .cluster
        .as_ref()
        .context("the stack runs its own cluster")?
        .state_dir()
        .to_path_buf();
    let kube_pid = stack.cluster.as_ref().map(|c| c.process.pid()).unwrap_or(0);
    let relay = stack.agent_relay.as_ref().context("the agent relay")?;
    let per_pod = args.lines / args.pods as u64;
    let total = per_pod * args.pods as u64;

    // Every process here is a child of this one, so only this one is counted without its descendants.
    let pids = [
        (
            "Kubernetes (API server, etcd, simulated kubelet)",
            kube_pid,
            true,
        ),
        ("node agent", agent.pid(), true),
        ("control plane", stack.control_plane.pid(), true),
        ("ClickHouse", stack.clickhouse.pid(), true),
        (
            "this process (writes the logs, relays the agent's connection)",
            std::process::id(),
            false,
        ),
    ];
    if args.idle_seconds > 0 {
        // A measurement window, not a wait for anything: whatever the agent does at rest in it is counted.
        let window = Duration::from_secs(args.idle_seconds);
        let uplink_before = relay.upstream_bytes();
        let downlink_before = relay.downstream_bytes();
        let cpu_before = cpu_seconds(agent.pid(), true);
        tokio::time::sleep(window).await;
        let uplink = relay.upstream_bytes() - uplink_before;
        let downlink = relay.downstream_bytes() - downlink_before;
        let cpu = cpu_seconds(agent.pid(), true) - cpu_before;
        println!(
            "agent at rest for {} s ({} demos followed, heartbeats every 10 s): RSS {:.1} MiB, uplink {:.0} bit/s ({uplink} bytes of TLS), downlink {:.0} bit/s, CPU {:.2} % of a core",
            window.as_secs(),
            args.pods,
            memory_kib(agent.pid(), Memory::Resident) as f64 / 1024.0,
            uplink as f64 * 8.0 / window.as_secs_f64(),
            downlink as f64 * 8.0 / window.as_secs_f64(),
            100.0 * cpu / window.as_secs_f64()
        );
    }
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|(_, pid, descendants)| cpu_seconds(*pid, *descendants))
        .collect();
    let wire_before = relay.upstream_bytes();
    let started = Instant::now();
    for start in (0..per_pod).step_by(args.chunk as usize) {
        for (index, (namespace, pod)) in pods.iter().enumerate() {
            let text: String = (start..(start + args.chunk).min(per_pod))
                .map(|n| line(index, n) + "\n")
                .collect();
            write_container_log(&kube_state, namespace, pod, "demo", &text).await?;
        }
    }
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while clickhouse_count(&stack, &demo_ids).await? < total {
        if Instant::now() > deadline {
            bail!("not all lines arrived within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    let wire = relay.upstream_bytes() - wire_before;
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|((_, pid, descendants), before)| cpu_seconds(*pid, *descendants) - before)
        .collect();
    let distinct: u64 = stack
        .clickhouse_query(&format!(
            "SELECT uniqExact(cluster_id, pod_uid, container, seq) FROM {{db}}.demo_logs \
             WHERE demo_id IN ({}) AND stream = 'container'",
            demo_ids
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(",")
        ))?
        .trim()
        .parse()?;
    let rate = total as f64 / elapsed.as_secs_f64();

    // The same rows, straight into ClickHouse.
    let stored_sample = stack.clickhouse_query(&format!(
        "SELECT * FROM {{db}}.demo_logs WHERE demo_id = '{}' AND stream = 'container' LIMIT 1 FORMAT TabSeparated",
        demo_ids[0]
    ))?;
    let template: Vec<&str> = stored_sample.trim_end().split('\t').collect();
    let rows: Vec<String> = (0..total)
        .map(|n| {
            let mut row: Vec<String> = template.iter().map(|s| (*s).to_owned()).collect();
            // Columns: date, ts_nanos, demo_id, cluster_id, region, namespace, pod, container, level, message,
            // pod_uid, seq.
            row[1] = (1_700_000_000_000_000_000 + n as i64).to_string();
            row[9] =
                line((n % args.pods as u64) as usize, n / args.pods as u64).replace('\\', "\\\\");
            row[11] = n.to_string();
            row.join("\t") + "\n"
        })
        .collect();
    let raw_bulk = raw_insert_rate(&stack, "raw_bulk", &rows, rows.len()).await?;
    let raw_batched = raw_insert_rate(&stack, "raw_5000", &rows, 5_000).await?;
    let raw_as_pipeline =
        raw_insert_rate(&stack, "raw_as_pipeline", &rows, PIPELINE_INSERT_ROWS).await?;

    println!(
        "cluster {}: {} pods, {total} lines of ~{} bytes",
        cluster.cluster_id,
        args.pods,
        line(0, 0).len()
    );
    println!(
        "written to the container logs in {:.1} s; all in ClickHouse after {:.1} s: {rate:.0} lines/s; {distinct} distinct lines",
        written.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "raw ClickHouse insert of the same rows (TSV over HTTP): one insert {raw_bulk:.0} rows/s; 5,000-row inserts {raw_batched:.0} rows/s; {PIPELINE_INSERT_ROWS}-row inserts {raw_as_pipeline:.0} rows/s"
    );
    println!(
        "pipeline / raw: {:.1} % of one bulk insert, {:.1} % of 5,000-row inserts, {:.1} % of {PIPELINE_INSERT_ROWS}-row inserts",
        100.0 * rate / raw_bulk,
        100.0 * rate / raw_batched,
        100.0 * rate / raw_as_pipeline
    );
    println!(
        "agent -> control plane on the wire (TLS, zstd): {:.1} bytes per line ({wire} bytes)",
        wire as f64 / total as f64
    );
    println!(
        "agent memory: peak RSS {:.1} MiB during the run, {:.1} MiB after",
        memory_kib(agent.pid(), Memory::Peak) as f64 / 1024.0,
        memory_kib(agent.pid(), Memory::Resident) as f64 / 1024.0
    );
    let per_10k = |seconds: f64| seconds / elapsed.as_secs_f64() / (rate / 10_000.0);
    for ((name, _, _), seconds) in pids.iter().zip(&cpu) {
        println!(
            "CPU {name}: {seconds:.1} s, {:.2} cores at that rate, {:.3} cores per 10k lines/s",
            seconds / elapsed.as_secs_f64(),
            per_10k(*seconds)
        );
    }
    if distinct != total {
        bail!("{distinct} distinct lines stored, {total} written");
    }
    Ok(())
}
