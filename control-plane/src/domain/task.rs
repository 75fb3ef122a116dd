//! Tasks: what kind of work, and the states a task moves through in the queue.

use super::InvalidTransition;

text_enum! {
    /// pending -> leased -> running -> succeeded | failed | cancelled; a retryable failure or an expired lease
    /// with attempts left goes back to pending.
    pub enum TaskState ("task state") {
        Pending = "pending",
        Leased = "leased",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

/// How an attempt of a task ended, as its runner reported it (or as the lease expiry found it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded,
    /// Failed; `retryable` when running it again may succeed.
    Failed {
        retryable: bool,
    },
    /// Nobody reported within the lease; always worth another attempt.
    LeaseExpired,
}

/// What an expired lease does to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseExpiry {
    pub next: TaskState,
    /// Whether the expired lease used up one of the task's attempts.
    pub attempt_counts: bool,
}

impl TaskState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// A runner holds (or may still hold) the task.
    pub fn is_leased(self) -> bool {
        matches!(self, Self::Leased | Self::Running)
    }

    fn refuse(self, to: Self) -> InvalidTransition {
        InvalidTransition {
            what: "task",
            from: self.as_str(),
            to: to.as_str(),
        }
    }

    /// A runner took the task.
    pub fn lease(self) -> Result<Self, InvalidTransition> {
        match self {
            Self::Pending => Ok(Self::Leased),
            other => Err(other.refuse(Self::Leased)),
        }
    }

    /// The runner accepted the delivery and started.
    pub fn start(self) -> Result<Self, InvalidTransition> {
        match self {
            Self::Leased => Ok(Self::Running),
            other => Err(other.refuse(Self::Running)),
        }
    }

    /// Where an attempt's end leaves the task: another attempt when it may succeed and attempts are left.
    pub fn end_attempt(
        self,
        end: AttemptEnd,
        attempts_left: bool,
    ) -> Result<Self, InvalidTransition> {
        let next = match end {
            AttemptEnd::Succeeded => Self::Succeeded,
            AttemptEnd::Failed { retryable: true } | AttemptEnd::LeaseExpired if attempts_left => {
                Self::Pending
            }
            AttemptEnd::Failed { .. } | AttemptEnd::LeaseExpired => Self::Failed,
        };
        if self.is_leased() {
            Ok(next)
        } else {
            Err(self.refuse(next))
        }
    }

    /// Where an expired lease leaves the task. A delivery the runner never acknowledged (the task is still
    /// `leased`) may never have arrived, which on a lossy link is common, so it is redelivered without using up
    /// an attempt; once the runner said it started, the attempt counts.
    pub fn expire_lease(self, attempts_left: bool) -> Result<LeaseExpiry, InvalidTransition> {
        match self {
            Self::Leased => Ok(LeaseExpiry {
                next: Self::Pending,
                attempt_counts: false,
            }),
            other => Ok(LeaseExpiry {
                next: other.end_attempt(AttemptEnd::LeaseExpired, attempts_left)?,
                attempt_counts: true,
            }),
        }
    }

    pub fn cancel(self) -> Result<Self, InvalidTransition> {
        if self.is_final() {
            Err(self.refuse(Self::Cancelled))
        } else {
            Ok(Self::Cancelled)
        }
    }
}

text_enum! {
    /// What a task does. Agents run `apply` and `delete`; the control plane's provisioner runs the Terraform
    /// kinds.
    pub enum TaskKind ("task kind") {
        Apply = "apply",
        Delete = "delete",
        TerraformPlan = "terraform_plan",
        TerraformApply = "terraform_apply",
        TerraformDestroy = "terraform_destroy",
        TerraformDrift = "terraform_drift",
    }
}

impl TaskKind {
    pub const AGENT: &'static [Self] = &[Self::Apply, Self::Delete];
    pub const TERRAFORM: &'static [Self] = &[
        Self::TerraformPlan,
        Self::TerraformApply,
        Self::TerraformDestroy,
        Self::TerraformDrift,
    ];

    pub fn runs_on_agent(self) -> bool {
        Self::AGENT.contains(&self)
    }

    /// A Terraform run that, when it fails for good, leaves the cluster failed (a plan or a drift check leaves
    /// it as it was).
    pub fn failure_fails_cluster(self) -> bool {
        matches!(self, Self::TerraformApply | Self::TerraformDestroy)
    }
}

