//! Turns a demo deploy into its steps and drives them: ensure the region has a ready cluster (provisioning one
//! through the provisioner when it has none) -> ensure its agent is connected -> render the objects from the
//! template -> apply them through the agent -> wait until ready -> publish the URL. Each step's state is
//! stored, a failed step stops the rest and says why. What to do is decided in `decide` (pure); this module reads
//! what a decision needs and carries it out.

pub mod decide;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use serde_json::json;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::taskspec::TaskSpec;
use crate::domain::{ClusterRole, RequestedRegion, StepName, StepState};
use crate::store::{
    Cluster, Demo, DemoStep, NewCluster, NewTask, Store, StoreError, Task, TaskInsert, channels,
};
use decide::{Decision, Observed, PlacementInputs, Settings, Target};

pub struct Planner {
    pub store: Store,
    pub config: Arc<Config>,
    pub signer: Arc<crate::signing::TaskSigner>,
    pub poll_interval: Duration,
}

impl Planner {
    /// Advances every due demo, then sleeps until a wake notification (a task, cluster or step changed) or the
    /// poll interval, whichever comes first.
    pub async fn run(self: Arc<Self>) {
        let mut listener = match self.store.listen(channels::DEMO_WAKE).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "planner cannot LISTEN; polling only");
                None
            }
        };
        loop {
            loop {
                match self.store.claim_demo(Duration::from_secs(30)).await {
                    Ok(Some((demo, wakes))) => {
                        if let Err(error) = self.advance(&demo).await {
                            tracing::warn!(demo_id = %demo.id, %error, "planner step failed to run; will retry");
                        }
                        if let Err(error) = self
                            .store
                            .release_demo(demo.id, wakes, self.poll_interval)
                            .await
                        {
                            tracing::warn!(demo_id = %demo.id, %error, "cannot release a demo; its claim expires");
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "planner cannot claim demos");
                        break;
                    }
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listener) => {
                        if listener.try_recv().await.is_err() {
                            tokio::time::sleep(self.poll_interval).await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Runs steps in order until one has to wait or fails.
    async fn advance(&self, claimed: &Demo) -> Result<(), StoreError> {
        let settings = Settings {
            demos_domain: self.config.demos_domain.clone(),
            policy: self.config.apply_policy.policy(),
        };
        loop {
            let (demo, steps) = self.store.demo_with_steps(claimed.id).await?;
            let Some(step) = steps.iter().find(|s| s.state != StepState::Succeeded) else {
                return Ok(());
            };
            if step.state.is_finished() {
                return Ok(());
            }
            // Each step is a span of the trace of the request that made this version, and the tasks it queues
            // continue it.
            let span = tracing::info_span!(
                "planner.step",
                otel.name = format!("planner {}", step.name),
                demo = %demo.name,
                demo_id = %demo.id,
                version = demo.version,
                step = %step.name,
            );
            if telemetry::traces_enabled()
                && let Some(parent) = self.store.demo_version_trace(demo.id, demo.version).await?
            {
                telemetry::set_parent(&span, &parent);
            }
            if !self
                .step(&demo, step, &steps, &settings)
                .instrument(span)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Observes one step, decides and carries the decision out; false when the demo has to wait.
    async fn step(
        &self,
        demo: &Demo,
        step: &DemoStep,
        steps: &[DemoStep],
        settings: &Settings,
    ) -> Result<bool, StoreError> {
        let task = self.observed_task(step, steps).await?;
        let cluster = match demo.cluster_id {
            Some(id) => found(self.store.cluster(id).await)?,
            None => None,
        };
        let placement = match (step.name, demo.cluster_id) {
            (StepName::EnsureCluster, None) => Some(self.placement_inputs(demo).await?),
            _ => None,
        };
        let template = match step.name {
            StepName::Render | StepName::Apply => {
                found(self.store.template_by_id(demo.template_id).await)?
            }
            _ => None,
        };
        let predecessor = match (step.name, demo.cluster_id) {
            (StepName::Apply, Some(cluster_id)) => {
                self.store
                    .demo_being_deleted(&demo.name, cluster_id, demo.id)
                    .await?
            }
            _ => None,
        };
        let decision = decide::decide(&Observed {
            demo,
            step,
            task: task.as_ref(),
            cluster: cluster.as_ref(),
            placement: placement.as_ref(),
            template: template.as_ref(),
            predecessor: predecessor.as_ref(),
            settings,
        });
        self.carry_out(demo, step, decision).await
    }

    /// The task a step looks at: its own, or for `wait_ready` the apply step's (it waits for the rollout).
    async fn observed_task(
        &self,
        step: &DemoStep,
        steps: &[DemoStep],
    ) -> Result<Option<Task>, StoreError> {
        let task_id = match step.name {
            StepName::WaitReady => steps
                .iter()
                .find(|s| s.name == StepName::Apply)
                .and_then(|s| s.task_id),
            _ => step.task_id,
        };
        match task_id {
            Some(id) => Ok(Some(self.store.task(id).await?)),
            None => Ok(None),
        }
    }

    async fn placement_inputs(&self, demo: &Demo) -> Result<PlacementInputs, StoreError> {
        let clusters = self.store.clusters().await?;
        Ok(match demo.requested_region {
            RequestedRegion::Auto => PlacementInputs::Auto {
                clusters,
                regions: self.store.regions().await?,
                demo_counts: self.store.demo_counts().await?,
            },
            RequestedRegion::Region(region_id) => {
                let region = found(self.store.region(region_id).await)?;
                let provisioning = match (&self.config.provisioning, &region) {
                    (Some(config), Some(region)) if region.provider != "existing" => {
                        crate::provisioner::inputs::offered(config, &region.provider)
                            .map(|_| region.provider.clone())
                            .map_err(|error| error.to_string())
                    }
                    _ => Err("it provisions no clusters there".to_string()),
                };
                PlacementInputs::Region {
                    region,
                    clusters: clusters
                        .into_iter()
                        .filter(|c| c.region_id == region_id)
                        .collect(),
                    provisioning,
                }
            }
        })
    }

    /// Writes what the decision says. True when the step succeeded (or its task was just queued) and the next
    /// look should follow at once.
    async fn carry_out(
        &self,
        demo: &Demo,
        step: &DemoStep,
        decision: Decision,
    ) -> Result<bool, StoreError> {
        let (state, message, end) = match decision {
            Decision::Queue { spec, reason } => {
                let task = self.queue_step_task(demo, step, spec, reason).await?;
                let recorded = self
                    .store
                    .set_step(
                        demo,
                        step,
                        StepState::Running,
                        &format!("{} task queued for the agent", task.kind),
                        Some(task.id),
                        None,
                    )
                    .await;
                if let Err(StoreError::Conflict(why)) = &recorded {
                    // The step moved on while the task was queued: nothing may run it.
                    match self
                        .store
                        .cancel_task(task.id, "planner (step moved on)")
                        .await
                    {
                        Ok(_) | Err(StoreError::Conflict(_)) => {}
                        Err(error) => return Err(error),
                    }
                    tracing::info!(demo_id = %demo.id, step = %step.name, %why, "step task withdrawn");
                    return Ok(false);
                }
                recorded?;
                return Ok(true);
            }
            Decision::Place {
                region_id,
                target,
                reason,
                ready,
            } => {
                let cluster_id = match target {
                    Target::Existing(id) => id,
                    Target::Provision { name, stack } => {
                        self.provision_for(demo, step, region_id, name, stack)
                            .await?
                    }
                };
                self.store
                    .place_demo(demo.id, region_id, Some(cluster_id), &reason)
                    .await?;
                let state = if ready {
                    StepState::Succeeded
                } else {
                    StepState::Running
                };
                (state, reason, None)
            }
            Decision::Wait(message) => (StepState::Running, message, None),
            Decision::Done(message) => (StepState::Succeeded, message, None),
            Decision::Fail(message) => (StepState::Failed, message, None),
            Decision::Finish(message, end) => (StepState::Succeeded, message, Some(end)),
        };
        tracing::info!(demo_id = %demo.id, step = %step.name, %state, %message, "demo step");
        self.store
            .set_step(demo, step, state, &message, None, end.as_ref())
            .await?;
        Ok(state == StepState::Succeeded)
    }

    /// A new cluster for the demo's region and the Terraform run that provisions it.
    async fn provision_for(
        &self,
        demo: &Demo,
        step: &DemoStep,
        region_id: Uuid,
        name: String,
        stack: String,
    ) -> Result<Uuid, StoreError> {
        let cluster: Cluster = self
            .store
            .insert_cluster(NewCluster {
                region_id,
                name,
                role: ClusterRole::User,
                api_endpoint: None,
                provision_spec: Some(json!({"stack": stack, "variables": {}})),
            })
            .await?;
        self.store
            .insert_task(NewTask {
                id: Uuid::new_v4(),
                cluster_id: cluster.id,
                spec: TaskSpec::TerraformApply,
                reason: format!(
                    "demo {} needs a cluster in region {}",
                    demo.name, cluster.region_code
                ),
                idempotency_key: None,
                parent_id: None,
                created_by: format!("planner:demo:{}", demo.id),
                max_attempts: self.config.tasks.default_max_attempts,
                seal: None,
                demo_step: Some(step.id),
                trace_parent: telemetry::current_traceparent(),
            })
            .await?;
        Ok(cluster.id)
    }

    /// Queues the agent task of a step: once per attempt, even if two planners race (the idempotency key).
    async fn queue_step_task(
        &self,
        demo: &Demo,
        step: &DemoStep,
        spec: TaskSpec,
        reason: String,
    ) -> Result<Task, StoreError> {
        let Some(cluster_id) = demo.cluster_id else {
            return Err(StoreError::Conflict(format!(
                "demo {} has no cluster to run its {} task on",
                demo.name, step.name
            )));
        };
        let mut task = NewTask {
            id: Uuid::new_v4(),
            cluster_id,
            spec,
            reason,
            idempotency_key: Some(decide::step_task_key(demo, step)),
            parent_id: None,
            created_by: format!("planner:demo:{}", demo.id),
            max_attempts: self.config.tasks.default_max_attempts,
            seal: None,
            demo_step: Some(step.id),
            trace_parent: telemetry::current_traceparent(),
        };
        self.signer
            .seal(&mut task)
            .expect("the planner queues only agent tasks");
        Ok(match self.store.insert_task(task).await? {
            TaskInsert::Created(task) | TaskInsert::Existing(task) => task,
        })
    }
}

/// A row that may have gone (deleted meanwhile) as `None`; other errors stay errors.
fn found<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(row) => Ok(Some(row)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}
