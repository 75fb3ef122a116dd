//! The session with the control plane: one bidi stream at a time, reconnected with backoff, carrying tasks down and
//! heartbeats, progress, results and log batches up. Tasks, results and logs outlive any one stream.

mod backoff;
mod outbox;

pub use backoff::Backoff;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{
    AgentMessage, ControlMessage, Heartbeat, Hello, LogBatch, LogLine, OfflineReport, PodLogBatch,
    PodLogLine, Pong, TaskAccepted, TaskLease, TaskResult, Welcome,
};
use chrono::Utc;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::apply::Applier;
use crate::cluster::ClusterStatus;
use crate::config::{ControlPlane, Settings};
use crate::desired::DesiredState;
use crate::desired::offline::OfflineJournal;
use crate::identity::Credentials;
use crate::logbuffer::{Batch, LogBuffer, LogSettings, Sealed};
use crate::podlogs::configured::ConfiguredSelection;
use crate::podlogs::positions::SharedPositions;
use crate::runner::{Started, TaskEvent, TaskRunner};
use crate::tasklog::TaskLog;
use crate::transport::{self, TransportError, Uplink};
use outbox::ResultOutbox;

const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Used when the server's `Welcome` names no interval and none is configured.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
// A session that got its Welcome and lasted this long counts as healthy and resets the backoff; shorter ones do
// not, so a server that accepts and immediately drops the stream is not hammered.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Connect(#[from] TransportError),
    #[error("opening the session failed ({code:?}): {message}")]
    Open { code: tonic::Code, message: String },
    #[error("no Welcome from the control plane within {WELCOME_TIMEOUT:?}")]
    NoWelcome,
    #[error("the control plane sent {0} before Welcome")]
    UnexpectedFirstMessage(&'static str),
    #[error("the stream failed ({code:?}): {message}")]
    Stream { code: tonic::Code, message: String },
    #[error("the control plane closed the stream")]
    Closed,
    #[error(
        "nothing from the control plane for {0:?} (three heartbeat intervals); the link is presumed down"
    )]
    Silent(Duration),
}

impl SessionError {
    /// The server says the certificate's cluster no longer exists or the certificate was revoked.
    fn identity_rejected(&self) -> bool {
        match self {
            Self::Open { code, .. } | Self::Stream { code, .. } => {
                matches!(
                    code,
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                )
            }
            _ => false,
        }
    }
}

/// How one stream ended.
enum Ending {
    /// The certificate was renewed: reconnect at once with the new one.
    Renewed,
    Failed(SessionError),
}

/// Sends on the current stream; a send fails only once the stream is gone, which the inbound side reports.
struct Link(mpsc::UnboundedSender<Uplink>);

impl Link {
    fn send(&self, msg: Up) {
        let _ = self
            .0
            .send(Uplink::Message(AgentMessage { msg: Some(msg) }));
    }

    fn send_encoded(&self, message: Vec<u8>) {
        let _ = self.0.send(Uplink::Encoded(message));
    }
}

/// Settings the session uses, taken from [`Settings`].
struct SessionSettings {
    control_plane: ControlPlane,
    install_ca_pem: Option<String>,
    max_concurrent_tasks: u32,
    heartbeat_override: Option<Duration>,
    logs: LogSettings,
}

/// The disk-backed log buffers the agent opened at start, and the pod log positions saved with them.
pub struct LogBuffers {
    pub task: LogBuffer<LogBatch>,
    pub pod: LogBuffer<PodLogBatch>,
    pub positions: SharedPositions,
    /// What the control plane chose to collect, saved with them.
    pub selection: ConfiguredSelection,
}

