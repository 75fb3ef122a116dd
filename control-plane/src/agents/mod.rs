//! The agent gRPC service: bootstrap, renewal and recovery of agent certificates, and the long-lived task session.

mod bootstrap;
mod dispatch;
mod group_commit;
pub mod handshakes;
mod identity;
pub mod install;
mod offline;
mod session;

use std::sync::Arc;
use std::time::Duration;

use agent_protocol::agent_service_server::{AgentService, AgentServiceServer};
use agent_protocol::{
    AgentMessage, BootstrapRequest, BootstrapResponse, RecoverRequest, RenewRequest, RenewResponse,
};
use tokio::sync::Semaphore;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status, Streaming};

pub use dispatch::Dispatcher;

use crate::logs::{DemoLogLine, LogSink, TaskLogLine};
use crate::metrics::Metrics;
use crate::pki::AgentCa;
use crate::store::Store;

/// Longest agent version string accepted (a semver with build metadata fits many times over).
const MAX_AGENT_VERSION_CHARS: usize = 64;

/// An agent's self-reported version is logged and stored: printable text of a bounded length only.
fn check_agent_version(version: &str) -> Result<(), Status> {
    if version.chars().count() > MAX_AGENT_VERSION_CHARS || version.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "agent_version must be at most {MAX_AGENT_VERSION_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// Settings of the agent service, taken from the config at start.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub certificate_ttl: Duration,
    /// How long a renewed certificate keeps working, for streams still open with it.
    pub renewal_overlap: Duration,
    /// How long after expiry a certificate may still be recovered with its key; zero turns recovery off.
    pub recovery_grace: Duration,
    pub heartbeat_interval: Duration,
    pub lease: Duration,
    /// How long a new stream may take to send its Hello.
    pub hello_timeout: Duration,
    /// This process's name, recorded on the sessions it holds.
    pub instance: String,
    /// The task-signing keys agents pin at bootstrap and update at renewal.
    pub task_keys: agent_protocol::SignedTaskKeySet,
    /// New streams doing their set-up in the database at once.
    pub concurrent_setups: usize,
}

#[derive(Clone)]
pub struct AgentGrpc {
    store: Store,
    ca: Arc<AgentCa>,
    dispatcher: Arc<Dispatcher>,
    logs: LogSink<TaskLogLine>,
    demo_logs: LogSink<DemoLogLine>,
    metrics: Metrics,
    settings: AgentSettings,
    setup_turns: Arc<Semaphore>,
    writes: group_commit::StreamWrites,
}

impl AgentGrpc {
    pub fn new(
        store: Store,
        ca: Arc<AgentCa>,
        dispatcher: Arc<Dispatcher>,
        logs: LogSink<TaskLogLine>,
        demo_logs: LogSink<DemoLogLine>,
        metrics: Metrics,
        settings: AgentSettings,
    ) -> Self {
        Self {
            writes: group_commit::StreamWrites::start(&store, settings.lease, &metrics),
            store,
            ca,
            dispatcher,
            logs,
            demo_logs,
            metrics,
            setup_turns: Arc::new(Semaphore::new(settings.concurrent_setups.max(1))),
            settings,
        }
    }

    pub fn into_server(self) -> AgentServiceServer<Self> {
        // Agents compress their uplink with zstd (log batches); older ones send plain messages, also accepted.
        AgentServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Zstd)
    }

    /// TLS for the agent port (see [`AgentCa::agent_port_tls`]).
    pub fn tls_config(
        &self,
        tls_names: &[String],
    ) -> Result<rustls::ServerConfig, crate::pki::PkiError> {
        self.ca.agent_port_tls(tls_names)
    }
}

#[tonic::async_trait]
impl AgentService for AgentGrpc {
    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        bootstrap::bootstrap(self, request).await
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        bootstrap::renew(self, request).await
    }

    async fn recover(
        &self,
        request: Request<RecoverRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        bootstrap::recover(self, request).await
    }

    type SessionStream = session::ControlStream;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        session::open(self, request).await
    }
}
