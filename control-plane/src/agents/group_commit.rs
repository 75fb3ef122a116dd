//! Group commit for the writes every agent stream of this process makes once or more per task (leases,
//! acceptances, results) or per heartbeat. A stream hands its write to a writer and waits for its own outcome; a writer that
//! becomes free takes everything queued meanwhile and does it in one statement or transaction. Nothing waits on a
//! timer: under light load a batch is a single write, as it would be without this; under load a batch holds
//! what arrived while the previous one committed, so the database does one round trip, one commit and one
//! plan per batch instead of per task.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{LogSelection, TaskKind, TaskState};
use crate::metrics::{Metrics, WriteLabel};
use crate::store::{
    Heartbeat, LeaseRef, LeasedTask, Store, StoreError, StreamLease, TaskCompletion,
};

/// Writers per kind of write: one batch commits while the next is written. Each holds a pooled connection
/// while it writes.
const WRITERS: usize = 2;

/// The most writes in one batch; beyond this a statement's own time outweighs what batching saves.
const MAX_BATCH: usize = 256;

/// The frequent writes of this process's agent streams, each kind group-committed.
#[derive(Clone)]
pub struct StreamWrites {
    pub lease: GroupCommit<StreamLease, Vec<LeasedTask>>,
    pub accept: GroupCommit<LeaseRef, bool>,
    pub complete: GroupCommit<(LeaseRef, TaskCompletion), Option<TaskState>>,
    /// (cluster, session, heartbeat) -> the cluster's log selection, `None` once the cluster is deleted.
    pub heartbeat: GroupCommit<(Uuid, Uuid, Heartbeat), Option<LogSelection>>,
}

impl StreamWrites {
    pub fn start(store: &Store, lease: Duration, metrics: &Metrics) -> Self {
        let sizes = |write| {
            metrics
                .queue_batch_size
                .get_or_create(&WriteLabel { write })
                .clone()
        };
        let lease = {
            let store = store.clone();
            GroupCommit::start(WRITERS, MAX_BATCH, sizes("lease"), move |requests| {
                let store = store.clone();
                async move {
                    store
                        .lease_tasks_for_streams(&requests, TaskKind::AGENT, lease)
                        .await
                }
            })
        };
        let accept = {
            let store = store.clone();
            GroupCommit::start(WRITERS, MAX_BATCH, sizes("accept"), move |accepted| {
                let store = store.clone();
                async move { store.mark_running_many(&accepted).await }
            })
        };
        let complete = {
            let store = store.clone();
            GroupCommit::start(WRITERS, MAX_BATCH, sizes("result"), move |reports| {
                let store = store.clone();
                async move { store.complete_tasks(&reports).await }
            })
        };
        let heartbeat = {
            let store = store.clone();
            GroupCommit::start(WRITERS, MAX_BATCH, sizes("heartbeat"), move |beats| {
                let store = store.clone();
                async move { store.record_heartbeats(&beats).await }
            })
        };
        Self {
            lease,
            accept,
            complete,
            heartbeat,
        }
    }
}

/// A failed write. Shared, because every stream whose write was in the failing batch gets the same error.
pub type WriteError = Arc<StoreError>;

type Reply<O> = oneshot::Sender<Result<O, WriteError>>;

/// Queued writes, shared by a kind's writers.
type Queue<I, O> = Arc<Mutex<mpsc::Receiver<(I, Reply<O>)>>>;

/// How many times a batch that lost a deadlock or a serialization conflict is tried again before its
/// streams get the error.
const CONFLICT_RETRIES: usize = 3;

pub struct GroupCommit<I, O> {
    jobs: mpsc::Sender<(I, Reply<O>)>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<I, O> GroupCommit<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    /// Starts `writers` writers, each taking batches of at most `max_batch`. `write` returns one outcome per
    /// item, in the items' order. Several writers let one batch commit while the next is being written; the
    /// writers end when the last handle is dropped.
    pub fn start<F, Fut>(writers: usize, max_batch: usize, batch_sizes: Histogram, write: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(max_batch * writers.max(1) * 4);
        let queue = Arc::new(Mutex::new(queue));
        let write = Arc::new(write);
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(
                queue.clone(),
                max_batch.max(1),
                batch_sizes.clone(),
                write.clone(),
            ));
        }
        Self { jobs }
    }

    /// Queues `item` and waits until the batch it went into is written.
    pub async fn submit(&self, item: I) -> Result<O, WriteError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send((item, reply))
            .await
            .map_err(|_| writers_gone())?;
        outcome.await.map_err(|_| writers_gone())?
    }
}

fn writers_gone() -> WriteError {
    Arc::new(StoreError::Database(sqlx::Error::WorkerCrashed))
}

async fn writer<I, O, F, Fut>(
    queue: Queue<I, O>,
    max_batch: usize,
    batch_sizes: Histogram,
    write: Arc<F>,
) where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<O>, StoreError>> + Send + 'static,
{
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        batch_sizes.observe(batch.len() as f64);
        let (items, replies): (Vec<I>, Vec<Reply<O>>) = batch.into_iter().unzip();
        // Spawned, so that a panic in a write fails its batch rather than this writer.
        let outcomes = tokio::spawn(write_batch(items, write.clone())).await;
        match outcomes {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(panic) => {
                tracing::error!(error = %panic, "a group commit panicked; its writes are reported failed");
                for reply in replies {
                    let _ = reply.send(Err(writers_gone()));
                }
            }
        }
    }
}

