//! Bootstrap tokens (one-time, expiring, stored as SHA-256) and API tokens for scripts.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

/// The outcome of presenting a bootstrap token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapRedemption {
    Redeemed { cluster_id: Uuid },
    Unknown,
    AlreadyUsed,
    Expired,
    ClusterDeleted,
}

/// Who an API token belongs to.
#[derive(Debug, Clone)]
pub struct ApiPrincipal {
    pub token_id: Uuid,
    pub name: String,
    pub role: String,
}

/// An API token as listed (never its value).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = crate::api::Role)]
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
}

const API_TOKEN_COLUMNS: &str =
    "id, name, role, created_at, expires_at, revoked_at, last_used_at, created_by";

impl Store {
    pub async fn insert_bootstrap_token(
        &self,
        cluster_id: Uuid,
        token_sha256: &str,
        expires_at: DateTime<Utc>,
        created_by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bootstrap_tokens (id, cluster_id, token_sha256, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::new_v4())
        .bind(cluster_id)
        .bind(token_sha256)
        .bind(created_by)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the token used if it is valid. The single UPDATE makes concurrent redemptions safe: exactly one
    /// caller sees `Redeemed`.
    pub async fn redeem_bootstrap_token(
        &self,
        token_sha256: &str,
    ) -> Result<BootstrapRedemption, StoreError> {
        let redeemed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE bootstrap_tokens t SET used_at = now()
             FROM clusters k
             WHERE t.token_sha256 = $1 AND t.used_at IS NULL AND t.expires_at > now()
               AND k.id = t.cluster_id AND k.deleted_at IS NULL
             RETURNING t.cluster_id",
        )
        .bind(token_sha256)
        .fetch_optional(self.pool())
        .await?;
        if let Some(cluster_id) = redeemed {
            return Ok(BootstrapRedemption::Redeemed { cluster_id });
        }
        #[derive(sqlx::FromRow)]
        struct Standing {
            used_at: Option<DateTime<Utc>>,
            deleted_at: Option<DateTime<Utc>>,
        }
        let row: Option<Standing> = sqlx::query_as(
            "SELECT t.used_at, k.deleted_at FROM bootstrap_tokens t JOIN clusters k ON k.id = t.cluster_id
             WHERE t.token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(self.pool())
        .await?;
        // The UPDATE above failed, so a known token is deleted, used, or (otherwise) expired.
        Ok(match row {
            None => BootstrapRedemption::Unknown,
            Some(Standing {
                deleted_at: Some(_),
                ..
            }) => BootstrapRedemption::ClusterDeleted,
            Some(Standing {
                used_at: Some(_), ..
            }) => BootstrapRedemption::AlreadyUsed,
            Some(_) => BootstrapRedemption::Expired,
        })
    }

    pub async fn insert_api_token(
        &self,
        name: &str,
        token_sha256: &str,
        role: &str,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_sha256, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (token_sha256) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(token_sha256)
        .bind(role)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// A token made in the console: `expires_at` when given; shown to its creator once.
    pub async fn create_api_token(
        &self,
        name: &str,
        token_sha256: &str,
        role: &str,
        expires_at: Option<DateTime<Utc>>,
        created_by: &str,
    ) -> Result<ApiToken, StoreError> {
        Ok(sqlx::query_as::<_, ApiToken>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens (id, name, token_sha256, role, expires_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {API_TOKEN_COLUMNS}"
        )))
        .bind(Uuid::new_v4())
        .bind(name)
        .bind(token_sha256)
        .bind(role)
        .bind(expires_at)
        .bind(created_by)
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        Ok(sqlx::query_as::<_, ApiToken>(sqlx::AssertSqlSafe(format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC"
        )))
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn revoke_api_token(&self, id: Uuid) -> Result<ApiToken, StoreError> {
        sqlx::query_as::<_, ApiToken>(sqlx::AssertSqlSafe(format!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
             RETURNING {API_TOKEN_COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::not_found("API token", id))
    }

    pub async fn api_token_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM api_tokens")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn authenticate_api_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<ApiPrincipal>, StoreError> {
        // `last_used_at` is written at most once a minute: a write per request would make every API call a
        // commit waiting on the WAL flush, while a read-only transaction commits without one.
        let row: Option<(Uuid, String, String)> = sqlx::query_as(
            "WITH token AS (
                 SELECT id, name, role, last_used_at FROM api_tokens
                 WHERE token_sha256 = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
             ), touched AS (
                 UPDATE api_tokens t SET last_used_at = now() FROM token
                 WHERE t.id = token.id
                   AND (token.last_used_at IS NULL OR token.last_used_at < now() - interval '1 minute')
             )
             SELECT id, name, role FROM token",
        )
        .bind(token_sha256)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(token_id, name, role)| ApiPrincipal {
            token_id,
            name,
            role,
        }))
    }
}
