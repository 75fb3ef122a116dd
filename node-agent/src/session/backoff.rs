//! Reconnect delays: exponential growth with full jitter, so agents of many clusters do not reconnect in step.

use std::time::Duration;

use rand::Rng;

use crate::config::BackoffSettings;

/// Counts consecutive failures and turns them into delays.
#[derive(Debug)]
pub struct Backoff {
    settings: BackoffSettings,
    failures: u32,
}

impl Backoff {
    pub fn new(settings: BackoffSettings) -> Self {
        Self {
            settings,
            failures: 0,
        }
    }

    /// The ceiling for the next delay: `initial` doubled once per consecutive failure, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures).unwrap_or(u32::MAX);
        self.settings
            .initial
            .checked_mul(factor)
            .unwrap_or(self.settings.max)
            .min(self.settings.max)
    }

    /// A delay drawn uniformly from zero to the ceiling ("full jitter"); counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Back to the initial ceiling, after a healthy session.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(BackoffSettings {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        })
    }

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let mut backoff = backoff();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.ceiling().as_millis());
            let _ = backoff.next_delay();
        }
        assert_eq!(
            ceilings,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
        for _ in 0..100 {
            let _ = backoff.next_delay();
        }
        assert_eq!(
            backoff.ceiling(),
            Duration::from_secs(30),
            "no overflow after many failures"
        );
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling() {
        let mut backoff = backoff();
        for _ in 0..1000 {
            let ceiling = backoff.ceiling();
            assert!(backoff.next_delay() <= ceiling);
        }
        let delays: Vec<Duration> = (0..50).map(|_| backoff.next_delay()).collect();
        assert!(
            delays.iter().any(|delay| *delay != delays[0]),
            "delays are jittered"
        );
    }

    #[test]
    fn reset_returns_to_the_initial_ceiling() {
        let mut backoff = backoff();
        for _ in 0..5 {
            let _ = backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(500));
    }
}