/// Owns everything that must survive a reconnect: running tasks, unacknowledged results and log batches.
pub struct Session {
    settings: SessionSettings,
    credentials: watch::Receiver<Credentials>,
    credentials_live: bool,
    cluster: watch::Receiver<ClusterStatus>,
    runner: TaskRunner,
    task_events: mpsc::UnboundedReceiver<TaskEvent>,
    log_lines: mpsc::UnboundedReceiver<LogLine>,
    pod_log_lines: mpsc::Receiver<PodLogLine>,
    agent_log: TaskLog,
    /// The number of the next task log line this process buffers.
    next_task_log_seq: u64,
    outbox: ResultOutbox,
    logs: LogBuffer<LogBatch>,
    pod_logs: LogBuffer<PodLogBatch>,
    positions: SharedPositions,
    log_selection: ConfiguredSelection,
    backoff: Backoff,
    /// Whether a stream is established, for what the agent does while offline.
    online: watch::Sender<bool>,
    /// Reports of what the agent did while offline, from `desired::offline`; kept until acknowledged.
    offline_reports: mpsc::UnboundedReceiver<OfflineReport>,
    offline_reporter: mpsc::UnboundedSender<OfflineReport>,
    unacknowledged_reports: Vec<OfflineReport>,
    /// Where reports wait on disk until acknowledged (see `desired::offline`).
    offline_journal: OfflineJournal,
}

impl Session {
    pub fn new(
        settings: &Settings,
        credentials: watch::Receiver<Credentials>,
        cluster: watch::Receiver<ClusterStatus>,
        applier: Arc<Applier>,
        desired: Arc<DesiredState>,
        pod_log_lines: mpsc::Receiver<PodLogLine>,
        buffers: LogBuffers,
    ) -> Self {
        let (event_sender, task_events) = mpsc::unbounded_channel();
        let (offline_reporter, offline_reports) = mpsc::unbounded_channel();
        let (log_sender, log_lines) = mpsc::unbounded_channel();
        let cluster_id = credentials.borrow().cluster_id().to_owned();
        Self {
            settings: SessionSettings {
                control_plane: settings.control_plane.clone(),
                install_ca_pem: settings.install_ca_pem.clone(),
                max_concurrent_tasks: settings.max_concurrent_tasks,
                heartbeat_override: settings.heartbeat_override,
                logs: settings.logs.clone(),
            },
            credentials,
            credentials_live: true,
            cluster,
            runner: TaskRunner::new(
                applier,
                desired,
                settings.max_concurrent_tasks,
                event_sender,
                log_sender.clone(),
                cluster_id,
            ),
            task_events,
            log_lines,
            pod_log_lines,
            agent_log: TaskLog::new("", log_sender),
            next_task_log_seq: 0,
            outbox: ResultOutbox::default(),
            logs: buffers.task,
            pod_logs: buffers.pod,
            positions: buffers.positions,
            log_selection: buffers.selection,
            backoff: Backoff::new(settings.backoff),
            online: watch::channel(false).0,
            offline_reports,
            offline_reporter,
            unacknowledged_reports: Vec::new(),
            offline_journal: OfflineJournal::new(settings.logs.buffer_dir.join("offline-reports")),
        }
    }

    /// True while a stream with the control plane is established.
    pub fn online(&self) -> watch::Receiver<bool> {
        self.online.subscribe()
    }

    /// Where reports of what the agent did while offline go, to be sent once a stream is up.
    pub fn offline_reporter(&self) -> mpsc::UnboundedSender<OfflineReport> {
        self.offline_reporter.clone()
    }

    /// Where those reports are kept on disk until the control plane acknowledges them.
    pub fn offline_journal(&self) -> OfflineJournal {
        self.offline_journal.clone()
    }

