//! Rows as the store returns them, built in memory for the unit tests of pure decisions (planner, fleet).

use chrono::Utc;
use sqlx::types::Json;
use uuid::Uuid;

use super::{AgentStatus, Cluster, Demo, Region};
use crate::domain::{
    ClusterRole, ClusterStatus, DemoConfig, DemoStatus, LogSelection, Provisioning, RequestedRegion,
};

pub fn region(code: &str, enabled: bool) -> Region {
    Region {
        id: Uuid::new_v4(),
        cloud_account_id: Uuid::new_v4(),
        cloud_name: "cloud".into(),
        provider: "aws".into(),
        code: code.into(),
        display_name: code.into(),
        enabled,
        cluster_count: 0,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

pub fn cluster(name: &str, region: &Region, status: ClusterStatus, connected: bool) -> Cluster {
    Cluster {
        id: Uuid::new_v4(),
        region_id: region.id,
        region_code: region.code.clone(),
        name: name.into(),
        role: ClusterRole::User,
        status,
        status_message: Some("as the test set it".into()),
        provisioning: Provisioning::Terraform,
        api_endpoint: None,
        external_ip: None,
        agent: AgentStatus {
            connected,
            version: Some("0.1.0".into()),
            kubernetes_version: None,
            node_count: None,
            kubernetes_reachable: Some(connected),
            kubernetes_error: None,
            last_heartbeat_at: Some(Utc::now()),
            rtt_ms: None,
            offline_since: None,
            certificate_expires_at: None,
        },
        drift_status: None,
        drift_checked_at: None,
        log_selection: LogSelection::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
    }
}

pub fn demo(requested_region: RequestedRegion, cluster: Option<&Cluster>, replicas: i32) -> Demo {
    Demo {
        id: Uuid::new_v4(),
        name: "hello".into(),
        owner: "alice".into(),
        template_id: Uuid::new_v4(),
        image: "registry.test/hello:1".into(),
        requested_region,
        region_id: cluster.map(|c| c.region_id),
        region_reason: None,
        cluster_id: cluster.map(|c| c.id),
        config: Json(DemoConfig {
            env: [("MODEL_NAME".to_owned(), "large".to_owned())].into(),
            replicas,
        }),
        version: 1,
        status: DemoStatus::Developing,
        current_step: None,
        error: None,
        url: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        delete_requested_at: None,
        deleted_at: None,
    }
}
