//! Benchmark: many simulated agents (one mTLS stream each, all in this process) connected to one or several
//! control-plane replicas. Measures task-created -> agent-received -> result-recorded latency, throughput against
//! the same PostgreSQL's batched SQL ceiling (pgbench, same run), the control plane's memory per agent, and
//! optionally a replica killed under load or a reconnect storm. See docs/benchmarks.md for the method.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{Heartbeat, TaskAccepted, TaskResult};
use anyhow::Context;
use clap::Parser;
use e2e::api::field;
use e2e::procfs::{Memory, cpu_seconds, memory_kib};
use e2e::raw_agent::{self, Credentials, RawSession, open_session};
use e2e::{Api, PeerControlPlane, Stack, StackOptions};
use futures::stream::{self, StreamExt};
use node_agent::config::BackoffSettings;
use node_agent::session::Backoff;
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Connect N simulated agents to control-plane replicas and measure task delivery, memory and recovery"
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
    /// Tasks per submission: 1 posts each to `/clusters/{id}/tasks`, more post batches to `/tasks/batch`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Control-plane replicas on the one database; agents reach them through a least-connections TCP balancer.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Kill (SIGKILL) the last replica once half the tasks are recorded; needs two replicas or more.
    #[arg(long)]
    kill_one: bool,
    /// After the tasks, restart the first replica (SIGTERM, start again) and measure how long every agent
    /// takes to be back and the API's latency meanwhile.
    #[arg(long)]
    storm: bool,
    /// After the tasks, call the API's list endpoints at this many requests a second (open loop) for
    /// `--api-seconds`, with every agent connected; 0 skips it.
    #[arg(long, default_value_t = 0)]
    api_rate: u32,
    #[arg(long, default_value_t = 30)]
    api_seconds: u64,
    /// Hold a `REPEATABLE READ` transaction open from before the first submission until every task has
    /// finished: its snapshot pins PostgreSQL's xmin, so no dead row version can be vacuumed meanwhile.
    #[arg(long)]
    hold_snapshot: bool,
    /// Seconds between progress lines during the tasks (tasks recorded, rate, the `tasks` table's dead rows
    /// and size).
    #[arg(long, default_value_t = 60)]
    progress_seconds: u64,
    /// Seconds each pgbench floor runs; 0 skips the floors.
    #[arg(long, default_value_t = 5)]
    floor_seconds: u64,
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

impl Timings {
    fn recorded(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| t.created.is_some() && t.recorded.is_some())
            .count()
    }
}

type Shared = Arc<Mutex<Timings>>;

