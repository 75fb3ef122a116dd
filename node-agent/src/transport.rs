//! gRPC channels to the control plane over rustls: server-authenticated for bootstrap, mutual TLS afterwards.

use std::time::Duration;

use agent_protocol::agent_service_client::AgentServiceClient;
use agent_protocol::agent_service_server::SERVICE_NAME;
use agent_protocol::{AgentMessage, ControlMessage};
use bytes::BufMut;
use futures::Stream;
use thiserror::Error;
use tonic::codec::{Codec, CompressionEncoding, EncodeBuf, Encoder, Streaming};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_prost::ProstDecoder;

use crate::config::ControlPlane;
use crate::error::error_chain;
use crate::identity::Credentials;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
// Pings detect a silently dropped connection (NAT timeouts between regions) long before TCP would.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("control plane endpoint {url}: {source}")]
    Endpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to control plane {url}: {detail}")]
    Connect { url: String, detail: String },
}

/// Installs ring as the process-wide rustls provider; kube's TLS stack asks for the default provider, which is
/// ambiguous when another crate in the build enables a second provider. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Connects with server authentication only, trusting nothing but `ca_pem` (the install bundle's CA).
pub async fn connect_pinned(
    control_plane: &ControlPlane,
    ca_pem: &str,
) -> Result<AgentServiceClient<Channel>, TransportError> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    Ok(compressed(AgentServiceClient::new(
        connect(control_plane, tls).await?,
    )))
}

/// Connects with the agent's client certificate. Trusts the CA stored at bootstrap plus, when configured, the
/// install bundle's CA, so a control plane whose server certificate chains to either keeps working.
pub async fn connect_mutual(
    control_plane: &ControlPlane,
    credentials: &Credentials,
    install_ca_pem: Option<&str>,
) -> Result<AgentServiceClient<Channel>, TransportError> {
    let channel = connect_mutual_channel(control_plane, credentials, install_ca_pem).await?;
    Ok(compressed(AgentServiceClient::new(channel)))
}

/// Connects like [`connect_mutual`] for the session stream, whose uplink carries stored log batches as they are.
pub async fn connect_session(
    control_plane: &ControlPlane,
    credentials: &Credentials,
    install_ca_pem: Option<&str>,
) -> Result<SessionClient, TransportError> {
    let channel = connect_mutual_channel(control_plane, credentials, install_ca_pem).await?;
    let grpc = tonic::client::Grpc::new(channel)
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd);
    Ok(SessionClient(grpc))
}

async fn connect_mutual_channel(
    control_plane: &ControlPlane,
    credentials: &Credentials,
    install_ca_pem: Option<&str>,
) -> Result<Channel, TransportError> {
    let roots = std::iter::once(credentials.ca_pem())
        .chain(install_ca_pem)
        .filter(|pem| !pem.trim().is_empty())
        .map(Certificate::from_pem);
    let tls = ClientTlsConfig::new()
        .ca_certificates(roots)
        .identity(Identity::from_pem(
            credentials.cert_pem(),
            credentials.key_pem(),
        ));
    connect(control_plane, tls).await
}

/// What the agent sends up the session stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Uplink {
    Message(AgentMessage),
    /// An `AgentMessage` already encoded: a log batch as the disk buffer stores it, sent without being decoded
    /// and encoded again (at 100,000 lines/s that round trip was a tenth of the agent's CPU).
    Encoded(Vec<u8>),
}

/// The generated client's `session` call with an encoder that also takes encoded messages.
pub struct SessionClient(tonic::client::Grpc<Channel>);

impl SessionClient {
    pub async fn open(
        &mut self,
        uplink: impl Stream<Item = Uplink> + Send + 'static,
    ) -> Result<tonic::Response<Streaming<ControlMessage>>, tonic::Status> {
        self.0.ready().await.map_err(|err| {
            tonic::Status::unavailable(format!("control plane connection not ready: {err}"))
        })?;
        let path = http::uri::PathAndQuery::try_from(format!("/{SERVICE_NAME}/Session"))
            .map_err(|err| tonic::Status::internal(format!("session path: {err}")))?;
        let mut request = tonic::Request::new(uplink);
        request
            .extensions_mut()
            .insert(tonic::GrpcMethod::new(SERVICE_NAME, "Session"));
        self.0.streaming(request, path, UplinkCodec).await
    }
}

struct UplinkCodec;

impl Codec for UplinkCodec {
    type Encode = Uplink;
    type Decode = ControlMessage;
    type Encoder = UplinkEncoder;
    type Decoder = ProstDecoder<ControlMessage>;

    fn encoder(&mut self) -> UplinkEncoder {
        UplinkEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

struct UplinkEncoder;

impl Encoder for UplinkEncoder {
    type Item = Uplink;
    type Error = tonic::Status;

    fn encode(&mut self, item: Uplink, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        match item {
            Uplink::Message(message) => prost::Message::encode(&message, buf)
                .map_err(|err| tonic::Status::internal(format!("cannot encode: {err}"))),
            Uplink::Encoded(bytes) => {
                buf.put_slice(&bytes);
                Ok(())
            }
        }
    }
}

async fn connect(
    control_plane: &ControlPlane,
    tls: ClientTlsConfig,
) -> Result<Channel, TransportError> {
    let url = &control_plane.url;
    let endpoint_error = |source| TransportError::Endpoint {
        url: url.clone(),
        source,
    };
    let tls = match &control_plane.server_name {
        Some(name) => tls.domain_name(name.clone()),
        None => tls,
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(endpoint_error)?
        .tls_config(tls)
        .map_err(endpoint_error)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|err| TransportError::Connect {
            url: url.clone(),
            detail: error_chain(&err),
        })?;
    Ok(channel)
}

// Log batches are most of the uplink and compress several times over; the server answers in kind.
fn compressed(client: AgentServiceClient<Channel>) -> AgentServiceClient<Channel> {
    client
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd)
}
