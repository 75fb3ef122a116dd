//! Enrolment with the control plane: the one-time `Bootstrap`, the periodic `Renew` of the client certificate,
//! and its `Recover` after it expired.

use std::time::Duration;

use agent_protocol::signing::PinnedKeys;
use agent_protocol::{BootstrapRequest, RecoverRequest, RenewRequest, RenewResponse};
use chrono::Utc;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use super::{BootstrapToken, CredentialStore, Credentials, IdentityError, KeyRequest, StoreError};
use crate::config::ControlPlane;
use crate::transport::{self, TransportError};

const RPC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum EnrolError {
    #[error(
        "no valid credentials in {store} and no bootstrap token: set --bootstrap-token-file or EDGEFLEET_BOOTSTRAP_TOKEN"
    )]
    NoToken { store: String },
    #[error(
        "no valid credentials in {store} and no install CA to pin for bootstrap: set --ca-file or EDGEFLEET_CA_PEM"
    )]
    NoInstallCa { store: String },
    #[error("the control plane rejected the bootstrap token ({code:?}): {message}")]
    TokenRejected { code: tonic::Code, message: String },
    #[error(
        "the control plane refused to {action} the certificate of cluster {cluster_id} ({code:?}): {message}"
    )]
    RenewRejected {
        /// `renew` or `recover`.
        action: &'static str,
        cluster_id: String,
        code: tonic::Code,
        message: String,
    },
    #[error("{call} call failed ({code:?}): {message}")]
    Rpc {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("{call} call timed out after {RPC_TIMEOUT:?}")]
    Timeout { call: &'static str },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the certificate returned by {call} is unusable: {source}")]
    BadCertificate {
        call: &'static str,
        #[source]
        source: IdentityError,
    },
    #[error(
        "{call} reported cluster {reported} but the certificate names cluster {in_certificate}"
    )]
    ClusterMismatch {
        call: &'static str,
        reported: String,
        in_certificate: String,
    },
    #[error("the task-signing keys returned by Bootstrap cannot be pinned: {0}")]
    TaskKeys(#[source] agent_protocol::signing::SignatureError),
    #[error(transparent)]
    KeyGeneration(IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EnrolError {
    /// Whether trying again later can succeed without an operator changing something.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rpc { .. } | Self::Timeout { .. } | Self::Transport(_) => true,
            Self::Store(err) => err.is_retryable(),
            _ => false,
        }
    }
}

/// Exchanges the one-time token and a CSR for a client certificate, over TLS that trusts only the install CA.
pub async fn bootstrap(
    control_plane: &ControlPlane,
    install_ca_pem: &str,
    token: &BootstrapToken,
) -> Result<Credentials, EnrolError> {
    let request = KeyRequest::generate(None).map_err(EnrolError::KeyGeneration)?;
    let mut client = transport::connect_pinned(control_plane, install_ca_pem).await?;
    let call = "Bootstrap";
    let response = tokio::time::timeout(
        RPC_TIMEOUT,
        client.bootstrap(BootstrapRequest {
            token: token.expose().to_owned(),
            csr_pem: request.csr_pem().to_owned(),
            agent_version: crate::AGENT_VERSION.to_owned(),
        }),
    )
    .await
    .map_err(|_| EnrolError::Timeout { call })?
    .map_err(|status| match status.code() {
        tonic::Code::Unauthenticated
        | tonic::Code::PermissionDenied
        | tonic::Code::InvalidArgument
        | tonic::Code::NotFound
        | tonic::Code::FailedPrecondition => EnrolError::TokenRejected {
            code: status.code(),
            message: status.message().to_owned(),
        },
        code => EnrolError::Rpc {
            call,
            code,
            message: status.message().to_owned(),
        },
    })?
    .into_inner();
    // The response's CA is the one that issues client certificates; fall back to the pinned install CA.
    let ca_pem = if response.ca_pem.trim().is_empty() {
        install_ca_pem.to_owned()
    } else {
        response.ca_pem
    };
    let task_keys =
        PinnedKeys::from_bootstrap(response.task_keys.as_ref()).map_err(EnrolError::TaskKeys)?;
    let credentials = request
        .into_credentials(response.certificate_pem, ca_pem, task_keys)
        .map_err(|source| EnrolError::BadCertificate { call, source })?;
    if !response.cluster_id.is_empty() && response.cluster_id != credentials.cluster_id() {
        return Err(EnrolError::ClusterMismatch {
            call,
            reported: response.cluster_id,
            in_certificate: credentials.cluster_id().to_owned(),
        });
    }
    Ok(credentials)
}

/// Gets a certificate for a fresh key pair, authenticating with the current (still valid) certificate.
pub async fn renew(
    control_plane: &ControlPlane,
    current: &Credentials,
    install_ca_pem: Option<&str>,
) -> Result<Credentials, EnrolError> {
    let request =
        KeyRequest::generate(Some(current.cluster_id())).map_err(EnrolError::KeyGeneration)?;
    let mut client = transport::connect_mutual(control_plane, current, install_ca_pem).await?;
    let call = "Renew";
    let response = tokio::time::timeout(
        RPC_TIMEOUT,
        client.renew(RenewRequest {
            csr_pem: request.csr_pem().to_owned(),
        }),
    )
    .await
    .map_err(|_| EnrolError::Timeout { call })?
    .map_err(|status| refusal("renew", current, call, &status))?
    .into_inner();
    replaced_credentials(call, current, request, response)
}

