//! What to do next with a demo's current step, decided from what the planner read about it. A pure function, in
//! the spirit of kube-runtime's reconcile returning an `Action`: the loop in `mod.rs` only reads and writes, so
//! every transition is unit tested here without a database.

use agent_protocol::policy::ApplyPolicy;
use uuid::Uuid;

use super::render;
use crate::domain::taskspec::{ApplyPayload, DeletePayload, TaskSpec, Tier};
use crate::domain::{ClusterStatus, DemoEnd, ObjectOutcome, StepName, TaskState};
use crate::store::{Cluster, Demo, DemoStep, Region, Task, TemplateRow};

/// Everything the planner read for one look at a step. What a step does not need is left empty.
pub struct Observed<'a> {
    pub demo: &'a Demo,
    pub step: &'a DemoStep,
    /// The step's task; for `wait_ready`, the task of the `apply` step (it goes on to wait for the rollout).
    pub task: Option<&'a Task>,
    /// The cluster the demo is placed on, if it is.
    pub cluster: Option<&'a Cluster>,
    /// For `ensure_cluster` on a demo not placed yet: what placement chooses from.
    pub placement: Option<&'a PlacementInputs>,
    /// For `render` and `apply`.
    pub template: Option<&'a TemplateRow>,
    /// For `apply`: an earlier demo of the same name on the same cluster whose delete has not finished. Its
    /// objects have the same names, and a Deployment's selector (which names the demo) cannot be taken over.
    pub predecessor: Option<&'a Demo>,
    pub settings: &'a Settings,
}

pub struct Settings {
    /// Demos are served at `http://<demo>.<cluster>.<demos_domain>/`.
    pub demos_domain: String,
    pub policy: ApplyPolicy,
}

pub enum PlacementInputs {
    /// `auto`: every live cluster, every region and how many demos each cluster runs.
    Auto {
        clusters: Vec<Cluster>,
        regions: Vec<Region>,
        demo_counts: Vec<(Uuid, i64)>,
    },
    /// A region was asked for (`None` when it no longer exists).
    Region {
        region: Option<Region>,
        /// The region's live clusters.
        clusters: Vec<Cluster>,
        /// Whether the control plane may provision a cluster there, and why not.
        provisioning: Result<String, String>,
    },
}

/// Where a placed demo runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Existing(Uuid),
    /// A new cluster, provisioned with the named Terraform stack.
    Provision {
        name: String,
        stack: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Queue the step's task (once per step attempt).
    Queue {
        spec: TaskSpec,
        reason: String,
    },
    /// Put the demo on a cluster; the step is done when that cluster is ready, else it waits for it.
    Place {
        region_id: Uuid,
        target: Target,
        reason: String,
        ready: bool,
    },
    Wait(String),
    Done(String),
    Fail(String),
    /// The last step succeeded and leaves the demo so.
    Finish(String, DemoEnd),
}

pub fn decide(seen: &Observed<'_>) -> Decision {
    match seen.step.name {
        StepName::EnsureCluster => ensure_cluster(seen),
        StepName::EnsureAgent => ensure_agent(seen),
        StepName::Render => render_step(seen),
        StepName::Apply => apply(seen),
        StepName::WaitReady => wait_ready(seen),
        StepName::PublishUrl => publish(seen),
        StepName::Prune => prune(seen),
        StepName::Close => Decision::Finish(
            "objects deleted; the demo is closed".into(),
            DemoEnd::Closed,
        ),
    }
}

/// The idempotency key of a step's task: one task per step attempt, however many planners race to queue it, and a
/// retried step (a new attempt) gets a new task.
pub fn step_task_key(demo: &Demo, step: &DemoStep) -> String {
    format!(
        "demo:{}:v{}:{}:a{}",
        demo.id, demo.version, step.name, step.attempt
    )
}

