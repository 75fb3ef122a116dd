//! Deletes log rows older than each table's retention. ClickHouse 18.16 has no table TTL, so every replica
//! checks once an hour and, when a table holds rows past its cutoff, issues `ALTER TABLE ... DELETE` (a mutation
//! ClickHouse runs in the background; issuing it twice is harmless).

use std::time::Duration;

use super::LogStore;
use crate::config::LogRetention;

const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// The date (days since the epoch) before which rows of a table kept `days` days go.
pub fn cutoff_day(today: u16, days: u16) -> u16 {
    today.saturating_sub(days)
}

pub async fn run(logs: LogStore, retention: LogRetention) {
    loop {
        let today = super::date_of(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
        for (table, days) in retention.tables() {
            match logs.delete_before(table, cutoff_day(today, days)).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(table, rows, days, "deleting log rows past retention"),
                Err(error) => {
                    tracing::warn!(%error, table, "log retention check failed; retrying later")
                }
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_keeps_exactly_the_retention_days() {
        // Kept 14 days on day 20_000: days 19_986..=20_000 stay (15 dates: today and 14 before).
        assert_eq!(cutoff_day(20_000, 14), 19_986);
        assert_eq!(cutoff_day(10, 30), 0, "never before the epoch");
    }
}
