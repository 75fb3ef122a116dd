//! Logs in ClickHouse - task logs and demo pods' logs: schema, inserts, and reads for the API; `sink` batches
//! inserts across agents.
//!
//! The schema sticks to what ClickHouse 18.16 (Debian's package) supports: no DateTime64 or LowCardinality,
//! so times are Int64 nanoseconds beside a Date column for partitioning.

use std::sync::Arc;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::config::ClickHouseConfig;

mod delivery;
pub mod outbox;
pub mod retention;
mod sink;
pub use delivery::{DeadLetter, Delivered, Failure};
pub use sink::{LogSink, SinkSettings};

/// A row type with its own table; serializable to JSON for the dead-letter table.
pub trait LogRow:
    clickhouse::RowOwned + clickhouse::RowWrite + Serialize + Clone + Send + Sync + 'static
{
    const TABLE: &'static str;
}

impl LogRow for TaskLogLine {
    const TABLE: &'static str = "task_logs";
}

impl LogRow for DemoLogLine {
    const TABLE: &'static str = "demo_logs";
}

fn date_of(ts_nanos: i64) -> u16 {
    let days = ts_nanos.div_euclid(86_400 * 1_000_000_000);
    u16::try_from(days.max(0)).unwrap_or(u16::MAX)
}

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
    /// With the cluster, the line's identity: the agent process (or `outbox` for the control plane's own lines)
    /// and its number there. Lines queued in the outbox before identities have none yet.
    #[serde(default)]
    pub source_id: String,
    #[serde(default)]
    pub seq: u64,
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
        Self {
            date: date_of(ts_nanos),
            ts_nanos,
            cluster_id,
            task_id,
            level,
            message,
            fields,
            source: source.to_string(),
            source_id: String::new(),
            seq: 0,
        }
    }

    /// The line as the `seq`th of `source_id`; without a source (an agent before line identities), a hash of time
    /// and text stands in, which still tells resent copies (equal) from distinct lines.
    pub fn identified(mut self, source_id: String, seq: u64) -> Self {
        if source_id.is_empty() {
            self.seq = content_seq(self.ts_nanos, &self.message);
        } else {
            self.source_id = source_id;
            self.seq = seq;
        }
        self
    }
}

/// A stable number for a line that came without one: the same time and text give the same number.
pub fn content_seq(unix_nanos: i64, message: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(unix_nanos.to_le_bytes())
        .chain_update(message.as_bytes())
        .finalize();
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 8 bytes"),
    )
}

/// One line a demo's container wrote, tagged with where it ran. Only written, never read back as such: what a
/// batch repeats on every line (cluster, region, demo) is shared rather than copied per line.
#[derive(Debug, Clone, PartialEq, Serialize, Row)]
pub struct DemoLogLine {
    pub date: u16,
    pub ts_nanos: i64,
    pub demo_id: Arc<str>,
    pub cluster_id: Arc<str>,
    /// The region's code (e.g. `ap-shanghai`).
    pub region: Arc<str>,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub level: &'static str,
    pub message: String,
    /// With the cluster and container, the line's identity: the agent numbers each container's lines.
    pub pod_uid: String,
    pub seq: u64,
    /// [`LineStream::as_str`].
    pub stream: &'static str,
}

/// What a pod log line is: a container's output (stdout and stderr together, as the Kubernetes log API gives
/// them), a Kubernetes event, or a line of the agent's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineStream {
    Container,
    Event,
    Agent,
}

impl LineStream {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Event => "event",
            Self::Agent => "agent",
        }
    }
}

impl From<agent_protocol::LogStream> for LineStream {
    fn from(stream: agent_protocol::LogStream) -> Self {
        match stream {
            agent_protocol::LogStream::Container => Self::Container,
            agent_protocol::LogStream::Event => Self::Event,
            agent_protocol::LogStream::Agent => Self::Agent,
        }
    }
}

/// Where a pod log line came from and its number there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSource {
    pub demo_id: Arc<str>,
    pub cluster_id: Arc<str>,
    pub region: Arc<str>,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub seq: u64,
    pub stream: LineStream,
}

