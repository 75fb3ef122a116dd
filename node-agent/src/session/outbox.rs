//! Task results waiting for the control plane's `ResultAck`, resent after every reconnect.

use agent_protocol::{TaskLease, TaskResult};

/// Unacknowledged results in the order they were produced.
#[derive(Debug, Default)]
pub struct ResultOutbox {
    results: Vec<TaskResult>,
}

impl ResultOutbox {
    pub fn push(&mut self, result: TaskResult) {
        self.results.push(result);
    }

    /// Forgets the result for `task_id` under `lease_id`; false when there was none.
    pub fn ack(&mut self, task_id: &str, lease_id: &str) -> bool {
        let before = self.results.len();
        self.results
            .retain(|result| !(result.task_id == task_id && result.lease_id == lease_id));
        self.results.len() != before
    }

    pub fn contains(&self, task_id: &str, lease_id: &str) -> bool {
        self.results
            .iter()
            .any(|result| result.task_id == task_id && result.lease_id == lease_id)
    }

    /// Drops results of `task_id` under leases other than `current_lease_id`: the server re-leased the task and
    /// ignores reports quoting an old lease, so resending them would be pointless.
    pub fn discard_stale(&mut self, task_id: &str, current_lease_id: &str) -> usize {
        let before = self.results.len();
        self.results
            .retain(|result| result.task_id != task_id || result.lease_id == current_lease_id);
        before - self.results.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TaskResult> {
        self.results.iter()
    }

    /// Leases of finished but unacknowledged tasks: heartbeats keep renewing them so the server does not re-lease
    /// a task whose result is in flight.
    pub fn leases(&self) -> impl Iterator<Item = TaskLease> + '_ {
        self.results.iter().map(|result| TaskLease {
            task_id: result.task_id.clone(),
            lease_id: result.lease_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(task_id: &str, lease_id: &str) -> TaskResult {
        TaskResult {
            task_id: task_id.into(),
            lease_id: lease_id.into(),
            ..TaskResult::default()
        }
    }

    #[test]
    fn results_stay_until_the_matching_ack() {
        let mut outbox = ResultOutbox::default();
        outbox.push(result("t1", "l1"));
        outbox.push(result("t2", "l1"));
        assert!(
            !outbox.ack("t1", "other-lease"),
            "an ack must match task and lease"
        );
        assert!(outbox.ack("t1", "l1"));
        let left: Vec<&str> = outbox
            .iter()
            .map(|result| result.task_id.as_str())
            .collect();
        assert_eq!(left, ["t2"]);
        assert!(outbox.contains("t2", "l1"));
    }

    #[test]
    fn a_new_lease_discards_results_of_older_ones() {
        let mut outbox = ResultOutbox::default();
        outbox.push(result("t1", "old"));
        outbox.push(result("t2", "old"));
        assert_eq!(outbox.discard_stale("t1", "new"), 1);
        assert_eq!(outbox.leases().count(), 1);
    }
}
