//! Pod logs under load and through outages: a demo container writes a steady stream of numbered lines (5,000 a
//! second) while
//! - ClickHouse is cut off from the control plane for a minute and the agent is killed with `kill -9` and started
//!   again;
//! - the agent is cut off from the control plane for ten minutes;
//! - the agent is cut off with a small buffer that drops its oldest lines when full.
//!
//! Afterwards ClickHouse holds every line exactly once in query results (by count, by content and by
//! per-container sequence number), and the agent's disk buffer never grew past its limit. The two tests take the
//! machine's two cores each, so they run one after the other.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::api::field;
use e2e::load::{LogLoad, log_message};
use e2e::stack::AgentState;
use e2e::{Stack, StackOptions, env_or, write_container_log};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
/// Held by each test for its whole run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The agent's pod log buffer limit in this test: far less than a minute of the stream, so `block` engages.
const BUFFER_LIMIT: u64 = 8 * 1024 * 1024;

async fn deploy_demo(stack: &Stack, name: &str) -> (String, String) {
    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": name, "template": "static-web", "region": "auto"}),
        )
        .await
        .unwrap();
    let id = field(&demo, "id").unwrap();
    harness::wait_until(
        "the demo online",
        WAIT,
        Duration::from_millis(200),
        || async {
            let demo = stack.api.get(&format!("/demos/{id}")).await.unwrap();
            assert!(demo["error"].is_null(), "{demo}");
            demo["status"] == "online"
        },
    )
    .await
    .unwrap();
    let pod = stack.first_pod(&format!("demo-{name}")).unwrap();
    (id, pod)
}

/// Bytes of the buffer's segment files.
fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A demo container printing a steady stream of lines ([`LogLoad`]), and a sampler of the agent's pod log
/// buffer size on disk, both until `finish`.
struct Load {
    lines: LogLoad,
    cluster_id: String,
    stop: tokio::sync::watch::Sender<bool>,
    largest_buffer: tokio::task::JoinHandle<u64>,
}

