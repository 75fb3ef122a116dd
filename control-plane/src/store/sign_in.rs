//! Sign-in throttling: attempts counted in PostgreSQL with one atomic upsert per key, so concurrent requests
//! and other replicas see the same count, and an attempt is counted before its password is checked.

use std::time::Duration;

use super::{Store, StoreError};

/// The counters one sign-in attempt is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKeys {
    /// This account from this address: its limit stops guessing one password without locking the account's
    /// owner out from elsewhere.
    pub account_from_address: String,
    /// Any account from this address: its limit stops trying many usernames.
    pub address: String,
}

impl ThrottleKeys {
    pub fn new(username: &str, address: &str) -> Self {
        Self {
            account_from_address: format!("account:{address}:{username}"),
            address: format!("address:{address}"),
        }
    }
}

/// Attempts charged so far in the current window, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub account_from_address: i64,
    pub address: i64,
}

impl Store {
    /// Counts an attempt against both keys; windows older than `window` start again at this attempt.
    pub async fn charge_sign_in(
        &self,
        keys: &ThrottleKeys,
        window: Duration,
    ) -> Result<Attempts, StoreError> {
        let (account_from_address, address): (i64, i64) = sqlx::query_as(
            "WITH charged AS (
                 INSERT INTO sign_in_throttle AS t (key, attempts, window_start)
                 SELECT key, 1, now() FROM unnest($1::text[]) AS key
                 ON CONFLICT (key) DO UPDATE SET
                     attempts = CASE WHEN t.window_start < now() - make_interval(secs => $2) THEN 1
                                     ELSE t.attempts + 1 END,
                     window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2) THEN now()
                                         ELSE t.window_start END
                 RETURNING key, attempts)
             SELECT max(attempts) FILTER (WHERE key = $3)::int8, max(attempts) FILTER (WHERE key = $4)::int8
             FROM charged",
        )
        .bind(vec![keys.account_from_address.clone(), keys.address.clone()])
        .bind(window.as_secs_f64())
        .bind(&keys.account_from_address)
        .bind(&keys.address)
        .fetch_one(self.pool())
        .await?;
        Ok(Attempts {
            account_from_address,
            address,
        })
    }

    /// A successful sign-in: its account's failures from this address are forgotten and its own attempt is
    /// given back to the address (so a valid account cannot be used to reset the address's count).
    pub async fn sign_in_succeeded(&self, keys: &ThrottleKeys) -> Result<(), StoreError> {
        sqlx::query(
            "WITH forgotten AS (DELETE FROM sign_in_throttle WHERE key = $1)
             UPDATE sign_in_throttle SET attempts = greatest(attempts - 1, 0) WHERE key = $2",
        )
        .bind(&keys.account_from_address)
        .bind(&keys.address)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Drops counters whose window ended long ago, so the table holds only recent attackers.
    pub async fn prune_sign_in_throttle(&self, window: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM sign_in_throttle WHERE window_start < now() - make_interval(secs => $1)",
        )
        .bind(window.as_secs_f64())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
