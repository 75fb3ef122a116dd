//! Task logs in ClickHouse: schema, inserts, and reads for the API; `sink` batches inserts across agents.
//!
//! The schema sticks to what ClickHouse 18.16 (Debian's package) supports: no DateTime64 or LowCardinality,
//! so times are Int64 nanoseconds beside a Date column for partitioning.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::config::ClickHouseConfig;

mod sink;
pub use sink::{LogSink, SinkSettings};

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("ClickHouse at {url}: {source}")]
    ClickHouse {
        url: String,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse database name {0:?} must be letters, digits and underscores")]
    DatabaseName(String),
}

/// One log line about a task, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Row)]
pub struct TaskLogLine {
    /// Days since the Unix epoch (ClickHouse `Date`), derived from `ts_nanos`.
    pub date: u16,
    pub ts_nanos: i64,
    pub cluster_id: String,
    pub task_id: String,
    pub level: String,
    pub message: String,
    /// JSON object of structured fields (document index, kind, name, ...).
    pub fields: String,
    /// Who wrote the line: `agent` or `control-plane`.
    pub source: String,
}

impl TaskLogLine {
    pub fn new(
        ts_nanos: i64,
        cluster_id: String,
        task_id: String,
        level: String,
        message: String,
        fields: String,
        source: &str,
    ) -> Self {
        let days = ts_nanos.div_euclid(86_400 * 1_000_000_000);
        Self {
            date: u16::try_from(days.max(0)).unwrap_or(u16::MAX),
            ts_nanos,
            cluster_id,
            task_id,
            level,
            message,
            fields,
            source: source.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct LogStore {
    /// Bound to no database, for creating ours.
    server: clickhouse::Client,
    /// Bound to our database: the crate quotes table names, so `db.table` cannot be passed as one.
    client: clickhouse::Client,
    url: String,
    database: String,
}

impl LogStore {
    pub fn new(config: &ClickHouseConfig) -> Result<Self, LogStoreError> {
        if config.database.is_empty()
            || !config
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(LogStoreError::DatabaseName(config.database.clone()));
        }
        let mut client = clickhouse::Client::default()
            .with_url(&config.url)
            .with_user(&config.user)
            // Validation reads column types with features ClickHouse 18.16 lacks.
            .with_validation(false);
        if let Some(password) = &config.password {
            client = client.with_password(password);
        }
        Ok(Self {
            client: client.clone().with_database(&config.database),
            server: client,
            url: config.url.clone(),
            database: config.database.clone(),
        })
    }

    fn err(&self, source: clickhouse::error::Error) -> LogStoreError {
        LogStoreError::ClickHouse {
            url: self.url.clone(),
            source,
        }
    }

    /// Creates the database and tables when missing; safe to run from several processes.
    pub async fn ensure_schema(&self) -> Result<(), LogStoreError> {
        let db = &self.database;
        self.server
            .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .execute()
            .await
            .map_err(|e| self.err(e))?;
        for statement in [format!(
            "CREATE TABLE IF NOT EXISTS {db}.task_logs (
                    date Date,
                    ts_nanos Int64,
                    cluster_id String,
                    task_id String,
                    level String,
                    message String,
                    fields String,
                    source String
                ) ENGINE = MergeTree() PARTITION BY toYYYYMM(date) ORDER BY (task_id, ts_nanos)"
        )] {
            self.client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), LogStoreError> {
        self.client
            .query("SELECT 1")
            .execute()
            .await
            .map_err(|e| self.err(e))
    }

    /// Inserts one batch; returns only after ClickHouse has acknowledged it, so callers may then ack upstream.
    pub async fn insert_task_logs(&self, lines: &[TaskLogLine]) -> Result<(), LogStoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .insert::<TaskLogLine>("task_logs")
            .await
            .map_err(|e| self.err(e))?;
        for line in lines {
            insert.write(line).await.map_err(|e| self.err(e))?;
        }
        insert.end().await.map_err(|e| self.err(e))
    }

    /// Lines of one task in time order (only those written by its own cluster's agent), starting after `after_nanos` (for paging and tailing).
    pub async fn task_logs(
        &self,
        cluster_id: &str,
        task_id: &str,
        after_nanos: i64,
        limit: u64,
    ) -> Result<Vec<TaskLogLine>, LogStoreError> {
        let sql = format!(
            "SELECT ?fields FROM {}.task_logs WHERE task_id = ? AND cluster_id = ? AND ts_nanos > ? ORDER BY ts_nanos LIMIT ?",
            self.database
        );
        self.client
            .query(&sql)
            .bind(task_id)
            .bind(cluster_id)
            .bind(after_nanos)
            .bind(limit)
            .fetch_all::<TaskLogLine>()
            .await
            .map_err(|e| self.err(e))
    }
}