impl Load {
    fn start(
        stack: &Stack,
        cluster_id: &str,
        namespace: &str,
        pod: &str,
        rate: u64,
        buffer_dir: PathBuf,
    ) -> Self {
        let lines = LogLoad::start(stack, namespace, pod, "demo", rate).unwrap();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let largest_buffer = tokio::spawn(async move {
            let mut largest = 0;
            while !*stopped.borrow_and_update() {
                largest = largest.max(segment_bytes(&buffer_dir));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            largest
        });
        Self {
            lines,
            cluster_id: cluster_id.to_owned(),
            stop,
            largest_buffer,
        }
    }

    /// Distinct lines stored so far.
    fn stored(&self, stack: &Stack) -> u64 {
        self.lines
            .source()
            .stored(stack, &self.cluster_id)
            .unwrap()
            .distinct
    }

    /// Stops writing, waits until every line is in ClickHouse, checks the load's invariants (each line once,
    /// sequence numbers without a hole) and that the buffer stayed within its limit. Returns how many lines
    /// were written.
    async fn finish(self, stack: &Stack) -> u64 {
        let report = self
            .lines
            .finish(stack, &[&self.cluster_id], Duration::from_secs(900))
            .await
            .unwrap();
        self.stop.send_replace(true);
        let largest = self.largest_buffer.await.unwrap();
        eprintln!(
            "{} lines written; {} rows stored ({} resent copies); drained {:?} after the writer stopped; \
             largest buffer {largest} bytes",
            report.written,
            report.rows,
            report.rows - report.written,
            report.drained
        );
        assert!(
            largest <= BUFFER_LIMIT,
            "the buffer stayed within its limit: {largest} > {BUFFER_LIMIT}"
        );
        report.written
    }
}

/// Templates for the demo, and agents whose pod log buffer is limited to [`BUFFER_LIMIT`] and blocks when full.
fn loaded_stack() -> StackOptions {
    StackOptions {
        agent_env: vec![
            (
                "EDGEFLEET_LOG_BUFFER_MAX_BYTES".into(),
                BUFFER_LIMIT.to_string(),
            ),
            ("EDGEFLEET_LOG_BUFFER_WHEN_FULL".into(), "block".into()),
        ],
        ..StackOptions::default().with_templates()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_arrives_once_through_a_clickhouse_outage_and_an_agent_kill() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // The figures by default; smaller ones for a quick local run.
    let rate: u64 = env_or("LOG_PIPELINE_LINES_PER_SECOND", 5_000);
    let outage = Duration::from_secs(env_or("LOG_PIPELINE_OUTAGE_SECONDS", 60));
    let stack = Stack::start(StackOptions {
        clickhouse_relay: true,
        ..loaded_stack()
    })
    .await
    .unwrap();
    let (cluster, mut agent) = stack.connected_cluster("steady").await.unwrap();
    let (demo_id, pod) = deploy_demo(&stack, "steady").await;
    let state_dir = stack.dir.join("agent-steady");
    let buffer_dir = state_dir.join("log-buffer/pod-logs");
    let relay = stack.clickhouse_relay.as_ref().unwrap();

    let load = Load::start(
        &stack,
        &cluster.cluster_id,
        "demo-steady",
        &pod,
        rate,
        buffer_dir.clone(),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before_outage = load.stored(&stack);
    assert!(before_outage > 0, "lines flow before the outage");
    relay.cut();
    let cut_at = Instant::now();
    // Log storage being away does not disconnect the agent: tasks still run.
    let task = stack
        .run_task(
            &cluster.cluster_id,
            &json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: during-outage\n"}),
        )
        .await
        .unwrap();
    assert_eq!(task["state"], "succeeded", "{task}");
    tokio::time::sleep(outage.saturating_sub(cut_at.elapsed())).await;
    let buffered_during_outage = segment_bytes(&buffer_dir);
    relay.heal();
    eprintln!(
        "outage of {:?}: {before_outage} lines stored before it, {buffered_during_outage} bytes buffered at its end",
        cut_at.elapsed()
    );

    // Mid-stream, the agent dies without warning and comes back on its own state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    agent.kill_9().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _agent = stack
        .start_agent(
            "agent-steady-again",
            &cluster.cluster_id,
            AgentState::Dir(&state_dir),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let source = load.lines.source().clone();
    let written = load.finish(&stack).await;
    assert!(
        buffered_during_outage > 0,
        "the outage filled the buffer: {buffered_during_outage}"
    );

    // Copies as a resent batch whose ack was lost would leave them (every seventh line stored again) change
    // nothing a reader sees.
    stack
        .clickhouse_query(&format!(
            "INSERT INTO {{db}}.demo_logs SELECT * FROM {{db}}.demo_logs WHERE demo_id = '{demo_id}' AND seq % 7 = 0"
        ))
        .unwrap();
    let stored = source.stored(&stack, &cluster.cluster_id).unwrap();
    let (rows, distinct) = (stored.rows, stored.distinct);
    assert!(
        rows > distinct,
        "copies are stored: {rows} rows, {distinct} lines"
    );
    assert_eq!(distinct, written);

    // The API pages through all of them in order, each once.
    let mut cursor: Option<String> = None;
    let mut expected = 0u64;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit=5000&cursor={cursor}"),
            None => "limit=5000".to_owned(),
        };
        let page: Value = stack
            .api
            .get(&format!("/demos/{demo_id}/logs?stream=container&{query}"))
            .await
            .unwrap();
        for line in page["lines"].as_array().unwrap() {
            let message = line["message"].as_str().unwrap();
            assert_eq!(message, log_message(expected), "line {expected} in order");
            expected += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(expected, written);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_arrives_once_after_the_agent_was_cut_off_for_ten_minutes() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let rate: u64 = env_or("LOG_PIPELINE_LINES_PER_SECOND", 5_000);
    let cut_off = Duration::from_secs(env_or("LOG_PIPELINE_PARTITION_SECONDS", 600));
    let stack = Stack::start(StackOptions {
        agent_relay: true,
        ..loaded_stack()
    })
    .await
    .unwrap();
    let (cluster, _agent) = stack.connected_cluster("remote").await.unwrap();
    let (_, pod) = deploy_demo(&stack, "remote").await;
    let buffer_dir = stack.dir.join("agent-remote/log-buffer/pod-logs");
    let relay = stack.agent_relay.as_ref().unwrap();

    let load = Load::start(
        &stack,
        &cluster.cluster_id,
        "demo-remote",
        &pod,
        rate,
        buffer_dir.clone(),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(load.stored(&stack) > 0, "lines flow before the cut");
    relay.cut();
    let cut_at = Instant::now();
    stack
        .wait_agent_disconnected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    // Batches the control plane received before the cut may still be on their way into ClickHouse.
    let last_count = std::cell::Cell::new(u64::MAX);
    harness::wait_until(
        "what was received before the cut to be stored",
        WAIT,
        Duration::from_secs(2),
        || async {
            let count = load.stored(&stack);
            count == last_count.replace(count)
        },
    )
    .await
    .unwrap();
    let stored_while_cut = last_count.get();
    tokio::time::sleep(cut_off.saturating_sub(cut_at.elapsed())).await;
    assert_eq!(
        load.stored(&stack),
        stored_while_cut,
        "nothing arrives through a cut link"
    );
    let buffered = segment_bytes(&buffer_dir);
    relay.heal();
    let healed = Instant::now();
    stack
        .wait_agent_connected(&cluster.cluster_id, Duration::from_secs(120))
        .await
        .unwrap();
    eprintln!(
        "cut off for {:?} with {buffered} bytes buffered; the agent was back {:?} after the link",
        healed - cut_at,
        healed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    load.finish(&stack).await;
    assert!(
        buffered > BUFFER_LIMIT / 2,
        "the cut filled the buffer: {buffered}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_drop_oldest_a_cut_off_agent_keeps_the_newest_lines_and_says_how_many_it_dropped() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const LIMIT: u64 = 512 * 1024;
    const LINES: u64 = 40_000;
    let stack = Stack::start(StackOptions {
        agent_relay: true,
        agent_env: vec![
            ("EDGEFLEET_LOG_BUFFER_MAX_BYTES".into(), LIMIT.to_string()),
            (
                "EDGEFLEET_LOG_BUFFER_WHEN_FULL".into(),
                "drop-oldest".into(),
            ),
        ],
        ..StackOptions::default().with_templates()
    })
    .await
    .unwrap();
    let (cluster, agent) = stack.connected_cluster("lossy").await.unwrap();
    let (demo_id, pod) = deploy_demo(&stack, "lossy").await;
    let relay = stack.agent_relay.as_ref().unwrap();
    relay.cut();
    stack
        .wait_agent_disconnected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    // About 1.8 MB of lines while cut off: several times the buffer.
    let text: String = (0..LINES)
        .map(|n| format!("{}\n", log_message(n)))
        .collect();
    let kube_state = stack.cluster.as_ref().unwrap().state_dir().to_path_buf();
    write_container_log(&kube_state, "demo-lossy", &pod, "demo", &text)
        .await
        .unwrap();
    // Every line was read and written to the buffer (the positions say so) before the link comes back.
    let positions = stack
        .dir
        .join("agent-lossy/log-buffer/pod-log-positions.json");
    harness::wait_until(
        "the agent to have buffered every line",
        WAIT,
        Duration::from_millis(250),
        || async {
            let saved: Value = std::fs::read(&positions)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())?;
            saved
                .as_object()?
                .values()
                .any(|p| p["next_seq"] == LINES)
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert!(
        segment_bytes(&stack.dir.join("agent-lossy/log-buffer/pod-logs")) <= LIMIT,
        "the buffer stays within its limit by dropping"
    );
    relay.heal();
    stack
        .wait_agent_connected(&cluster.cluster_id, Duration::from_secs(120))
        .await
        .unwrap();
    let last = log_message(LINES - 1);
    let lines_of_the_write = || {
        let row = stack
            .clickhouse_query(&format!(
                "SELECT min(message), max(message), uniqExact(message) FROM {{db}}.demo_logs \
                 WHERE demo_id = '{demo_id}' AND stream = 'container' AND message LIKE 'level=info%' FORMAT TSV"
            ))
            .unwrap();
        let fields: Vec<String> = row.trim_end().split('\t').map(str::to_owned).collect();
        (
            fields[0].clone(),
            fields[1].clone(),
            fields[2].parse::<u64>().unwrap(),
        )
    };
    harness::wait_until(
        "the newest line stored",
        WAIT,
        Duration::from_millis(500),
        || async { lines_of_the_write().1 == last },
    )
    .await
    .unwrap();
    // What is left is the newest lines without a gap: the oldest segments went, whole.
    let (first, _, count) = lines_of_the_write();
    let first_kept: u64 = first.rsplit('=').next().unwrap().parse().unwrap();
    assert!(first_kept > 0, "some lines were dropped");
    assert_eq!(
        count,
        LINES - first_kept,
        "a gapless run of the newest lines"
    );
    // The agent said how many it dropped, on its stderr and in its own log, which reaches the console's log search.
    let dropped_total = agent
        .log_text()
        .lines()
        .filter(|line| line.contains("logs_dropped"))
        .filter_map(|line| {
            let total = line.split("lines_total=").nth(1)?;
            total
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("a logs_dropped line on the agent's stderr");
    // Dropped segments may also have held the agent's own lines, so the total is at least the lines missing.
    assert!(
        dropped_total >= first_kept,
        "{dropped_total} dropped, {first_kept} container lines missing"
    );
    harness::wait_until(
        "the logs_dropped line in the agent's own log",
        WAIT,
        Duration::from_millis(500),
        || async {
            let page = stack
                .api
                .get(&format!(
                    "/logs?cluster_id={}&stream=agent&q=logs_dropped&level=warn",
                    cluster.cluster_id
                ))
                .await
                .unwrap();
            !page["lines"].as_array().unwrap().is_empty()
        },
    )
    .await
    .unwrap();
    eprintln!(
        "{LINES} lines written while cut off; kept {count}, the newest; the agent reported {dropped_total} dropped"
    );
}

/// Lines of `/logs` of one stream of the cluster, with a filter such as `&namespace=team-a`.
async fn stream_lines(stack: &Stack, cluster_id: &str, stream: &str, filter: &str) -> Vec<Value> {
    let page: Value = stack
        .api
        .get(&format!(
            "/logs?cluster_id={cluster_id}&stream={stream}{filter}&limit=5000"
        ))
        .await
        .unwrap();
    let lines = page["lines"].as_array().unwrap().clone();
    for line in &lines {
        assert_eq!(line["demo_id"], "", "not a demo's line: {line}");
        assert_eq!(line["stream"], stream, "{line}");
    }
    lines
}

/// Messages of the containers of one namespace of the cluster.
async fn namespace_messages(stack: &Stack, cluster_id: &str, namespace: &str) -> Vec<String> {
    stream_lines(
        stack,
        cluster_id,
        "container",
        &format!("&namespace={namespace}"),
    )
    .await
    .iter()
    .map(|line| line["message"].as_str().unwrap().to_owned())
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_follows_labels_and_the_control_planes_choice_with_events_and_the_agents_own_log()
 {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(StackOptions {
        // JSON lines, so the test can read the fields of the agent's own log.
        agent_env: vec![("EDGEFLEET_LOG_FORMAT".into(), "json".into())],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (cluster, agent) = stack.connected_cluster("teams").await.unwrap();
    let pod = |namespace: &str, name: &str, labels: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{{labels}}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n"
        )
    };
    let objects = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels: {edgefleet.io/logs: enabled}\n".to_owned(),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n".to_owned(),
        pod("team-a", "api", ""),
        pod("team-b", "worker", "edgefleet.io/logs: enabled"),
        pod("team-b", "quiet", "app: quiet"),
    ];
    for object in objects {
        stack
            .kubectl_with_input(&["apply", "--server-side", "-f", "-"], &object)
            .unwrap();
    }
    let kube_state = stack.cluster.as_ref().unwrap().state_dir().to_path_buf();
    let write = |namespace: &'static str, pod: &'static str, text: &'static str| {
        let kube_state = kube_state.clone();
        async move {
            write_container_log(&kube_state, namespace, pod, "app", text)
                .await
                .unwrap()
        }
    };
    write("team-b", "quiet", "q1 not collected\n").await;
    write("team-a", "api", "a1 from an opted-in namespace\n").await;
    write("team-b", "worker", "w1 from an opted-in pod\n").await;
    let cluster_id = cluster.cluster_id.as_str();
    harness::wait_until(
        "lines of both opted-in pods",
        WAIT,
        Duration::from_millis(250),
        || async {
            namespace_messages(&stack, cluster_id, "team-a").await
                == ["a1 from an opted-in namespace"]
                && namespace_messages(&stack, cluster_id, "team-b").await
                    == ["w1 from an opted-in pod"]
        },
    )
    .await
    .unwrap();
    let log = agent.log_text();
    let followed = |pod: &str| {
        log.lines().any(|line| {
            line.contains("following container log") && line.contains(&format!("\"pod\":\"{pod}\""))
        })
    };
    assert!(followed("api") && followed("worker"), "{log}");
    assert!(
        !followed("quiet"),
        "a pod that did not opt in is not followed"
    );

    // The Kubernetes events of the opted-in namespace: the real scheduler's for its pod.
    let events = harness::wait_until(
        "the scheduler's event for team-a/api",
        WAIT,
        Duration::from_millis(250),
        || async {
            let events = stream_lines(&stack, cluster_id, "event", "&namespace=team-a").await;
            events
                .iter()
                .any(|event| {
                    event["pod"] == "Pod/api"
                        && event["message"].as_str().is_some_and(|m| {
                            m.starts_with("Scheduled: Successfully assigned team-a/api")
                        })
                })
                .then_some(events)
        },
    )
    .await
    .unwrap();
    assert!(
        events.iter().all(|event| event["container"] == ""),
        "{events:?}"
    );
    // Nothing of the pod that did not opt in, in a namespace that did not either.
    let team_b_events = stream_lines(&stack, cluster_id, "event", "&namespace=team-b").await;
    assert!(
        team_b_events
            .iter()
            .all(|event| event["pod"] != "Pod/quiet"),
        "{team_b_events:?}"
    );

    // The agent's own log: what it wrote to stderr, less its task log lines, as lines of its own stream.
    let agent_lines = harness::wait_until(
        "the agent's own lines",
        WAIT,
        Duration::from_millis(250),
        || async {
            let lines = stream_lines(&stack, cluster_id, "agent", "").await;
            lines
                .iter()
                .any(|line| {
                    line["message"].as_str().is_some_and(|m| {
                        m.starts_with("following container log") && m.contains("pod=api")
                    })
                })
                .then_some(lines)
        },
    )
    .await
    .unwrap();
    let starting = agent_lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("node agent ") && m.contains(" starting"))
        })
        .unwrap_or_else(|| panic!("no start line among {agent_lines:?}"));
    assert_eq!(starting["level"], "info", "{starting}");
    assert_eq!(starting["container"], "node-agent", "{starting}");

    // The namespace opts out: its pod is no longer followed; the labelled pod still is.
    stack
        .kubectl(&["label", "namespace", "team-a", "edgefleet.io/logs-"])
        .unwrap();
    harness::wait_until(
        "the agent to stop following team-a/api",
        WAIT,
        Duration::from_millis(250),
        || async {
            agent.log_text().lines().any(|line| {
                line.contains("no longer following") && line.contains("\"pod\":\"api\"")
            })
        },
    )
    .await
    .unwrap();
    write("team-a", "api", "a2 after opting out\n").await;
    write("team-b", "worker", "w2 still collected\n").await;
    harness::wait_until(
        "the second line of the opted-in pod",
        WAIT,
        Duration::from_millis(250),
        || async { namespace_messages(&stack, cluster_id, "team-b").await.len() == 2 },
    )
    .await
    .unwrap();
    assert_eq!(
        namespace_messages(&stack, cluster_id, "team-a").await,
        ["a1 from an opted-in namespace"]
    );

    // The control plane chooses namespaces for the cluster, labels or not. A bad name is refused by name.
    let selection_path = format!("/clusters/{cluster_id}/log-selection");
    let (status, refused) = stack
        .api
        .call(
            Method::PUT,
            &selection_path,
            Some(&json!({"namespaces": ["team-b", "Team_C"]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.to_string().contains("namespaces[1]"), "{refused}");
    let updated = stack
        .api
        .ok(
            Method::PUT,
            &selection_path,
            Some(&json!({"namespaces": ["team-b", "team-b"]})),
        )
        .await
        .unwrap();
    assert_eq!(
        updated["log_selection"],
        json!({"all_namespaces": false, "namespaces": ["team-b"]})
    );
    // All of team-b now: its other pod is followed from the start of its log.
    write(
        "team-b",
        "quiet",
        "q2 collected: the control plane chose team-b\n",
    )
    .await;
    harness::wait_until(
        "the pod of the chosen namespace",
        WAIT,
        Duration::from_millis(250),
        || async {
            let messages = namespace_messages(&stack, cluster_id, "team-b").await;
            messages.contains(&"q1 not collected".to_owned())
                && messages.contains(&"q2 collected: the control plane chose team-b".to_owned())
        },
    )
    .await
    .unwrap();
    // Every namespace: team-a, no longer labelled, is collected again, from where its follower stopped.
    stack
        .api
        .ok(
            Method::PUT,
            &selection_path,
            Some(&json!({"all_namespaces": true})),
        )
        .await
        .unwrap();
    harness::wait_until(
        "team-a's line written while it was not collected",
        WAIT,
        Duration::from_millis(250),
        || async {
            namespace_messages(&stack, cluster_id, "team-a").await
                == ["a1 from an opted-in namespace", "a2 after opting out"]
        },
    )
    .await
    .unwrap();
}
