//! Who is calling: the cluster identity from the verified client certificate, never from the request body.

use tonic::{Request, Status};

use super::AgentGrpc;
use crate::pki::{AgentIdentity, agent_identity};

impl AgentGrpc {
    /// The caller's identity, refused when there is no certificate, it is not an agent certificate, it was
    /// revoked, or its cluster was deleted.
    pub(super) async fn authenticate<T>(
        &self,
        request: &Request<T>,
    ) -> Result<AgentIdentity, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            self.metrics.reject("no_client_certificate");
            Status::unauthenticated("a client certificate is required (bootstrap first)")
        })?;
        let leaf = certs.first().ok_or_else(|| {
            self.metrics.reject("no_client_certificate");
            Status::unauthenticated("a client certificate is required (bootstrap first)")
        })?;
        let identity = agent_identity(leaf.as_ref()).map_err(|e| {
            self.metrics.reject("not_an_agent_certificate");
            Status::permission_denied(e.to_string())
        })?;
        self.check_standing(&identity).await?;
        Ok(identity)
    }

    /// Refuses a certificate that was revoked, not issued to its cluster, or whose cluster was deleted.
    pub(super) async fn check_standing(&self, identity: &AgentIdentity) -> Result<(), Status> {
        let refusal = self
            .store
            .certificate_refusal(identity.cluster_id, &identity.serial)
            .await
            .map_err(|e| internal("checking the client certificate", e))?;
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