fn ensure_cluster(seen: &Observed<'_>) -> Decision {
    if let Some(cluster) = seen.cluster {
        return match cluster.status {
            ClusterStatus::Ready if cluster.agent.connected => {
                Decision::Done(format!("cluster {} is ready", cluster.name))
            }
            status if status.is_dead_end() => Decision::Fail(format!(
                "cluster {} is {status}: {}",
                cluster.name,
                cluster.status_message.as_deref().unwrap_or_default()
            )),
            status => Decision::Wait(format!("waiting for cluster {} ({status})", cluster.name)),
        };
    }
    if seen.demo.cluster_id.is_some() {
        return Decision::Fail("the demo's cluster no longer exists".into());
    }
    match seen.placement {
        Some(PlacementInputs::Auto {
            clusters,
            regions,
            demo_counts,
        }) => place_automatically(clusters, regions, demo_counts),
        Some(PlacementInputs::Region {
            region,
            clusters,
            provisioning,
        }) => place_in_region(seen.demo, region.as_ref(), clusters, provisioning),
        None => Decision::Fail("the planner read nothing to place the demo with".into()),
    }
}

fn place_in_region(
    demo: &Demo,
    region: Option<&Region>,
    clusters: &[Cluster],
    provisioning: &Result<String, String>,
) -> Decision {
    let Some(region) = region else {
        return Decision::Fail(format!("region {} no longer exists", demo.requested_region));
    };
    if !region.enabled {
        return Decision::Fail(format!("region {} is disabled", region.code));
    }
    let ready = clusters
        .iter()
        .find(|c| c.status == ClusterStatus::Ready && c.agent.connected);
    if let Some(cluster) = ready {
        return Decision::Place {
            region_id: region.id,
            target: Target::Existing(cluster.id),
            reason: format!(
                "requested region {}; cluster {} is ready",
                region.code, cluster.name
            ),
            ready: true,
        };
    }
    if let Some(existing) = clusters.first() {
        return Decision::Place {
            region_id: region.id,
            target: Target::Existing(existing.id),
            reason: format!(
                "requested region {}; waiting for its cluster {}",
                region.code, existing.name
            ),
            ready: false,
        };
    }
    match provisioning {
        Err(why) => Decision::Fail(format!(
            "region {} has no cluster and the control plane cannot provision one: {why}",
            region.code
        )),
        Ok(stack) => {
            let name: String = format!("{}-demos", region.code).chars().take(40).collect();
            Decision::Place {
                region_id: region.id,
                reason: format!(
                    "requested region {} had no cluster; provisioning {name}",
                    region.code
                ),
                target: Target::Provision {
                    name,
                    stack: stack.clone(),
                },
                ready: false,
            }
        }
    }
}

/// `auto`: among ready clusters (agent connected, API reachable) of enabled regions, the one running the fewest
/// demos, then the one with the shortest round trip to its agent, then the one heard from most recently.
fn place_automatically(
    clusters: &[Cluster],
    regions: &[Region],
    demo_counts: &[(Uuid, i64)],
) -> Decision {
    let load = |cluster: &Cluster| {
        demo_counts
            .iter()
            .find(|(id, _)| *id == cluster.id)
            .map_or(0, |(_, n)| *n)
    };
    // Unmeasured round trips sort last.
    let rtt = |cluster: &Cluster| cluster.agent.rtt_ms.unwrap_or(f64::INFINITY);
    let best = clusters
        .iter()
        .filter(|c| {
            c.status == ClusterStatus::Ready
                && c.agent.connected
                && c.agent.kubernetes_reachable == Some(true)
        })
        .filter(|c| regions.iter().any(|r| r.id == c.region_id && r.enabled))
        .min_by(|a, b| {
            load(a)
                .cmp(&load(b))
                .then_with(|| rtt(a).total_cmp(&rtt(b)))
                .then_with(|| b.agent.last_heartbeat_at.cmp(&a.agent.last_heartbeat_at))
        });
    let Some(cluster) = best else {
        return Decision::Fail(
            "no enabled region has a ready cluster with a connected agent".into(),
        );
    };
    let rtt = cluster
        .agent
        .rtt_ms
        .map_or_else(|| "not measured yet".into(), |ms| format!("{ms:.1} ms"));
    Decision::Place {
        region_id: cluster.region_id,
        target: Target::Existing(cluster.id),
        reason: format!(
            "auto: region {} (cluster {}) is ready with a connected agent, runs the fewest demos ({}), agent round trip {rtt}",
            cluster.region_code,
            cluster.name,
            load(cluster)
        ),
        ready: true,
    }
}

fn ensure_agent(seen: &Observed<'_>) -> Decision {
    let Some(cluster) = seen.cluster else {
        return Decision::Fail("the demo has no cluster".into());
    };
    if cluster.agent.connected {
        Decision::Done(format!(
            "agent {} connected",
            cluster.agent.version.as_deref().unwrap_or_default()
        ))
    } else {
        Decision::Wait(format!("waiting for the agent of cluster {}", cluster.name))
    }
}

