//! Test double of the control plane's agent service (TLS, bootstrap, renew, scripted sessions) for session tests.
//! It is not the real server: each test drives the session messages by hand.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::agent_service_server::{AgentService, AgentServiceServer};
use agent_protocol::signing::{SigningKey, sign_key_set};
use agent_protocol::{
    AgentMessage, BootstrapRequest, BootstrapResponse, ControlMessage, RecoverRequest,
    RenewRequest, RenewResponse,
};
use node_agent::config::{ENV_BOOTSTRAP_TOKEN, ENV_CA_PEM, RunArgs, Settings};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyPair,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

pub const GOOD_TOKEN: &str = "good-token";
pub const CLUSTER_ID: &str = "5f0c8a2e-1111-4222-8333-944455556666";

/// The key the double signs tasks with and hands out at bootstrap.
pub fn task_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_pem(&SigningKey::generate_pem()).unwrap())
}

/// The key a rotation introduces (see `Behaviour::rotate_task_key_on_renew`).
pub fn rotated_task_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_pem(&SigningKey::generate_pem()).unwrap())
}

/// How the double issues certificates and answers sessions.
pub struct Behaviour {
    /// Lifetime of issued certificates.
    pub lifetime: Duration,
    /// How long ago issued certificates start being valid (to put them straight into the renewal window).
    pub backdate: Duration,
    /// When set, every Session call is refused with this status.
    pub refuse_sessions: Option<Status>,
    /// Renewals hand out the key set of a rotation in progress: the rotated key and the bootstrap key, signed by
    /// both.
    pub rotate_task_key_on_renew: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(3600),
            backdate: Duration::ZERO,
            refuse_sessions: None,
            rotate_task_key_on_renew: false,
        }
    }
}

/// One Session call as the double saw it; the test reads the agent's messages and writes control messages.
pub struct SessionHandle {
    pub inbound: Streaming<AgentMessage>,
    pub outbound: mpsc::UnboundedSender<Result<ControlMessage, Status>>,
    /// DER of the client certificate the agent presented.
    pub client_cert: Vec<u8>,
}

impl SessionHandle {
    /// The next message from the agent, failing the test after 10 s.
    pub async fn next(&mut self) -> Up {
        let message = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("agent message within 10s")
            .expect("stream healthy")
            .expect("stream open");
        message.msg.expect("message has content")
    }

    /// The next message for which `pick` returns something, skipping others (heartbeats, log batches...).
    pub async fn next_matching<T>(&mut self, mut pick: impl FnMut(&Up) -> Option<T>) -> T {
        loop {
            let message = self.next().await;
            if let Some(found) = pick(&message) {
                return found;
            }
        }
    }

    pub fn send(&self, message: agent_protocol::control_message::Msg) {
        self.outbound
            .send(Ok(ControlMessage { msg: Some(message) }))
            .expect("session still open");
    }
}

struct State {
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
    behaviour: Mutex<Behaviour>,
    renewals: AtomicUsize,
    renewed_certificate_pem: Mutex<Option<String>>,
    session_calls: AtomicUsize,
    sessions: mpsc::UnboundedSender<SessionHandle>,
}

impl State {
    fn issue(&self, csr_pem: &str) -> Result<(String, i64), Status> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|err| Status::invalid_argument(format!("bad CSR: {err}")))?;
        let (lifetime, backdate) = {
            let behaviour = self.behaviour.lock().unwrap();
            (behaviour.lifetime, behaviour.backdate)
        };
        let now = time::OffsetDateTime::now_utc();
        csr.params.not_before = now - backdate;
        csr.params.not_after = now - backdate + lifetime;
        let mut subject = DistinguishedName::new();
        subject.push(
            DnType::CommonName,
            agent_protocol::agent_common_name(CLUSTER_ID),
        );
        subject.push(DnType::OrganizationName, agent_protocol::AGENT_ORGANISATION);
        csr.params.distinguished_name = subject;
        let cert = csr
            .signed_by(&self.ca)
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok((cert.pem(), csr.params.not_after.unix_timestamp()))
    }
}

struct Service(Arc<State>);

