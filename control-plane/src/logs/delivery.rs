//! Getting rows into ClickHouse for good. A failure that may pass (network, timeout, an overloaded server) is
//! retried with backoff; rows ClickHouse refuses for their content are isolated by splitting the batch and kept
//! in `log_dead_letters` with the reason, so one bad row neither blocks the rest nor is retried forever or lost.

use std::time::Duration;

use clickhouse::Row;
use serde::Serialize;

use super::{LogRow, LogStore, LogStoreError, date_of};

/// What a failed insert means for trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server or the way to it is in trouble; the same rows may go in later.
    Unavailable,
    /// The server refused the rows themselves; sending them again fails again.
    Rejected,
}

/// ClickHouse error codes that are about the inserted data (ErrorCodes.cpp): parse and conversion failures,
/// values out of range, failed `throwIf` checks and constraints.
const DATA_ERROR_CODES: &[u32] = &[6, 27, 33, 38, 41, 53, 69, 70, 72, 117, 131, 395, 469];

pub fn classify(error: &clickhouse::error::Error) -> Failure {
    use clickhouse::error::Error;
    match error {
        Error::BadResponse(text) => match server_code(text) {
            Some(code) if DATA_ERROR_CODES.contains(&code) => Failure::Rejected,
            _ => Failure::Unavailable,
        },
        // Rows that cannot even be encoded for the table.
        Error::Custom(_)
        | Error::DataFormat(_)
        | Error::InvalidUtf8Encoding(_)
        | Error::SequenceMustHaveLength
        | Error::InvalidTagEncoding(_)
        | Error::VariantDiscriminatorIsOutOfBound(_) => Failure::Rejected,
        _ => Failure::Unavailable,
    }
}

/// The number in ClickHouse's "Code: 395. DB::Exception: ..." answer.
fn server_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + "Code: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl LogStoreError {
    pub fn failure(&self) -> Failure {
        match self {
            Self::ClickHouse { source, .. } => classify(source),
            Self::DatabaseName(_) => Failure::Rejected,
        }
    }
}

/// A row ClickHouse refused, kept as JSON with the reason.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Row)]
pub struct DeadLetter {
    pub date: u16,
    pub ts_nanos: i64,
    /// The table the row was meant for.
    pub source_table: String,
    pub row: String,
    pub reason: String,
}

impl LogRow for DeadLetter {
    const TABLE: &'static str = "log_dead_letters";
}

/// How many rows of a batch went where.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub stored: usize,
    pub dead_lettered: usize,
}

impl LogStore {
    /// Inserts `rows`, each into its table or, when refused for its content, into `log_dead_letters` (all of a
    /// call's refused rows in one insert). An error means ClickHouse stayed unavailable through `attempts` tries:
    /// nothing is acknowledged and the caller keeps the rows (some may already be stored; delivery is at least
    /// once).
    pub async fn deliver<R: LogRow>(
        &self,
        rows: &[R],
        attempts: u32,
    ) -> Result<Delivered, LogStoreError> {
        let mut refused = Vec::new();
        let stored = self.store_isolating(rows, attempts, &mut refused).await?;
        if !refused.is_empty() {
            tracing::warn!(table = R::TABLE, rows = refused.len(), reason = %refused[0].reason,
                           "ClickHouse refused rows; kept in log_dead_letters");
            self.insert_retrying(&refused, attempts).await?;
        }
        Ok(Delivered {
            stored,
            dead_lettered: refused.len(),
        })
    }

    /// Stores what ClickHouse takes, halving a refused batch until the refused rows stand alone; those go to
    /// `refused`. Returns how many rows were stored.
    async fn store_isolating<R: LogRow>(
        &self,
        rows: &[R],
        attempts: u32,
        refused: &mut Vec<DeadLetter>,
    ) -> Result<usize, LogStoreError> {
        match self.insert_retrying(rows, attempts).await {
            Ok(()) => Ok(rows.len()),
            Err(error) if error.failure() == Failure::Rejected && rows.len() > 1 => {
                let (first, second) = rows.split_at(rows.len() / 2);
                let stored = Box::pin(self.store_isolating(first, attempts, refused)).await?;
                Ok(stored + Box::pin(self.store_isolating(second, attempts, refused)).await?)
            }
            Err(error) if error.failure() == Failure::Rejected => {
                let now = now_nanos();
                refused.extend(rows.iter().map(|row| DeadLetter {
                    date: date_of(now),
                    ts_nanos: now,
                    source_table: R::TABLE.to_owned(),
                    row: serde_json::to_string(row).unwrap_or_else(|e| format!("not JSON: {e}")),
                    reason: error.to_string(),
                }));
                Ok(0)
            }
            Err(error) => Err(error),
        }
    }

    /// Retries only what may pass; a rejection returns at once.
    async fn insert_retrying<R: LogRow>(
        &self,
        rows: &[R],
        attempts: u32,
    ) -> Result<(), LogStoreError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.insert(rows).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < attempts && error.failure() == Failure::Unavailable => {
                    tracing::warn!(%error, table = R::TABLE, attempt, "log insert failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clickhouse::error::Error;

    use super::*;

    #[test]
    fn refusals_of_the_data_are_told_apart_from_trouble_reaching_the_server() {
        let answer = |text: &str| Error::BadResponse(text.to_owned());
        assert_eq!(
            classify(&answer(
                "Code: 395. DB::Exception: Value passed to 'throwIf' function is non zero"
            )),
            Failure::Rejected
        );
        assert_eq!(
            classify(&answer("Code: 27. DB::Exception: Cannot parse input")),
            Failure::Rejected
        );
        assert_eq!(
            classify(&answer(
                "Code: 241. DB::Exception: Memory limit (total) exceeded"
            )),
            Failure::Unavailable
        );
        assert_eq!(
            classify(&answer("Code: 252. DB::Exception: Too many parts (300)")),
            Failure::Unavailable
        );
        assert_eq!(
            classify(&answer("<html>502 Bad Gateway</html>")),
            Failure::Unavailable
        );
        assert_eq!(classify(&Error::TimedOut), Failure::Unavailable);
        assert_eq!(
            classify(&Error::Custom("invalid value".into())),
            Failure::Rejected
        );
    }
}
