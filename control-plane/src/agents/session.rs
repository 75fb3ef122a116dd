//! One agent stream: delivers the cluster's tasks within the agent's concurrency, records what the agent
//! reports, renews leases on heartbeats, and stores log batches before acknowledging them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{
    AgentMessage, ControlMessage, Heartbeat, LogBatch, LogBatchAck, LogLevel, ObjectOutcome,
    ObjectResult, OfflineReport, OfflineReportAck, Ping, PodLogBatch, PodLogBatchAck, Pong,
    ResultAck, TaskAssignment, TaskCancel, TaskResult, TaskSignature, Welcome,
};
use chrono::Utc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::adapters::Map;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use uuid::Uuid;

use super::AgentGrpc;
use super::dispatch::ClusterSignal;
use super::identity::store_failed;
use crate::domain::TaskState;
use crate::logs::{DemoLogLine, LineSource, LogRow, LogSink, TaskLogLine};
use crate::metrics::StateLabel;
use crate::pki::AgentIdentity;
use crate::store::{self, LeaseRef, LeasedTask, ObjectReport, StreamLease, TaskCompletion};

/// What goes to the agent. Boxed in the channel because the channel's first block (32 slots) lives as long as the
/// stream: 8 bytes a slot instead of 184, about 6 KiB less per connected agent.
type Outgoing = Box<Result<ControlMessage, Status>>;

pub type ControlStream =
    Map<ReceiverStream<Outgoing>, fn(Outgoing) -> Result<ControlMessage, Status>>;

/// Never more deliveries in flight on one stream than this, whatever the agent asks for.
const MAX_CONCURRENT_TASKS: u32 = 64;

pub(super) async fn open(
    service: &AgentGrpc,
    request: Request<Streaming<AgentMessage>>,
) -> Result<Response<ControlStream>, Status> {
    let identity = service.identify(&request)?;
    let peer_addr = request.remote_addr().map(|a| a.to_string());
    let mut inbound = request.into_inner();
    let hello = match tokio::time::timeout(service.settings.hello_timeout, inbound.message()).await
    {
        Ok(Ok(Some(AgentMessage {
            msg: Some(Up::Hello(hello)),
        }))) => hello,
        Ok(Ok(Some(_))) => {
            return Err(Status::invalid_argument(
                "the first message on a session must be Hello",
            ));
        }
        Ok(Ok(None)) => {
            return Err(Status::cancelled(
                "the agent closed the session before Hello",
            ));
        }
        Ok(Err(status)) => return Err(status),
        Err(_) => return Err(Status::deadline_exceeded("no Hello received in time")),
    };
    super::check_agent_version(&hello.agent_version)?;
    // New streams take turns for their database work (the certificate's standing, the session row) here
    // instead of queueing in the connection pool, whose waits time out: when a replica restarts, every agent
    // it held sets up at once, and the turns keep connections free for the streams already running.
    let turn = service
        .setup_turns
        .acquire()
        .await
        .map_err(|_| Status::unavailable("the control plane is shutting down; reconnect"))?;
    service.check_standing(&identity).await?;
    let cluster_id = identity.cluster_id;
    // Subscribe before the first lease so no notification falls in between.
    let signals = service.dispatcher.subscribe(cluster_id, &identity.serial);
    let session_id = service
        .store
        .open_session(
            &service.settings.instance,
            cluster_id,
            &identity.serial,
            &hello.agent_version,
            peer_addr.clone(),
        )
        .await
        .map_err(|e| store_failed("opening the session", e))?;
    drop(turn);
    let (tx, rx) = mpsc::channel(256);
    let welcome = Down::Welcome(Welcome {
        cluster_id: cluster_id.to_string(),
        heartbeat_interval_seconds: service.settings.heartbeat_interval.as_secs() as u32,
        server_time_unix: Utc::now().timestamp(),
    });
    tx.send(Box::new(Ok(ControlMessage { msg: Some(welcome) })))
        .await
        .map_err(|_| Status::cancelled("the agent went away"))?;
    service.metrics.agent_streams.inc();
    let span = tracing::info_span!("agent_session", %cluster_id, %session_id);
    tracing::info!(parent: &span, agent_version = %hello.agent_version, peer = ?peer_addr, "agent connected");
    let session = Session {
        service: service.clone(),
        identity,
        session_id,
        max_concurrent: hello.max_concurrent_tasks.clamp(1, MAX_CONCURRENT_TASKS) as usize,
        tx,
        in_flight: HashMap::new(),
        may_have_waiting: false,
        region: None,
        demos: HashSet::new(),
        demos_loaded_at: None,
        opened: std::time::Instant::now(),
        last_heartbeat: std::time::Instant::now(),
        pending_rtt_ms: None,
        log_selection_sent: None,
    };
    tokio::spawn(session.run(inbound, signals).instrument(span));
    let unbox: fn(Outgoing) -> Result<ControlMessage, Status> = |message| *message;
    Ok(Response::new(ReceiverStream::new(rx).map(unbox)))
}

