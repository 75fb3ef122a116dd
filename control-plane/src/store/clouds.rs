//! Cloud accounts. Credentials are stored sealed and never selected by the listing queries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use sqlx::AssertSqlSafe;

use super::{Store, StoreError, unique_violation};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct CloudAccount {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    /// Names of the credential fields that are set; values are write-only.
    pub credential_fields: Vec<String>,
    #[schema(value_type = BTreeMap<String, String>)]
    pub tags: serde_json::Value,
    pub region_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewCloudAccount {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub credentials_sealed: Option<Vec<u8>>,
    pub credential_fields: Vec<String>,
    pub tags: serde_json::Value,
}

const SELECT: &str =
    "SELECT c.id, c.name, c.provider, c.credential_fields, c.tags, c.created_at, c.updated_at,
        (SELECT count(*) FROM regions r WHERE r.cloud_account_id = c.id) AS region_count
    FROM cloud_accounts c";

impl Store {
    pub async fn insert_cloud(&self, new: NewCloudAccount) -> Result<CloudAccount, StoreError> {
        let name = new.name.clone();
        sqlx::query(
            "INSERT INTO cloud_accounts (id, name, provider, credentials_sealed, credential_fields, tags)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.id)
        .bind(&new.name)
        .bind(&new.provider)
        .bind(&new.credentials_sealed)
        .bind(&new.credential_fields)
        .bind(&new.tags)
        .execute(self.pool())
        .await
        .map_err(|e| unique_violation(e, || format!("a cloud account named {name:?} already exists")))?;
        self.cloud(new.id).await
    }

    /// Changes what is given; `credentials` is the sealed value and the field names, replacing the old ones.
    pub async fn update_cloud(
        &self,
        id: Uuid,
        name: Option<&str>,
        credentials: Option<(Option<Vec<u8>>, Vec<String>)>,
        tags: Option<serde_json::Value>,
    ) -> Result<CloudAccount, StoreError> {
        let rotate = credentials.is_some();
        let (sealed, fields) = credentials.unwrap_or_default();
        let updated = sqlx::query(
            "UPDATE cloud_accounts SET name = coalesce($2, name),
                    credentials_sealed = CASE WHEN $3 THEN $4 ELSE credentials_sealed END,
                    credential_fields = CASE WHEN $3 THEN $5 ELSE credential_fields END,
                    tags = coalesce($6, tags), updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(rotate)
        .bind(sealed)
        .bind(fields)
        .bind(tags)
        .execute(self.pool())
        .await
        .map_err(|e| {
            unique_violation(e, || {
                format!("a cloud account named {name:?} already exists")
            })
        })?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found("cloud account", id));
        }
        self.cloud(id).await
    }

    pub async fn cloud(&self, id: Uuid) -> Result<CloudAccount, StoreError> {
        sqlx::query_as::<_, CloudAccount>(AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("cloud account", id))
    }

    pub async fn clouds(&self) -> Result<Vec<CloudAccount>, StoreError> {
        Ok(
            sqlx::query_as::<_, CloudAccount>(AssertSqlSafe(format!("{SELECT} ORDER BY c.name")))
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Deletes the account unless regions still use it (the caller gets a conflict naming how many).
    pub async fn delete_cloud(&self, id: Uuid) -> Result<(), StoreError> {
        let cloud = self.cloud(id).await?;
        if cloud.region_count > 0 {
            return Err(StoreError::Conflict(format!(
                "cloud account {:?} is used by {} region(s); delete or move them first",
                cloud.name, cloud.region_count
            )));
        }
        let result = sqlx::query("DELETE FROM cloud_accounts WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::Conflict(format!(
                        "cloud account {:?} gained a region while being deleted",
                        cloud.name
                    ))
                }
                _ => StoreError::Database(e),
            })?;
        if result.rows_affected() == 0 {
            return Err(StoreError::not_found("cloud account", id));
        }
        Ok(())
    }
}