/// One outcome per item. A batch refused for what one item holds (a value the database rejects) is written
/// again one item at a time, so only that item's stream sees the error; a batch that failed for the database
/// (unreachable, busy) fails as a whole, without trying each item against a database that is away.
async fn write_batch<I, O, F, Fut>(items: Vec<I>, write: Arc<F>) -> Vec<Result<O, WriteError>>
where
    I: Clone + Send + Sync + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<O>, StoreError>> + Send + 'static,
{
    let count = items.len();
    match write_retrying_conflicts(&items, write.as_ref()).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(error) if count > 1 && !error.is_transient() => {
            tracing::warn!(%error, count, "a batched queue write was refused; writing its items one by one");
            let mut outcomes = Vec::with_capacity(count);
            for item in items {
                outcomes.push(
                    write_retrying_conflicts(std::slice::from_ref(&item), write.as_ref())
                        .await
                        .map(|mut one| one.remove(0))
                        .map_err(Arc::new),
                );
            }
            outcomes
        }
        Err(error) => {
            let error = Arc::new(error);
            (0..count).map(|_| Err(error.clone())).collect()
        }
    }
}

async fn write_retrying_conflicts<I, O, F, Fut>(
    items: &[I],
    write: &F,
) -> Result<Vec<O>, StoreError>
where
    I: Clone,
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, StoreError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match write(items.to_vec()).await {
            Ok(outcomes) if outcomes.len() == items.len() => return Ok(outcomes),
            Ok(outcomes) => {
                return Err(StoreError::Conflict(format!(
                    "a batched write returned {} outcomes for {} items",
                    outcomes.len(),
                    items.len()
                )));
            }
            Err(error) if error.is_conflict_to_retry() && tries <= CONFLICT_RETRIES => {
                tracing::debug!(%error, tries, "a batched queue write lost a lock conflict; trying again");
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use prometheus_client::metrics::histogram::exponential_buckets;

    use super::*;

    fn sizes() -> Histogram {
        Histogram::new(exponential_buckets(1.0, 2.0, 8))
    }

    #[tokio::test]
    async fn writes_queued_behind_a_busy_writer_go_in_one_batch_and_each_gets_its_own_outcome() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = batches.clone();
        let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let doubler = GroupCommit::start(1, 64, sizes(), move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.clone());
            let _ = started_tx.send(());
            let mut gate = gate_rx.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok(items.into_iter().map(|n| n * 2).collect())
            }
        });
        let submit = |n: u32| {
            let doubler = doubler.clone();
            tokio::spawn(async move { doubler.submit(n).await })
        };
        let first = submit(0);
        started.recv().await.unwrap();
        // The writer is busy with the first write: the next 19 wait in the queue.
        let rest: Vec<_> = (1..20).map(submit).collect();
        while doubler.jobs.max_capacity() - doubler.jobs.capacity() < 19 {
            tokio::task::yield_now().await;
        }
        gate_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 0);
        for (n, write) in (1..20u32).zip(rest) {
            assert_eq!(write.await.unwrap().unwrap(), n * 2);
        }
        assert_eq!(
            *batches.lock().unwrap(),
            vec![vec![0], (1..20).collect::<Vec<u32>>()]
        );
    }

    #[tokio::test]
    async fn a_batch_refused_for_one_item_is_written_again_item_by_item() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::<Vec<i32>>::new()));
        let seen = batches.clone();
        let writer = GroupCommit::start(1, 64, sizes(), move |items: Vec<i32>| {
            seen.lock().unwrap().push(items.clone());
            async move {
                if items.contains(&-1) {
                    return Err(StoreError::Conflict("negative".into()));
                }
                Ok(items)
            }
        });
        let (a, b, c) = tokio::join!(writer.submit(1), writer.submit(-1), writer.submit(3));
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(*b.unwrap_err(), StoreError::Conflict(_)));
        assert_eq!(c.unwrap(), 3);
        assert_eq!(
            *batches.lock().unwrap(),
            vec![vec![1, -1, 3], vec![1], vec![-1], vec![3]]
        );
    }

    #[tokio::test]
    async fn a_batch_failing_for_the_database_fails_every_item_without_retrying_each() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let writer = GroupCommit::start(1, 64, sizes(), move |_items: Vec<u8>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<Vec<u8>, _>(StoreError::Database(sqlx::Error::PoolTimedOut)) }
        });
        let (a, b) = tokio::join!(writer.submit(1), writer.submit(2));
        assert!(a.unwrap_err().is_transient());
        assert!(b.unwrap_err().is_transient());
        let calls = calls.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&calls),
            "{calls} writes for two items in at most two batches"
        );
    }

    #[tokio::test]
    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on() {
        let writer = GroupCommit::start(1, 64, sizes(), |items: Vec<u8>| async move {
            assert!(items != [0], "boom");
            Ok(items)
        });
        assert!(writer.submit(0).await.is_err());
        assert_eq!(writer.submit(7).await.unwrap(), 7);
    }
}