/// Why a session ended, for the log line.
enum End {
    AgentClosed,
    AgentError(Status),
    Revoked,
    Failed(Status),
}

struct Session {
    service: AgentGrpc,
    identity: AgentIdentity,
    session_id: Uuid,
    max_concurrent: usize,
    tx: mpsc::Sender<Outgoing>,
    /// Deliveries on this stream without a recorded result: task id -> lease id.
    in_flight: HashMap<Uuid, Uuid>,
    /// Tasks may be waiting that the stream had no room for (a lease filled it, or a signal came while it
    /// was full), so a freed slot should look for them; otherwise it waits for the next signal.
    may_have_waiting: bool,
    /// The cluster's region code, tagged on demo log lines; read on the first batch.
    region: Option<String>,
    /// Demos placed on this cluster: pod log lines naming any other demo are dropped, since anyone who can
    /// label a pod on the cluster could name one.
    demos: HashSet<Uuid>,
    demos_loaded_at: Option<std::time::Instant>,
    /// Ping nonces count microseconds from here.
    opened: std::time::Instant,
    /// When the agent's last heartbeat arrived (the stream's opening until the first).
    last_heartbeat: std::time::Instant,
    /// The round trip measured since the last heartbeat, recorded with the next one.
    pending_rtt_ms: Option<f64>,
    /// What this stream last told the agent to collect; sent again only when it changes.
    log_selection_sent: Option<crate::domain::LogSelection>,
}

impl Session {
    fn cluster_id(&self) -> Uuid {
        self.identity.cluster_id
    }

    fn lease_ref(&self, task_id: Uuid, lease_id: Uuid) -> LeaseRef {
        LeaseRef {
            cluster_id: self.cluster_id(),
            task_id,
            lease_id,
        }
    }

    async fn run(
        mut self,
        mut inbound: Streaming<AgentMessage>,
        mut signals: broadcast::Receiver<ClusterSignal>,
    ) {
        let end = self.serve(&mut inbound, &mut signals).await;
        match &end {
            End::AgentClosed => tracing::info!("agent closed the session"),
            End::AgentError(status) => tracing::info!(error = %status, "agent stream broke"),
            End::Revoked => tracing::warn!(
                "certificate revoked (cluster deleted or agent revoked): session closed"
            ),
            End::Failed(status) => {
                tracing::warn!(error = %status, "session ended by the control plane")
            }
        }
        match end {
            End::Revoked => {
                let _ = self
                    .tx
                    .send(Box::new(Err(Status::permission_denied(
                        "the agent's certificate was revoked (its cluster was deleted, or an admin revoked the agent); bootstrap again with a new token",
                    ))))
                    .await;
            }
            End::Failed(status) => {
                let _ = self.tx.send(Box::new(Err(status))).await;
            }
            End::AgentClosed | End::AgentError(_) => {}
        }
        drop(signals);
        self.service
            .dispatcher
            .release(self.cluster_id(), &self.identity.serial);
        self.service.metrics.agent_streams.dec();
        if let Err(error) = self.service.store.close_session(self.session_id).await {
            tracing::warn!(%error, "could not record the end of the session");
        }
    }

