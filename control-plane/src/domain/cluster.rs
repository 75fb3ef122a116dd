//! Clusters: how they came to be, and the states they go through.

text_enum! {
    /// A registered cluster waits for its agent (registered -> ready | degraded). A provisioned one goes
    /// pending -> planned -> provisioning -> bootstrapping -> ready | degraded; destroying -> deleted; failed when
    /// Terraform fails for good.
    pub enum ClusterStatus ("cluster status") {
        Registered = "registered",
        Pending = "pending",
        Planned = "planned",
        Provisioning = "provisioning",
        Bootstrapping = "bootstrapping",
        Ready = "ready",
        Degraded = "degraded",
        Failed = "failed",
        Destroying = "destroying",
        Deleted = "deleted",
    }
}

impl ClusterStatus {
    /// The agent's heartbeat decides the status only once the cluster exists and is not being changed by
    /// Terraform; a heartbeat during a destroy or after a failure leaves those visible.
    pub fn after_heartbeat(self, kubernetes_reachable: bool) -> Option<Self> {
        match self {
            Self::Registered | Self::Bootstrapping | Self::Ready | Self::Degraded => {
                Some(if kubernetes_reachable {
                    Self::Ready
                } else {
                    Self::Degraded
                })
            }
            _ => None,
        }
    }

    /// Nothing will make the cluster usable again without someone acting.
    pub fn is_dead_end(self) -> bool {
        matches!(self, Self::Failed | Self::Deleted)
    }
}

text_enum! {
    pub enum ClusterRole ("cluster role") {
        Management = "management",
        User = "user",
    }
}

text_enum! {
    /// Registered by hand with its own agent install, or provisioned by the control plane with Terraform.
    pub enum Provisioning ("provisioning mode") {
        Manual = "manual",
        Terraform = "terraform",
    }
}

text_enum! {
    /// The result of the last drift check of a provisioned cluster.
    pub enum DriftStatus ("drift status") {
        InSync = "in_sync",
        Drifted = "drifted",
        Unknown = "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_set_ready_or_degraded_only_outside_terraform_runs() {
        assert_eq!(
            ClusterStatus::Bootstrapping.after_heartbeat(true),
            Some(ClusterStatus::Ready)
        );
        assert_eq!(
            ClusterStatus::Ready.after_heartbeat(false),
            Some(ClusterStatus::Degraded)
        );
        for busy in [
            ClusterStatus::Pending,
            ClusterStatus::Planned,
            ClusterStatus::Provisioning,
            ClusterStatus::Failed,
            ClusterStatus::Destroying,
            ClusterStatus::Deleted,
        ] {
            assert_eq!(busy.after_heartbeat(true), None, "{busy}");
        }
    }
}
