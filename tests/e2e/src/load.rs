//! A steady load of tasks for the fault tests: one Deployment rolled through numbered versions, one task per
//! version, each submitted when the previous one finished. Submissions carry an idempotency key and are retried
//! with the same key until the API takes them, as a careful client does through an outage.
//!
//! Because versions are applied one after another and each changes the pod template, the Deployment's
//! `metadata.generation` counts the versions that took effect: a version applied twice, or one never applied,
//! shows as a generation that differs from the number of versions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::Stack;
use crate::api::Api;

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