    async fn serve(
        &mut self,
        inbound: &mut Streaming<AgentMessage>,
        signals: &mut broadcast::Receiver<ClusterSignal>,
    ) -> End {
        // The handlers below are boxed: their futures (database calls, log stores) are several kilobytes, and
        // inlined they would make this waiting loop, which lives as long as the agent is connected, as large
        // as the largest of them for every agent (13 KiB a stream, measured with heaptrack).
        if let Err(status) = Box::pin(self.deliver()).await {
            return End::Failed(status);
        }
        // Heartbeats stop arriving on a stalled link, so their absence is checked on a timer of its own.
        let mut liveness_check = tokio::time::interval(self.service.settings.heartbeat_interval);
        liveness_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        liveness_check.tick().await;
        loop {
            let step = tokio::select! {
                _ = liveness_check.tick() => self.check_heartbeats(),
                message = inbound.message() => match message {
                    Ok(Some(message)) => Box::pin(self.handle(message)).await,
                    Ok(None) => return End::AgentClosed,
                    Err(status) => return End::AgentError(status),
                },
                signal = signals.recv() => match signal {
                    Ok(ClusterSignal::TasksReady) | Err(broadcast::error::RecvError::Lagged(_)) => Box::pin(self.deliver()).await,
                    Ok(ClusterSignal::Cancelled { task_id, lease_id }) => Box::pin(self.cancel(task_id, lease_id)).await,
                    Ok(ClusterSignal::Revoked) => return End::Revoked,
                    // The dispatcher's patrol: a stream outlives its certificate's revocation by at most one
                    // heartbeat interval.
                    Ok(ClusterSignal::CertificateRefused { serial, reason }) if serial == self.identity.serial => {
                        tracing::info!(%reason, "certificate refused");
                        return End::Revoked;
                    }
                    Ok(ClusterSignal::CertificateRefused { .. }) => Ok(()),
                    Ok(ClusterSignal::ShuttingDown) => return End::Failed(Status::unavailable("the control plane is shutting down; reconnect")),
                    Err(broadcast::error::RecvError::Closed) => return End::Failed(Status::unavailable("control plane is shutting down")),
                },
                () = self.tx.closed() => return End::AgentClosed,
            };
            if let Err(status) = step {
                return if status.code() == tonic::Code::PermissionDenied {
                    End::Revoked
                } else {
                    End::Failed(status)
                };
            }
        }
    }

    /// A stream whose heartbeats stopped (a partitioned link stalls TCP rather than closing it) is closed as the
    /// API stops counting its agent as connected, so that no task is leased into it from then on: they wait,
    /// pending, for a live stream. Heartbeats are timed here when they arrive, before the session row records
    /// them, so this never counts a stream live that the API calls disconnected.
    fn check_heartbeats(&self) -> Result<(), Status> {
        let silent = self.last_heartbeat.elapsed();
        if silent > Duration::from_secs_f64(self.service.store.agent_stale_after_secs()) {
            return Err(Status::unavailable(format!(
                "no heartbeat from the agent for {silent:?}; closing its stream"
            )));
        }
        Ok(())
    }

    async fn send(&self, msg: Down) -> Result<(), Status> {
        self.tx
            .send(Box::new(Ok(ControlMessage { msg: Some(msg) })))
            .await
            .map_err(|_| Status::cancelled("the agent went away"))
    }