text_enum! {
    /// What happened to one object of an agent task.
    pub enum ObjectOutcome ("object outcome") {
        Unspecified = "unspecified",
        Applied = "applied",
        Unchanged = "unchanged",
        Failed = "failed",
        Ready = "ready",
        NotReady = "not_ready",
        Deleted = "deleted",
    }
}

impl ObjectOutcome {
    /// The object is on the cluster as the task asked.
    pub fn is_applied(self) -> bool {
        matches!(self, Self::Applied | Self::Unchanged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_through_its_states() {
        let leased = TaskState::Pending.lease().unwrap();
        let running = leased.start().unwrap();
        assert_eq!(running, TaskState::Running);
        assert_eq!(
            running.end_attempt(AttemptEnd::Succeeded, false),
            Ok(TaskState::Succeeded)
        );
    }

    #[test]
    fn a_failed_attempt_is_retried_only_when_retryable_and_attempts_are_left() {
        let retry = AttemptEnd::Failed { retryable: true };
        let fatal = AttemptEnd::Failed { retryable: false };
        assert_eq!(
            TaskState::Running.end_attempt(retry, true),
            Ok(TaskState::Pending)
        );
        assert_eq!(
            TaskState::Running.end_attempt(retry, false),
            Ok(TaskState::Failed)
        );
        assert_eq!(
            TaskState::Running.end_attempt(fatal, true),
            Ok(TaskState::Failed)
        );
        assert_eq!(
            TaskState::Leased.end_attempt(AttemptEnd::LeaseExpired, true),
            Ok(TaskState::Pending)
        );
        assert_eq!(
            TaskState::Leased.end_attempt(AttemptEnd::LeaseExpired, false),
            Ok(TaskState::Failed)
        );
    }

    #[test]
    fn a_delivery_never_acknowledged_is_redelivered_without_using_up_attempts() {
        for attempts_left in [true, false] {
            assert_eq!(
                TaskState::Leased.expire_lease(attempts_left),
                Ok(LeaseExpiry {
                    next: TaskState::Pending,
                    attempt_counts: false
                })
            );
        }
        assert_eq!(
            TaskState::Running.expire_lease(true),
            Ok(LeaseExpiry {
                next: TaskState::Pending,
                attempt_counts: true
            })
        );
        assert_eq!(
            TaskState::Running.expire_lease(false),
            Ok(LeaseExpiry {
                next: TaskState::Failed,
                attempt_counts: true
            })
        );
        assert!(TaskState::Pending.expire_lease(true).is_err());
        assert!(TaskState::Succeeded.expire_lease(true).is_err());
    }

    #[test]
    fn finished_tasks_take_no_more_results_and_cannot_be_cancelled() {
        for state in [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::Cancelled,
        ] {
            let error = state.end_attempt(AttemptEnd::Succeeded, true).unwrap_err();
            assert_eq!(error.from, state.as_str());
            assert!(state.cancel().is_err());
        }
        assert!(
            TaskState::Pending
                .end_attempt(AttemptEnd::Succeeded, true)
                .is_err()
        );
        assert!(TaskState::Running.lease().is_err());
        assert!(TaskState::Pending.start().is_err());
        assert_eq!(TaskState::Running.cancel(), Ok(TaskState::Cancelled));
    }

    #[test]
    fn text_round_trips_and_unknown_text_is_refused_naming_the_type() {
        for kind in TaskKind::ALL {
            assert_eq!(kind.as_str().parse::<TaskKind>(), Ok(*kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        let error = "Apply".parse::<TaskKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"Apply\" is not a task kind (expected one of: apply, delete, terraform_plan, terraform_apply, terraform_destroy, terraform_drift)"
        );
        assert!(serde_json::from_str::<TaskState>("\"done\"").is_err());
    }
}
