//! The outbox of the control plane's own task log lines: written in PostgreSQL first, moved to ClickHouse by
//! `logs::outbox`, deleted only in the transaction that saw the ClickHouse insert succeed.

use sqlx::{Postgres, Transaction};

use super::{Store, StoreError};
use crate::logs::TaskLogLine;

/// The source id of the control plane's own task log lines (numbered by their outbox row).
const OUTBOX_SOURCE: &str = "outbox";

/// Lines taken from the outbox, locked until [`OutboxBatch::delivered`] deletes them; dropping the batch
/// leaves them for the next attempt (of this or another replica).
pub struct OutboxBatch {
    tx: Transaction<'static, Postgres>,
    ids: Vec<i64>,
    pub lines: Vec<TaskLogLine>,
}

impl OutboxBatch {
    pub async fn delivered(mut self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM task_log_outbox WHERE id = ANY($1)")
            .bind(&self.ids)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    pub async fn enqueue_task_log_lines(&self, lines: &[TaskLogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| serde_json::to_value(line).expect("log lines serialize"))
            .collect();
        sqlx::query("INSERT INTO task_log_outbox (line) SELECT * FROM unnest($1::jsonb[])")
            .bind(rows)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The oldest waiting lines (at most `limit`) no other replica is delivering, or `None` when there are none.
    pub async fn take_task_log_batch(&self, limit: i64) -> Result<Option<OutboxBatch>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let rows: Vec<(i64, sqlx::types::Json<TaskLogLine>)> = sqlx::query_as(
            "SELECT id, line FROM task_log_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        // The row's id numbers the line, so one stored again (taken twice: see `run`) reads once.
        let (ids, lines) = rows
            .into_iter()
            .map(|(id, line)| {
                let seq = u64::try_from(id).unwrap_or_default();
                (id, line.0.identified(OUTBOX_SOURCE.to_owned(), seq))
            })
            .unzip();
        Ok(Some(OutboxBatch { tx, ids, lines }))
    }
}
