//! Runs assigned tasks in the background, at most `max_concurrent_tasks` at once, and cancels them on request.

use std::collections::HashMap;
use std::sync::Arc;

use agent_protocol::signing::PinnedKeys;
use agent_protocol::task_body::Spec;
use agent_protocol::{LogLine, ObjectResult, TaskAssignment, TaskLease, TaskProgress, TaskResult};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tracing::{Instrument, Span, info_span};

use crate::apply::{Applier, ApplyFailure};
use crate::desired::DesiredState;
use crate::tasklog::TaskLog;

/// What a running task reports back to the session.
#[derive(Debug)]
pub enum TaskEvent {
    Progress(TaskProgress),
    Finished(TaskResult),
}

/// What became of an assignment.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Started {
    /// A new run began.
    New,
    /// The task already runs under this lease: the assignment was a redelivery and is ignored.
    Duplicate,
    /// The task ran under an older lease; that run was stopped and a new one began.
    Superseded { old_lease_id: String },
}

struct Running {
    lease_id: String,
    abort: AbortHandle,
    /// The run's span, so what the session logs about the task (its cancel) carries the task's fields.
    span: Span,
}

/// Tracks the tasks in flight, keyed by task id.
pub struct TaskRunner {
    applier: Arc<Applier>,
    desired: Arc<DesiredState>,
    slots: Arc<Semaphore>,
    running: HashMap<String, Running>,
    events: mpsc::UnboundedSender<TaskEvent>,
    log_sink: mpsc::UnboundedSender<LogLine>,
    cluster_id: String,
}

impl TaskRunner {
    pub fn new(
        applier: Arc<Applier>,
        desired: Arc<DesiredState>,
        max_concurrent_tasks: u32,
        events: mpsc::UnboundedSender<TaskEvent>,
        log_sink: mpsc::UnboundedSender<LogLine>,
        cluster_id: String,
    ) -> Self {
        Self {
            applier,
            desired,
            slots: Arc::new(Semaphore::new(max_concurrent_tasks as usize)),
            running: HashMap::new(),
            events,
            log_sink,
            cluster_id,
        }
    }

    /// Starts the assignment unless it is a redelivery of a run in progress. Runs beyond the concurrency limit
    /// wait for a slot (the server should not send that many, but the limit holds regardless). The run verifies
    /// the task's signature with `task_keys` before anything else.
    pub fn start(&mut self, assignment: TaskAssignment, task_keys: PinnedKeys) -> Started {
        let started = match self.running.get(&assignment.task_id) {
            Some(run) if run.lease_id == assignment.lease_id => return Started::Duplicate,
            Some(run) => {
                // The server re-leased the task (the old lease expired); reports under the old lease are ignored.
                run.abort.abort();
                Started::Superseded {
                    old_lease_id: run.lease_id.clone(),
                }
            }
            None => Started::New,
        };
        // The run continues the trace of the control plane's delivery, when both export traces.
        let span = info_span!(
            "task",
            otel.name = "task run",
            otel.kind = "consumer",
            task_id = %assignment.task_id,
            lease_id = %assignment.lease_id,
            attempt = assignment.attempt,
            reason = %assignment.reason,
            cluster = %self.cluster_id,
        );
        if !assignment.trace_parent.is_empty() {
            telemetry::set_parent(&span, &assignment.trace_parent);
        }
        let worker = Worker {
            applier: self.applier.clone(),
            desired: self.desired.clone(),
            events: self.events.clone(),
            log: TaskLog::new(assignment.task_id.clone(), self.log_sink.clone()),
            task_id: assignment.task_id.clone(),
            lease_id: assignment.lease_id.clone(),
            cluster_id: self.cluster_id.clone(),
            task_keys,
        };
        let slots = self.slots.clone();
        let (task_id, lease_id) = (assignment.task_id.clone(), assignment.lease_id.clone());
        let handle = tokio::spawn(
            async move {
                // The semaphore is never closed, so acquiring only waits.
                let _slot = slots.acquire_owned().await;
                worker.run(assignment).await;
            }
            .instrument(span.clone()),
        );
        self.running.insert(
            task_id,
            Running {
                lease_id,
                abort: handle.abort_handle(),
                span,
            },
        );
        started
    }