    /// Leases as many pending tasks as the agent has room for and sends them.
    async fn deliver(&mut self) -> Result<(), Status> {
        self.check_heartbeats()?;
        let room = self.max_concurrent.saturating_sub(self.in_flight.len());
        if room == 0 {
            self.may_have_waiting = true;
            return Ok(());
        }
        let leased = self
            .service
            .writes
            .lease
            .submit(StreamLease {
                cluster_id: self.cluster_id(),
                session_id: self.session_id,
                room: room as i64,
            })
            .await
            .map_err(|e| store_failed("leasing tasks", e))?;
        self.may_have_waiting = leased.len() == room;
        for task in leased {
            self.service.metrics.tasks_delivered.inc();
            let waited = (Utc::now() - task.created_at).to_std().unwrap_or_default();
            self.service
                .metrics
                .task_delivery_seconds
                .observe(waited.as_secs_f64());
            // The delivery is a span of the task's trace; the agent runs the task as its child.
            let span = tracing::info_span!(
                "task.deliver",
                otel.name = "task deliver",
                otel.kind = "producer",
                task_id = %task.id,
                cluster_id = %task.cluster_id,
                attempt = task.attempts,
            );
            if let Some(parent) = &task.trace_parent {
                telemetry::set_parent(&span, parent);
            }
            match assignment(&task, telemetry::traceparent_of(&span)) {
                Ok(assignment) => {
                    // Debug, as the success below: a line per task per step cost 8 % of the control plane's
                    // CPU at 3,700 tasks/s; each task's history is in its events (`GET /tasks/{id}`).
                    span.in_scope(|| {
                        tracing::debug!(task_id = %task.id, attempt = task.attempts, "task delivered")
                    });
                    self.in_flight.insert(task.id, task.lease_id);
                    self.send(Down::Task(assignment)).instrument(span).await?;
                }
                Err(error) => {
                    tracing::error!(task_id = %task.id, %error, "task cannot be delivered");
                    let completion = TaskCompletion {
                        success: false,
                        error: Some(error),
                        objects: Vec::new(),
                        retryable: false,
                        fails_cluster: None,
                    };
                    self.record_result(task.id, task.lease_id, completion)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn cancel(&mut self, task_id: Uuid, lease_id: Uuid) -> Result<(), Status> {
        if self.in_flight.get(&task_id) == Some(&lease_id) {
            self.in_flight.remove(&task_id);
            self.send(Down::Cancel(TaskCancel {
                task_id: task_id.to_string(),
                lease_id: lease_id.to_string(),
            }))
            .await?;
            return self.deliver_into_freed_slot().await;
        }
        Ok(())
    }

    /// After a slot was freed: leases only when tasks may have been left waiting for room, sparing a lease
    /// query per result when the stream keeps up (the dispatcher's signals cover new tasks).
    async fn deliver_into_freed_slot(&mut self) -> Result<(), Status> {
        if self.may_have_waiting {
            self.deliver().await
        } else {
            Ok(())
        }
    }

    async fn handle(&mut self, message: AgentMessage) -> Result<(), Status> {
        let Some(msg) = message.msg else {
            return Ok(());
        };
        match msg {
            Up::Hello(_) => {
                tracing::debug!("ignoring a repeated Hello");
                Ok(())
            }
            Up::Heartbeat(beat) => self.heartbeat(beat).await,
            Up::Accepted(accepted) => {
                let Some((task_id, lease_id)) = ids(&accepted.task_id, &accepted.lease_id) else {
                    return Ok(());
                };
                let current = self
                    .service
                    .writes
                    .accept
                    .submit(self.lease_ref(task_id, lease_id))
                    .await
                    .map_err(|e| store_failed("recording task start", e))?;
                if !current {
                    tracing::debug!(%task_id, "accept for a stale lease ignored");
                }
                Ok(())
            }
            Up::Progress(progress) => {
                let Some((task_id, lease_id)) = ids(&progress.task_id, &progress.lease_id) else {
                    return Ok(());
                };
                let objects: Vec<ObjectReport> =
                    progress.objects.iter().map(object_report).collect();
                self.service
                    .store
                    .record_progress(
                        self.cluster_id(),
                        task_id,
                        lease_id,
                        &progress.message,
                        &objects,
                    )
                    .await
                    .map_err(|e| store_failed("recording task progress", e))?;
                Ok(())
            }
            Up::Result(result) => self.result(result).await,
            Up::Logs(batch) => self.logs(batch).await,
            Up::PodLogs(batch) => self.pod_logs(batch).await,
            Up::Pong(pong) => self.pong(pong).await,
            Up::OfflineReport(report) => self.offline_report(report).await,
        }
    }

    /// Records what the agent did while offline (once per report id) and acknowledges it.
    async fn offline_report(&mut self, report: OfflineReport) -> Result<(), Status> {
        let report = super::offline::check_report(report).map_err(Status::invalid_argument)?;
        self.service
            .store
            .record_offline_report(self.cluster_id(), &report)
            .await
            .map_err(|e| store_failed("recording an offline report", e))?;
        tracing::info!(
            report_id = %report.id,
            offline_seconds = (report.back_at - report.offline_since).num_seconds(),
            checks = report.checks,
            corrections = report.corrections.len() as i64 + i64::from(report.corrections_not_listed),
            "agent reported what it kept while offline"
        );
        self.send(Down::OfflineReportAck(OfflineReportAck { id: report.id }))
            .await
    }

    async fn heartbeat(&mut self, beat: Heartbeat) -> Result<(), Status> {
        self.last_heartbeat = std::time::Instant::now();
        let record = store::Heartbeat {
            agent_version: beat.agent_version.clone(),
            kubernetes_version: beat.kubernetes_version.clone(),
            node_count: i32::try_from(beat.node_count).unwrap_or(i32::MAX),
            kubernetes_reachable: beat.kubernetes_reachable,
            kubernetes_error: Some(beat.kubernetes_error.clone()).filter(|e| !e.is_empty()),
            rtt_ms: self.pending_rtt_ms.take(),
        };
        let selection = self
            .service
            .writes
            .heartbeat
            .submit((self.cluster_id(), self.session_id, record))
            .await
            .map_err(|e| store_failed("recording a heartbeat", e))?
            .ok_or_else(|| Status::permission_denied("the cluster was deleted"))?;
        if self.log_selection_sent.as_ref() != Some(&selection) {
            self.send(Down::LogSelection((&selection).into())).await?;
            self.log_selection_sent = Some(selection);
        }
        let leases: Vec<(Uuid, Uuid)> = beat
            .running
            .iter()
            .filter_map(|lease| ids(&lease.task_id, &lease.lease_id))
            .collect();
        self.service
            .store
            .renew_leases(self.cluster_id(), &leases, self.service.settings.lease)
            .await
            .map_err(|e| store_failed("renewing leases", e))?;
        // Tasks a notification missed are the dispatcher's patrol's to find, not each heartbeat's.
        self.ping().await
    }

    /// Starts a round-trip measurement; the nonce is the send time, so a late or repeated Pong is harmless.
    async fn ping(&mut self) -> Result<(), Status> {
        let nonce = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.send(Down::Ping(Ping { nonce })).await
    }

    async fn pong(&mut self, pong: Pong) -> Result<(), Status> {
        let now = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Some(rtt_micros) = now.checked_sub(pong.nonce) else {
            tracing::debug!(
                nonce = pong.nonce,
                "Pong for a Ping this stream never sent; ignored"
            );
            return Ok(());
        };
        // Kept for the next heartbeat's single write rather than a write of its own.
        self.pending_rtt_ms = Some(rtt_micros as f64 / 1000.0);
        Ok(())
    }

    async fn result(&mut self, result: TaskResult) -> Result<(), Status> {
        let ack = Down::ResultAck(ResultAck {
            task_id: result.task_id.clone(),
            lease_id: result.lease_id.clone(),
        });
        if let Some((task_id, lease_id)) = ids(&result.task_id, &result.lease_id) {
            let completion = TaskCompletion {
                success: result.success,
                error: Some(result.error.clone()).filter(|e| !e.is_empty()),
                objects: result.objects.iter().map(object_report).collect(),
                retryable: result.retryable,
                fails_cluster: None,
            };
            // Recording the result is a span under the agent's run of the task.
            let span = tracing::info_span!(
                "task.result",
                otel.name = "task result",
                otel.kind = "consumer",
                task_id = %task_id,
                success = result.success,
            );
            if !result.trace_parent.is_empty() {
                telemetry::set_parent(&span, &result.trace_parent);
            }
            self.record_result(task_id, lease_id, completion)
                .instrument(span)
                .await?;
        }
        // Acknowledge even a stale report: the agent must stop resending it either way.
        self.send(ack).await?;
        self.deliver_into_freed_slot().await
    }

    async fn record_result(
        &mut self,
        task_id: Uuid,
        lease_id: Uuid,
        completion: TaskCompletion,
    ) -> Result<(), Status> {
        if self.in_flight.get(&task_id) == Some(&lease_id) {
            self.in_flight.remove(&task_id);
        }
        // The write is a batch's, made by a writer outside this stream's trace; this span (a child of the
        // result's) covers the wait for it.
        let recorded = tracing::info_span!(
            "queue.complete",
            otel.name = "queue complete",
            %task_id,
            success = completion.success,
        );
        let state = self
            .service
            .writes
            .complete
            .submit((self.lease_ref(task_id, lease_id), completion))
            .instrument(recorded)
            .await
            .map_err(|e| store_failed("recording a task result", e))?;
        match state {
            Some(state) => {
                if state == TaskState::Succeeded {
                    tracing::debug!(%task_id, state = state.as_str(), "task result recorded");
                } else {
                    tracing::info!(%task_id, state = state.as_str(), "task result recorded");
                }
                self.service
                    .metrics
                    .task_results
                    .get_or_create(&StateLabel {
                        state: state.as_str().to_string(),
                    })
                    .inc();
            }
            None => tracing::debug!(%task_id, "result for a stale lease ignored"),
        }
        Ok(())
    }

    /// Hands the batch to the shared ClickHouse writer; the ack goes out once the batch is stored.
    async fn logs(&mut self, batch: LogBatch) -> Result<(), Status> {
        let cluster_id = self.cluster_id().to_string();
        let lines = batch
            .lines
            .into_iter()
            .map(|line| {
                let fields = serde_json::to_string(&line.fields).unwrap_or_else(|_| "{}".into());
                let level = level_name(line.level()).to_string();
                TaskLogLine::new(
                    line.unix_nanos,
                    cluster_id.clone(),
                    line.task_id,
                    level,
                    line.message,
                    fields,
                    "agent",
                )
                .identified(line.source_id, line.seq)
            })
            .collect();
        let ack = Down::LogAck(LogBatchAck {
            batch_id: batch.batch_id,
        });
        self.store_then_ack(self.service.logs.clone(), lines, ack);
        Ok(())
    }

    /// Pod lines: tagged with this cluster and its region (lines naming a demo kept only for demos placed on
    /// this cluster), and acknowledged once stored (or when none were kept).
    async fn pod_logs(&mut self, batch: PodLogBatch) -> Result<(), Status> {
        if self.region.is_none() {
            let cluster = self
                .service
                .store
                .cluster(self.cluster_id())
                .await
                .map_err(|e| store_failed("reading the cluster", e))?;
            self.region = Some(cluster.region_code);
        }
        let mut lines = Vec::with_capacity(batch.lines.len());
        let mut refused = 0usize;
        // Shared by every line of the batch instead of copied into each.
        let cluster_id: Arc<str> = self.cluster_id().to_string().into();
        let region: Arc<str> = self.region.as_deref().unwrap_or_default().into();
        let no_demo: Arc<str> = Arc::from("");
        // Lines of one demo come in runs: its id is checked and shared once per run.
        let mut last_demo: Option<(String, Option<Arc<str>>)> = None;
        for line in batch.lines {
            // A line of a pod that opted in to collection names no demo; one that names a demo must name one
            // placed here (anyone who can label a pod on this cluster could name another's).
            let demo_id = if line.demo_id.is_empty() {
                Some(no_demo.clone())
            } else {
                match &last_demo {
                    Some((raw, checked)) if *raw == line.demo_id => checked.clone(),
                    _ => {
                        let checked = match Uuid::parse_str(&line.demo_id) {
                            Ok(demo_id) if self.runs_demo(demo_id).await? => {
                                Some(Arc::from(demo_id.to_string()))
                            }
                            _ => None,
                        };
                        last_demo = Some((line.demo_id.clone(), checked.clone()));
                        checked
                    }
                }
            };
            let Some(demo_id) = demo_id else {
                refused += 1;
                continue;
            };
            let level = level_name(line.level());
            let stream = line.stream().into();
            // Agents before line identities: the pod's name and a hash of time and text stand in.
            let (pod_uid, seq) = if line.pod_uid.is_empty() {
                (
                    line.pod.clone(),
                    crate::logs::content_seq(line.unix_nanos, &line.message),
                )
            } else {
                (line.pod_uid, line.seq)
            };
            let source = LineSource {
                demo_id,
                cluster_id: cluster_id.clone(),
                region: region.clone(),
                namespace: line.namespace,
                pod: line.pod,
                pod_uid,
                container: line.container,
                seq,
                stream,
            };
            lines.push(DemoLogLine::new(
                line.unix_nanos,
                source,
                level,
                line.message,
            ));
        }
        if refused > 0 {
            tracing::warn!(
                refused,
                "pod log lines naming no demo of this cluster were dropped"
            );
        }
        let ack = Down::PodLogAck(PodLogBatchAck {
            batch_id: batch.batch_id,
        });
        self.store_then_ack(self.service.demo_logs.clone(), lines, ack);
        Ok(())
    }

    /// Whether the demo is placed on this cluster; the list is re-read when an unknown id shows up, at most
    /// every few seconds.
    async fn runs_demo(&mut self, demo_id: Uuid) -> Result<bool, Status> {
        const RELOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(2);
        if !self.demos.contains(&demo_id)
            && self
                .demos_loaded_at
                .is_none_or(|at| at.elapsed() >= RELOAD_AFTER)
        {
            self.demos = self
                .service
                .store
                .demo_ids_on_cluster(self.cluster_id())
                .await
                .map_err(|e| store_failed("reading the cluster's demos", e))?
                .into_iter()
                .collect();
            self.demos_loaded_at = Some(std::time::Instant::now());
        }
        Ok(self.demos.contains(&demo_id))
    }

    /// Sends `ack` once the sink stored the lines. While ClickHouse is unavailable the lines are submitted again
    /// with backoff, for as long as this stream lasts: the agent keeps the batch until the ack, and its send
    /// window stops it from sending more, so an outage slows logs down without ending the stream (tasks keep
    /// flowing). A stream that ends first leaves the batch to be resent on the next one.
    fn store_then_ack<R: LogRow>(&self, sink: LogSink<R>, lines: Vec<R>, ack: Down) {
        const FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(500);
        const MAX_RETRY: std::time::Duration = std::time::Duration::from_secs(10);
        let tx = self.tx.clone();
        let cluster_id = self.cluster_id();
        tokio::spawn(async move {
            let mut retry = FIRST_RETRY;
            loop {
                let stored = sink.submit(cluster_id, lines.clone()).await;
                match stored.await {
                    Ok(Ok(())) => {
                        let _ = tx
                            .send(Box::new(Ok(ControlMessage { msg: Some(ack) })))
                            .await;
                        return;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, retry_in = ?retry, "log batch not stored yet; retrying");
                    }
                    Err(_) => tracing::debug!(retry_in = ?retry, "log writer gone; retrying"),
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        });
    }
}

fn ids(task_id: &str, lease_id: &str) -> Option<(Uuid, Uuid)> {
    match (Uuid::parse_str(task_id), Uuid::parse_str(lease_id)) {
        (Ok(task), Ok(lease)) => Some((task, lease)),
        _ => {
            tracing::warn!(
                task_id,
                lease_id,
                "agent quoted a malformed task or lease id"
            );
            None
        }
    }
}

/// The stored signed body goes out byte for byte; the JSON payload is not read. A task without one was queued
/// before tasks were signed (or written into the database by something other than the control plane).
fn assignment(task: &LeasedTask, trace_parent: Option<String>) -> Result<TaskAssignment, String> {
    let (Some(body), Some(signature), Some(key_id)) =
        (&task.body, &task.signature, &task.signing_key_id)
    else {
        return Err(
            "the task has no signature (queued before tasks were signed, or not created by the control plane); \
             agents run signed tasks only, so create it again"
                .into(),
        );
    };
    Ok(TaskAssignment {
        task_id: task.id.to_string(),
        lease_id: task.lease_id.to_string(),
        attempt: task.attempts.max(0) as u32,
        lease_expires_unix: task.lease_expires_at.timestamp(),
        reason: task.reason.clone(),
        body: body.clone(),
        signature: Some(TaskSignature {
            key_id: key_id.clone(),
            signature: signature.clone(),
        }),
        trace_parent: trace_parent.unwrap_or_default(),
    })
}

fn object_report(object: &ObjectResult) -> ObjectReport {
    use crate::domain::ObjectOutcome as Outcome;
    let outcome = match object.outcome() {
        ObjectOutcome::Unspecified => Outcome::Unspecified,
        ObjectOutcome::Applied => Outcome::Applied,
        ObjectOutcome::Unchanged => Outcome::Unchanged,
        ObjectOutcome::Failed => Outcome::Failed,
        ObjectOutcome::Ready => Outcome::Ready,
        ObjectOutcome::NotReady => Outcome::NotReady,
        ObjectOutcome::Deleted => Outcome::Deleted,
    };
    ObjectReport {
        document_index: object.document_index,
        api_version: object.api_version.clone(),
        kind: object.kind.clone(),
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        outcome,
        message: object.message.clone(),
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info | LogLevel::Unspecified => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}
