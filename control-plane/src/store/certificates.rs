//! The agent CA row and the certificates issued to agents (for revocation and expiry display).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AgentCertificateRow {
    pub serial: String,
    pub cluster_id: Uuid,
    pub issued_via: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn load_ca(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(sqlx::query_as::<_, (String, Vec<u8>)>(
            "SELECT ca_cert_pem, ca_key_sealed FROM pki_authority WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn insert_ca_if_absent(
        &self,
        cert_pem: &str,
        key_sealed: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pki_authority (id, ca_cert_pem, ca_key_sealed) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(cert_pem)
        .bind(key_sealed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn record_certificate(
        &self,
        cluster_id: Uuid,
        serial: &str,
        issued_via: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_certificates (serial, cluster_id, issued_via, not_before, not_after)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(serial)
        .bind(cluster_id)
        .bind(issued_via)
        .bind(not_before)
        .bind(not_after)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Why a presented certificate may not be used, or `None` when it is valid: issued by us, not revoked,
    /// and its cluster still exists.
    pub async fn certificate_refusal(
        &self,
        cluster_id: Uuid,
        serial: &str,
    ) -> Result<Option<String>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Standing {
            revoked_at: Option<DateTime<Utc>>,
            deleted_at: Option<DateTime<Utc>>,
        }
        let row: Option<Standing> = sqlx::query_as(
            "SELECT c.revoked_at, k.deleted_at FROM agent_certificates c JOIN clusters k ON k.id = c.cluster_id
             WHERE c.serial = $1 AND c.cluster_id = $2",
        )
        .bind(serial)
        .bind(cluster_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => Some("certificate was not issued to this cluster".into()),
            Some(Standing {
                deleted_at: Some(_),
                ..
            }) => Some(format!("cluster {cluster_id} was deleted")),
            Some(Standing {
                revoked_at: Some(_),
                ..
            }) => Some("certificate was revoked".into()),
            Some(_) => None,
        })
    }
}
