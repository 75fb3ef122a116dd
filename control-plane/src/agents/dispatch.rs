//! Fans PostgreSQL notifications out to the agent streams of this process, keyed by cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::store::{Store, channels};

/// What an agent stream must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSignal {
    /// Tasks may be waiting (a new or redeliverable task, or notifications may have been missed).
    TasksReady,
    Cancelled {
        task_id: Uuid,
        lease_id: Uuid,
    },
    /// The cluster was deleted: close the stream.
    Revoked,
    /// This process is stopping: end the stream so the agent reconnects elsewhere or later.
    ShuttingDown,
}

#[derive(Default)]
pub struct Dispatcher {
    clusters: Mutex<HashMap<Uuid, broadcast::Sender<ClusterSignal>>>,
}

impl Dispatcher {
    pub fn subscribe(&self, cluster_id: Uuid) -> broadcast::Receiver<ClusterSignal> {
        let mut clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        clusters
            .entry(cluster_id)
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    /// Drops the cluster's channel once its last stream has gone.
    pub fn release(&self, cluster_id: Uuid) {
        let mut clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        if clusters
            .get(&cluster_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            clusters.remove(&cluster_id);
        }
    }

    fn send(&self, cluster_id: Uuid, signal: ClusterSignal) {
        let clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        if let Some(tx) = clusters.get(&cluster_id) {
            let _ = tx.send(signal);
        }
    }

    fn broadcast_all(&self, signal: ClusterSignal) {
        let clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        for tx in clusters.values() {
            let _ = tx.send(signal.clone());
        }
    }

    /// Tells every stream of this process to end.
    pub fn shut_down(&self) {
        self.broadcast_all(ClusterSignal::ShuttingDown);
    }

    /// Listens for notifications until the process stops. After the listener reconnects, every stream is told
    /// to look for work, since notifications sent in between are lost.
    pub async fn run(self: Arc<Self>, store: Store) {
        loop {
            let mut listener = match store.listener().await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, "cannot LISTEN for task notifications; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.broadcast_all(ClusterSignal::TasksReady);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        self.route(notification.channel(), notification.payload())
                    }
                    Ok(None) => {
                        tracing::warn!("notification connection lost; reconnecting");
                        self.broadcast_all(ClusterSignal::TasksReady);
                    }
                    Err(error) => {
                        tracing::error!(%error, "notification listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    fn route(&self, channel: &str, payload: &str) {
        match channel {
            channels::TASK_READY => {
                if let Ok(cluster_id) = Uuid::parse_str(payload) {
                    self.send(cluster_id, ClusterSignal::TasksReady);
                }
            }
            channels::CLUSTER_REVOKED => {
                if let Ok(cluster_id) = Uuid::parse_str(payload) {
                    self.send(cluster_id, ClusterSignal::Revoked);
                }
            }
            channels::TASK_CANCELLED => {
                let mut parts = payload.split(':').map(Uuid::parse_str);
                if let (Some(Ok(cluster_id)), Some(Ok(task_id)), Some(Ok(lease_id))) =
                    (parts.next(), parts.next(), parts.next())
                {
                    self.send(cluster_id, ClusterSignal::Cancelled { task_id, lease_id });
                }
            }
            other => tracing::debug!(channel = other, "ignoring notification"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_signals_only_to_the_named_cluster() {
        let dispatcher = Dispatcher::default();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let mut rx_a = dispatcher.subscribe(a);
        let mut rx_b = dispatcher.subscribe(b);
        let task = Uuid::new_v4();
        let lease = Uuid::new_v4();
        dispatcher.route(channels::TASK_CANCELLED, &format!("{a}:{task}:{lease}"));
        dispatcher.route(channels::CLUSTER_REVOKED, &b.to_string());
        assert_eq!(
            rx_a.try_recv().unwrap(),
            ClusterSignal::Cancelled {
                task_id: task,
                lease_id: lease
            }
        );
        assert!(rx_a.try_recv().is_err());
        assert_eq!(rx_b.try_recv().unwrap(), ClusterSignal::Revoked);
    }

    #[test]
    fn release_keeps_channels_that_still_have_streams() {
        let dispatcher = Dispatcher::default();
        let a = Uuid::new_v4();
        let first = dispatcher.subscribe(a);
        let _second = dispatcher.subscribe(a);
        drop(first);
        dispatcher.release(a);
        assert!(dispatcher.clusters.lock().unwrap().contains_key(&a));
    }
}