impl DemoLogLine {
    pub fn new(ts_nanos: i64, source: LineSource, level: &'static str, message: String) -> Self {
        Self {
            date: date_of(ts_nanos),
            ts_nanos,
            demo_id: source.demo_id,
            cluster_id: source.cluster_id,
            region: source.region,
            namespace: source.namespace,
            pod: source.pod,
            container: source.container,
            level,
            message,
            pod_uid: source.pod_uid,
            seq: source.seq,
            stream: source.stream.as_str(),
        }
    }
}

/// [`LineStream`]s as stored.
pub const STREAMS: [&str; 3] = [
    LineStream::Container.as_str(),
    LineStream::Event.as_str(),
    LineStream::Agent.as_str(),
];

/// Levels from least to most severe; a filter keeps its level and those after it.
pub const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

/// What to read of a demo's log. Lines are ordered by (time, cluster, pod uid, container, sequence number) - a
/// line's identity, so the order is total - and `after` is the last line of the previous page in that order.
#[derive(Debug, Clone, Default)]
pub struct DemoLogQuery {
    pub since_nanos: Option<i64>,
    pub until_nanos: Option<i64>,
    /// Keeps lines at this level or more severe (one of [`LEVELS`]).
    pub min_level: Option<&'static str>,
    /// Case-insensitive substring of the message.
    pub text: Option<String>,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub stream: Option<LineStream>,
    /// One demo; all pods (of demos or not) when absent.
    pub demo_id: Option<String>,
    pub cluster_id: Option<String>,
    pub after: Option<DemoLogCursor>,
    pub limit: u64,
}

/// A position in a demo's log: the sort key of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoLogCursor {
    pub ts_nanos: i64,
    pub cluster_id: String,
    pub pod_uid: String,
    pub container: String,
    pub seq: u64,
}

/// A stored demo log line with its sort key, so the page's last line gives the next cursor.
#[derive(Debug, Clone, Deserialize, Row)]
pub struct DemoLogRow {
    pub ts_nanos: i64,
    pub demo_id: String,
    pub cluster_id: String,
    pub region: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub level: String,
    pub message: String,
    pub pod_uid: String,
    pub seq: u64,
    pub stream: String,
}

