//! Moves the control plane's own task log lines from the PostgreSQL outbox into ClickHouse. Every replica
//! runs one; `SKIP LOCKED` gives each batch to one of them, and a failed insert leaves the batch for later (lines
//! ClickHouse refuses for their content go to the dead-letter table instead of blocking the outbox).

use std::time::Duration;

use super::LogStore;
use crate::metrics::Metrics;
use crate::store::Store;

const BATCH_LINES: i64 = 5_000;
/// How often an empty outbox is looked at again.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// After a failed insert (ClickHouse down), the next attempt waits this long, doubling up to the maximum.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

pub async fn run(store: Store, logs: LogStore, metrics: Metrics) {
    let mut retry = FIRST_RETRY;
    loop {
        let batch = match store.take_task_log_batch(BATCH_LINES).await {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the task log outbox; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        let count = batch.lines.len();
        match logs.deliver(&batch.lines, 1).await {
            Ok(delivered) => match batch.delivered().await {
                Ok(()) => {
                    metrics.log_lines_stored.inc_by(delivered.stored as u64);
                    metrics
                        .log_lines_dead_lettered
                        .inc_by(delivered.dead_lettered as u64);
                    retry = FIRST_RETRY;
                }
                // At least once: the lines are in ClickHouse and will be inserted again.
                Err(error) => tracing::warn!(%error, lines = count,
                                             "task log lines stored but not yet removed from the outbox"),
            },
            Err(error) => {
                metrics.log_insert_failures.inc();
                tracing::warn!(%error, lines = count, retry_in = ?retry,
                               "ClickHouse refused task log lines; they wait in the outbox");
                drop(batch);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}
