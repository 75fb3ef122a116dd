//! Demos: what a user asked to run, the steps a deploy or delete goes through, and the states a demo ends in.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::InvalidTransition;

text_enum! {
    /// developing while a deploy runs; online or offline (no replicas) when it finished; closed once deleted.
    pub enum DemoStatus ("demo status") {
        Developing = "developing",
        Online = "online",
        Offline = "offline",
        Closed = "closed",
    }
}

text_enum! {
    /// The steps of a deploy (seed 001 4.2: region -> agent -> objects -> rollout -> URL) and of a delete.
    pub enum StepName ("demo step") {
        EnsureCluster = "ensure_cluster",
        EnsureAgent = "ensure_agent",
        Render = "render",
        Apply = "apply",
        WaitReady = "wait_ready",
        PublishUrl = "publish_url",
        Prune = "prune",
        Close = "close",
    }
}

impl StepName {
    pub const DEPLOY: &'static [Self] = &[
        Self::EnsureCluster,
        Self::EnsureAgent,
        Self::Render,
        Self::Apply,
        Self::WaitReady,
        Self::PublishUrl,
    ];
    /// The demo's objects are deleted from its cluster, then the demo is closed.
    pub const TEARDOWN: &'static [Self] = &[Self::Prune, Self::Close];

    /// The step that ends a deploy or a delete.
    pub fn is_last(self) -> bool {
        matches!(self, Self::PublishUrl | Self::Close)
    }
}

text_enum! {
    pub enum StepState ("step state") {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

impl StepState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Where a step goes from here; a finished step changes only through a retry.
    pub fn advance(self, to: Self) -> Result<Self, InvalidTransition> {
        match (self, to) {
            (Self::Pending | Self::Running, Self::Running | Self::Succeeded | Self::Failed) => {
                Ok(to)
            }
            _ => Err(InvalidTransition {
                what: "demo step",
                from: self.as_str(),
                to: to.as_str(),
            }),
        }
    }

    /// A failed step runs again as a new attempt.
    pub fn retry(self) -> Result<Self, InvalidTransition> {
        match self {
            Self::Failed => Ok(Self::Pending),
            other => Err(InvalidTransition {
                what: "demo step",
                from: other.as_str(),
                to: Self::Pending.as_str(),
            }),
        }
    }
}

/// How a finished deploy or delete leaves the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoEnd {
    /// Serving at the URL.
    Online { url: String },
    /// Deployed with no replicas.
    Offline,
    /// Its objects are gone: closed and soft deleted (kept, no longer listed).
    Closed,
}

impl DemoEnd {
    pub fn status(&self) -> DemoStatus {
        match self {
            Self::Online { .. } => DemoStatus::Online,
            Self::Offline => DemoStatus::Offline,
            Self::Closed => DemoStatus::Closed,
        }
    }

    pub fn url(&self) -> Option<&str> {
        match self {
            Self::Online { url } => Some(url),
            Self::Offline | Self::Closed => None,
        }
    }
}

/// What a demo version runs besides its template and image. Stored as JSON; the API checks the rules before one
/// is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Overrides and additions to the template's environment defaults.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "one_replica")]
    pub replicas: i32,
}

fn one_replica() -> i32 {
    1
}

impl DemoConfig {
    pub const MAX_REPLICAS: i32 = 20;
}

/// Where a demo was asked to run: a region, or `auto` to let the planner choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedRegion {
    Auto,
    Region(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `auto` or the id of a region")]
pub struct NotARegion;

impl FromStr for RequestedRegion {
    type Err = NotARegion;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "auto" {
            return Ok(Self::Auto);
        }
        Uuid::parse_str(value)
            .map(Self::Region)
            .map_err(|_| NotARegion)
    }
}

impl fmt::Display for RequestedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Region(id) => id.fmt(f),
        }
    }
}

impl Serialize for RequestedRegion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl sqlx::Type<sqlx::Postgres> for RequestedRegion {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for RequestedRegion {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Postgres>>::encode(self.to_string(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for RequestedRegion {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(<&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_finish_once_and_only_a_failed_one_is_retried() {
        assert_eq!(
            StepState::Pending.advance(StepState::Running),
            Ok(StepState::Running)
        );
        assert_eq!(
            StepState::Running.advance(StepState::Succeeded),
            Ok(StepState::Succeeded)
        );
        assert!(StepState::Succeeded.advance(StepState::Failed).is_err());
        assert!(StepState::Failed.advance(StepState::Running).is_err());
        assert!(StepState::Running.advance(StepState::Pending).is_err());
        assert_eq!(StepState::Failed.retry(), Ok(StepState::Pending));
        assert!(StepState::Succeeded.retry().is_err());
    }

    #[test]
    fn a_config_reads_what_older_versions_stored_and_refuses_unknown_keys() {
        let config: DemoConfig =
            serde_json::from_value(serde_json::json!({"env": {"A": "1"}, "replicas": 2})).unwrap();
        assert_eq!(config.replicas, 2);
        assert_eq!(config.env["A"], "1");
        assert_eq!(
            serde_json::from_value::<DemoConfig>(serde_json::json!({})).unwrap(),
            DemoConfig {
                env: BTreeMap::new(),
                replicas: 1
            }
        );
        assert!(serde_json::from_value::<DemoConfig>(serde_json::json!({"replica": 2})).is_err());
        assert!(
            serde_json::from_value::<DemoConfig>(serde_json::json!({"env": {"A": 1}})).is_err()
        );
    }

    #[test]
    fn requested_regions_are_auto_or_a_uuid() {
        let id = Uuid::new_v4();
        assert_eq!("auto".parse(), Ok(RequestedRegion::Auto));
        assert_eq!(id.to_string().parse(), Ok(RequestedRegion::Region(id)));
        assert_eq!("eu-west".parse::<RequestedRegion>(), Err(NotARegion));
        assert_eq!(RequestedRegion::Region(id).to_string(), id.to_string());
    }
}
