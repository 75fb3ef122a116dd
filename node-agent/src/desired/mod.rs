//! The desired state the agent last applied: every object of its successful apply tasks, kept in a file beside
//! the log buffer, so that while the control plane is out of reach the agent keeps the cluster as its tasks left
//! it (see `offline`) and can tell the control plane afterwards what it corrected. Secrets are never kept: their
//! data would sit on the node's disk in clear text.

pub mod offline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agent_protocol::{ApplyTier, ObjectOutcome, ObjectResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use crate::apply::manifest;

/// Which object, as the API server knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.namespace.as_str() {
            "" => write!(f, "{} {}", self.kind, self.name),
            namespace => write!(f, "{} {namespace}/{}", self.kind, self.name),
        }
    }
}

impl ObjectKey {
    fn of(result: &ObjectResult) -> Self {
        Self {
            api_version: result.api_version.clone(),
            kind: result.kind.clone(),
            namespace: result.namespace.clone(),
            name: result.name.clone(),
        }
    }
}

/// One object as its task applied it, with the policy tier the task ran under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptObject {
    pub key: ObjectKey,
    pub object: Value,
    pub admin_tier: bool,
    pub task_id: String,
}

impl KeptObject {
    pub fn tier(&self) -> ApplyTier {
        if self.admin_tier {
            ApplyTier::Admin
        } else {
            ApplyTier::Operator
        }
    }
}

/// The objects kept, saved to `path` after every change.
#[derive(Debug)]
pub struct DesiredState {
    path: PathBuf,
    objects: Mutex<BTreeMap<ObjectKey, KeptObject>>,
}

impl DesiredState {
    /// Loads what an earlier run kept; a missing file is an empty state, an unreadable one is logged and
    /// replaced at the next save.
    pub fn load(path: &Path) -> Self {
        let objects = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<KeptObject>>(&bytes) {
                Ok(kept) => kept.into_iter().map(|o| (o.key.clone(), o)).collect(),
                Err(error) => {
                    warn!(path = %path.display(), %error, "the kept desired state is unreadable; starting empty");
                    BTreeMap::new()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                warn!(path = %path.display(), %error, "cannot read the kept desired state; starting empty");
                BTreeMap::new()
            }
        };
        Self {
            path: path.to_owned(),
            objects: Mutex::new(objects),
        }
    }

    /// Records what a successful task did: objects it applied are kept as its manifest has them, objects it
    /// deleted (a delete task, or a prune) are no longer kept.
    pub fn record(
        &self,
        task_id: &str,
        tier: ApplyTier,
        manifest_yaml: &str,
        results: &[ObjectResult],
    ) {
        let documents: BTreeMap<usize, manifest::Document> = manifest::parse(manifest_yaml)
            .unwrap_or_default()
            .into_iter()
            .map(|document| (document.index, document))
            .collect();
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        for result in results {
            let key = ObjectKey::of(result);
            match ObjectOutcome::try_from(result.outcome) {
                Ok(ObjectOutcome::Deleted) => {
                    objects.remove(&key);
                }
                Ok(ObjectOutcome::Applied | ObjectOutcome::Unchanged) if key.kind != "Secret" => {
                    let Some(document) = documents.get(&(result.document_index as usize)) else {
                        continue;
                    };
                    let Ok(mut object) = serde_json::to_value(&document.object) else {
                        continue;
                    };
                    if !key.namespace.is_empty() {
                        object["metadata"]["namespace"] = Value::String(key.namespace.clone());
                    }
                    let kept = KeptObject {
                        key: key.clone(),
                        object,
                        admin_tier: tier == ApplyTier::Admin,
                        task_id: task_id.to_owned(),
                    };
                    objects.insert(key, kept);
                }
                _ => {}
            }
        }
        self.save(&objects);
    }

    /// Every object kept, in a stable order.
    pub fn objects(&self) -> Vec<KeptObject> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects.values().cloned().collect()
    }

    fn save(&self, objects: &BTreeMap<ObjectKey, KeptObject>) {
        let kept: Vec<&KeptObject> = objects.values().collect();
        let written = serde_json::to_vec(&kept)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::files::replace(&self.path, &bytes));
        if let Err(error) = written {
            warn!(path = %self.path.display(), %error, "cannot save the kept desired state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(index: u32, kind: &str, name: &str, outcome: ObjectOutcome) -> ObjectResult {
        ObjectResult {
            document_index: index,
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: "default".into(),
            name: name.into(),
            outcome: outcome.into(),
            message: String::new(),
        }
    }

    const MANIFEST: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\n\
                            apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n";

    #[test]
    fn applied_objects_are_kept_across_restarts_and_deleted_ones_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired-state.json");
        let state = DesiredState::load(&path);
        state.record(
            "task-1",
            ApplyTier::Operator,
            MANIFEST,
            &[
                result(0, "ConfigMap", "a", ObjectOutcome::Applied),
                result(1, "Secret", "s", ObjectOutcome::Applied),
            ],
        );
        let reloaded = DesiredState::load(&path).objects();
        assert_eq!(reloaded.len(), 1, "Secrets are never kept: {reloaded:?}");
        assert_eq!(reloaded[0].object["data"]["k"], "v");
        assert_eq!(reloaded[0].object["metadata"]["namespace"], "default");
        assert!(!std::fs::read_to_string(&path).unwrap().contains("hunter2"));

        state.record(
            "task-2",
            ApplyTier::Operator,
            "",
            &[result(0, "ConfigMap", "a", ObjectOutcome::Deleted)],
        );
        assert!(DesiredState::load(&path).objects().is_empty());
    }

    #[test]
    fn an_unreadable_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired-state.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(DesiredState::load(&path).objects().is_empty());
    }
}
