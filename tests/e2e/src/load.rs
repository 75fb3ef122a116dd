//! Steady loads for the fault tests.
//!
//! [`RollingLoad`]: one Deployment rolled through numbered versions, one task per version, each submitted when the
//! previous one finished. Submissions carry an idempotency key and are retried with the same key until the API
//! takes them, as a careful client does through an outage. Because versions are applied one after another and
//! each changes the pod template, the Deployment's `metadata.generation` counts the versions that took effect: a
//! version applied twice, or one never applied, shows as a generation that differs from the number of versions.
//!
//! [`LogLoad`]: a container printing numbered lines at a steady rate. Every line carries its number in its text,
//! so ClickHouse's rows show whether each line arrived once: by identity (cluster, pod, container, sequence
//! number) and by text, with sequence numbers running 0..n without a hole.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use anyhow::Context;

use crate::api::Api;
use crate::{Stack, write_container_log};

const POLL: Duration = Duration::from_millis(100);
/// How long one version may take, retries through the fault included.
const VERSION_TIMEOUT: Duration = Duration::from_secs(240);

/// What the load saw: every version's task as it ended, and every answer that was neither a success nor a 503.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub tasks: Vec<Value>,
    /// Answers that no client should ever get (a 500, or a 4xx for a valid request), with what was asked.
    pub unexpected_answers: Vec<String>,
    /// 503 answers: the API saying the database is unavailable, which a client retries.
    pub unavailable_answers: usize,
}

impl LoadReport {
    /// Delivery attempts the versions' tasks used, all together.
    pub fn attempts(&self) -> i64 {
        self.tasks
            .iter()
            .map(|task| task["attempts"].as_i64().unwrap_or(0))
            .sum()
    }
}

pub struct RollingLoad {
    name: String,
    stop: Arc<AtomicBool>,
    /// Versions whose task has ended so far.
    done: Arc<AtomicUsize>,
    /// Why the load stopped early, if it did.
    failure: Arc<Mutex<Option<String>>>,
    worker: JoinHandle<anyhow::Result<LoadReport>>,
}

impl RollingLoad {
    /// Starts rolling Deployment `name` in namespace `default` of the cluster, through `api`.
    pub fn start(api: &Api, cluster_id: &str, name: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let failure = Arc::new(Mutex::new(None));
        let rolling = roll(
            api.clone(),
            cluster_id.to_owned(),
            name.to_owned(),
            stop.clone(),
            done.clone(),
        );
        let failed = failure.clone();
        let worker = tokio::spawn(async move {
            let outcome = rolling.await;
            if let Err(error) = &outcome {
                *failed.lock().unwrap() = Some(format!("{error:#}"));
            }
            outcome
        });
        Self {
            name: name.to_owned(),
            stop,
            done,
            failure,
            worker,
        }
    }