#[tonic::async_trait]
impl AgentService for Service {
    async fn bootstrap(
        &self,
        request: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        let request = request.into_inner();
        if request.token != GOOD_TOKEN {
            return Err(Status::unauthenticated(
                "bootstrap token is unknown or already used",
            ));
        }
        let (certificate_pem, not_after_unix) = self.0.issue(&request.csr_pem)?;
        Ok(Response::new(BootstrapResponse {
            certificate_pem,
            ca_pem: self.0.ca_pem.clone(),
            cluster_id: CLUSTER_ID.into(),
            not_after_unix,
            task_keys: Some(sign_key_set(&[task_key()])),
        }))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        if request.peer_certs().is_none_or(|certs| certs.is_empty()) {
            return Err(Status::unauthenticated("renew needs a client certificate"));
        }
        let (certificate_pem, not_after_unix) = self.0.issue(&request.into_inner().csr_pem)?;
        let task_keys = if self.0.behaviour.lock().unwrap().rotate_task_key_on_renew {
            sign_key_set(&[rotated_task_key(), task_key()])
        } else {
            sign_key_set(&[task_key()])
        };
        // Later certificates are issued outside the renewal window so the agent renews once.
        self.0.behaviour.lock().unwrap().backdate = Duration::ZERO;
        *self.0.renewed_certificate_pem.lock().unwrap() = Some(certificate_pem.clone());
        self.0.renewals.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(RenewResponse {
            certificate_pem,
            not_after_unix,
            task_keys: Some(task_keys),
        }))
    }

    /// Recovery is tested against the real control plane (tests/e2e); these tests never let a certificate expire.
    async fn recover(
        &self,
        _request: Request<RecoverRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        Err(Status::unimplemented(
            "the session tests' control plane does not recover certificates",
        ))
    }

    type SessionStream = UnboundedReceiverStream<Result<ControlMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        self.0.session_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(status) = &self.0.behaviour.lock().unwrap().refuse_sessions {
            return Err(status.clone());
        }
        let client_cert = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|cert| cert.as_ref().to_vec()))
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let (outbound, receiver) = mpsc::unbounded_channel();
        let handle = SessionHandle {
            inbound: request.into_inner(),
            outbound,
            client_cert,
        };
        self.0
            .sessions
            .send(handle)
            .map_err(|_| Status::unavailable("test over"))?;
        Ok(Response::new(UnboundedReceiverStream::new(receiver)))
    }
}

/// The running double.
pub struct FakeControlPlane {
    pub url: String,
    pub ca_pem: String,
    pub sessions: mpsc::UnboundedReceiver<SessionHandle>,
    state: Arc<State>,
}

impl FakeControlPlane {
    pub async fn start(behaviour: Behaviour) -> Self {
        node_agent::transport::install_crypto_provider();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fake control plane CA");
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let ca = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();

        let (sessions_sender, sessions) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            ca,
            ca_pem: ca_pem.clone(),
            behaviour: Mutex::new(behaviour),
            renewals: AtomicUsize::new(0),
            renewed_certificate_pem: Mutex::new(None),
            session_calls: AtomicUsize::new(0),
            sessions: sessions_sender,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                server_cert.pem(),
                server_key.serialize_pem(),
            ))
            .client_ca_root(Certificate::from_pem(&ca_pem))
            .client_auth_optional(true);
        let router = Server::builder().tls_config(tls).unwrap().add_service(
            // As the real server: agents send zstd.
            AgentServiceServer::new(Service(state.clone()))
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Zstd),
        );
        tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
        // The certificate names `localhost`; dialling the IP exercises the agent's --server-name.
        Self {
            url: format!("https://127.0.0.1:{port}"),
            ca_pem,
            sessions,
            state,
        }
    }

    /// The next Session call, failing the test after 20 s.
    pub async fn next_session(&mut self) -> SessionHandle {
        tokio::time::timeout(Duration::from_secs(20), self.sessions.recv())
            .await
            .expect("agent opened a session within 20s")
            .expect("double running")
    }

    pub fn renewals(&self) -> usize {
        self.state.renewals.load(Ordering::SeqCst)
    }

    /// The certificate the last renewal issued.
    pub fn renewed_certificate_pem(&self) -> Option<String> {
        self.state.renewed_certificate_pem.lock().unwrap().clone()
    }

    pub fn session_calls(&self) -> usize {
        self.state.session_calls.load(Ordering::SeqCst)
    }

    pub fn set_refuse_sessions(&self, status: Option<Status>) {
        self.state.behaviour.lock().unwrap().refuse_sessions = status;
    }

    /// Agent settings pointing at this double, with short timers so tests run quickly.
    pub fn agent_settings(&self, state_dir: &Path, token: Option<&str>) -> Settings {
        let args = RunArgs {
            control_plane: Some(self.url.clone()),
            server_name: Some("localhost".into()),
            state_dir: Some(state_dir.to_owned()),
            max_concurrent_tasks: Some(2),
            heartbeat: Some("1s".into()),
            log_flush_interval: Some("50ms".into()),
            backoff_initial: Some("100ms".into()),
            backoff_max: Some("500ms".into()),
            renew_check_interval: Some("1s".into()),
            ..RunArgs::default()
        };
        let ca_pem = self.ca_pem.clone();
        let token = token.map(str::to_owned);
        Settings::load(&args, |key| match key {
            ENV_CA_PEM => Some(ca_pem.clone()),
            ENV_BOOTSTRAP_TOKEN => token.clone(),
            _ => None,
        })
        .unwrap()
    }
}

/// A Kubernetes "API server" that accepts connections and never answers, so apply tasks hang until cancelled.
pub async fn silent_kube_client() -> kube::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    kube::Client::try_from(kube::Config::new(
        format!("http://{address}").parse().unwrap(),
    ))
    .unwrap()
}
