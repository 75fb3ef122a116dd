//! A minimal agent speaking the gRPC protocol directly, for tests that must misbehave on purpose and for
//! the swarm benchmark. The real agent is `node-agent`.

use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::agent_service_client::AgentServiceClient;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::{
    AgentMessage, BootstrapRequest, BootstrapResponse, ControlMessage, Heartbeat, Hello, Pong,
    RecoverRequest, RenewRequest,
};
use anyhow::Context;
use rcgen::{CertificateParams, KeyPair};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A key pair and the CSR for it (the subject is irrelevant: the server ignores it).
pub fn key_and_csr() -> anyhow::Result<(KeyPair, String)> {
    let key = KeyPair::generate()?;
    let csr = CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;
    Ok((key, csr))
}

/// A TLS channel to the agent service, pinned to `ca_pem`, with a client identity when given.
pub async fn channel(
    endpoint: &str,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> anyhow::Result<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Ok(Endpoint::from_shared(endpoint.to_string())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

/// Client credentials obtained through `Bootstrap`.
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
    pub response: BootstrapResponse,
}

pub async fn bootstrap(
    endpoint: &str,
    ca_pem: &str,
    token: &str,
) -> Result<Credentials, tonic::Status> {
    let channel = channel(endpoint, ca_pem, None)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let (key, csr_pem) = key_and_csr().map_err(|e| tonic::Status::internal(e.to_string()))?;
    let response = AgentServiceClient::new(channel)
        .bootstrap(BootstrapRequest {
            token: token.to_string(),
            csr_pem,
            agent_version: "raw-agent".into(),
        })
        .await?
        .into_inner();
    Ok(Credentials {
        cert_pem: response.certificate_pem.clone(),
        key_pem: key.serialize_pem(),
        response,
    })
}

/// Renews `credentials` over mTLS with a fresh key; the new credentials keep the bootstrap response.
pub async fn renew(
    endpoint: &str,
    ca_pem: &str,
    credentials: &Credentials,
) -> Result<Credentials, tonic::Status> {
    let channel = channel(
        endpoint,
        ca_pem,
        Some((&credentials.cert_pem, &credentials.key_pem)),
    )
    .await
    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let (key, csr_pem) = key_and_csr().map_err(|e| tonic::Status::internal(e.to_string()))?;
    let response = AgentServiceClient::new(channel)
        .renew(RenewRequest { csr_pem })
        .await?
        .into_inner();
    Ok(Credentials {
        cert_pem: response.certificate_pem,
        key_pem: key.serialize_pem(),
        response: credentials.response.clone(),
    })
}

/// Recovers the expired certificate of `credentials` over server-authenticated TLS, with a CSR signed by
/// `key_pem` (the certificate's own key, unless the test plays a thief).
pub async fn recover(
    endpoint: &str,
    ca_pem: &str,
    credentials: &Credentials,
    key_pem: &str,
) -> Result<Credentials, tonic::Status> {
    let channel = channel(endpoint, ca_pem, None)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let key = KeyPair::from_pem(key_pem).map_err(|e| tonic::Status::internal(e.to_string()))?;
    let csr_pem = CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.serialize_request(&key))
        .and_then(|csr| csr.pem())
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let response = AgentServiceClient::new(channel)
        .recover(RecoverRequest {
            expired_certificate_pem: credentials.cert_pem.clone(),
            csr_pem,
            agent_version: "raw-agent".into(),
        })
        .await?
        .into_inner();
    Ok(Credentials {
        cert_pem: response.certificate_pem,
        key_pem: key_pem.to_owned(),
        response: credentials.response.clone(),
    })
}

/// An open session: send with `tx`, receive with `rx`.
pub struct RawSession {
    pub tx: mpsc::Sender<AgentMessage>,
    pub rx: tonic::Streaming<ControlMessage>,
}

/// Opens a session and sends Hello; the first message received should be Welcome.
pub async fn open_session(
    channel: Channel,
    max_concurrent_tasks: u32,
) -> Result<RawSession, tonic::Status> {
    let (tx, rx) = mpsc::channel(64);
    tx.send(AgentMessage {
        msg: Some(agent_protocol::agent_message::Msg::Hello(Hello {
            agent_version: "raw-agent".into(),
            max_concurrent_tasks,
        })),
    })
    .await
    .map_err(|_| tonic::Status::internal("local channel closed"))?;
    let response = AgentServiceClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await?;
    Ok(RawSession {
        tx,
        rx: response.into_inner(),
    })
}

impl RawSession {
    /// The next message, or the status the stream ended with. Pings are answered with a Pong, as the agent
    /// does, and not returned.
    pub async fn next(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Result<ControlMessage, tonic::Status>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.rx.message())
                .await
                .context("no message in time")?
            {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(Err(tonic::Status::cancelled("stream ended"))),
                Err(status) => return Ok(Err(status)),
            };
            match message.msg {
                Some(Down::Ping(ping)) => {
                    self.send(Up::Pong(Pong { nonce: ping.nonce })).await?;
                }
                _ => return Ok(Ok(message)),
            }
        }
    }

    /// Heartbeats every 500 ms, as a live agent does (so the stream is not closed for silence), skipping what
    /// the server sends, until the stream ends; returns the status it ended with.
    pub async fn heartbeat_until_end(&mut self, within: Duration) -> anyhow::Result<tonic::Status> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            // A send fails once the server has ended the stream; its status is what the next read returns.
            let _ = self.send(Up::Heartbeat(Heartbeat::default())).await;
            if let Ok(Err(status)) = self.next(Duration::from_millis(500)).await {
                return Ok(status);
            }
        }
        anyhow::bail!("the stream was still open after {within:?}")
    }

    pub async fn send(&self, msg: agent_protocol::agent_message::Msg) -> anyhow::Result<()> {
        self.tx
            .send(AgentMessage { msg: Some(msg) })
            .await
            .map_err(|_| anyhow::anyhow!("session closed"))
    }
}