    /// Keeps a session open for as long as the agent runs.
    pub async fn run(mut self) -> Infallible {
        let mut previous_end: Option<String> = None;
        loop {
            let credentials = self.credentials.borrow_and_update().clone();
            let span = info_span!(
                "session",
                cluster = credentials.cluster_id(),
                control_plane = %self.settings.control_plane.url,
            );
            let (welcomed_at, ending) = self
                .serve(credentials, previous_end.as_deref())
                .instrument(span.clone())
                .await;
            self.online.send_replace(false);
            if welcomed_at.is_some() {
                previous_end = None;
            }
            let err = match ending {
                Ending::Renewed => {
                    span.in_scope(|| info!("reconnecting with the renewed certificate"));
                    self.backoff.reset();
                    continue;
                }
                Ending::Failed(err) => err,
            };
            if welcomed_at.is_some_and(|at| at.elapsed() >= HEALTHY_SESSION) {
                self.backoff.reset();
            }
            let delay = self.backoff.next_delay();
            span.in_scope(|| {
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                if err.identity_rejected() {
                    error!(
                        error = %err,
                        delay_ms,
                        "the control plane rejected this agent's identity (cluster deleted or certificate revoked); \
                         retrying with backoff"
                    );
                } else {
                    warn!(error = %err, delay_ms, "session with the control plane ended; reconnecting after backoff");
                }
            });
            // Keep the reason the last healthy session ended, not the failed attempts since.
            previous_end.get_or_insert_with(|| err.to_string());
            self.idle(delay).await;
        }
    }

