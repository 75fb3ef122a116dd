//! Console users and their server-side sessions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError, unique_violation};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    #[schema(value_type = crate::api::Role)]
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A live session with its user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionUser {
    pub session_id: Uuid,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
}

/// Where a session stands after a request: how long it may still idle, and when it ends for good.
pub struct SessionLimits {
    pub idle_timeout: Duration,
    pub max_age: Duration,
}

const USER_COLUMNS: &str = "id, username, role, disabled, created_at, last_login_at";

impl Store {
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<User, StoreError> {
        sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (id, username, password_hash, role) VALUES ($1, $2, $3, $4)
             RETURNING {USER_COLUMNS}"
        )))
        .bind(Uuid::new_v4())
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .fetch_one(self.pool())
        .await
        .map_err(|e| unique_violation(e, || format!("a user named {username:?} already exists")))
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        )))
        .fetch_all(self.pool())
        .await?)
    }

    /// The password hash of an enabled user, for signing in.
    pub async fn login_candidate(
        &self,
        username: &str,
    ) -> Result<Option<(Uuid, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, password_hash FROM users WHERE username = $1 AND NOT disabled",
        )
        .bind(username)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Changes what is given. Disabling a user or changing their password or role ends their sessions.
    pub async fn update_user(
        &self,
        id: Uuid,
        role: Option<&str>,
        disabled: Option<bool>,
        password_hash: Option<&str>,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool().begin().await?;
        let user = sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET role = coalesce($2, role), disabled = coalesce($3, disabled),
                    password_hash = coalesce($4, password_hash)
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        )))
        .bind(id)
        .bind(role)
        .bind(disabled)
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("user", id))?;
        sqlx::query(
            "UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn open_console_session(
        &self,
        user_id: Uuid,
        token_sha256: &str,
        csrf_token: &str,
        max_age: Duration,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO console_sessions (id, token_sha256, user_id, csrf_token, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7)",
        )
        .bind(Uuid::new_v4())
        .bind(token_sha256)
        .bind(user_id)
        .bind(csrf_token)
        .bind(max_age.as_secs_f64())
        .bind(ip)
        .bind(user_agent)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session behind a cookie, if it is live; marks it seen now, which slides its idle timeout.
    pub async fn touch_console_session(
        &self,
        token_sha256: &str,
        limits: &SessionLimits,
    ) -> Result<Option<SessionUser>, StoreError> {
        // `last_seen_at` is written once per sixtieth of the idle timeout (30 s of 30 minutes), not per request:
        // a session then lapses at most that much early, and a busy console does not make every read a commit.
        Ok(sqlx::query_as::<_, SessionUser>(
            "WITH session AS (
                 SELECT s.id AS session_id, s.csrf_token, s.last_seen_at,
                        least(s.expires_at, now() + make_interval(secs => $2)) AS expires_at,
                        u.id AS user_id, u.username, u.role
                 FROM console_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_sha256 = $1 AND NOT u.disabled AND s.revoked_at IS NULL
                   AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
                   AND s.created_at > now() - make_interval(secs => $3)
             ), touched AS (
                 UPDATE console_sessions s SET last_seen_at = now() FROM session
                 WHERE s.id = session.session_id AND session.last_seen_at < now() - make_interval(secs => $2 / 60)
             )
             SELECT session_id, csrf_token, expires_at, user_id, username, role FROM session",
        )
        .bind(token_sha256)
        .bind(limits.idle_timeout.as_secs_f64())
        .bind(limits.max_age.as_secs_f64())
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn revoke_console_session(&self, session_id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE console_sessions SET revoked_at = now() WHERE id = $1")
            .bind(session_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
