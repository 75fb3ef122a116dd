//! Prometheus metrics of the control plane, served at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabel {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoopLabel {
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub write: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabel {
    pub reason: String,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub agent_streams: Gauge,
    pub tasks_delivered: Counter,
    pub task_results: Family<StateLabel, Counter>,
    /// Seconds from a task's creation to its delivery to an agent.
    pub task_delivery_seconds: Histogram,
    pub log_lines_stored: Counter,
    pub log_insert_failures: Counter,
    pub log_lines_dead_lettered: Counter,
    pub agent_rejections: Family<RejectionLabel, Counter>,
    /// TLS handshakes on the agent port running now (bounded by `agents.max_concurrent_handshakes`).
    pub agent_handshakes_in_progress: Gauge,
    /// TLS handshakes on the agent port that failed, by reason (`timeout`, `tls`).
    pub agent_handshake_failures: Family<RejectionLabel, Counter>,
    pub certificates_issued: Counter,
    /// Terraform tasks finished by this process, by kind and outcome (succeeded, failed, retrying, cancelled).
    pub terraform_runs: Family<RunLabel, Counter>,
    pub terraform_runs_active: Gauge,
    /// Restarts of supervised background loops, by loop.
    pub loop_restarts: Family<LoopLabel, Counter>,
    /// Agent streams' queue writes per group commit, by write (`lease`, `accept`, `result`, `heartbeat`).
    pub queue_batch_size: Family<WriteLabel, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("edgefleet");
        let agent_streams = Gauge::default();
        let tasks_delivered = Counter::default();
        let task_results = Family::<StateLabel, Counter>::default();
        let task_delivery_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let log_lines_stored = Counter::default();
        let log_insert_failures = Counter::default();
        let log_lines_dead_lettered = Counter::default();
        let agent_rejections = Family::<RejectionLabel, Counter>::default();
        let agent_handshakes_in_progress = Gauge::default();
        let agent_handshake_failures = Family::<RejectionLabel, Counter>::default();
        let certificates_issued = Counter::default();
        let terraform_runs = Family::<RunLabel, Counter>::default();
        let terraform_runs_active = Gauge::default();
        let loop_restarts = Family::<LoopLabel, Counter>::default();
        let queue_batch_size =
            Family::<WriteLabel, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 10))
            });
        registry.register(
            "agent_streams",
            "Open agent streams on this process",
            agent_streams.clone(),
        );
        registry.register(
            "tasks_delivered",
            "Task deliveries to agents",
            tasks_delivered.clone(),
        );
        registry.register(
            "task_results",
            "Task results recorded, by resulting state",
            task_results.clone(),
        );
        registry.register(
            "task_delivery_seconds",
            "Time from task creation to delivery to an agent",
            task_delivery_seconds.clone(),
        );
        registry.register(
            "log_lines_stored",
            "Log lines written to ClickHouse",
            log_lines_stored.clone(),
        );
        registry.register(
            "log_insert_failures",
            "Log batches ClickHouse did not accept after retries",
            log_insert_failures.clone(),
        );
        registry.register(
            "log_lines_dead_lettered",
            "Log lines ClickHouse refused for their content, kept in log_dead_letters",
            log_lines_dead_lettered.clone(),
        );
        registry.register(
            "agent_rejections",
            "Agent calls refused, by reason",
            agent_rejections.clone(),
        );
        registry.register(
            "agent_handshakes_in_progress",
            "TLS handshakes on the agent port running now",
            agent_handshakes_in_progress.clone(),
        );
        registry.register(
            "agent_handshake_failures",
            "TLS handshakes on the agent port that failed or timed out, by reason",
            agent_handshake_failures.clone(),
        );
        registry.register(
            "certificates_issued",
            "Agent client certificates issued",
            certificates_issued.clone(),
        );
        registry.register(
            "terraform_runs",
            "Terraform tasks finished, by kind and outcome",
            terraform_runs.clone(),
        );
        registry.register(
            "terraform_runs_active",
            "Terraform tasks running in this process",
            terraform_runs_active.clone(),
        );
        registry.register(
            "loop_restarts",
            "Restarts of background loops (planner, provisioner, ...) after they ended or panicked",
            loop_restarts.clone(),
        );
        registry.register(
            "queue_batch_size",
            "Agent streams' queue writes done in one group commit, by write",
            queue_batch_size.clone(),
        );
        Self {
            registry: Arc::new(registry),
            agent_streams,
            tasks_delivered,
            task_results,
            task_delivery_seconds,
            log_lines_stored,
            log_insert_failures,
            log_lines_dead_lettered,
            agent_rejections,
            agent_handshakes_in_progress,
            agent_handshake_failures,
            certificates_issued,
            terraform_runs,
            terraform_runs_active,
            loop_restarts,
            queue_batch_size,
        }
    }

    pub fn reject(&self, reason: &str) {
        self.agent_rejections
            .get_or_create(&RejectionLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn loop_restarted(&self, name: &str) {
        self.loop_restarts
            .get_or_create(&LoopLabel {
                name: name.to_string(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
