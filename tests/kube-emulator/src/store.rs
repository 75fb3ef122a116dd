//! In-memory object store: objects by key, the global resourceVersion counter, the bounded watch history
//! and the broadcast of change events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::resources::Registry;

/// Where an object lives; the version is not part of it (all versions of a kind share storage).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub plural: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change; `old` lets watchers with selectors turn a MODIFIED into ADDED/DELETED.
#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    pub resource_version: u64,
    pub key: Key,
    pub object: Value,
    pub old: Option<Value>,
}

struct Inner {
    registry: Registry,
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    history: VecDeque<Arc<Event>>,
    /// resourceVersion of the newest event dropped from `history` (0 when nothing was dropped).
    compacted: u64,
}

/// The whole cluster state. All reads and writes go through [`Store::transact`].
pub struct Store {
    inner: Mutex<Inner>,
    history_limit: usize,
    events: broadcast::Sender<Arc<Event>>,
    changed: Notify,
}

/// A consistent view of the store during one locked operation; writes become events on commit.
pub struct Txn<'a> {
    inner: &'a mut Inner,
    pending: Vec<Arc<Event>>,
}

impl Txn<'_> {
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.inner.registry
    }

    pub fn resource_version(&self) -> u64 {
        self.inner.resource_version
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.inner.objects.get(key)
    }

    /// Objects of one resource, in one namespace or (with `None`) everywhere, ordered by namespace and name.
    pub fn list<'s>(
        &'s self,
        group: &'s str,
        plural: &'s str,
        namespace: Option<&'s str>,
    ) -> impl Iterator<Item = (&'s Key, &'s Value)> + 's {
        self.inner.objects.iter().filter(move |(k, _)| {
            k.group == group && k.plural == plural && namespace.is_none_or(|ns| k.namespace == ns)
        })
    }

    /// Every stored object (for garbage collection and namespace cleanup).
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.inner.objects.iter()
    }

    fn next_version(&mut self) -> u64 {
        self.inner.resource_version += 1;
        self.inner.resource_version
    }

    /// Stores `object` with a fresh resourceVersion and returns the stored copy.
    pub fn put(&mut self, key: Key, mut object: Value) -> Value {
        let rv = self.next_version();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let old = self.inner.objects.insert(key.clone(), object.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.pending.push(Arc::new(Event {
            kind,
            resource_version: rv,
            key,
            object: object.clone(),
            old,
        }));
        object
    }

    /// Removes an object; the returned copy carries the resourceVersion of the deletion, as a real server's does.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.inner.objects.remove(key)?;
        let rv = self.next_version();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.pending.push(Arc::new(Event {
            kind: EventType::Deleted,
            resource_version: rv,
            key: key.clone(),
            object: object.clone(),
            old: None,
        }));
        Some(object)
    }
}

/// Result of subscribing to changes after a given resourceVersion.
pub struct Subscription<T> {
    /// What the caller computed under the lock (e.g. the initial state).
    pub snapshot: T,
    /// Retained events newer than the requested version, oldest first.
    pub replay: Vec<Arc<Event>>,
    pub receiver: broadcast::Receiver<Arc<Event>>,
    /// The store's resourceVersion when the subscription started.
    pub resource_version: u64,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(history_limit.max(1024));
        Self {
            inner: Mutex::new(Inner {
                registry: Registry::builtin(),
                objects: BTreeMap::new(),
                resource_version: 0,
                history: VecDeque::new(),
                compacted: 0,
            }),
            history_limit: history_limit.max(1),
            events,
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written object (writes are single inserts),
        // so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` atomically; its writes are appended to the history and broadcast when it returns.
    pub fn transact<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut guard = self.lock();
        let mut txn = Txn {
            inner: &mut guard,
            pending: Vec::new(),
        };
        let result = f(&mut txn);
        let pending = std::mem::take(&mut txn.pending);
        let changed = !pending.is_empty();
        for event in pending {
            guard.history.push_back(event.clone());
            while guard.history.len() > self.history_limit {
                if let Some(dropped) = guard.history.pop_front() {
                    guard.compacted = dropped.resource_version;
                }
            }
            // Nobody listening is fine: watches subscribe on demand.
            let _ = self.events.send(event);
        }
        drop(guard);
        if changed {
            self.changed.notify_one();
        }
        result
    }

    /// Subscribes to events after `since` (or after "now" when `None`), computing `snapshot` under the same lock
    /// so that nothing falls between the snapshot and the stream. Fails with the oldest retained version when
    /// `since` is older than the history.
    pub fn subscribe<T>(
        &self,
        since: Option<u64>,
        snapshot: impl FnOnce(&Txn<'_>) -> T,
    ) -> Result<Subscription<T>, u64> {
        let mut guard = self.lock();
        let current = guard.resource_version;
        let replay = match since {
            Some(rv) if rv < guard.compacted => return Err(guard.compacted + 1),
            Some(rv) => guard
                .history
                .iter()
                .filter(|e| e.resource_version > rv)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let txn = Txn {
            inner: &mut guard,
            pending: Vec::new(),
        };
        let snapshot = snapshot(&txn);
        let receiver = self.events.subscribe();
        Ok(Subscription {
            snapshot,
            replay,
            receiver,
            resource_version: current,
        })
    }

    /// A receiver of all future events (used by background tasks).
    pub fn events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Resolves after the next commit that changed something (or at once if one happened since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
