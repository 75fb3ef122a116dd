//! The agent CA row and the certificates issued to agents (for revocation and expiry display).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, Transaction};
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

/// A certificate just signed, to record.
pub struct NewCertificate<'a> {
    pub serial: &'a str,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// How a certificate came to be issued, and which one it replaces.
#[derive(Debug, Clone, Copy)]
pub enum Issuance<'a> {
    /// For a one-time bootstrap token.
    Bootstrap,
    /// For the holder of a valid certificate (serial `from`), which stays valid for `overlap` so that streams
    /// still open with it keep working.
    Renewal {
        from: &'a str,
        overlap: std::time::Duration,
    },
    /// For the holder of an expired certificate's key (serial `from`), which is revoked at once.
    Recovery { from: &'a str },
}

impl<'a> Issuance<'a> {
    fn via(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Renewal { .. } => "renewal",
            Self::Recovery { .. } => "recovery",
        }
    }

    /// The certificate replaced, and how long it stays valid.
    fn replaces(self) -> Option<(&'a str, std::time::Duration)> {
        match self {
            Self::Bootstrap => None,
            Self::Renewal { from, overlap } => Some((from, overlap)),
            Self::Recovery { from } => Some((from, std::time::Duration::ZERO)),
        }
    }
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

    /// Records a certificate. When it replaces one (renewal, recovery), in the same transaction: the replaced
    /// certificate is revoked once its overlap has passed, and any certificate issued earlier in place of that
    /// same one is revoked now, so a stolen certificate and its owner cannot both keep a lineage.
    pub async fn record_certificate(
        &self,
        cluster_id: Uuid,
        issued: &NewCertificate<'_>,
        issuance: Issuance<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let replaces = issuance.replaces();
        if let Some((previous, overlap)) = replaces {
            sqlx::query(
                "UPDATE agent_certificates SET revoked_at = now()
                 WHERE renewed_from = $1 AND (revoked_at IS NULL OR revoked_at > now())",
            )
            .bind(previous)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE agent_certificates
                 SET revoked_at = least(coalesce(revoked_at, 'infinity'), now() + make_interval(secs => $2))
                 WHERE serial = $1",
            )
            .bind(previous)
            .bind(overlap.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO agent_certificates (serial, cluster_id, issued_via, not_before, not_after, renewed_from)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(issued.serial)
        .bind(cluster_id)
        .bind(issuance.via())
        .bind(issued.not_before)
        .bind(issued.not_after)
        .bind(replaces.map(|(previous, _)| previous))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes every certificate of the cluster and every unused bootstrap token, and tells every replica to
    /// close the cluster's streams: its agent needs a new bootstrap token. False when the cluster is unknown.
    pub async fn revoke_agent(&self, cluster_id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let live: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM clusters WHERE id = $1 AND deleted_at IS NULL")
                .bind(cluster_id)
                .fetch_optional(&mut *tx)
                .await?;
        if live.is_none() {
            return Ok(false);
        }
        revoke_agent_in(&mut tx, cluster_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Why a presented certificate may not be used, or `None` when it is valid: issued by us, not revoked,
    /// and its cluster still exists.
    pub async fn certificate_refusal(
        &self,
        cluster_id: Uuid,
        serial: &str,
    ) -> Result<Option<String>, StoreError> {
        let held = [(cluster_id, serial.to_string())];
        Ok(self
            .certificate_refusals(&held)
            .await?
            .into_iter()
            .next()
            .map(|refused| refused.reason))
    }

    /// The certificates among `held` (cluster, serial) that may no longer be used, with the reason; one query
    /// for all of a process's streams.
    pub async fn certificate_refusals(
        &self,
        held: &[(Uuid, String)],
    ) -> Result<Vec<RefusedCertificate>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            cluster_id: Uuid,
            serial: String,
            issued: bool,
            cluster_deleted: bool,
        }
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (cluster_ids, serials): (Vec<Uuid>, Vec<String>) = held.iter().cloned().unzip();
        // A revocation in the future is a renewed certificate's overlap: still valid until then.
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT h.cluster_id, h.serial, c.serial IS NOT NULL AS issued,
                    coalesce(k.deleted_at IS NOT NULL, false) AS cluster_deleted
             FROM unnest($1::uuid[], $2::text[]) AS h(cluster_id, serial)
             LEFT JOIN agent_certificates c ON c.serial = h.serial AND c.cluster_id = h.cluster_id
             LEFT JOIN clusters k ON k.id = h.cluster_id
             WHERE c.serial IS NULL OR c.revoked_at <= now() OR k.deleted_at IS NOT NULL",
        )
        .bind(&cluster_ids)
        .bind(&serials)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let reason = if !row.issued {
                    "certificate was not issued to this cluster".to_string()
                } else if row.cluster_deleted {
                    format!("cluster {} was deleted", row.cluster_id)
                } else {
                    // The query's only other reason to return a row.
                    "certificate was revoked".to_string()
                };
                RefusedCertificate {
                    cluster_id: row.cluster_id,
                    serial: row.serial,
                    reason,
                }
            })
            .collect())
    }
}

/// A certificate an agent holds that may no longer be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedCertificate {
    pub cluster_id: Uuid,
    pub serial: String,
    pub reason: String,
}

/// Within `tx`: revokes the cluster's certificates (those in a renewal's overlap too) and unused bootstrap
/// tokens, and notifies every replica to close the cluster's streams once `tx` commits.
pub(super) async fn revoke_agent_in(
    tx: &mut Transaction<'_, Postgres>,
    cluster_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE agent_certificates SET revoked_at = now()
         WHERE cluster_id = $1 AND (revoked_at IS NULL OR revoked_at > now())",
    )
    .bind(cluster_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE bootstrap_tokens SET expires_at = least(expires_at, now()) WHERE cluster_id = $1 AND used_at IS NULL",
    )
    .bind(cluster_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::channels::CLUSTER_REVOKED)
        .bind(cluster_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
