//! Fans PostgreSQL notifications out to the agent streams of this process, keyed by cluster, and patrols for
//! what notifications alone could miss.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::TaskKind;
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
    /// The certificate with this serial may no longer be used (revoked, or the end of a renewal's overlap):
    /// the stream holding it closes; others of the cluster stay.
    CertificateRefused {
        serial: String,
        reason: String,
    },
    /// This process is stopping: end the stream so the agent reconnects elsewhere or later.
    ShuttingDown,
}

/// This process's streams of one cluster: the channel that signals them and the certificates they hold.
struct ClusterStreams {
    tx: broadcast::Sender<ClusterSignal>,
    /// Serial -> number of streams holding it (an agent reconnecting may overlap its old stream).
    serials: HashMap<String, usize>,
}

#[derive(Default)]
pub struct Dispatcher {
    clusters: Mutex<HashMap<Uuid, ClusterStreams>>,
}

impl Dispatcher {
    /// Registers a stream of `cluster_id` holding the certificate `serial`.
    pub fn subscribe(&self, cluster_id: Uuid, serial: &str) -> broadcast::Receiver<ClusterSignal> {
        let mut clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        let streams = clusters
            .entry(cluster_id)
            .or_insert_with(|| ClusterStreams {
                tx: broadcast::channel(64).0,
                serials: HashMap::new(),
            });
        *streams.serials.entry(serial.to_string()).or_default() += 1;
        streams.tx.subscribe()
    }

    /// Forgets a stream once it has ended (its receiver dropped); the cluster's channel goes with its last.
    pub fn release(&self, cluster_id: Uuid, serial: &str) {
        let mut clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        let Some(streams) = clusters.get_mut(&cluster_id) else {
            return;
        };
        if let Some(count) = streams.serials.get_mut(serial) {
            *count -= 1;
            if *count == 0 {
                streams.serials.remove(serial);
            }
        }
        if streams.tx.receiver_count() == 0 {
            clusters.remove(&cluster_id);
        }
    }

    fn send(&self, cluster_id: Uuid, signal: ClusterSignal) {
        let clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        if let Some(streams) = clusters.get(&cluster_id) {
            let _ = streams.tx.send(signal);
        }
    }

    fn broadcast_all(&self, signal: ClusterSignal) {
        let clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        for streams in clusters.values() {
            let _ = streams.tx.send(signal.clone());
        }
    }

    /// The (cluster, certificate serial) pairs this process's streams hold.
    fn held(&self) -> Vec<(Uuid, String)> {
        let clusters = self.clusters.lock().expect("dispatcher lock poisoned");
        clusters
            .iter()
            .flat_map(|(cluster_id, streams)| {
                streams
                    .serials
                    .keys()
                    .map(move |serial| (*cluster_id, serial.clone()))
            })
            .collect()
    }

    /// Once per `interval`, with two queries for all of this process's streams rather than two per stream:
    /// signals clusters whose tasks wait (a notification that found its task momentarily locked, or one lost
    /// while the listener reconnected), and closes streams whose certificate may no longer be used (the end of
    /// a renewal's overlap has no notification).
    pub async fn patrol(self: Arc<Self>, store: Store, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let held = self.held();
            if held.is_empty() {
                continue;
            }
            let mut cluster_ids: Vec<Uuid> = held.iter().map(|(id, _)| *id).collect();
            cluster_ids.dedup();
            match store
                .clusters_with_pending_tasks(&cluster_ids, TaskKind::AGENT)
                .await
            {
                Ok(waiting) => {
                    for cluster_id in waiting {
                        self.send(cluster_id, ClusterSignal::TasksReady);
                    }
                }
                Err(error) => tracing::warn!(%error, "patrol: cannot look for waiting tasks"),
            }
            match store.certificate_refusals(&held).await {
                Ok(refused) => {
                    for refused in refused {
                        self.send(
                            refused.cluster_id,
                            ClusterSignal::CertificateRefused {
                                serial: refused.serial,
                                reason: refused.reason,
                            },
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "patrol: cannot check certificates"),
            }
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
        let mut rx_a = dispatcher.subscribe(a, "01");
        let mut rx_b = dispatcher.subscribe(b, "02");
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
    fn release_keeps_channels_and_serials_that_still_have_streams() {
        let dispatcher = Dispatcher::default();
        let a = Uuid::new_v4();
        let old = dispatcher.subscribe(a, "old");
        let renewed = dispatcher.subscribe(a, "new");
        let overlapping = dispatcher.subscribe(a, "new");
        drop(old);
        dispatcher.release(a, "old");
        assert_eq!(dispatcher.held(), vec![(a, "new".to_string())]);
        drop(overlapping);
        dispatcher.release(a, "new");
        assert_eq!(dispatcher.held(), vec![(a, "new".to_string())]);
        drop(renewed);
        dispatcher.release(a, "new");
        assert!(dispatcher.held().is_empty());
        assert!(dispatcher.clusters.lock().unwrap().is_empty());
    }
}