/// The demo's objects for its cluster, or why they cannot be rendered.
fn objects(seen: &Observed<'_>) -> Result<Vec<serde_json::Value>, Decision> {
    let Some(cluster) = seen.cluster else {
        return Err(Decision::Fail("the demo has no cluster".into()));
    };
    let Some(template) = seen.template else {
        return Err(Decision::Fail(
            "the demo's template no longer exists".into(),
        ));
    };
    let demo = seen.demo;
    let config = &demo.config.0;
    Ok(render::objects(
        template,
        &render::DemoSpec {
            demo_id: &demo.id.to_string(),
            name: &demo.name,
            version: demo.version,
            image: &demo.image,
            replicas: config.replicas,
            env: &config.env,
            host: &host(seen, cluster),
        },
    ))
}

fn host(seen: &Observed<'_>, cluster: &Cluster) -> String {
    format!(
        "{}.{}.{}",
        seen.demo.name, cluster.name, seen.settings.demos_domain
    )
}

fn render_step(seen: &Observed<'_>) -> Decision {
    match objects(seen) {
        Ok(objects) => Decision::Done(format!(
            "{} objects rendered (Namespace, Deployment with probes on the template's port and health path, Service, Ingress, NetworkPolicy)",
            objects.len()
        )),
        Err(decision) => decision,
    }
}

/// How a step's task ended, when it did not succeed.
fn task_failure(task: &Task) -> Option<Decision> {
    matches!(task.state, TaskState::Failed | TaskState::Cancelled)
        .then(|| Decision::Fail(task.error.clone().unwrap_or_else(|| task.state.to_string())))
}

fn apply(seen: &Observed<'_>) -> Decision {
    let objects = match objects(seen) {
        Ok(objects) => objects,
        Err(decision) => return decision,
    };
    let Some(task) = seen.task else {
        if let Some(earlier) = seen.predecessor {
            if let Some(error) = &earlier.error {
                return Decision::Fail(format!(
                    "the earlier demo {} ({}) could not delete its objects ({error}); retry its delete, then this step",
                    earlier.name, earlier.id
                ));
            }
            return Decision::Wait(format!(
                "waiting for the earlier demo {} ({}) to finish deleting its objects",
                earlier.name, earlier.id
            ));
        }
        let payload = ApplyPayload {
            manifest: render::manifest(&objects),
            wait_timeout_seconds: 300,
            force_conflicts: true,
            prune: Some(render::object_set(&seen.demo.id.to_string())),
            tier: Tier::Operator,
        };
        // A demo is an operator's: its rendered objects pass the same policy as an operator's own task.
        if let Some(problem) = payload.validate(&seen.settings.policy).first() {
            return Decision::Fail(format!(
                "the rendered manifest is refused: {}: {}",
                problem.field, problem.message
            ));
        }
        return Decision::Queue {
            spec: TaskSpec::Apply(payload),
            reason: format!(
                "deploy of demo {} version {}",
                seen.demo.name, seen.demo.version
            ),
        };
    };
    if let Some(failed) = task_failure(task) {
        return failed;
    }
    let applied = task
        .objects
        .0
        .iter()
        .filter(|o| o.outcome.is_applied())
        .count();
    // The task goes on to wait for the rollout (the next step); the objects are applied already.
    if task.state == TaskState::Succeeded || applied >= objects.len() {
        Decision::Done(format!(
            "{applied} objects applied by the agent (task {})",
            task.id
        ))
    } else {
        Decision::Wait(format!("apply task {} is {}", task.id, task.state))
    }
}

fn wait_ready(seen: &Observed<'_>) -> Decision {
    let Some(task) = seen.task else {
        return Decision::Fail("the apply step has no task".into());
    };
    if let Some(failed) = task_failure(task) {
        return failed;
    }
    if task.state == TaskState::Succeeded {
        Decision::Done(format!("deployment {} available", seen.demo.name))
    } else {
        Decision::Wait(format!(
            "waiting for deployment {} to become available",
            seen.demo.name
        ))
    }
}