    /// Versions whose task has ended so far.
    pub fn versions_done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `count` versions have ended; fails at once when the load stopped early, saying why.
    pub async fn wait_for_versions(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(failure) = self.failure.lock().unwrap().clone() {
                anyhow::bail!("the load on {} stopped: {failure}", self.name);
            }
            if self.versions_done() >= count {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{count} versions of {} did not end within {timeout:?} ({} did)",
                self.name,
                self.versions_done()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `more` versions beyond those done now have ended. After a fault, `wait_for_more(2, ..)` shows
    /// tasks flowing again: the version in flight when it ended may have started during it, the next one did not.
    pub async fn wait_for_more(&self, more: usize, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for_versions(self.versions_done() + more, timeout)
            .await
    }

    /// Stops after the version in flight and checks the invariants: at least one version ran, every version's
    /// task succeeded, and the Deployment's generation equals the number of versions (each applied exactly once
    /// in effect). Returns what the load saw, for the test's own checks and figures.
    pub async fn finish(self, stack: &Stack) -> anyhow::Result<LoadReport> {
        self.stop.store(true, Ordering::SeqCst);
        let report = self.worker.await??;
        anyhow::ensure!(!report.tasks.is_empty(), "the load ran no version");
        for task in &report.tasks {
            anyhow::ensure!(
                task["state"] == "succeeded",
                "a version did not succeed: {task}"
            );
        }
        let generation = stack.kubectl(&[
            "get",
            "deployment",
            &self.name,
            "-n",
            "default",
            "-o",
            "jsonpath={.metadata.generation}",
        ])?;
        anyhow::ensure!(
            generation.trim() == report.tasks.len().to_string(),
            "Deployment {} is at generation {} after {} versions: a version took effect twice or not at all",
            self.name,
            generation.trim(),
            report.tasks.len()
        );
        Ok(report)
    }
}

fn manifest(name: &str, version: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n      \
         annotations:\n        edgefleet.test/version: \"{version}\"\n    spec:\n      containers:\n        - name: app\n          \
         image: registry.example/app:1\n"
    )
}

async fn roll(
    api: Api,
    cluster_id: String,
    name: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> anyhow::Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut version = 0;
    while !stop.load(Ordering::SeqCst) {
        version += 1;
        let body = json!({
            "kind": "apply",
            "manifest": manifest(&name, version),
            "idempotency_key": format!("{cluster_id}-{name}-{version}"),
        });
        let path = format!("/clusters/{cluster_id}/tasks");
        let task = until_answered(&api, Method::POST, &path, Some(&body), &mut report).await?;
        let task_path = format!("/tasks/{}", task["id"].as_str().unwrap_or_default());
        let deadline = tokio::time::Instant::now() + VERSION_TIMEOUT;
        loop {
            let task = until_answered(&api, Method::GET, &task_path, None, &mut report).await?;
            if matches!(
                task["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                report.tasks.push(task);
                done.fetch_add(1, Ordering::SeqCst);
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "version {version} of {name} did not finish within {VERSION_TIMEOUT:?}: {task}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(report)
}

/// Sends the request until it gets a success, retrying 503s and connection errors. Another 5xx is recorded as
/// unexpected and retried, so that the test reports every one; a 4xx to a valid request ends the load at once.
async fn until_answered(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<&Value>,
    report: &mut LoadReport,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + VERSION_TIMEOUT;
    loop {
        match api.call(method.clone(), path, body).await {
            Ok((status, value)) if status.is_success() => return Ok(value),
            Ok((StatusCode::SERVICE_UNAVAILABLE, value))
                if value["error"]["code"] == "database_unavailable" =>
            {
                report.unavailable_answers += 1;
            }
            Ok((status, value)) if status.is_server_error() => report
                .unexpected_answers
                .push(format!("{method} {path} -> {status}: {value}")),
            Ok((status, value)) => anyhow::bail!("{method} {path} -> {status}: {value}"),
            Err(_) => {}
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{method} {path} was not answered within {VERSION_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The label that opts a pod into log collection (see node-agent's `podlogs`).
const COLLECT_LOGS: &str = "edgefleet.io/logs: enabled";

/// The text of line `n` of a [`LogLoad`]: logfmt, as many services print, with the number zero-padded so that
/// lines sort by it.
pub fn log_message(n: u64) -> String {
    format!("level=info msg=\"request served\" line={n:08}")
}

/// Rows of one container's log in ClickHouse for one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLines {
    /// Rows, resent copies included.
    pub rows: u64,
    /// Distinct lines by identity: pod uid, container, sequence number.
    pub distinct: u64,
    /// Distinct line texts.
    pub texts: u64,
}

/// What a [`LogLoad`] wrote and how long its lines took to be stored after the writer stopped.
#[derive(Debug, Clone, Copy)]
pub struct LogReport {
    pub written: u64,
    /// Rows stored over every cluster checked, resent copies included.
    pub rows: u64,
    pub drained: Duration,
}

/// One container's log, as ClickHouse's rows name it.
#[derive(Debug, Clone)]
pub struct LogSource {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl LogSource {
    /// This container's lines that ClickHouse holds for the cluster.
    pub fn stored(&self, stack: &Stack, cluster_id: &str) -> anyhow::Result<StoredLines> {
        let row = stack.clickhouse_query(&format!(
            "SELECT count(), uniqExact(pod_uid, container, seq), uniqExact(message) FROM {{db}}.demo_logs \
             WHERE {} FORMAT TSV",
            self.filter(cluster_id)
        ))?;
        let numbers: Vec<u64> = row
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("ClickHouse answered {row:?}"))?;
        let [rows, distinct, texts] = numbers[..] else {
            anyhow::bail!("ClickHouse answered {row:?}");
        };
        Ok(StoredLines {
            rows,
            distinct,
            texts,
        })
    }

    /// The WHERE clause of this container's printed lines for the cluster.
    fn filter(&self, cluster_id: &str) -> String {
        format!(
            "cluster_id = '{cluster_id}' AND namespace = '{}' AND pod = '{}' AND container = '{}' \
             AND stream = 'container'",
            self.namespace, self.pod, self.container
        )
    }
}

/// A container printing numbered lines ([`log_message`]) at a steady rate, in 100 ms chunks, until `finish`.
pub struct LogLoad {
    source: LogSource,
    stop: tokio::sync::watch::Sender<bool>,
    written: Arc<AtomicU64>,
    writer: JoinHandle<anyhow::Result<u64>>,
}

impl LogLoad {
    /// Creates pod `name` in namespace `default`, labelled so that agents collect its logs, and starts its
    /// container `app` printing `lines_per_second` lines. Every agent watching the stack's cluster ships them.
    pub async fn start_pod(
        stack: &Stack,
        name: &str,
        lines_per_second: u64,
    ) -> anyhow::Result<Self> {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    \
             {COLLECT_LOGS}\nspec:\n  containers:\n    - name: app\n      image: registry.example/logger:1\n"
        );
        stack.kubectl_with_input(&["apply", "-f", "-"], &pod)?;
        Self::start(stack, "default", name, "app", lines_per_second)
    }

    /// Starts printing `lines_per_second` lines into the log of an existing container of the stack's cluster.
    pub fn start(
        stack: &Stack,
        namespace: &str,
        pod: &str,
        container: &str,
        lines_per_second: u64,
    ) -> anyhow::Result<Self> {
        let kube_state = stack
            .cluster
            .as_ref()
            .context("a log load needs the stack's own cluster")?
            .state_dir()
            .to_path_buf();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let written = Arc::new(AtomicU64::new(0));
        let counted = written.clone();
        let source = LogSource {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        };
        let target = source.clone();
        let writer = tokio::spawn(async move {
            let LogSource {
                namespace,
                pod,
                container,
            } = target;
            let chunk = (lines_per_second / 10).max(1);
            let mut next = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !*stopped.borrow_and_update() {
                tick.tick().await;
                let text: String = (next..next + chunk)
                    .map(|n| format!("{}\n", log_message(n)))
                    .collect();
                write_container_log(&kube_state, &namespace, &pod, &container, &text).await?;
                next += chunk;
                counted.store(next, Ordering::SeqCst);
            }
            Ok(next)
        });
        Ok(Self {
            source,
            stop,
            written,
            writer,
        })
    }

    pub fn source(&self) -> &LogSource {
        &self.source
    }

    /// Lines written so far.
    pub fn lines_written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Stops writing, waits (up to `timeout`) until ClickHouse holds every line for each of `cluster_ids`, and
    /// checks the invariants for each: every line once by identity and by text (copies of a resent batch are
    /// allowed as rows, never as distinct lines), sequence numbers 0..n without a hole from one container start.
    pub async fn finish(
        self,
        stack: &Stack,
        cluster_ids: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<LogReport> {
        self.stop.send_replace(true);
        let written = self.writer.await??;
        anyhow::ensure!(written > 0, "the log load wrote no line");
        let stopped = Instant::now();
        let mut rows = 0;
        for cluster_id in cluster_ids {
            let what = format!(
                "the {written} lines of {}/{} in ClickHouse for cluster {cluster_id}",
                self.source.namespace, self.source.pod
            );
            let stored =
                harness::wait_until(&what, timeout, Duration::from_millis(250), || async {
                    let stored = self.source.stored(stack, cluster_id).ok()?;
                    (stored.distinct >= written).then_some(stored)
                })
                .await?;
            anyhow::ensure!(
                stored.distinct == written && stored.texts == written,
                "cluster {cluster_id}: {written} lines written, {stored:?} stored: lines invented"
            );
            let range = stack.clickhouse_query(&format!(
                "SELECT min(seq), max(seq), uniqExact(pod_uid) FROM {{db}}.demo_logs WHERE {} FORMAT TSV",
                self.source.filter(cluster_id)
            ))?;
            anyhow::ensure!(
                range.trim() == format!("0\t{}\t1", written - 1),
                "cluster {cluster_id}: sequence numbers (min, max, pods) {range:?} for {written} lines"
            );
            rows += stored.rows;
        }
        Ok(LogReport {
            written,
            rows,
            drained: stopped.elapsed(),
        })
    }
}
