//! `Bootstrap` (one-time token + CSR -> client certificate), `Renew` (certificate -> new certificate) and
//! `Recover` (expired certificate + CSR for its key -> new certificate).

use agent_protocol::{
    BootstrapRequest, BootstrapResponse, RecoverRequest, RenewRequest, RenewResponse,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::AgentGrpc;
use super::identity::{internal, store_failed};
use crate::crypto::{BOOTSTRAP_TOKEN_PREFIX, sha256_hex};
use crate::pki::{IssuedCertificate, PkiError};
use crate::store::{BootstrapRedemption, Issuance, NewCertificate};

pub(super) async fn bootstrap(
    service: &AgentGrpc,
    request: Request<BootstrapRequest>,
) -> Result<Response<BootstrapResponse>, Status> {
    let request = request.into_inner();
    if !request.token.starts_with(BOOTSTRAP_TOKEN_PREFIX) {
        service.metrics.reject("bad_token");
        return Err(Status::unauthenticated(format!(
            "bootstrap token is malformed (it starts with {BOOTSTRAP_TOKEN_PREFIX:?})"
        )));
    }
    // Check the CSR and version before spending the token, so a broken agent does not burn it.
    crate::pki::check_csr(&request.csr_pem).map_err(csr_status)?;
    super::check_agent_version(&request.agent_version)?;
    let redemption = service
        .store
        .redeem_bootstrap_token(&sha256_hex(&request.token))
        .await
        .map_err(|e| store_failed("redeeming the bootstrap token", e))?;
    let cluster_id = match redemption {
        BootstrapRedemption::Redeemed { cluster_id } => cluster_id,
        refused => {
            let (reason, status) = match refused {
                BootstrapRedemption::Unknown => (
                    "bad_token",
                    Status::unauthenticated("bootstrap token is not valid"),
                ),
                BootstrapRedemption::AlreadyUsed => (
                    "token_reused",
                    Status::unauthenticated(
                        "bootstrap token was already used; create a new one for this cluster",
                    ),
                ),
                BootstrapRedemption::Expired => (
                    "token_expired",
                    Status::unauthenticated(
                        "bootstrap token has expired; create a new one for this cluster",
                    ),
                ),
                _ => (
                    "cluster_deleted",
                    Status::permission_denied("the token's cluster was deleted"),
                ),
            };
            service.metrics.reject(reason);
            return Err(status);
        }
    };
    let issued = issue(service, &request.csr_pem, cluster_id, Issuance::Bootstrap).await?;
    tracing::info!(%cluster_id, serial = %issued.serial, agent_version = %request.agent_version, "agent bootstrapped");
    Ok(Response::new(BootstrapResponse {
        certificate_pem: issued.pem,
        ca_pem: service.ca.ca_pem().to_string(),
        cluster_id: cluster_id.to_string(),
        not_after_unix: issued.not_after.timestamp(),
        task_keys: Some(service.settings.task_keys.clone()),
    }))
}

pub(super) async fn renew(
    service: &AgentGrpc,
    request: Request<RenewRequest>,
) -> Result<Response<RenewResponse>, Status> {
    let identity = service.authenticate(&request).await?;
    let request = request.into_inner();
    crate::pki::check_csr(&request.csr_pem).map_err(csr_status)?;
    let renewal = Issuance::Renewal {
        from: &identity.serial,
        overlap: service.settings.renewal_overlap,
    };
    let issued = issue(service, &request.csr_pem, identity.cluster_id, renewal).await?;
    tracing::info!(cluster_id = %identity.cluster_id, serial = %issued.serial, previous = %identity.serial,
                   "agent certificate renewed; the previous one is revoked after the overlap");
    Ok(Response::new(RenewResponse {
        certificate_pem: issued.pem,
        not_after_unix: issued.not_after.timestamp(),
        task_keys: Some(service.settings.task_keys.clone()),
    }))
}

pub(super) async fn recover(
    service: &AgentGrpc,
    request: Request<RecoverRequest>,
) -> Result<Response<RenewResponse>, Status> {
    let request = request.into_inner();
    super::check_agent_version(&request.agent_version)?;
    let identity = service
        .ca
        .recoverable_identity(
            &request.expired_certificate_pem,
            &request.csr_pem,
            service.settings.recovery_grace,
            chrono::Utc::now(),
        )
        .map_err(|error| {
            service.metrics.reject("recovery_refused");
            match error {
                PkiError::InvalidCsr(_) => Status::invalid_argument(error.to_string()),
                other => Status::permission_denied(other.to_string()),
            }
        })?;
    service.check_standing(&identity).await?;
    let recovery = Issuance::Recovery {
        from: &identity.serial,
    };
    let issued = issue(service, &request.csr_pem, identity.cluster_id, recovery).await?;
    tracing::warn!(cluster_id = %identity.cluster_id, serial = %issued.serial, expired = %identity.serial,
                   expired_at = %identity.not_after, agent_version = %request.agent_version,
                   "expired agent certificate recovered with its key; the expired one is revoked");
    Ok(Response::new(RenewResponse {
        certificate_pem: issued.pem,
        not_after_unix: issued.not_after.timestamp(),
        task_keys: Some(service.settings.task_keys.clone()),
    }))
}

/// Signs and records a certificate.
async fn issue(
    service: &AgentGrpc,
    csr_pem: &str,
    cluster_id: Uuid,
    issuance: Issuance<'_>,
) -> Result<IssuedCertificate, Status> {
    let issued = service
        .ca
        .sign_agent_csr(csr_pem, cluster_id, service.settings.certificate_ttl)
        .map_err(csr_status)?;
    let record = NewCertificate {
        serial: &issued.serial,
        not_before: issued.not_before,
        not_after: issued.not_after,
    };
    service
        .store
        .record_certificate(cluster_id, &record, issuance)
        .await
        .map_err(|e| store_failed("recording the certificate", e))?;
    service.metrics.certificates_issued.inc();
    Ok(issued)
}

fn csr_status(error: PkiError) -> Status {
    match error {
        PkiError::InvalidCsr(_) => Status::invalid_argument(error.to_string()),
        other => internal("signing the certificate", other),
    }
}