fn publish(seen: &Observed<'_>) -> Decision {
    if seen.demo.config.0.replicas == 0 {
        return Decision::Finish(
            "stopped: no replicas run, the demo is offline".into(),
            DemoEnd::Offline,
        );
    }
    let Some(cluster) = seen.cluster else {
        return Decision::Fail("the demo has no cluster".into());
    };
    let url = format!("http://{}/", host(seen, cluster));
    Decision::Finish(url.clone(), DemoEnd::Online { url })
}

/// Deletes what the demo put on its cluster: every object labelled with its id.
fn prune(seen: &Observed<'_>) -> Decision {
    if seen.demo.cluster_id.is_none() {
        return Decision::Done("the demo was never placed on a cluster".into());
    }
    match seen.cluster {
        Some(cluster) if cluster.status == ClusterStatus::Deleted => {
            return Decision::Done(format!(
                "cluster {} is deleted and its objects with it",
                cluster.name
            ));
        }
        None => return Decision::Done("the demo's cluster is gone and its objects with it".into()),
        Some(_) => {}
    }
    let Some(task) = seen.task else {
        return Decision::Queue {
            spec: TaskSpec::Delete(DeletePayload {
                objects: render::object_set(&seen.demo.id.to_string()),
            }),
            reason: format!("delete of demo {}", seen.demo.name),
        };
    };
    if let Some(failed) = task_failure(task) {
        return failed;
    }
    if task.state == TaskState::Succeeded {
        let deleted = task
            .objects
            .0
            .iter()
            .filter(|o| o.outcome == ObjectOutcome::Deleted)
            .count();
        Decision::Done(format!(
            "{deleted} objects deleted by the agent (task {})",
            task.id
        ))
    } else {
        Decision::Wait(format!("delete task {} is {}", task.id, task.state))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use sqlx::types::Json;

    use super::*;
    use crate::domain::{ObjectOutcome, RequestedRegion, StepState, TaskKind};
    use crate::store::ObjectReport;
    use crate::store::fixtures::{cluster, demo, region};

    fn settings() -> Settings {
        Settings {
            demos_domain: "demos.test".into(),
            policy: ApplyPolicy::default(),
        }
    }

    fn step(name: StepName) -> DemoStep {
        DemoStep {
            id: 7,
            version: 1,
            position: 0,
            name,
            state: StepState::Pending,
            message: None,
            task_id: None,
            attempt: 1,
            started_at: None,
            finished_at: None,
        }
    }

    fn task(kind: TaskKind, state: TaskState, outcomes: &[ObjectOutcome]) -> Task {
        Task {
            id: Uuid::new_v4(),
            cluster_id: Uuid::new_v4(),
            kind,
            payload: Json(json!({})),
            state,
            reason: String::new(),
            idempotency_key: None,
            parent_id: None,
            created_by: "planner".into(),
            attempts: 1,
            max_attempts: 3,
            lease_expires_at: None,
            objects: Json(
                outcomes
                    .iter()
                    .enumerate()
                    .map(|(index, outcome)| ObjectReport {
                        document_index: index as u32,
                        api_version: "v1".into(),
                        kind: "Service".into(),
                        namespace: "demo-hello".into(),
                        name: "hello".into(),
                        outcome: *outcome,
                        message: String::new(),
                    })
                    .collect(),
            ),
            output: None,
            error: (state == TaskState::Failed).then(|| "forbidden: nope".to_owned()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            started_at: None,
            finished_at: None,
            trace_id: None,
        }
    }

    /// One look at `step` of `demo` with what the test read.
    struct Look<'a> {
        demo: &'a Demo,
        step: DemoStep,
        task: Option<&'a Task>,
        cluster: Option<&'a Cluster>,
        placement: Option<&'a PlacementInputs>,
        template: Option<&'a TemplateRow>,
        predecessor: Option<&'a Demo>,
    }

    impl<'a> Look<'a> {
        fn at(demo: &'a Demo, name: StepName) -> Self {
            Self {
                demo,
                step: step(name),
                task: None,
                cluster: None,
                placement: None,
                template: None,
                predecessor: None,
            }
        }

        fn decide(&self) -> Decision {
            decide(&Observed {
                demo: self.demo,
                step: &self.step,
                task: self.task,
                cluster: self.cluster,
                placement: self.placement,
                template: self.template,
                predecessor: self.predecessor,
                settings: &settings(),
            })
        }
    }

    fn failure(decision: Decision) -> String {
        match decision {
            Decision::Fail(message) => message,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_placed_demo_waits_for_its_cluster_and_fails_when_it_cannot_become_ready() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Region(eu.id), Some(&ready), 1);
        let mut look = Look::at(&placed, StepName::EnsureCluster);
        look.cluster = Some(&ready);
        assert_eq!(
            look.decide(),
            Decision::Done("cluster eu-1 is ready".into())
        );

        let ready_without_agent = cluster("eu-1", &eu, ClusterStatus::Ready, false);
        look.cluster = Some(&ready_without_agent);
        assert_eq!(
            look.decide(),
            Decision::Wait("waiting for cluster eu-1 (ready)".into())
        );

        let provisioning = cluster("eu-1", &eu, ClusterStatus::Provisioning, false);
        look.cluster = Some(&provisioning);
        assert_eq!(
            look.decide(),
            Decision::Wait("waiting for cluster eu-1 (provisioning)".into())
        );

        let failed = cluster("eu-1", &eu, ClusterStatus::Failed, false);
        look.cluster = Some(&failed);
        assert_eq!(
            failure(look.decide()),
            "cluster eu-1 is failed: as the test set it"
        );
        let deleted = cluster("eu-1", &eu, ClusterStatus::Deleted, false);
        look.cluster = Some(&deleted);
        assert_eq!(
            failure(look.decide()),
            "cluster eu-1 is deleted: as the test set it"
        );

        look.cluster = None;
        assert_eq!(
            failure(look.decide()),
            "the demo's cluster no longer exists"
        );
    }

    #[test]
    fn a_requested_region_uses_a_ready_cluster_then_any_cluster_then_provisions_one() {
        let eu = region("eu", true);
        let unplaced = demo(RequestedRegion::Region(eu.id), None, 1);
        let mut look = Look::at(&unplaced, StepName::EnsureCluster);
        let starting = cluster("eu-a", &eu, ClusterStatus::Bootstrapping, false);
        let ready = cluster("eu-b", &eu, ClusterStatus::Ready, true);

        let both = PlacementInputs::Region {
            region: Some(eu.clone()),
            clusters: vec![starting.clone(), ready.clone()],
            provisioning: Ok("aws".into()),
        };
        look.placement = Some(&both);
        assert_eq!(
            look.decide(),
            Decision::Place {
                region_id: eu.id,
                target: Target::Existing(ready.id),
                reason: "requested region eu; cluster eu-b is ready".into(),
                ready: true,
            }
        );

        let starting_only = PlacementInputs::Region {
            region: Some(eu.clone()),
            clusters: vec![starting.clone()],
            provisioning: Ok("aws".into()),
        };
        look.placement = Some(&starting_only);
        assert_eq!(
            look.decide(),
            Decision::Place {
                region_id: eu.id,
                target: Target::Existing(starting.id),
                reason: "requested region eu; waiting for its cluster eu-a".into(),
                ready: false,
            }
        );

        let empty = PlacementInputs::Region {
            region: Some(eu.clone()),
            clusters: Vec::new(),
            provisioning: Ok("aws".into()),
        };
        look.placement = Some(&empty);
        assert_eq!(
            look.decide(),
            Decision::Place {
                region_id: eu.id,
                target: Target::Provision {
                    name: "eu-demos".into(),
                    stack: "aws".into()
                },
                reason: "requested region eu had no cluster; provisioning eu-demos".into(),
                ready: false,
            }
        );
    }

    #[test]
    fn a_requested_region_that_cannot_host_the_demo_fails_saying_why() {
        let eu = region("eu", true);
        let unplaced = demo(RequestedRegion::Region(eu.id), None, 1);
        let mut look = Look::at(&unplaced, StepName::EnsureCluster);

        let no_provisioning = PlacementInputs::Region {
            region: Some(eu.clone()),
            clusters: Vec::new(),
            provisioning: Err("it provisions no clusters there".into()),
        };
        look.placement = Some(&no_provisioning);
        assert_eq!(
            failure(look.decide()),
            "region eu has no cluster and the control plane cannot provision one: it provisions no clusters there"
        );

        let disabled = PlacementInputs::Region {
            region: Some(region("eu", false)),
            clusters: Vec::new(),
            provisioning: Ok("aws".into()),
        };
        look.placement = Some(&disabled);
        assert_eq!(failure(look.decide()), "region eu is disabled");

        let vanished = PlacementInputs::Region {
            region: None,
            clusters: Vec::new(),
            provisioning: Ok("aws".into()),
        };
        look.placement = Some(&vanished);
        assert_eq!(
            failure(look.decide()),
            format!("region {} no longer exists", eu.id)
        );
    }

    #[test]
    fn auto_placement_prefers_fewer_demos_then_a_shorter_round_trip_in_enabled_regions() {
        let eu = region("eu", true);
        let us = region("us", true);
        let off = region("off", false);
        let mut busy_fast = cluster("eu-busy", &eu, ClusterStatus::Ready, true);
        busy_fast.agent.rtt_ms = Some(1.0);
        let mut idle_slow = cluster("us-idle-slow", &us, ClusterStatus::Ready, true);
        idle_slow.agent.rtt_ms = Some(80.0);
        let mut idle_fast = cluster("us-idle-fast", &us, ClusterStatus::Ready, true);
        idle_fast.agent.rtt_ms = Some(20.0);
        let idle_unmeasured = cluster("us-idle-new", &us, ClusterStatus::Ready, true);
        let mut in_disabled_region = cluster("off-1", &off, ClusterStatus::Ready, true);
        in_disabled_region.agent.rtt_ms = Some(0.1);
        let mut unreachable = cluster("eu-unreachable", &eu, ClusterStatus::Ready, true);
        unreachable.agent.kubernetes_reachable = Some(false);
        let degraded = cluster("eu-degraded", &eu, ClusterStatus::Degraded, true);

        let unplaced = demo(RequestedRegion::Auto, None, 1);
        let mut look = Look::at(&unplaced, StepName::EnsureCluster);
        let inputs = PlacementInputs::Auto {
            clusters: vec![
                busy_fast.clone(),
                idle_slow,
                idle_unmeasured,
                idle_fast.clone(),
                in_disabled_region,
                unreachable,
                degraded,
            ],
            regions: vec![eu.clone(), us.clone(), off],
            demo_counts: vec![(busy_fast.id, 3)],
        };
        look.placement = Some(&inputs);
        assert_eq!(
            look.decide(),
            Decision::Place {
                region_id: us.id,
                target: Target::Existing(idle_fast.id),
                reason: "auto: region us (cluster us-idle-fast) is ready with a connected agent, runs the fewest demos (0), agent round trip 20.0 ms".into(),
                ready: true,
            }
        );

        let nothing_ready = PlacementInputs::Auto {
            clusters: vec![cluster("eu-new", &eu, ClusterStatus::Provisioning, false)],
            regions: vec![eu],
            demo_counts: Vec::new(),
        };
        look.placement = Some(&nothing_ready);
        assert_eq!(
            failure(look.decide()),
            "no enabled region has a ready cluster with a connected agent"
        );
    }

    #[test]
    fn the_agent_step_waits_for_a_connected_agent() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let mut look = Look::at(&placed, StepName::EnsureAgent);
        look.cluster = Some(&ready);
        assert_eq!(
            look.decide(),
            Decision::Done("agent 0.1.0 connected".into())
        );
        let offline = cluster("eu-1", &eu, ClusterStatus::Degraded, false);
        look.cluster = Some(&offline);
        assert_eq!(
            look.decide(),
            Decision::Wait("waiting for the agent of cluster eu-1".into())
        );
    }

    #[test]
    fn render_counts_the_objects_and_needs_the_template() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let template = render::sample_template();
        let mut look = Look::at(&placed, StepName::Render);
        look.cluster = Some(&ready);
        look.template = Some(&template);
        let Decision::Done(message) = look.decide() else {
            panic!("render did not finish")
        };
        assert!(message.starts_with("5 objects rendered"), "{message}");
        look.template = None;
        assert_eq!(
            failure(look.decide()),
            "the demo's template no longer exists"
        );
    }

    #[test]
    fn apply_queues_a_pruning_operator_task_once_then_follows_it() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 2);
        let template = render::sample_template();
        let mut look = Look::at(&placed, StepName::Apply);
        look.cluster = Some(&ready);
        look.template = Some(&template);

        let Decision::Queue {
            spec: TaskSpec::Apply(payload),
            reason,
        } = look.decide()
        else {
            panic!("apply did not queue an apply task")
        };
        assert_eq!(reason, "deploy of demo hello version 1");
        assert_eq!(payload.tier, Tier::Operator);
        assert!(payload.force_conflicts);
        let prune = payload.prune.expect("the demo's objects are pruned");
        assert_eq!(
            prune.label_selector,
            format!("{}={}", agent_protocol::DEMO_LABEL, placed.id)
        );
        assert!(payload.manifest.contains("host: hello.eu-1.demos.test"));
        assert!(payload.manifest.contains("replicas: 2"));
        assert!(
            payload.manifest.contains("value: large") && !payload.manifest.contains("value: tiny"),
            "the demo's env overrides the template's default"
        );

        let pending = task(TaskKind::Apply, TaskState::Pending, &[]);
        look.task = Some(&pending);
        assert_eq!(
            look.decide(),
            Decision::Wait(format!("apply task {} is pending", pending.id))
        );
        let partly = task(
            TaskKind::Apply,
            TaskState::Running,
            &[ObjectOutcome::Applied, ObjectOutcome::Unchanged],
        );
        look.task = Some(&partly);
        assert_eq!(
            look.decide(),
            Decision::Wait(format!("apply task {} is running", partly.id))
        );
        let all_applied = task(
            TaskKind::Apply,
            TaskState::Running,
            &[ObjectOutcome::Applied; 5],
        );
        look.task = Some(&all_applied);
        assert_eq!(
            look.decide(),
            Decision::Done(format!(
                "5 objects applied by the agent (task {})",
                all_applied.id
            ))
        );
        let failed = task(TaskKind::Apply, TaskState::Failed, &[]);
        look.task = Some(&failed);
        assert_eq!(failure(look.decide()), "forbidden: nope");
        let cancelled = task(TaskKind::Apply, TaskState::Cancelled, &[]);
        look.task = Some(&cancelled);
        assert_eq!(failure(look.decide()), "cancelled");
    }

    #[test]
    fn apply_refuses_a_rendered_manifest_the_policy_refuses_and_queues_nothing() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let template = render::sample_template();
        let seen = Observed {
            demo: &placed,
            step: &step(StepName::Apply),
            task: None,
            cluster: Some(&ready),
            placement: None,
            template: Some(&template),
            predecessor: None,
            settings: &Settings {
                demos_domain: "demos.test".into(),
                policy: ApplyPolicy::new(["demo-hello".to_owned()], []),
            },
        };
        let message = failure(decide(&seen));
        assert!(
            message.starts_with(
                "the rendered manifest is refused: manifest[document 0]: Namespace demo-hello"
            ),
            "{message}"
        );
    }

    #[test]
    fn apply_waits_while_an_earlier_demo_of_the_same_name_is_being_deleted() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let mut earlier = demo(RequestedRegion::Auto, Some(&ready), 1);
        earlier.delete_requested_at = Some(Utc::now());
        let template = render::sample_template();
        let mut look = Look::at(&placed, StepName::Apply);
        look.cluster = Some(&ready);
        look.template = Some(&template);
        look.predecessor = Some(&earlier);
        assert_eq!(
            look.decide(),
            Decision::Wait(format!(
                "waiting for the earlier demo hello ({}) to finish deleting its objects",
                earlier.id
            ))
        );
        let mut stuck = earlier.clone();
        stuck.error = Some("prune failed: forbidden".into());
        look.predecessor = Some(&stuck);
        assert_eq!(
            failure(look.decide()),
            format!(
                "the earlier demo hello ({}) could not delete its objects (prune failed: forbidden); retry its delete, then this step",
                earlier.id
            )
        );
        look.predecessor = Some(&earlier);
        // A task queued before (the earlier delete was requested later) is followed as usual.
        let running = task(TaskKind::Apply, TaskState::Running, &[]);
        look.task = Some(&running);
        assert_eq!(
            look.decide(),
            Decision::Wait(format!("apply task {} is running", running.id))
        );
    }

    #[test]
    fn wait_ready_follows_the_apply_task_to_its_end() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let mut look = Look::at(&placed, StepName::WaitReady);
        assert_eq!(failure(look.decide()), "the apply step has no task");
        let running = task(TaskKind::Apply, TaskState::Running, &[]);
        look.task = Some(&running);
        assert_eq!(
            look.decide(),
            Decision::Wait("waiting for deployment hello to become available".into())
        );
        let done = task(TaskKind::Apply, TaskState::Succeeded, &[]);
        look.task = Some(&done);
        assert_eq!(
            look.decide(),
            Decision::Done("deployment hello available".into())
        );
        let failed = task(TaskKind::Apply, TaskState::Failed, &[]);
        look.task = Some(&failed);
        assert_eq!(failure(look.decide()), "forbidden: nope");
    }

    #[test]
    fn publishing_ends_online_with_the_url_or_offline_without_replicas() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let serving = demo(RequestedRegion::Auto, Some(&ready), 1);
        let mut look = Look::at(&serving, StepName::PublishUrl);
        look.cluster = Some(&ready);
        let url = "http://hello.eu-1.demos.test/".to_owned();
        assert_eq!(
            look.decide(),
            Decision::Finish(url.clone(), DemoEnd::Online { url })
        );
        let stopped = demo(RequestedRegion::Auto, Some(&ready), 0);
        let mut look = Look::at(&stopped, StepName::PublishUrl);
        look.cluster = Some(&ready);
        assert_eq!(
            look.decide(),
            Decision::Finish(
                "stopped: no replicas run, the demo is offline".into(),
                DemoEnd::Offline
            )
        );
    }

    #[test]
    fn a_delete_prunes_through_the_agent_unless_the_cluster_is_gone_then_closes() {
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let mut look = Look::at(&placed, StepName::Prune);
        look.cluster = Some(&ready);
        let Decision::Queue {
            spec: TaskSpec::Delete(payload),
            reason,
        } = look.decide()
        else {
            panic!("prune did not queue a delete task")
        };
        assert_eq!(reason, "delete of demo hello");
        assert_eq!(payload.objects, render::object_set(&placed.id.to_string()));

        let running = task(TaskKind::Delete, TaskState::Running, &[]);
        look.task = Some(&running);
        assert_eq!(
            look.decide(),
            Decision::Wait(format!("delete task {} is running", running.id))
        );
        let done = task(
            TaskKind::Delete,
            TaskState::Succeeded,
            &[
                ObjectOutcome::Deleted,
                ObjectOutcome::Deleted,
                ObjectOutcome::Failed,
            ],
        );
        look.task = Some(&done);
        assert_eq!(
            look.decide(),
            Decision::Done(format!("2 objects deleted by the agent (task {})", done.id))
        );
        let failed = task(TaskKind::Delete, TaskState::Failed, &[]);
        look.task = Some(&failed);
        assert_eq!(failure(look.decide()), "forbidden: nope");

        let deleted = cluster("eu-1", &eu, ClusterStatus::Deleted, false);
        look.task = None;
        look.cluster = Some(&deleted);
        assert_eq!(
            look.decide(),
            Decision::Done("cluster eu-1 is deleted and its objects with it".into())
        );
        look.cluster = None;
        assert_eq!(
            look.decide(),
            Decision::Done("the demo's cluster is gone and its objects with it".into())
        );

        let never_placed = demo(RequestedRegion::Auto, None, 1);
        assert_eq!(
            Look::at(&never_placed, StepName::Prune).decide(),
            Decision::Done("the demo was never placed on a cluster".into())
        );
        assert_eq!(
            Look::at(&placed, StepName::Close).decide(),
            Decision::Finish(
                "objects deleted; the demo is closed".into(),
                DemoEnd::Closed
            )
        );
    }

    #[test]
    fn a_retried_step_queues_a_new_task_under_a_new_key() {
        // A retry clears the step's task and counts an attempt (store::retry_demo): the next look queues the task
        // again, and its key differs from the failed attempt's, so the queue does not hand back the old task.
        let eu = region("eu", true);
        let ready = cluster("eu-1", &eu, ClusterStatus::Ready, true);
        let placed = demo(RequestedRegion::Auto, Some(&ready), 1);
        let mut look = Look::at(&placed, StepName::Prune);
        look.cluster = Some(&ready);
        let first_key = step_task_key(&placed, &look.step);
        look.step.attempt = 2;
        assert!(matches!(
            look.decide(),
            Decision::Queue {
                spec: TaskSpec::Delete(_),
                ..
            }
        ));
        let retry_key = step_task_key(&placed, &look.step);
        assert_eq!(first_key, format!("demo:{}:v1:prune:a1", placed.id));
        assert_eq!(retry_key, format!("demo:{}:v1:prune:a2", placed.id));
    }
}
