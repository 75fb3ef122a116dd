//! gRPC channels to the control plane over rustls: server-authenticated for bootstrap, mutual TLS afterwards.

use std::time::Duration;

use agent_protocol::agent_service_client::AgentServiceClient;
use thiserror::Error;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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
    connect(control_plane, tls).await
}

/// Connects with the agent's client certificate. Trusts the CA stored at bootstrap plus, when configured, the
/// install bundle's CA, so a control plane whose server certificate chains to either keeps working.
pub async fn connect_mutual(
    control_plane: &ControlPlane,
    credentials: &Credentials,
    install_ca_pem: Option<&str>,
) -> Result<AgentServiceClient<Channel>, TransportError> {
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

async fn connect(
    control_plane: &ControlPlane,
    tls: ClientTlsConfig,
) -> Result<AgentServiceClient<Channel>, TransportError> {
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
    // Log batches are most of the uplink and compress several times over; the server answers in kind.
    Ok(AgentServiceClient::new(channel)
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd))
}
