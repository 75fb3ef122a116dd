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

/// A Kubernetes namespace's name (an RFC 1123 label).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct NamespaceName(String);

impl TryFrom<String> for NamespaceName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        if super::names::is_dns_label(&name) {
            Ok(Self(name))
        } else {
            // The value is user input headed for an error body: quoted and kept short.
            let shown: String = name.chars().take(64).collect();
            Err(format!(
                "{shown:?} is not a namespace name: it {}",
                super::names::DNS_LABEL_RULE
            ))
        }
    }
}

impl From<NamespaceName> for String {
    fn from(name: NamespaceName) -> Self {
        name.0
    }
}

impl NamespaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The most namespaces a selection may name; past that, `all_namespaces` says it better.
pub const MAX_SELECTED_NAMESPACES: usize = 500;

/// Which namespaces' pod logs and Kubernetes events a cluster's agent collects, besides demo namespaces and what
/// opts in with the `edgefleet.io/logs=enabled` label.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct LogSelection {
    /// Every namespace of the cluster.
    #[serde(default)]
    pub all_namespaces: bool,
    /// These namespaces (at most 500); sorted, each once.
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 500)]
    pub namespaces: std::collections::BTreeSet<NamespaceName>,
}

impl LogSelection {
    /// The problem with a selection the API was given, if any.
    pub fn problem(&self) -> Option<String> {
        (self.namespaces.len() > MAX_SELECTED_NAMESPACES).then(|| {
            format!(
                "names {} namespaces; at most {MAX_SELECTED_NAMESPACES} (or set all_namespaces)",
                self.namespaces.len()
            )
        })
    }
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for LogSelection {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let namespaces: Vec<String> = row.try_get("log_namespaces")?;
        Ok(Self {
            all_namespaces: row.try_get("log_all_namespaces")?,
            namespaces: namespaces
                .into_iter()
                .map(NamespaceName::try_from)
                .collect::<Result<_, _>>()
                .map_err(|error| sqlx::Error::ColumnDecode {
                    index: "log_namespaces".into(),
                    source: error.into(),
                })?,
        })
    }
}

impl From<&LogSelection> for agent_protocol::LogSelection {
    fn from(selection: &LogSelection) -> Self {
        Self {
            all_namespaces: selection.all_namespaces,
            namespaces: selection
                .namespaces
                .iter()
                .map(|name| name.as_str().to_owned())
                .collect(),
        }
    }
}