impl DemoLogRow {
    pub fn cursor(&self) -> DemoLogCursor {
        DemoLogCursor {
            ts_nanos: self.ts_nanos,
            cluster_id: self.cluster_id.clone(),
            pod_uid: self.pod_uid.clone(),
            container: self.container.clone(),
            seq: self.seq,
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
        for statement in [
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.task_logs (
                    date Date,
                    ts_nanos Int64,
                    cluster_id String,
                    task_id String,
                    level String,
                    message String,
                    fields String,
                    source String,
                    source_id String,
                    seq UInt64
                ) ENGINE = MergeTree() PARTITION BY toYYYYMM(date) ORDER BY (task_id, ts_nanos)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.demo_logs (
                    date Date,
                    ts_nanos Int64,
                    demo_id String,
                    cluster_id String,
                    region String,
                    namespace String,
                    pod String,
                    container String,
                    level String,
                    message String,
                    pod_uid String,
                    seq UInt64,
                    stream String
                ) ENGINE = MergeTree() PARTITION BY toYYYYMM(date) ORDER BY (demo_id, ts_nanos)"
            ),
            // Rows ClickHouse refused for their content (see delivery.rs), as JSON with the reason.
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.log_dead_letters (
                    date Date,
                    ts_nanos Int64,
                    source_table String,
                    row String,
                    reason String
                ) ENGINE = MergeTree() PARTITION BY toYYYYMM(date) ORDER BY (source_table, ts_nanos)"
            ),
        ] {
            self.client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| self.err(e))?;
        }
        self.add_missing_columns(
            "task_logs",
            &[(
                "seq",
                "ADD COLUMN source_id String DEFAULT '', ADD COLUMN seq UInt64 DEFAULT cityHash64(ts_nanos, message)",
            )],
        )
        .await?;
        self.add_missing_columns(
            "demo_logs",
            &[
                (
                    "seq",
                    "ADD COLUMN pod_uid String DEFAULT pod, ADD COLUMN seq UInt64 DEFAULT cityHash64(ts_nanos, message)",
                ),
                ("stream", "ADD COLUMN stream String DEFAULT 'container'"),
            ],
        )
        .await
    }

    /// Tables made by earlier versions get the columns added since (`additions` runs when `column` is missing),
    /// with defaults for the rows they hold: before lines carried an identity, rows are identified by a hash of
    /// time and text (which still tells resent copies, equal, from distinct lines); before streams, every pod log
    /// line was a container's.
    async fn add_missing_columns(
        &self,
        table: &str,
        additions: &[(&str, &str)],
    ) -> Result<(), LogStoreError> {
        for (column, additions) in additions {
            let present = self
                .client
                .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
                .bind(&self.database)
                .bind(table)
                .bind(column)
                .fetch_one::<u64>()
                .await
                .map_err(|e| self.err(e))?;
            if present > 0 {
                continue;
            }
            let statement = format!("ALTER TABLE {}.{table} {additions}", self.database);
            match self.client.query(&statement).execute().await {
                Ok(()) => {}
                // Another replica added them first.
                Err(error) if error.to_string().contains("already exists") => {}
                Err(error) => return Err(self.err(error)),
            }
        }
        Ok(())
    }

    /// Starts deleting rows of `table` dated before `day` (days since the epoch); returns how many there are
    /// (0: nothing issued).
    pub async fn delete_before(&self, table: &str, day: u16) -> Result<u64, LogStoreError> {
        let db = &self.database;
        // ClickHouse 18.16 compares a Date only with a Date, so the day goes in as `YYYY-MM-DD`.
        let day = (chrono::DateTime::UNIX_EPOCH + chrono::Days::new(u64::from(day)))
            .date_naive()
            .to_string();
        let rows = self
            .client
            .query(&format!(
                "SELECT count() FROM {db}.{table} WHERE date < toDate(?)"
            ))
            .bind(&day)
            .fetch_one::<u64>()
            .await
            .map_err(|e| self.err(e))?;
        if rows > 0 {
            self.client
                .query(&format!(
                    "ALTER TABLE {db}.{table} DELETE WHERE date < toDate(?)"
                ))
                .bind(&day)
                .execute()
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(rows)
    }

    pub async fn ping(&self) -> Result<(), LogStoreError> {
        self.client
            .query("SELECT 1")
            .execute()
            .await
            .map_err(|e| self.err(e))
    }

    /// Inserts one batch; returns only after ClickHouse has acknowledged it, so callers may then ack upstream.
    pub async fn insert<R: LogRow>(&self, lines: &[R]) -> Result<(), LogStoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .insert::<R>(R::TABLE)
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
            "SELECT ?fields FROM {}.task_logs WHERE task_id = ? AND cluster_id = ? AND ts_nanos > ?
             ORDER BY ts_nanos, source_id, seq LIMIT 1 BY source_id, seq LIMIT ?",
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

impl LogStore {
    /// Log lines (task and demo logs) stored with a timestamp in `[from_nanos, until_nanos)`, per cluster id.
    pub async fn lines_per_cluster(
        &self,
        from_nanos: i64,
        until_nanos: i64,
    ) -> Result<Vec<(String, u64)>, LogStoreError> {
        // The date bound lets ClickHouse skip other months' partitions.
        let from_date = chrono::DateTime::from_timestamp_nanos(from_nanos)
            .date_naive()
            .to_string();
        let sql = format!(
            "SELECT cluster_id, count() FROM (
                 SELECT cluster_id FROM {db}.task_logs WHERE date >= toDate(?) AND ts_nanos >= ? AND ts_nanos < ?
                 UNION ALL
                 SELECT cluster_id FROM {db}.demo_logs WHERE date >= toDate(?) AND ts_nanos >= ? AND ts_nanos < ?)
             GROUP BY cluster_id",
            db = self.database
        );
        self.client
            .query(&sql)
            .bind(&from_date)
            .bind(from_nanos)
            .bind(until_nanos)
            .bind(&from_date)
            .bind(from_nanos)
            .bind(until_nanos)
            .fetch_all::<(String, u64)>()
            .await
            .map_err(|e| self.err(e))
    }

    /// One page of demo logs in order. Lines stored twice (an agent resent a batch whose ack was lost, or
    /// restarted before its buffer learnt of the ack) are returned once: `LIMIT 1 BY` the line's identity.
    pub async fn demo_logs(&self, query: &DemoLogQuery) -> Result<Vec<DemoLogRow>, LogStoreError> {
        let mut conditions = vec!["1 = 1".to_owned()];
        if query.demo_id.is_some() {
            conditions.push("demo_id = ?".into());
        }
        if query.cluster_id.is_some() {
            conditions.push("cluster_id = ?".into());
        }
        if query.since_nanos.is_some() {
            conditions.push("ts_nanos >= ?".into());
        }
        if query.until_nanos.is_some() {
            conditions.push("ts_nanos < ?".into());
        }
        let levels: Vec<&str> = match query.min_level {
            Some(min) => LEVELS.iter().copied().skip_while(|l| *l != min).collect(),
            None => Vec::new(),
        };
        if !levels.is_empty() {
            conditions.push(format!("level IN ({})", vec!["?"; levels.len()].join(", ")));
        }
        if query.text.is_some() {
            conditions.push("positionCaseInsensitiveUTF8(message, ?) > 0".into());
        }
        if query.pod.is_some() {
            conditions.push("pod = ?".into());
        }
        if query.namespace.is_some() {
            conditions.push("namespace = ?".into());
        }
        if query.stream.is_some() {
            conditions.push("stream = ?".into());
        }
        if query.after.is_some() {
            // Lexicographic "after" on the sort key, spelled out for ClickHouse 18 (no tuple comparison).
            conditions.push(
                "(ts_nanos > ? OR (ts_nanos = ? AND (cluster_id > ? OR (cluster_id = ? AND (pod_uid > ? OR \
                 (pod_uid = ? AND (container > ? OR (container = ? AND seq > ?))))))))"
                    .into(),
            );
        }
        let sql = format!(
            "SELECT ts_nanos, demo_id, cluster_id, region, namespace, pod, container, level, message, pod_uid, seq,
                    stream
             FROM {}.demo_logs WHERE {}
             ORDER BY ts_nanos, cluster_id, pod_uid, container, seq
             LIMIT 1 BY cluster_id, pod_uid, container, seq
             LIMIT ?",
            self.database,
            conditions.join(" AND ")
        );
        let mut select = self.client.query(&sql);
        if let Some(demo_id) = &query.demo_id {
            select = select.bind(demo_id.as_str());
        }
        if let Some(cluster_id) = &query.cluster_id {
            select = select.bind(cluster_id.as_str());
        }
        if let Some(since) = query.since_nanos {
            select = select.bind(since);
        }
        if let Some(until) = query.until_nanos {
            select = select.bind(until);
        }
        for level in levels {
            select = select.bind(level);
        }
        if let Some(text) = &query.text {
            select = select.bind(text.as_str());
        }
        if let Some(pod) = &query.pod {
            select = select.bind(pod.as_str());
        }
        if let Some(namespace) = &query.namespace {
            select = select.bind(namespace.as_str());
        }
        if let Some(stream) = query.stream {
            select = select.bind(stream.as_str());
        }
        if let Some(after) = &query.after {
            select = select
                .bind(after.ts_nanos)
                .bind(after.ts_nanos)
                .bind(after.cluster_id.as_str())
                .bind(after.cluster_id.as_str())
                .bind(after.pod_uid.as_str())
                .bind(after.pod_uid.as_str())
                .bind(after.container.as_str())
                .bind(after.container.as_str())
                .bind(after.seq);
        }
        select
            .bind(query.limit)
            .fetch_all::<DemoLogRow>()
            .await
            .map_err(|e| self.err(e))
    }
}
