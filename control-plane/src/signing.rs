//! The control plane's task-signing keys: loaded from files (never the database), they sign each agent task when
//! it is created and the key set agents pin (docs/security.md#signed-tasks).

use agent_protocol::signing::{SigningKey, sign_key_set};
use agent_protocol::{SignedTaskKeySet, TaskBody};
use chrono::Utc;

use crate::config::{ConfigError, TaskSigningConfig, read_private_file};
use crate::domain::TaskKind;
use crate::store::{NewTask, TaskSeal};

#[derive(Debug, thiserror::Error)]
#[error("{0} tasks do not run on an agent and are not signed")]
pub struct NotAnAgentTask(TaskKind);

pub struct TaskSigner {
    current: SigningKey,
    key_set: SignedTaskKeySet,
}

impl TaskSigner {
    pub fn load(config: &TaskSigningConfig) -> Result<Self, ConfigError> {
        let read = |key: &str, path: &std::path::Path| {
            let pem = read_private_file(key, path)?;
            SigningKey::from_pem(&pem).map_err(|error| ConfigError::Invalid {
                key: key.to_owned(),
                message: format!("{}: {error}", path.display()),
            })
        };
        let current = match (&config.key, &config.key_file) {
            (Some(pem), _) => SigningKey::from_pem(pem).map_err(|error| ConfigError::Invalid {
                key: "task_signing.key".to_owned(),
                message: error.to_string(),
            })?,
            (None, Some(path)) => read("task_signing.key_file", path)?,
            (None, None) => {
                return Err(ConfigError::Invalid {
                    key: "task_signing.key_file".to_owned(),
                    message: "not set".to_owned(),
                });
            }
        };
        let previous = config
            .previous_key_files
            .iter()
            .map(|path| read("task_signing.previous_key_files", path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(current, previous))
    }

    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Self {
        let mut keys = vec![&current];
        keys.extend(previous.iter().filter(|key| key.id() != current.id()));
        let key_set = sign_key_set(&keys);
        Self { current, key_set }
    }

    /// The id of the key new tasks are signed with.
    pub fn key_id(&self) -> &str {
        self.current.id()
    }

    /// What bootstrap and renewal hand the agent to pin.
    pub fn key_set(&self) -> &SignedTaskKeySet {
        &self.key_set
    }

    /// Signs what the agent will run for `task`, bound to its cluster and id.
    pub fn seal(&self, task: &mut NewTask) -> Result<(), NotAnAgentTask> {
        let spec = task
            .spec
            .agent_spec()
            .ok_or(NotAnAgentTask(task.spec.kind()))?;
        let (body, signature) = self.current.sign_task(&TaskBody {
            cluster_id: task.cluster_id.to_string(),
            task_id: task.id.to_string(),
            signed_at_unix: Utc::now().timestamp(),
            spec: Some(spec),
        });
        task.seal = Some(TaskSeal {
            body,
            signature: signature.signature,
            key_id: signature.key_id,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_protocol::TaskAssignment;
    use agent_protocol::signing::PinnedKeys;
    use agent_protocol::task_body::Spec;
    use uuid::Uuid;

    use crate::domain::taskspec::{ApplyPayload, TaskSpec, Tier};

    fn key() -> SigningKey {
        SigningKey::from_pem(&SigningKey::generate_pem()).unwrap()
    }

    fn new_task(spec: TaskSpec) -> NewTask {
        NewTask {
            id: Uuid::new_v4(),
            cluster_id: Uuid::new_v4(),
            spec,
            reason: "test".into(),
            idempotency_key: None,
            parent_id: None,
            created_by: "test".into(),
            max_attempts: 1,
            seal: None,
            demo_step: None,
            trace_parent: None,
        }
    }

    #[test]
    fn a_sealed_task_opens_on_an_agent_that_pinned_the_key_set() {
        let signer = TaskSigner::new(key(), Vec::new());
        let mut task = new_task(TaskSpec::Apply(ApplyPayload {
            manifest: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n".into(),
            wait_timeout_seconds: 0,
            force_conflicts: false,
            prune: None,
            tier: Tier::Admin,
        }));
        signer.seal(&mut task).unwrap();
        let seal = task.seal.clone().unwrap();
        assert_eq!(seal.key_id, signer.key_id());
        let pinned = PinnedKeys::from_bootstrap(Some(signer.key_set())).unwrap();
        let assignment = TaskAssignment {
            task_id: task.id.to_string(),
            body: seal.body,
            signature: Some(agent_protocol::TaskSignature {
                key_id: seal.key_id,
                signature: seal.signature,
            }),
            ..Default::default()
        };
        let Spec::Apply(apply) = pinned
            .open(&assignment, &task.cluster_id.to_string())
            .unwrap()
        else {
            panic!("not an apply")
        };
        assert_eq!(apply.tier(), agent_protocol::ApplyTier::Admin);
        assert!(apply.manifest_yaml.contains("kind: Namespace"));
    }

    #[test]
    fn previous_keys_sign_the_key_set_but_not_new_tasks() {
        let old = key();
        let old_id = old.id().to_owned();
        let pinned_old = PinnedKeys::from_bootstrap(Some(&sign_key_set(&[&old]))).unwrap();
        let signer = TaskSigner::new(key(), vec![old]);
        assert_ne!(signer.key_id(), old_id);
        let updated = pinned_old.update(Some(signer.key_set())).unwrap();
        assert_eq!(updated.ids(), vec![signer.key_id().to_owned(), old_id]);
    }

    #[test]
    fn only_agent_tasks_are_sealed() {
        let signer = TaskSigner::new(key(), Vec::new());
        let mut terraform = new_task(TaskSpec::TerraformApply);
        assert_eq!(
            signer.seal(&mut terraform).unwrap_err().to_string(),
            "terraform_apply tasks do not run on an agent and are not signed"
        );
        assert!(terraform.seal.is_none());
    }
}
