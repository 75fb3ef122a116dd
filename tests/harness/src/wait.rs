//! Polling a condition until it holds, with a timeout error that says what was awaited.

use std::fmt::Display;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// What a [`wait_until`] check may return: `bool`, `Option<T>`, or `Result<T, E>` (whose last error
/// ends up in the timeout message).
pub trait Outcome {
    /// What [`wait_until`] returns once the check succeeds.
    type Value;
    /// `Ok` when the condition holds; otherwise why not, if the check can tell.
    fn into_value(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn into_value(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_value(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn into_value(self) -> Result<T, Option<String>> {
        // `{:#}` shows an anyhow error's whole chain of causes.
        self.map_err(|error| Some(format!("{error:#}")))
    }
}

/// Runs `check` every `interval` until it succeeds and returns its value, or fails once `timeout` has
/// passed with an error naming `what` (e.g. "the agent to report its cluster") and the last failure.
/// `check` runs at least once.
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// use std::time::Duration;
/// let row_count: u64 = harness::wait_until(
///     "logs to reach ClickHouse",
///     Duration::from_secs(10),
///     Duration::from_millis(100),
///     || async {
///         let count = harness::clickhouse().query("SELECT count() FROM logs.entries").ok()?;
///         count.trim().parse().ok().filter(|&rows: &u64| rows > 0)
///     },
/// )
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn wait_until<C, F>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: C,
) -> anyhow::Result<<F::Output as Outcome>::Value>
where
    C: FnMut() -> F,
    F: Future<Output: Outcome>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_failure = match check().await.into_value() {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        if Instant::now() >= deadline {
            match last_failure {
                Some(failure) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {failure}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        // The last check happens at the deadline rather than up to an interval before it.
        tokio::time::sleep_until((Instant::now() + interval).min(deadline)).await;
    }
}
