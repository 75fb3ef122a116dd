use chrono::Utc;

use super::*;
use crate::domain::RequestedRegion;
use crate::store::fixtures::{cluster, demo, region};

#[test]
fn a_region_is_healthy_only_when_every_agent_is_connected_and_nothing_failed() {
    let east = region("east", true);
    let up = cluster("a", &east, ClusterStatus::Ready, true);
    let lost = cluster("b", &east, ClusterStatus::Ready, false);
    let failed = cluster("c", &east, ClusterStatus::Failed, false);
    let provisioning = cluster("d", &east, ClusterStatus::Provisioning, false);

    assert_eq!(region_health(&east, &[], 0), RegionHealth::Empty);
    assert_eq!(region_health(&east, &[&up], 0), RegionHealth::Healthy);
    assert_eq!(
        region_health(&east, &[&up], 2),
        RegionHealth::Degraded,
        "tasks failed in the last interval"
    );
    assert_eq!(
        region_health(&east, &[&up, &lost], 0),
        RegionHealth::Degraded
    );
    assert_eq!(
        region_health(&east, &[&up, &failed], 0),
        RegionHealth::Degraded
    );
    // Still being provisioned: no agent expected yet, so nothing is wrong.
    assert_eq!(
        region_health(&east, &[&up, &provisioning], 0),
        RegionHealth::Healthy
    );
    assert_eq!(
        region_health(&east, &[&provisioning], 0),
        RegionHealth::Pending
    );
    assert_eq!(region_health(&east, &[&lost], 0), RegionHealth::Down);
    assert_eq!(
        region_health(&east, &[&failed, &provisioning], 0),
        RegionHealth::Down
    );
    let closed = region("closed", false);
    assert_eq!(region_health(&closed, &[&up], 0), RegionHealth::Disabled);
}

#[test]
fn a_sample_sums_each_regions_clusters_and_nothing_of_other_regions() {
    let east = region("east", true);
    let west = region("west", true);
    let mut fast = cluster("fast", &east, ClusterStatus::Ready, true);
    fast.agent.rtt_ms = Some(10.0);
    let mut slow = cluster("slow", &east, ClusterStatus::Ready, true);
    slow.agent.rtt_ms = Some(30.0);
    let mut gone = cluster("gone", &east, ClusterStatus::Ready, false);
    gone.agent.rtt_ms = Some(900.0);
    let far = cluster("far", &west, ClusterStatus::Ready, true);
    let mut online = demo(RequestedRegion::Auto, Some(&fast), 1);
    online.status = DemoStatus::Online;
    let mut broken = demo(RequestedRegion::Auto, Some(&slow), 1);
    broken.error = Some("apply failed".into());
    let mut deleted = demo(RequestedRegion::Auto, Some(&fast), 1);
    deleted.status = DemoStatus::Online;
    deleted.deleted_at = Some(Utc::now());
    let elsewhere = {
        let mut demo = demo(RequestedRegion::Auto, Some(&far), 1);
        demo.status = DemoStatus::Online;
        demo
    };
    let tasks = HashMap::from([
        (
            fast.id,
            TaskCounts {
                succeeded: 3,
                failed: 1,
            },
        ),
        (
            slow.id,
            TaskCounts {
                succeeded: 2,
                failed: 0,
            },
        ),
        (
            far.id,
            TaskCounts {
                succeeded: 50,
                failed: 50,
            },
        ),
    ]);
    let log_lines = HashMap::from([(fast.id, 100), (gone.id, 5), (far.id, 7)]);
    let at = Utc::now();
    let regions = [east.clone(), west.clone()];
    let samples = aggregate(&Observed {
        at,
        regions: &regions,
        clusters: &[fast, slow, gone, far],
        demos: &[online, broken, deleted, elsewhere],
        tasks: &tasks,
        log_lines: &log_lines,
    });
    assert_eq!(
        samples[0],
        RegionSample {
            region_id: east.id,
            at,
            clusters: 3,
            agents_connected: 2,
            // Only connected agents' round trips count.
            rtt_ms: Some(20.0),
            tasks_succeeded: 5,
            tasks_failed: 1,
            demos_online: 1,
            demos_failed: 1,
            log_lines: 105,
        }
    );
    assert_eq!(
        (
            samples[1].region_id,
            samples[1].clusters,
            samples[1].tasks_failed,
            samples[1].demos_online
        ),
        (west.id, 1, 50, 1)
    );
    assert_eq!(
        samples[1].rtt_ms, None,
        "no connected agent reported a round trip"
    );
}
