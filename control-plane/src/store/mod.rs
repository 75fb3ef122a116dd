//! PostgreSQL access: every SQL statement of the control plane lives under this module.

mod audit;
mod certificates;
mod clouds;
mod clusters;
mod demos;
#[cfg(test)]
pub(crate) mod fixtures;
mod fleet;
mod log_outbox;
mod offline_reports;
mod provisioning;
mod regions;
mod sessions;
mod sign_in;
mod tasks;
mod templates;
mod tokens;
mod users;

pub use audit::{AuditEntry, AuditFilter, NewAuditEntry};
pub use certificates::{AgentCertificateRow, Issuance, NewCertificate, RefusedCertificate};
pub use clouds::{CloudAccount, NewCloudAccount};
pub use clusters::{AgentStatus, Cluster, ClusterPage, Heartbeat, NewCluster};
pub use demos::{Demo, DemoChange, DemoInsert, DemoStep, DemoVersion, NewDemo};
pub use fleet::{RegionSample, TaskCounts};
pub use log_outbox::OutboxBatch;
pub use offline_reports::{NewOfflineReport, OfflineCorrection, OfflineReport};
pub use provisioning::ProvisioningTarget;
pub use regions::{NewRegion, Region};
pub use sessions::SessionRow;
pub use sign_in::{Attempts, ThrottleKeys};
pub use tasks::{
    LeaseRef, LeasedTask, NewTask, ObjectReport, StreamLease, Task, TaskCompletion, TaskEvent,
    TaskFilter, TaskInsert, TaskSeal,
};
pub use templates::TemplateRow;
pub use tokens::{ApiPrincipal, ApiToken, BootstrapRedemption};
pub use users::{SessionLimits, SessionUser, User};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

/// Channels used with LISTEN/NOTIFY so every control-plane process hears about work for its agent streams.
pub mod channels {
    /// Payload: cluster id. A task for the cluster became leasable.
    pub const TASK_READY: &str = "edgefleet_task_ready";
    /// Payload: `<cluster id>:<task id>:<lease id>`. A leased or running task was cancelled.
    pub const TASK_CANCELLED: &str = "edgefleet_task_cancelled";
    /// Payload: cluster id. The cluster was deleted: its agent streams must close.
    pub const CLUSTER_REVOKED: &str = "edgefleet_cluster_revoked";
    /// No payload. A control-plane task (a Terraform run) may be waiting.
    pub const PROVISIONER_WORK: &str = "edgefleet_provisioner_work";
    /// No payload. A demo's task, cluster or steps changed (sent by triggers, see migration 0006).
    pub const DEMO_WAKE: &str = "edgefleet_demo_wake";
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// PostgreSQL could not be reached or asked for the transaction to be tried again (lost connection, pool
    /// exhausted, serialization failure, deadlock, shutdown); another attempt may succeed. A missing row, a
    /// conflict, a constraint or a value that does not decode stays so.
    pub fn is_transient(&self) -> bool {
        let Self::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(database) => database.code().is_some_and(|code| {
                code.starts_with("08") || matches!(code.as_ref(), "40001" | "40P01" | "57P01")
            }),
            _ => false,
        }
    }
}

impl StoreError {
    /// The transaction lost a deadlock or a serialization conflict: the same transaction tried again is
    /// expected to succeed.
    pub fn is_conflict_to_retry(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(database))
            if database.code().is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01")))
    }

    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// Maps a unique-constraint violation to a conflict with a readable message; passes other errors through.
pub(crate) fn unique_violation(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    agent_stale_after_secs: f64,
}

impl Store {
    /// `agent_stale_after`: an agent stream not heard from for this long no longer counts as connected.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        agent_stale_after: std::time::Duration,
    ) -> Result<Self, StoreError> {
        // No JIT: the queue's batched statements touch a few hundred rows by index, and their estimated cost
        // crosses `jit_above_cost` once a batch is large, where compiling took 20-110 ms of a statement that runs
        // in 3 (docs/benchmarks.md, "JIT off, quieter logs, the API on threads of its own").
        let options = url.parse::<PgConnectOptions>()?.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // While PostgreSQL is down every request waits this long for a connection before it is answered
            // 503; a short wait keeps the API responsive (and clients retrying) through a restart.
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            agent_stale_after_secs: agent_stale_after.as_secs_f64(),
        })
    }

    /// Applies pending migrations; safe to run from several processes at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn listener(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([
                channels::TASK_READY,
                channels::TASK_CANCELLED,
                channels::CLUSTER_REVOKED,
            ])
            .await?;
        Ok(listener)
    }

    pub(crate) fn agent_stale_after_secs(&self) -> f64 {
        self.agent_stale_after_secs
    }

    /// A listener on one channel (e.g. the provisioners' wake-up).
    pub async fn listen(&self, channel: &str) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