/// Streams open now (Welcome received, not yet broken), how many were opened again after a break, and how many
/// attempts to open one again failed.
#[derive(Default)]
struct Fleet {
    connected: AtomicUsize,
    reconnects: AtomicUsize,
    failed_reconnects: AtomicUsize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Raises this process's open-file limit to its hard limit (10,000 agents need more than the usual 1,024
/// soft limit); processes it starts inherit it. Returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.replicas >= 1, "--replicas must be at least 1");
    anyhow::ensure!(
        !args.kill_one || args.replicas >= 2,
        "--kill-one needs --replicas 2 or more"
    );
    let open_files = raise_open_file_limit();
    eprintln!("open-file limit {open_files}");
    let mut stack = Stack::start(StackOptions {
        lease_seconds: 30,
        heartbeat_seconds: 10,
        poll_interval_ms: 2000,
        // The simulated agents speak the protocol only; no cluster is needed.
        cluster: false,
        agent_relay: args.replicas > 1,
        ..StackOptions::default()
    })
    .await?;
    let mut peers: Vec<PeerControlPlane> = Vec::new();
    for n in 2..=args.replicas {
        let peer = stack
            .start_peer_control_plane(&format!("control-plane-{n}"))
            .await?;
        if let Some(relay) = &stack.agent_relay {
            relay.add_target(peer.agent_addr);
        }
        peers.push(peer);
    }
    let mut pids = vec![stack.control_plane.pid()];
    pids.extend(peers.iter().map(|peer| peer.process.pid()));
    let rss_idle: Vec<u64> = pids
        .iter()
        .map(|pid| memory_kib(*pid, Memory::Resident))
        .collect();

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
    let fleet = Arc::new(Fleet::default());
    let endpoint = stack.agent_endpoint.clone();
    let clusters: Vec<String> = stream::iter(0..args.agents)
        .map(|i| {
            let api = stack.api.clone();
            let region_id = region_id.clone();
            let endpoint = endpoint.clone();
            let timings = timings.clone();
            let fleet = fleet.clone();
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
                let token = field(&bundle, "token")?;
                // Through the balancer a connection is sometimes refused while a replica is busy; an agent
                // would retry, and so does the setup (a token is spent only by a Bootstrap that got through).
                let creds = retry(|| raw_agent::bootstrap(&endpoint, &ca, &token)).await?;
                let session = retry(|| connect(&endpoint, &ca, &creds)).await?;
                tokio::spawn(keep_connected(endpoint, ca, creds, session, timings, fleet));
                Ok::<_, anyhow::Error>(cluster_id)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let rss_connected: Vec<u64> = pids
        .iter()
        .map(|pid| memory_kib(*pid, Memory::Resident))
        .collect();
    eprintln!("{} agents connected in {connect_secs:.1} s", clusters.len());
    if let Some(relay) = &stack.agent_relay {
        eprintln!("streams per replica: {:?}", relay.connections_per_target());
    }

    let commits = || -> anyhow::Result<f64> {
        Ok(stack
            .postgres_query(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            )?
            .trim()
            .parse()?)
    };
    let postgres_pid = stack.postgres.pid();
    // The control-plane replicas first, then PostgreSQL, then this process.
    let cpu = |pids: &[u32]| -> Vec<f64> {
        let mut used: Vec<f64> = pids.iter().map(|pid| cpu_seconds(*pid, false)).collect();
        used.push(cpu_seconds(postgres_pid, true));
        used.push(cpu_seconds(std::process::id(), false));
        used
    };
    // Where PostgreSQL's time goes during the task phase, by statement (when the server has the module).
    let statements = stack
        .postgres_query(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
        )
        .is_ok();
    let held = if args.hold_snapshot {
        let held = stack.postgres.hold_snapshot(&stack.database_url)?;
        eprintln!("holding a REPEATABLE READ snapshot open until every task has finished");
        Some(held)
    } else {
        None
    };
    println!("the tasks table before: {}", task_table(&stack)?);
    let commits_before = commits()?;
    let cpu_before = cpu(&pids);
    let run_started = Instant::now();
    let progress = tokio::spawn(progress(
        stack.postgres,
        stack.database_url.clone(),
        timings.clone(),
        Duration::from_secs(args.progress_seconds.max(1)),
    ));
    let submitting = tokio::spawn(submit_all(
        stack.api.clone(),
        clusters.clone(),
        args.tasks,
        args.batch.max(1),
        args.submit_concurrency,
        timings.clone(),
    ));
    let mut killed = None;
    if args.kill_one {
        wait_for(&format!("{} tasks recorded", args.tasks / 2), || {
            timings.lock().unwrap().recorded() >= args.tasks / 2
        })
        .await?;
        let victim = peers.last_mut().expect("--kill-one has a peer");
        // Back means: as many new streams as the victim held, and every agent connected again.
        let victim_streams = stack
            .agent_relay
            .as_ref()
            .and_then(|relay| relay.connections_per_target().last().map(|(_, n)| *n))
            .context("--kill-one runs behind the balancer")?;
        let reconnects_before = fleet.reconnects.load(Ordering::SeqCst);
        victim.process.kill_9()?;
        let at = Instant::now();
        eprintln!(
            "killed the last replica (pid {}, {victim_streams} streams)",
            victim.process.pid()
        );
        wait_for("every agent back", || {
            fleet.reconnects.load(Ordering::SeqCst) - reconnects_before >= victim_streams
                && fleet.connected.load(Ordering::SeqCst) >= args.agents
        })
        .await?;
        killed = Some((at, at.elapsed()));
    }
    submitting.await??;
    // A result committed just before its replica was killed never had its ResultAck sent, and a simulated
    // agent does not resend results as the real one does: PostgreSQL says when every task has finished.
    let finished = || -> anyhow::Result<usize> {
        Ok(stack
            .postgres_query(
                "SELECT count(*) FROM tasks WHERE state IN ('succeeded', 'failed', 'cancelled')",
            )?
            .trim()
            .parse()?)
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while timings.lock().unwrap().recorded() < args.tasks && finished()? < args.tasks {
        anyhow::ensure!(
            Instant::now() < deadline,
            "all {} tasks finished: not within 600 s",
            args.tasks
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unacknowledged = args.tasks - timings.lock().unwrap().recorded().min(args.tasks);
    let run_secs = run_started.elapsed().as_secs_f64();
    progress.abort();
    let tasks_table_after = task_table(&stack)?;
    if held.is_some() {
        println!("the snapshot was held for {run_secs:.0} s, over the whole task phase");
    }
    drop(held);
    let cpu_after = cpu(&pids);
    let commits_per_task = (commits()? - commits_before) / args.tasks as f64;
    let statement_profile = if statements {
        stack.postgres_query(&format!(
            "SELECT round(total_exec_time::numeric / {tasks}, 3) || ' ms/task, ' || calls || ' calls, '
                    || round(mean_exec_time::numeric, 3) || ' ms each: '
                    || regexp_replace(left(query, 110), '\\s+', ' ', 'g')
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 12",
            tasks = args.tasks
        ))?
    } else {
        String::new()
    };
    let rss_peak: Vec<u64> = pids
        .iter()
        .map(|pid| memory_kib(*pid, Memory::Peak))
        .collect();
    let states = stack.postgres_query(
        "SELECT state || ':' || count(*) || ':' || sum(attempts) FROM tasks GROUP BY state ORDER BY state",
    )?;

    let (mut received, mut recorded) = (Vec::new(), Vec::new());
    for times in timings.lock().unwrap().tasks.values() {
        let (Some(created), Some(got), Some(acked)) =
            (times.created, times.received, times.recorded)
        else {
            continue;
        };
        let ms = |later: SystemTime| {
            later
                .duration_since(created)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0
        };
        received.push(ms(got));
        recorded.push(ms(acked));
    }
    received.sort_by(f64::total_cmp);
    recorded.sort_by(f64::total_cmp);
    let tasks_per_second = args.tasks as f64 / run_secs;
    let mib = |kib: &[u64]| {
        kib.iter()
            .map(|k| format!("{:.0}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join("+")
    };
    let per_agent_kib = (rss_connected.iter().sum::<u64>() as f64
        - rss_idle.iter().sum::<u64>() as f64)
        / args.agents as f64;
    println!(
        "| agents | replicas | tasks | connect all (s) | created->received p50 / p99 (ms) | created->recorded p50 / p99 (ms) | tasks/s | CP RSS idle / connected / peak (MiB) | KiB per agent |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {} / {} / {} | {:.0} |",
        args.agents,
        args.replicas,
        received.len(),
        connect_secs,
        percentile(&received, 50.0),
        percentile(&received, 99.0),
        percentile(&recorded, 50.0),
        percentile(&recorded, 99.0),
        tasks_per_second,
        mib(&rss_idle),
        mib(&rss_connected),
        mib(&rss_peak),
        per_agent_kib,
    );
    if !statement_profile.is_empty() {
        println!(
            "PostgreSQL execution time by statement during the tasks (pg_stat_statements, top 12):"
        );
        for line in statement_profile.lines() {
            println!("  {line}");
        }
    }
    println!("the tasks table after: {tasks_table_after}");
    if unacknowledged > 0 {
        println!(
            "results recorded whose acknowledgement never reached the agent (lost with the killed replica; left out of the latencies): {unacknowledged}"
        );
    }
    println!(
        "task states (state:count:attempts): {}",
        states.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    // A killed replica's CPU is gone with it: only processes alive at the end are counted.
    let cores = |range: std::ops::Range<usize>| -> f64 {
        range
            .filter(|i| cpu_after[*i] > 0.0)
            .map(|i| cpu_after[i] - cpu_before[i])
            .sum::<f64>()
            / run_secs
    };
    let replicas = pids.len();
    println!(
        "CPU during the tasks (cores of 2): control plane {:.2}, PostgreSQL {:.2}, agent-swarm (agents, API client, \
         balancer) {:.2}; PostgreSQL commits per task {commits_per_task:.1} (heartbeats included)",
        cores(0..replicas),
        cores(replicas..replicas + 1),
        cores(replicas + 1..replicas + 2)
    );
    println!(
        "streams opened again after a break: {}",
        fleet.reconnects.load(Ordering::SeqCst)
    );
    if let Some((_, back)) = killed {
        println!("replica killed: every agent back {back:.1?} after the kill");
    }

    if args.api_rate > 0 {
        api_load(&stack, args.api_rate, args.api_seconds, statements).await?;
    }
    if args.storm {
        storm(&mut stack, &fleet, args.agents).await?;
    }
    if args.floor_seconds > 0 {
        floors(&stack, args.floor_seconds, tasks_per_second)?;
    }
    Ok(())
}

/// Rows, size and HOT share of updates of the `tasks` table, and rows and size of `task_queue` (the open tasks
/// every lease, expiry and patrol reads).
fn task_table_sql() -> &'static str {
    "SELECT t.n_live_tup || ' live rows, ' || t.n_dead_tup || ' dead; table ' || pg_size_pretty(pg_table_size('tasks'))
            || ', ' || t.n_tup_hot_upd || ' of ' || t.n_tup_upd || ' updates HOT; task_queue '
            || q.n_live_tup || ' live rows, ' || q.n_dead_tup || ' dead, '
            || pg_size_pretty(pg_total_relation_size('task_queue')) || ' with its indexes'
     FROM pg_stat_user_tables t, pg_stat_user_tables q WHERE t.relname = 'tasks' AND q.relname = 'task_queue'"
}

fn task_table(stack: &Stack) -> anyhow::Result<String> {
    Ok(stack.postgres_query(task_table_sql())?.trim().to_string())
}

/// Prints, every `every`, the tasks recorded so far, the rate since the last line and the `tasks` table's state.
async fn progress(
    postgres: &'static harness::Postgres,
    database_url: String,
    timings: Shared,
    every: Duration,
) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut recorded_before = 0;
    loop {
        ticks.tick().await;
        let recorded = timings.lock().unwrap().recorded();
        let url = database_url.clone();
        // psql blocks; keep it off the runtime's threads, which carry the simulated agents.
        let table =
            match tokio::task::spawn_blocking(move || postgres.query(&url, task_table_sql())).await
            {
                Ok(Ok(rows)) => rows.trim().to_string(),
                Ok(Err(error)) => format!("({error:#})"),
                Err(error) => format!("({error})"),
            };
        eprintln!(
            "{:>5.0} s: {recorded} tasks recorded, {:.0}/s in the last {:?}; tasks table: {table}",
            started.elapsed().as_secs_f64(),
            (recorded - recorded_before) as f64 / every.as_secs_f64(),
            every,
        );
        recorded_before = recorded;
    }
}

/// Up to five attempts, apart by the agent's own backoff (full jitter, from 1 s doubling), so that agents
/// refused at once do not all come back at once.
async fn retry<T, E, F>(attempt: impl Fn() -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let mut backoff = Backoff::new(BackoffSettings {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
    });
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tries >= 4 => return Err(error.into()),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn wait_for(what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within 600 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn submit_all(
    api: Api,
    clusters: Vec<String>,
    tasks: usize,
    batch: usize,
    concurrency: usize,
    timings: Shared,
) -> anyhow::Result<()> {
    let manifest =
        |i: usize| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{i}\n");
    let batches: Vec<Vec<usize>> = (0..tasks)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(<[usize]>::to_vec)
        .collect();
    let submitted: Vec<anyhow::Result<()>> = stream::iter(batches)
        .map(|numbers| {
            let api = api.clone();
            let timings = timings.clone();
            let cluster_of = |i: usize| clusters[i % clusters.len()].clone();
            let single = numbers.len() == 1 && batch == 1;
            let request = if single {
                let i = numbers[0];
                (
                    format!("/clusters/{}/tasks", cluster_of(i)),
                    json!({"kind": "apply", "manifest": manifest(i)}),
                )
            } else {
                let entries: Vec<serde_json::Value> = numbers
                    .iter()
                    .map(|&i| {
                        json!({"cluster_id": cluster_of(i), "task": {"kind": "apply", "manifest": manifest(i)}})
                    })
                    .collect();
                ("/tasks/batch".to_string(), json!({ "tasks": entries }))
            };
            async move {
                let answer = api.post(&request.0, &request.1).await?;
                let created: Vec<serde_json::Value> = if single {
                    vec![answer]
                } else {
                    answer["tasks"]
                        .as_array()
                        .context("a batch answer lists its tasks")?
                        .iter()
                        .map(|outcome| outcome["task"].clone())
                        .collect()
                };
                let mut timings = timings.lock().unwrap();
                for task in created {
                    let at = chrono::DateTime::parse_from_rfc3339(&field(&task, "created_at")?)?;
                    let at = SystemTime::UNIX_EPOCH
                        + Duration::from_nanos(at.timestamp_nanos_opt().unwrap_or(0) as u64);
                    timings.tasks.entry(field(&task, "id")?).or_default().created = Some(at);
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    submitted.into_iter().collect()
}

/// Opens a stream and waits for its Welcome.
async fn connect(endpoint: &str, ca: &str, creds: &Credentials) -> anyhow::Result<RawSession> {
    let channel = raw_agent::channel(endpoint, ca, Some((&creds.cert_pem, &creds.key_pem))).await?;
    let mut session = open_session(channel, 8).await?;
    match session.next(Duration::from_secs(60)).await??.msg {
        Some(Down::Welcome(_)) => Ok(session),
        other => anyhow::bail!("expected Welcome, got {other:?}"),
    }
}

/// Serves `session`, and after it breaks reconnects as the agent does (full-jitter backoff, 0.5 s doubling to
/// 30 s, reset after a stream that lasted 10 s).
async fn keep_connected(
    endpoint: String,
    ca: String,
    creds: Credentials,
    first: RawSession,
    timings: Shared,
    fleet: Arc<Fleet>,
) {
    let mut backoff = Backoff::new(BackoffSettings {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(30),
    });
    let mut session = Some(first);
    loop {
        if let Some(open) = session.take() {
            fleet.connected.fetch_add(1, Ordering::SeqCst);
            let opened = Instant::now();
            let _ended = simulate_agent(open, &timings).await;
            fleet.connected.fetch_sub(1, Ordering::SeqCst);
            if opened.elapsed() >= Duration::from_secs(10) {
                backoff.reset();
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
        match connect(&endpoint, &ca, &creds).await {
            Ok(open) => {
                fleet.reconnects.fetch_add(1, Ordering::SeqCst);
                session = Some(open);
            }
            Err(_) => {
                fleet.failed_reconnects.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Sends a heartbeat every 10 s (the stack's interval), accepts every assignment and reports success at once;
/// records when the task arrived and when the control plane acknowledged the result (it acknowledges only
/// after recording it in PostgreSQL). Returns when the stream breaks.
async fn simulate_agent(mut session: RawSession, timings: &Shared) -> anyhow::Result<()> {
    let beats = session.tx.clone();
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let beat = Up::Heartbeat(Heartbeat {
                agent_version: "agent-swarm".into(),
                kubernetes_reachable: true,
                ..Default::default()
            });
            if beats
                .send(agent_protocol::AgentMessage { msg: Some(beat) })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let outcome = serve(&mut session, timings).await;
    heartbeat.abort();
    outcome
}

async fn serve(session: &mut RawSession, timings: &Shared) -> anyhow::Result<()> {
    loop {
        let message = session.next(Duration::from_secs(3600)).await??;
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

/// Calls the list endpoints at `rate` requests a second for `seconds`, open loop: each request starts at its
/// scheduled time whether or not earlier ones have answered, so slow answers cannot hold the load back and hide
/// themselves. Reports latency per endpoint and, as the same run's reference, what PostgreSQL spent per
/// statement meanwhile.
async fn api_load(stack: &Stack, rate: u32, seconds: u64, statements: bool) -> anyhow::Result<()> {
    const PATHS: [&str; 4] = [
        "/clusters?limit=50",
        "/tasks?limit=50",
        "/regions",
        "/demos",
    ];
    if statements {
        stack.postgres_query("SELECT pg_stat_statements_reset()")?;
    }
    let total = u64::from(rate) * seconds;
    let mut schedule = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..total {
        schedule.tick().await;
        let api = stack.api.clone();
        let path = PATHS[n as usize % PATHS.len()];
        calls.spawn(async move {
            let asked = Instant::now();
            let answered = match api.call(reqwest::Method::GET, path, None).await {
                Ok((status, _)) if status.is_success() => Ok(()),
                Ok((status, body)) => Err(format!("{status} {}", body["error"]["code"])),
                Err(error) => Err(format!("no answer: {}", error.root_cause())),
            };
            (path, asked.elapsed().as_secs_f64() * 1000.0, answered)
        });
    }
    let sent_in = started.elapsed();
    let mut latencies: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    while let Some(call) = calls.join_next().await {
        let (path, ms, answered) = call?;
        match answered {
            Ok(()) => latencies.entry(path).or_default().push(ms),
            Err(error) => *errors.entry(error).or_default() += 1,
        }
    }
    println!(
        "API lists, open loop: {total} requests at {rate}/s scheduled, sent in {sent_in:.1?} ({:.0}/s), errors: {errors:?}",
        total as f64 / sent_in.as_secs_f64()
    );
    let mut all = Vec::new();
    for path in PATHS {
        let mut ms = latencies.remove(path).unwrap_or_default();
        ms.sort_by(f64::total_cmp);
        println!(
            "  GET {path}: {} answers, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms.len(),
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            ms.last().copied().unwrap_or(f64::NAN)
        );
        all.extend(ms);
    }
    all.sort_by(f64::total_cmp);
    println!(
        "  all: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        all.last().copied().unwrap_or(f64::NAN)
    );
    if statements {
        let profile = stack.postgres_query(
            "SELECT calls || ' calls, ' || round(mean_exec_time::numeric, 3) || ' ms each, max '
                    || round(max_exec_time::numeric, 3) || ' ms: ' || regexp_replace(left(query, 110), '\\s+', ' ', 'g')
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 8",
        )?;
        println!("  PostgreSQL meanwhile (pg_stat_statements, top 8 by total time):");
        for line in profile.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Restarts the first replica with every agent connected and measures when they are all back, probing the
/// API (`GET /clusters`) every 20 ms from the moment it answers again until then.
async fn storm(stack: &mut Stack, fleet: &Arc<Fleet>, agents: usize) -> anyhow::Result<()> {
    // The probe runs on a thread and runtime of its own: on this process's runtime its requests waited behind the
    // simulated agents' reconnect work, which is the benchmark's own latency, not the API's.
    let api = stack.api.with_own_connections();
    let started = Instant::now();
    stack.restart_control_plane().await?;
    let restarted = started.elapsed();
    let failed_before = fleet.failed_reconnects.load(Ordering::SeqCst);
    let probe = {
        let fleet = fleet.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(probe_until_all_back(
                    api,
                    &fleet,
                    agents,
                    started,
                    failed_before,
                ))
        })
    };
    let StormProbe {
        mut latencies,
        errors,
        api_back,
        timeline,
    } = tokio::task::spawn_blocking(move || probe.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the API probe's thread panicked"))??;
    let all_back = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    println!(
        "reconnect storm: replica restarted (SIGTERM, start) in {restarted:.1?}, API answering {:.1?} after the \
         stop began; all {agents} agents back {all_back:.1?} after it; API meanwhile: {} answers, p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms, {errors} errors",
        api_back.unwrap_or_default(),
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "  agents back over time: {}; {} failed attempts in all",
        timeline.join("; "),
        fleet.failed_reconnects.load(Ordering::SeqCst) - failed_before
    );
    Ok(())
}

struct StormProbe {
    latencies: Vec<f64>,
    errors: usize,
    api_back: Option<Duration>,
    timeline: Vec<String>,
}

async fn probe_until_all_back(
    api: Api,
    fleet: &Fleet,
    agents: usize,
    started: Instant,
    failed_before: usize,
) -> anyhow::Result<StormProbe> {
    let mut probe = StormProbe {
        latencies: Vec::new(),
        errors: 0,
        api_back: None,
        timeline: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut next_point = Duration::ZERO;
    while fleet.connected.load(Ordering::SeqCst) < agents {
        if started.elapsed() >= next_point {
            probe.timeline.push(format!(
                "{:.0} s: {} back, {} failed attempts",
                started.elapsed().as_secs_f64(),
                fleet.connected.load(Ordering::SeqCst),
                fleet.failed_reconnects.load(Ordering::SeqCst) - failed_before
            ));
            next_point += Duration::from_secs(5);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {agents} agents back after 600 s",
            fleet.connected.load(Ordering::SeqCst)
        );
        let asked = Instant::now();
        match api
            .call(reqwest::Method::GET, "/clusters?limit=50", None)
            .await
        {
            Ok((status, _)) if status.is_success() => {
                probe.api_back.get_or_insert(started.elapsed());
                probe.latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
            }
            _ if probe.api_back.is_some() => probe.errors += 1,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(probe)
}

/// The same PostgreSQL's rates for the queue's statements, measured with pgbench on a scratch table shaped like
/// `tasks`: enqueue, claim (`FOR UPDATE SKIP LOCKED`) and complete, one task per statement and 100 per
/// statement, 8 clients each. Rates count the rows that changed state, not transactions, so a claim that found
/// nothing left counts nothing. The batched ceiling of a whole task is the three batched steps one after another.
fn floors(stack: &Stack, seconds: u64, measured: f64) -> anyhow::Result<()> {
    let dir = stack.dir.join("floors");
    std::fs::create_dir_all(&dir)?;
    stack.postgres_query(
        "DROP TABLE IF EXISTS floor_tasks; \
         CREATE TABLE floor_tasks (id uuid PRIMARY KEY, cluster_id uuid NOT NULL, state text NOT NULL, \
           payload jsonb NOT NULL, lease_id uuid, created_at timestamptz NOT NULL DEFAULT now()); \
         CREATE INDEX floor_tasks_pending ON floor_tasks (created_at) WHERE state = 'pending'; \
         CREATE INDEX floor_tasks_leased ON floor_tasks (created_at) WHERE state = 'leased';",
    )?;
    let enqueue = |n: u32| {
        format!(
            "INSERT INTO floor_tasks (id, cluster_id, state, payload) SELECT gen_random_uuid(), \
             gen_random_uuid(), 'pending', '{{\"kind\":\"apply\"}}' FROM generate_series(1, {n});\n"
        )
    };
    let step = |from: &str, to: &str, n: u32| {
        format!(
            "UPDATE floor_tasks SET state = '{to}', lease_id = gen_random_uuid() WHERE id IN (SELECT id FROM \
             floor_tasks WHERE state = '{from}' ORDER BY created_at LIMIT {n} FOR UPDATE SKIP LOCKED);\n"
        )
    };
    let count = |state: &str| -> anyhow::Result<f64> {
        let rows = stack.postgres_query(&format!(
            "SELECT count(*) FROM floor_tasks WHERE state = '{state}'"
        ))?;
        Ok(rows.trim().parse()?)
    };
    let mut rates = Vec::new();
    for (name, script, grows) in [
        ("enqueue 1", enqueue(1), "pending"),
        ("enqueue 100", enqueue(100), "pending"),
        ("claim 1", step("pending", "leased", 1), "leased"),
        ("claim 100", step("pending", "leased", 100), "leased"),
        ("complete 1", step("leased", "succeeded", 1), "succeeded"),
        (
            "complete 100",
            step("leased", "succeeded", 100),
            "succeeded",
        ),
    ] {
        if name.starts_with("claim") {
            // Enough pending rows that a claim never runs dry: a million more than the enqueues left.
            stack.postgres_query(&enqueue(1_000_000).replace(";\n", ";"))?;
        }
        let before = count(grows)?;
        let run = pgbench(&dir, &stack.database_url, name, &script, seconds)?;
        let rows = count(grows)? - before;
        rates.push((name, rows / run.as_secs_f64()));
    }
    let rate = |name: &str| rates.iter().find(|(n, _)| *n == name).map_or(0.0, |r| r.1);
    let batched =
        1.0 / (1.0 / rate("enqueue 100") + 1.0 / rate("claim 100") + 1.0 / rate("complete 100"));
    let single = 1.0 / (1.0 / rate("enqueue 1") + 1.0 / rate("claim 1") + 1.0 / rate("complete 1"));
    println!(
        "same-run floors (pgbench, 8 clients, {seconds} s each, rows/s): {}",
        rates
            .iter()
            .map(|(name, r)| format!("{name} {r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "whole task, one per statement: {single:.0}/s; batched 100: {batched:.0}/s; measured {measured:.0}/s = \
         {:.1} % of the batched ceiling, {:.1} % of the single-row one",
        100.0 * measured / batched,
        100.0 * measured / single
    );
    stack.postgres_query("DROP TABLE floor_tasks")?;
    Ok(())
}

/// Runs one pgbench script and returns how long it ran (its transactions over its rate).
fn pgbench(
    dir: &Path,
    url: &str,
    name: &str,
    script: &str,
    seconds: u64,
) -> anyhow::Result<Duration> {
    let file = dir.join(format!("{}.sql", name.replace(' ', "-")));
    std::fs::write(&file, script)?;
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-c", "8", "-j", "2", "-T", &seconds.to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()
        .context("run pgbench (from the PostgreSQL client package)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |prefix: &str| -> Option<f64> {
        stdout.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    let transactions = number("number of transactions actually processed: ");
    let tps = number("tps = ");
    match (transactions, tps) {
        (Some(transactions), Some(tps)) if tps > 0.0 => {
            Ok(Duration::from_secs_f64(transactions / tps))
        }
        _ => anyhow::bail!("no rate in pgbench's output for {name}: {stdout}"),
    }
}