/// Gets a new certificate for the key of an expired one, over server-authenticated TLS (the expired certificate
/// would fail a mutual handshake), trusting the CA stored at bootstrap. The control plane accepts it within its
/// grace period, unless the certificate was revoked or the cluster deleted.
pub async fn recover(
    control_plane: &ControlPlane,
    expired: &Credentials,
) -> Result<Credentials, EnrolError> {
    let request = KeyRequest::reusing(expired).map_err(EnrolError::KeyGeneration)?;
    let mut client = transport::connect_pinned(control_plane, expired.ca_pem()).await?;
    let call = "Recover";
    let response = tokio::time::timeout(
        RPC_TIMEOUT,
        client.recover(RecoverRequest {
            expired_certificate_pem: expired.cert_pem().to_owned(),
            csr_pem: request.csr_pem().to_owned(),
            agent_version: crate::AGENT_VERSION.to_owned(),
        }),
    )
    .await
    .map_err(|_| EnrolError::Timeout { call })?
    .map_err(|status| refusal("recover", expired, call, &status))?
    .into_inner();
    replaced_credentials(call, expired, request, response)
}

fn refusal(
    action: &'static str,
    current: &Credentials,
    call: &'static str,
    status: &tonic::Status,
) -> EnrolError {
    match status.code() {
        tonic::Code::Unauthenticated
        | tonic::Code::PermissionDenied
        | tonic::Code::InvalidArgument => EnrolError::RenewRejected {
            action,
            cluster_id: current.cluster_id().to_owned(),
            code: status.code(),
            message: status.message().to_owned(),
        },
        code => EnrolError::Rpc {
            call,
            code,
            message: status.message().to_owned(),
        },
    }
}

/// The credentials a renewal or recovery returned, in place of `current`.
fn replaced_credentials(
    call: &'static str,
    current: &Credentials,
    request: KeyRequest,
    response: RenewResponse,
) -> Result<Credentials, EnrolError> {
    // A new key set is pinned only when a key this agent already trusts signed it; otherwise the certificate is
    // still replaced and the pinned keys stay, so tasks signed with them keep running.
    let task_keys = match current.task_keys().update(response.task_keys.as_ref()) {
        Ok(updated) => {
            if &updated != current.task_keys() {
                info!(task_keys = ?updated, "pinned the control plane's new task-signing keys");
            }
            updated
        }
        Err(error) => {
            error!(%error, pinned = ?current.task_keys(), "refused the task-signing keys sent with the new certificate");
            current.task_keys().clone()
        }
    };
    let replaced = request
        .into_credentials(
            response.certificate_pem,
            current.ca_pem().to_owned(),
            task_keys,
        )
        .map_err(|source| EnrolError::BadCertificate { call, source })?;
    if replaced.cluster_id() != current.cluster_id() {
        return Err(EnrolError::ClusterMismatch {
            call,
            reported: current.cluster_id().to_owned(),
            in_certificate: replaced.cluster_id().to_owned(),
        });
    }
    Ok(replaced)
}

/// Checks the certificate at start and every `check_every`; when renewal is due, renews (or, once the
/// certificate has expired, as after a long partition, recovers it with its key), stores the new credentials and
/// publishes them (the session reconnects with them).
pub async fn renewal_loop(
    control_plane: ControlPlane,
    install_ca_pem: Option<String>,
    store: CredentialStore,
    check_every: Duration,
    credentials: watch::Sender<Credentials>,
) {
    let mut ticker = tokio::time::interval(check_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = credentials.borrow().clone();
        let now = Utc::now();
        if !current.renewal_due_at(now) {
            continue;
        }
        let span = info_span!("renew_certificate", cluster = current.cluster_id(), not_after = %current.not_after());
        let expired = !current.is_valid_at(now);
        let attempt = async {
            let renewed = if expired {
                recover(&control_plane, &current).await?
            } else {
                renew(&control_plane, &current, install_ca_pem.as_deref()).await?
            };
            // Store before use: if storing fails the old certificate stays in use and the next check retries.
            store.save(&renewed).await?;
            Ok::<_, EnrolError>(renewed)
        };
        match attempt.instrument(span.clone()).await {
            Ok(renewed) => {
                span.in_scope(|| info!(not_after = %renewed.not_after(), "client certificate renewed; reconnecting"));
                credentials.send_replace(renewed);
            }
            Err(err) if expired && !err.is_retryable() => span.in_scope(|| {
                error!(
                    error = %err,
                    "client certificate has expired and the control plane refused to recover it; the agent needs a new bootstrap token"
                )
            }),
            Err(err) if expired => span.in_scope(|| warn!(error = %err, "expired client certificate not recovered yet; retrying at the next check")),
            Err(err) => span.in_scope(|| warn!(error = %err, "certificate renewal failed; retrying at the next check")),
        }
    }
}
