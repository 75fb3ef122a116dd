//! Who is calling: the cluster identity from the verified client certificate, never from the request body.

use tonic::{Request, Status};

use super::AgentGrpc;
use crate::pki::{AgentIdentity, agent_identity};
use crate::store::StoreError;

impl AgentGrpc {
    /// The caller's identity, refused when there is no certificate, it is not an agent certificate, it was
    /// revoked, or its cluster was deleted.
    pub(super) async fn authenticate<T>(
        &self,
        request: &Request<T>,
    ) -> Result<AgentIdentity, Status> {
        let identity = self.identify(request)?;
        self.check_standing(&identity).await?;
        Ok(identity)
    }

    /// The identity the verified client certificate names, before its standing is checked in the database.
    pub(super) fn identify<T>(&self, request: &Request<T>) -> Result<AgentIdentity, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            self.metrics.reject("no_client_certificate");
            Status::unauthenticated("a client certificate is required (bootstrap first)")
        })?;
        let leaf = certs.first().ok_or_else(|| {
            self.metrics.reject("no_client_certificate");
            Status::unauthenticated("a client certificate is required (bootstrap first)")
        })?;
        agent_identity(leaf.as_ref()).map_err(|e| {
            self.metrics.reject("not_an_agent_certificate");
            Status::permission_denied(e.to_string())
        })
    }

    /// Refuses a certificate that was revoked, not issued to its cluster, or whose cluster was deleted.
    pub(super) async fn check_standing(&self, identity: &AgentIdentity) -> Result<(), Status> {
        let refusal = self
            .store
            .certificate_refusal(identity.cluster_id, &identity.serial)
            .await
            .map_err(|e| store_failed("checking the client certificate", e))?;
        if let Some(reason) = refusal {
            self.metrics.reject("revoked");
            return Err(Status::permission_denied(reason));
        }
        Ok(())
    }
}

/// Logs the real error and gives the agent a message without internals.
pub(super) fn internal(doing: &str, error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "{doing} failed");
    Status::internal(format!("{doing} failed on the control plane"))
}

/// Like [`internal`], except that a database that is busy or away (pool exhausted, connection lost) is
/// `Unavailable`: a passing condition the agent retries, logged as a warning.
pub(super) fn store_failed(doing: &str, error: impl std::borrow::Borrow<StoreError>) -> Status {
    let error = error.borrow();
    if error.is_transient() {
        tracing::warn!(%error, "{doing} failed; the agent will retry");
        Status::unavailable(format!(
            "{doing} failed: the control plane's database is busy or unreachable; retry"
        ))
    } else {
        internal(doing, error)
    }
}