    /// Stops the run of `task_id` under `lease_id`; returns the failed "cancelled" result to report, or `None`
    /// when no such run is in progress (already finished, or another lease).
    pub fn cancel(&mut self, task_id: &str, lease_id: &str) -> Option<TaskResult> {
        let run = self
            .running
            .get(task_id)
            .filter(|run| run.lease_id == lease_id)?;
        run.abort.abort();
        run.span.in_scope(|| {
            TaskLog::new(task_id, self.log_sink.clone())
                .warn("task cancelled by the control plane", &[]);
        });
        let run = self.running.remove(task_id)?;
        Some(TaskResult {
            task_id: task_id.to_owned(),
            lease_id: lease_id.to_owned(),
            success: false,
            error: "cancelled".into(),
            objects: Vec::new(),
            retryable: false,
            trace_parent: telemetry::traceparent_of(&run.span).unwrap_or_default(),
        })
    }

    /// Marks the run finished; false when its report is stale (the run was cancelled or superseded meanwhile).
    pub fn finish(&mut self, task_id: &str, lease_id: &str) -> bool {
        let current = self.is_current(task_id, lease_id);
        if current {
            self.running.remove(task_id);
        }
        current
    }

    /// Whether `task_id` is running under `lease_id`.
    pub fn is_current(&self, task_id: &str, lease_id: &str) -> bool {
        self.running
            .get(task_id)
            .is_some_and(|run| run.lease_id == lease_id)
    }

    /// The leases of all runs in progress, for heartbeats.
    pub fn leases(&self) -> impl Iterator<Item = TaskLease> + '_ {
        self.running.iter().map(|(task_id, run)| TaskLease {
            task_id: task_id.clone(),
            lease_id: run.lease_id.clone(),
        })
    }
}

/// One run of one task.
struct Worker {
    applier: Arc<Applier>,
    /// Where what a successful task applied is kept, for the agent to keep it so while offline.
    desired: Arc<DesiredState>,
    events: mpsc::UnboundedSender<TaskEvent>,
    log: TaskLog,
    task_id: String,
    lease_id: String,
    cluster_id: String,
    task_keys: PinnedKeys,
}

impl Worker {
    async fn run(self, assignment: TaskAssignment) {
        self.log.info(
            "task started",
            &[
                ("attempt", assignment.attempt.to_string()),
                ("reason", assignment.reason.clone()),
            ],
        );
        let progress = |message: &str, objects: Vec<ObjectResult>| {
            let _ = self.events.send(TaskEvent::Progress(TaskProgress {
                task_id: self.task_id.clone(),
                lease_id: self.lease_id.clone(),
                message: message.to_owned(),
                objects,
            }));
        };
        let failed = |failure: ApplyFailure| {
            (
                failure.error.to_string(),
                failure.error.is_retryable(),
                failure.objects,
            )
        };
        let outcome = match self.task_keys.open(&assignment, &self.cluster_id) {
            Err(refused) => Err((format!("refused: {refused}"), false, Vec::new())),
            Ok(Spec::Apply(spec)) => {
                let applied = self.applier.apply(&spec, &self.log, &progress).await;
                if let Ok(objects) = &applied {
                    self.desired
                        .record(&self.task_id, spec.tier(), &spec.manifest_yaml, objects);
                }
                applied.map_err(failed)
            }
            Ok(Spec::Delete(delete)) => match &delete.objects {
                Some(set) => {
                    let deleted = self
                        .applier
                        .prune(set, delete.tier(), &[], &self.log, &progress)
                        .await;
                    if let Ok(objects) = &deleted {
                        self.desired
                            .record(&self.task_id, delete.tier(), "", objects);
                    }
                    deleted.map_err(failed)
                }
                None => Err((
                    "the delete task names no objects".to_owned(),
                    false,
                    Vec::new(),
                )),
            },
        };
        let trace_parent = telemetry::current_traceparent().unwrap_or_default();
        let result = match outcome {
            Ok(objects) => {
                self.log
                    .info("task succeeded", &[("objects", objects.len().to_string())]);
                TaskResult {
                    task_id: self.task_id,
                    lease_id: self.lease_id,
                    success: true,
                    error: String::new(),
                    objects,
                    retryable: false,
                    trace_parent,
                }
            }
            Err((error, retryable, objects)) => {
                self.log.error(
                    format!("task failed: {error}"),
                    &[("retryable", retryable.to_string())],
                );
                TaskResult {
                    task_id: self.task_id,
                    lease_id: self.lease_id,
                    success: false,
                    error,
                    objects,
                    retryable,
                    trace_parent,
                }
            }
        };
        let _ = self.events.send(TaskEvent::Finished(result));
    }
}
