//! The control plane's background loops (dispatcher, housekeeping, outbox drain, planner, provisioner) run under
//! supervision: a loop that ends or panics is restarted after a growing delay and counted in
//! `edgefleet_loop_restarts_total{name=...}`, and `/readyz` names a loop that keeps failing. Without this a
//! panicking planner would leave the process serving, and reporting ready, with nobody planning.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy)]
pub struct SupervisorSettings {
    /// Delay before the first restart; doubles with each failure in a row up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A run that has lasted this long is healthy: the failure count (and `/readyz`) and the delay start over.
    pub healthy_after: Duration,
    /// Failures in a row after which the loop is reported as failing.
    pub failing_after: u32,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            failing_after: 3,
        }
    }
}

/// What each supervised loop last did; shared with `/readyz`.
#[derive(Clone, Default)]
pub struct LoopHealth(Arc<Mutex<BTreeMap<&'static str, LoopRecord>>>);

#[derive(Debug, Clone, Default)]
struct LoopRecord {
    failures_in_a_row: u32,
    last_failure: String,
}

impl LoopHealth {
    /// The loops that failed at least `at_least` times in a row, with how their last run ended.
    pub fn failing(&self, at_least: u32) -> Vec<(&'static str, String)> {
        self.lock()
            .iter()
            .filter(|(_, record)| record.failures_in_a_row >= at_least)
            .map(|(name, record)| (*name, record.last_failure.clone()))
            .collect()
    }

    fn record(&self, name: &'static str, failure: &str) -> u32 {
        let mut loops = self.lock();
        let record = loops.entry(name).or_default();
        record.failures_in_a_row += 1;
        record.last_failure = failure.to_owned();
        record.failures_in_a_row
    }

    fn clear(&self, name: &'static str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, LoopRecord>> {
        // A panic while holding this lock cannot leave a record half-written that matters more than losing it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Supervisor {
    settings: SupervisorSettings,
    health: LoopHealth,
    metrics: Metrics,
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
}

impl Supervisor {
    pub fn new(settings: SupervisorSettings, metrics: Metrics) -> Self {
        Self {
            settings,
            health: LoopHealth::default(),
            metrics,
            stop: watch::channel(false).0,
            loops: JoinSet::new(),
        }
    }

    pub fn health(&self) -> LoopHealth {
        self.health.clone()
    }

    pub fn settings(&self) -> SupervisorSettings {
        self.settings
    }

    /// Runs `start()` now and again whenever the loop it returns ends, until [`Supervisor::shut_down`].
    pub fn spawn<F, Fut>(&mut self, name: &'static str, start: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let settings = self.settings;
        let health = self.health.clone();
        let metrics = self.metrics.clone();
        let mut stop = self.stop.subscribe();
        self.loops.spawn(async move {
            let mut backoff = settings.initial_backoff;
            loop {
                let started = Instant::now();
                let mut run = tokio::spawn(start());
                // Aborting this wrapper (shut_down, or the supervisor dropped) must not leave the loop running.
                let _abort = AbortOnDrop(run.abort_handle());
                let mut healthy = false;
                let ended = loop {
                    tokio::select! {
                        _ = stop.wait_for(|stop| *stop) => return,
                        ended = &mut run => break ended,
                        () = tokio::time::sleep_until(started + settings.healthy_after), if !healthy => {
                            // Running well again: earlier failures no longer count, for /readyz or the delay.
                            healthy = true;
                            health.clear(name);
                            backoff = settings.initial_backoff;
                        }
                    }
                };
                let failure = match ended {
                    Ok(()) => "the loop returned".to_owned(),
                    Err(error) if error.is_panic() => {
                        format!("panicked: {}", panic_message(error.into_panic()))
                    }
                    Err(error) => error.to_string(),
                };
                let in_a_row = health.record(name, &failure);
                metrics.loop_restarted(name);
                tracing::error!(
                    r#loop = name,
                    failure = %failure,
                    failures_in_a_row = in_a_row,
                    restart_in = ?backoff,
                    "background loop stopped; restarting it"
                );
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(settings.max_backoff);
            }
        });
    }

    /// Stops every loop and waits until they are gone.
    pub async fn shut_down(mut self) {
        let _ = self.stop.send(true);
        while self.loops.join_next().await.is_some() {}
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> SupervisorSettings {
        SupervisorSettings {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            healthy_after: Duration::from_secs(60),
            failing_after: 3,
        }
    }

    fn restarts(metrics: &Metrics, name: &str) -> Option<u64> {
        let text = metrics.encode();
        let prefix = format!("edgefleet_loop_restarts_total{{name=\"{name}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(|value| value.parse().unwrap())
    }

    async fn until(condition: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the condition held within 10 s");
    }

    #[tokio::test]
    async fn a_loop_that_runs_well_again_is_no_longer_reported() {
        let settings = SupervisorSettings {
            healthy_after: Duration::from_millis(200),
            ..quick()
        };
        let mut supervisor = Supervisor::new(settings, Metrics::new());
        let health = supervisor.health();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervisor.spawn("outbox", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if run <= 3 {
                    panic!("database down");
                }
                std::future::pending::<()>().await
            }
        });
        until(|| runs.load(Ordering::SeqCst) == 4).await;
        assert_eq!(
            health.failing(3).len(),
            1,
            "three failures in a row are reported"
        );
        until(|| health.failing(1).is_empty()).await;
        supervisor.shut_down().await;
    }

    #[tokio::test]
    async fn dropping_the_supervisor_stops_its_loops() {
        let mut supervisor = Supervisor::new(quick(), Metrics::new());
        let alive = Arc::new(());
        let held = alive.clone();
        supervisor.spawn("planner", move || {
            let held = held.clone();
            async move {
                let _held = held;
                std::future::pending::<()>().await
            }
        });
        until(|| Arc::strong_count(&alive) == 3).await;
        drop(supervisor);
        until(|| Arc::strong_count(&alive) == 1).await;
    }

    #[tokio::test]
    async fn a_loop_that_panics_is_restarted_counted_and_reported_once_it_keeps_failing() {
        let metrics = Metrics::new();
        let mut supervisor = Supervisor::new(quick(), metrics.clone());
        let health = supervisor.health();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervisor.spawn("planner", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if run <= 2 {
                    panic!("run {run} broke");
                }
                std::future::pending::<()>().await
            }
        });
        until(|| runs.load(Ordering::SeqCst) == 3).await;
        assert_eq!(restarts(&metrics, "planner"), Some(2));
        assert!(
            health.failing(3).is_empty(),
            "two failures are not yet failing"
        );
        assert_eq!(
            health.failing(2),
            vec![("planner", "panicked: run 2 broke".to_owned())]
        );

        let always = Arc::new(AtomicU32::new(0));
        let counted = always.clone();
        supervisor.spawn("provisioner", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        until(|| always.load(Ordering::SeqCst) >= 4).await;
        assert!(
            health
                .failing(3)
                .contains(&("provisioner", "the loop returned".to_owned()))
        );
        assert!(restarts(&metrics, "provisioner").unwrap() >= 3);

        supervisor.shut_down().await;
        assert_eq!(
            Arc::strong_count(&always),
            1,
            "the loop's starter is dropped: nothing can restart it after shut_down"
        );
    }
}