    /// Runs one stream until it ends; returns when the Welcome arrived (if it did) and why it ended.
    async fn serve(
        &mut self,
        credentials: Credentials,
        previous_end: Option<&str>,
    ) -> (Option<Instant>, Ending) {
        let connected = transport::connect_session(
            &self.settings.control_plane,
            &credentials,
            self.settings.install_ca_pem.as_deref(),
        )
        .await;
        let mut client = match connected {
            Ok(client) => client,
            Err(err) => return (None, Ending::Failed(err.into())),
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let link = Link(sender);
        link.send(Up::Hello(Hello {
            agent_version: crate::AGENT_VERSION.to_owned(),
            max_concurrent_tasks: self.settings.max_concurrent_tasks,
        }));
        // Whatever the previous stream did not get acknowledged goes first, right after Hello.
        for result in self.outbox.iter() {
            link.send(Up::Result(result.clone()));
        }
        self.logs.rewind();
        self.pod_logs.rewind();
        self.send_log_batches(&link);
        // The call returns once the server sends response headers; a server that never does must not hang us.
        let opened = tokio::time::timeout(
            WELCOME_TIMEOUT,
            client.open(UnboundedReceiverStream::new(receiver)),
        )
        .await;
        let mut inbound = match opened {
            Err(_) => return (None, Ending::Failed(SessionError::NoWelcome)),
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                let err = SessionError::Open {
                    code: status.code(),
                    message: status.message().to_owned(),
                };
                return (None, Ending::Failed(err));
            }
        };

        let welcome_deadline = tokio::time::sleep(WELCOME_TIMEOUT);
        tokio::pin!(welcome_deadline);
        let mut welcomed_at: Option<Instant> = None;
        let mut heartbeat: Option<Interval> = None;
        // A partition stalls TCP instead of closing it; the control plane answers every heartbeat with a Ping, so
        // once it has pinged, three intervals without a message mean the link is down.
        let mut last_heard = Instant::now();
        let mut pinged = false;
        let mut silence_limit = Duration::MAX;
        let mut flush = flush_timer(&self.settings.logs);
        loop {
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        if welcomed_at.is_none() {
                            let interval = match self.on_first_message(message, &credentials) {
                                Ok(interval) => interval,
                                Err(err) => return (None, Ending::Failed(err)),
                            };
                            welcomed_at = Some(Instant::now());
                            heartbeat = Some(heartbeat_timer(interval));
                            silence_limit = 3 * interval;
                            self.online.send_replace(true);
                            for report in &self.unacknowledged_reports {
                                link.send(Up::OfflineReport(report.clone()));
                            }
                            if let Some(previous_end) = &previous_end {
                                self.agent_log.info(
                                    "session with the control plane re-established",
                                    &[("previous_end", (*previous_end).to_owned())],
                                );
                            }
                        } else {
                            pinged |= matches!(message.msg, Some(Down::Ping(_)));
                            self.on_control(message, &link);
                        }
                        last_heard = Instant::now();
                    }
                    Ok(None) => return (welcomed_at, Ending::Failed(SessionError::Closed)),
                    Err(status) => {
                        let err = SessionError::Stream { code: status.code(), message: status.message().to_owned() };
                        return (welcomed_at, Ending::Failed(err));
                    }
                },
                Some(event) = self.task_events.recv() => self.on_task_event(event, Some(&link)),
                Some(line) = self.log_lines.recv(), if self.logs.accepting() => {
                    self.on_log_line(line);
                    self.send_log_batches(&link);
                }
                Some(line) = self.pod_log_lines.recv(), if self.pod_logs.accepting() => {
                    self.on_pod_log_line(line);
                    self.send_log_batches(&link);
                }
                _ = flush.tick() => {
                    self.flush_logs();
                    self.send_log_batches(&link);
                }
                () = next_tick(&mut heartbeat) => {
                    if pinged && last_heard.elapsed() > silence_limit {
                        return (welcomed_at, Ending::Failed(SessionError::Silent(last_heard.elapsed())));
                    }
                    self.send_heartbeat(&link);
                }
                Some(report) = self.offline_reports.recv() => {
                    link.send(Up::OfflineReport(report.clone()));
                    self.unacknowledged_reports.push(report);
                }
                () = &mut welcome_deadline, if welcomed_at.is_none() => {
                    return (None, Ending::Failed(SessionError::NoWelcome));
                }
                changed = self.credentials.changed(), if self.credentials_live => match changed {
                    Ok(()) => return (welcomed_at, Ending::Renewed),
                    // Renewal has stopped; keep the current certificate for as long as it works.
                    Err(_) => self.credentials_live = false,
                },
            }
        }
    }

    /// Between streams: keep collecting results and log lines so nothing is lost while disconnected.
    async fn idle(&mut self, delay: Duration) {
        let until = tokio::time::sleep(delay);
        tokio::pin!(until);
        let mut flush = flush_timer(&self.settings.logs);
        loop {
            tokio::select! {
                () = &mut until => return,
                Some(event) = self.task_events.recv() => self.on_task_event(event, None),
                Some(line) = self.log_lines.recv(), if self.logs.accepting() => self.on_log_line(line),
                Some(line) = self.pod_log_lines.recv(), if self.pod_logs.accepting() => {
                    self.on_pod_log_line(line);
                }
                _ = flush.tick() => self.flush_logs(),
                Some(report) = self.offline_reports.recv() => self.unacknowledged_reports.push(report),
            }
        }
    }

    /// The first message must be Welcome; returns the heartbeat interval to use.
    fn on_first_message(
        &self,
        message: ControlMessage,
        credentials: &Credentials,
    ) -> Result<Duration, SessionError> {
        let welcome: Welcome = match message.msg {
            Some(Down::Welcome(welcome)) => welcome,
            other => {
                return Err(SessionError::UnexpectedFirstMessage(message_name(
                    other.as_ref(),
                )));
            }
        };
        if welcome.cluster_id != credentials.cluster_id() {
            warn!(
                server_says = %welcome.cluster_id,
                "Welcome names a different cluster than the certificate; the certificate is authoritative"
            );
        }
        let server_interval = Some(Duration::from_secs(
            welcome.heartbeat_interval_seconds.into(),
        ))
        .filter(|interval| !interval.is_zero());
        let interval = self
            .settings
            .heartbeat_override
            .or(server_interval)
            .unwrap_or(DEFAULT_HEARTBEAT);
        info!(
            heartbeat_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            resent_results = self.outbox.iter().count(),
            resent_log_batches = self.logs.unacked_batches(),
            dropped_log_lines = self.logs.dropped_lines(),
            resent_pod_log_batches = self.pod_logs.unacked_batches(),
            dropped_pod_log_lines = self.pod_logs.dropped_lines(),
            pod_log_buffer_bytes = self.pod_logs.disk_bytes(),
            "session established"
        );
        Ok(interval)
    }

    fn on_control(&mut self, message: ControlMessage, link: &Link) {
        match message.msg {
            Some(Down::Task(assignment)) => {
                let (task_id, lease_id) = (assignment.task_id.clone(), assignment.lease_id.clone());
                if self.outbox.contains(&task_id, &lease_id) {
                    debug!(%task_id, %lease_id, "assignment redelivered while its result awaits an ack; ignored");
                    return;
                }
                let task_keys = self.credentials.borrow().task_keys().clone();
                match self.runner.start(assignment, task_keys) {
                    Started::Duplicate => {
                        debug!(%task_id, %lease_id, "duplicate assignment for a running task; ignored");
                        return;
                    }
                    Started::Superseded { old_lease_id } => {
                        info!(%task_id, %lease_id, %old_lease_id, "task re-leased; restarted under the new lease");
                    }
                    Started::New => {}
                }
                let dropped = self.outbox.discard_stale(&task_id, &lease_id);
                if dropped > 0 {
                    debug!(%task_id, dropped, "dropped unacknowledged results of older leases");
                }
                link.send(Up::Accepted(TaskAccepted { task_id, lease_id }));
            }
            Some(Down::Cancel(cancel)) => {
                match self.runner.cancel(&cancel.task_id, &cancel.lease_id) {
                    Some(result) => self.record_result(result, Some(link)),
                    None => debug!(
                        task_id = %cancel.task_id,
                        lease_id = %cancel.lease_id,
                        "cancel for a task not running under that lease; ignored"
                    ),
                }
            }
            Some(Down::LogAck(ack)) => {
                if !self.logs.ack(ack.batch_id) {
                    debug!(
                        batch_id = ack.batch_id,
                        "ack for a log batch no longer buffered"
                    );
                }
                // The ack may have made room for a batch that waited for disk space.
                if !self.logs.accepting() {
                    self.seal_task_logs();
                }
                self.send_log_batches(link);
            }
            Some(Down::PodLogAck(ack)) => {
                if !self.pod_logs.ack(ack.batch_id) {
                    debug!(
                        batch_id = ack.batch_id,
                        "ack for a pod log batch no longer buffered"
                    );
                }
                if !self.pod_logs.accepting() {
                    self.seal_pod_logs();
                }
                self.send_log_batches(link);
            }
            Some(Down::ResultAck(ack)) => {
                if !self.outbox.ack(&ack.task_id, &ack.lease_id) {
                    debug!(task_id = %ack.task_id, lease_id = %ack.lease_id, "ack for a result no longer buffered");
                }
            }
            Some(Down::Ping(ping)) => link.send(Up::Pong(Pong { nonce: ping.nonce })),
            Some(Down::OfflineReportAck(ack)) => {
                self.unacknowledged_reports
                    .retain(|report| report.id != ack.id);
                self.offline_journal.remove(&ack.id);
            }
            Some(Down::LogSelection(selection)) => self.log_selection.set(selection),
            Some(Down::Welcome(_)) => debug!("repeated Welcome ignored"),
            None => debug!("empty control message ignored"),
        }
    }

    fn on_task_event(&mut self, event: TaskEvent, link: Option<&Link>) {
        match event {
            TaskEvent::Progress(progress) => {
                // Progress is advisory: it is not buffered while disconnected, the result carries every object.
                if let Some(link) = link.filter(|_| {
                    self.runner
                        .is_current(&progress.task_id, &progress.lease_id)
                }) {
                    link.send(Up::Progress(progress));
                }
            }
            TaskEvent::Finished(result) => {
                if self.runner.finish(&result.task_id, &result.lease_id) {
                    self.record_result(result, link);
                }
            }
        }
    }

    /// Keeps the result until its ack, and sends it now if a stream is open.
    fn record_result(&mut self, result: TaskResult, link: Option<&Link>) {
        self.outbox.push(result.clone());
        if let Some(link) = link {
            link.send(Up::Result(result));
        }
    }

    /// Numbers the line as it enters the buffer: the one place every task log line passes, in order.
    fn on_log_line(&mut self, mut line: LogLine) {
        line.source_id = crate::instance_id().to_owned();
        line.seq = self.next_task_log_seq;
        self.next_task_log_seq += 1;
        let sealed = self.logs.push(line);
        self.after_task_log_seal(sealed);
    }

    fn on_pod_log_line(&mut self, line: PodLogLine) {
        let sealed = self.pod_logs.push(line);
        self.after_pod_log_seal(sealed);
    }

    fn flush_logs(&mut self) {
        self.seal_task_logs();
        self.seal_pod_logs();
        if let Err(err) = self.positions.save(Utc::now().timestamp()) {
            error!(error = %err, "cannot save pod log positions; a restart would read more lines again");
        }
    }

    fn seal_task_logs(&mut self) {
        let sealed = self.logs.seal();
        self.after_task_log_seal(sealed);
    }

    fn seal_pod_logs(&mut self) {
        let sealed = self.pod_logs.seal();
        self.after_pod_log_seal(sealed);
    }

    fn after_task_log_seal(&mut self, sealed: Sealed<LogBatch>) {
        if let Sealed::Written { appended, .. } = sealed {
            self.report_dropped::<LogBatch>(appended.dropped_lines, self.logs.dropped_lines());
        }
    }

    /// A pod batch on disk moves the positions its followers would resume from after a restart.
    fn after_pod_log_seal(&mut self, sealed: Sealed<PodLogBatch>) {
        if let Sealed::Written { batch, appended } = sealed {
            self.positions.advance(&batch.lines, Utc::now().timestamp());
            self.report_dropped::<PodLogBatch>(
                appended.dropped_lines,
                self.pod_logs.dropped_lines(),
            );
        }
    }

    /// A `logs_dropped` event in the agent's log, which the console shows with the cluster.
    fn report_dropped<B: Batch>(&self, dropped: u64, dropped_total: u64) {
        if dropped > 0 {
            self.agent_log.warn(
                "logs_dropped: the log buffer was full and its oldest lines were deleted unsent",
                &[
                    ("buffer", B::WHAT.to_owned()),
                    ("lines", dropped.to_string()),
                    ("lines_total", dropped_total.to_string()),
                ],
            );
        }
    }

    /// Sends batches from the disk buffers while the window allows.
    fn send_log_batches(&mut self, link: &Link) {
        while let Some(message) = self.logs.next_to_send() {
            link.send_encoded(message);
        }
        while let Some(message) = self.pod_logs.next_to_send() {
            link.send_encoded(message);
        }
    }

    fn send_heartbeat(&self, link: &Link) {
        let status = self.cluster.borrow().clone();
        let mut running: Vec<TaskLease> =
            self.runner.leases().chain(self.outbox.leases()).collect();
        running.sort_by(|a, b| (&a.task_id, &a.lease_id).cmp(&(&b.task_id, &b.lease_id)));
        running.dedup();
        link.send(Up::Heartbeat(Heartbeat {
            agent_version: crate::AGENT_VERSION.to_owned(),
            kubernetes_version: status.kubernetes_version,
            node_count: status.node_count,
            running,
            kubernetes_reachable: status.reachable,
            kubernetes_error: status.error,
        }));
    }
}

fn flush_timer(settings: &LogSettings) -> Interval {
    let mut timer = tokio::time::interval(settings.flush_interval);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

fn heartbeat_timer(interval: Duration) -> Interval {
    // The first tick fires at once, so the server learns the running leases right after Welcome.
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

async fn next_tick(timer: &mut Option<Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn message_name(message: Option<&Down>) -> &'static str {
    match message {
        Some(Down::Welcome(_)) => "Welcome",
        Some(Down::Task(_)) => "TaskAssignment",
        Some(Down::Cancel(_)) => "TaskCancel",
        Some(Down::LogAck(_)) => "LogBatchAck",
        Some(Down::ResultAck(_)) => "ResultAck",
        Some(Down::PodLogAck(_)) => "PodLogBatchAck",
        Some(Down::Ping(_)) => "Ping",
        Some(Down::LogSelection(_)) => "LogSelection",
        Some(Down::OfflineReportAck(_)) => "OfflineReportAck",
        None => "an empty message",
    }
}
