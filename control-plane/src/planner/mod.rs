//! Turns a demo deploy into its steps and drives them: ensure the region has a ready cluster (provisioning one
//! through the provisioner when it has none) -> ensure its agent is connected -> render the objects from the
//! template -> apply them through the agent -> wait until ready -> publish the URL. Each step's state is
//! stored, a failed step stops the rest and says why.

pub mod render;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::config::Config;
use crate::store::{
    Demo, DemoEnd, DemoStep, NewCluster, NewTask, Store, StoreError, Task, TaskInsert, channels,
};
use crate::taskspec::{ApplyPayload, DeletePayload};

/// What one look at a step found.
enum Step {
    Done(String),
    /// The last step succeeded and leaves the demo so.
    Finished(String, DemoEnd),
    Waiting(String),
    Failed(String),
}

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
        loop {
            let demo = self.store.demo(claimed.id).await?;
            let steps = self.store.demo_steps(demo.id, demo.version).await?;
            let Some(step) = steps.iter().find(|s| s.state != "succeeded").cloned() else {
                return Ok(());
            };
            let outcome = match step.name.as_str() {
                "ensure_cluster" => self.ensure_cluster(&demo).await?,
                "ensure_agent" => self.ensure_agent(&demo).await?,
                "render" => self.render(&demo).await?,
                "apply" => self.apply(&demo, &step).await?,
                "wait_ready" => self.wait_ready(&demo, &steps).await?,
                "publish_url" => self.publish(&demo).await?,
                "prune" => self.prune(&demo, &step).await?,
                "close" => Step::Finished(
                    "objects deleted; the demo is closed".into(),
                    DemoEnd::Closed,
                ),
                other => Step::Failed(format!("unknown step {other}")),
            };
            let (state, message, end) = match outcome {
                Step::Done(message) => ("succeeded", message, None),
                Step::Finished(message, end) => ("succeeded", message, Some(end)),
                Step::Waiting(message) => ("running", message, None),
                Step::Failed(message) => ("failed", message, None),
            };
            tracing::info!(demo_id = %demo.id, step = %step.name, state, %message, "demo step");
            self.store
                .set_step(&demo, step.position, state, &message, None, end.as_ref())
                .await?;
            if state != "succeeded" {
                return Ok(());
            }
        }
    }

    async fn ensure_cluster(&self, demo: &Demo) -> Result<Step, StoreError> {
        if let Some(cluster_id) = demo.cluster_id {
            let cluster = self.store.cluster(cluster_id).await?;
            return Ok(match cluster.status.as_str() {
                "ready" if cluster.agent.connected => {
                    Step::Done(format!("cluster {} is ready", cluster.name))
                }
                "failed" | "deleted" => Step::Failed(format!(
                    "cluster {} is {}: {}",
                    cluster.name,
                    cluster.status,
                    cluster.status_message.unwrap_or_default()
                )),
                status => Step::Waiting(format!("waiting for cluster {} ({status})", cluster.name)),
            });
        }
        if demo.requested_region == "auto" {
            return self.place_automatically(demo).await;
        }
        let Ok(region_id) = Uuid::parse_str(&demo.requested_region) else {
            return Ok(Step::Failed(format!(
                "{:?} is not a region id",
                demo.requested_region
            )));
        };
        let region = self.store.region(region_id).await?;
        if !region.enabled {
            return Ok(Step::Failed(format!("region {} is disabled", region.code)));
        }
        if let Some(cluster) = self.store.ready_cluster_in_region(region_id).await? {
            let reason = format!(
                "requested region {}; cluster {} is ready",
                region.code, cluster.name
            );
            self.store
                .place_demo(demo.id, region_id, Some(cluster.id), &reason)
                .await?;
            return Ok(Step::Done(reason));
        }
        if let Some(existing) = self
            .store
            .clusters()
            .await?
            .into_iter()
            .find(|c| c.region_id == region_id)
        {
            let reason = format!(
                "requested region {}; waiting for its cluster {}",
                region.code, existing.name
            );
            self.store
                .place_demo(demo.id, region_id, Some(existing.id), &reason)
                .await?;
            return Ok(Step::Waiting(reason));
        }
        let offered = match &self.config.provisioning {
            Some(config) if region.provider != "existing" => {
                crate::provisioner::inputs::offered(config, &region.provider)
                    .map_err(|error| error.to_string())
            }
            _ => Err("it provisions no clusters there".to_string()),
        };
        if let Err(why) = offered {
            return Ok(Step::Failed(format!(
                "region {} has no cluster and the control plane cannot provision one: {why}",
                region.code
            )));
        }
        let name = format!("{}-demos", region.code)
            .chars()
            .take(40)
            .collect::<String>();
        let cluster = self
            .store
            .insert_cluster(NewCluster {
                region_id,
                name: name.clone(),
                role: "user".into(),
                api_endpoint: None,
                provision_spec: Some(json!({"stack": region.provider, "variables": {}})),
            })
            .await?;
        self.store
            .insert_task(NewTask {
                id: Uuid::new_v4(),
                cluster_id: cluster.id,
                kind: crate::provisioner::APPLY.into(),
                payload: json!({}),
                reason: format!(
                    "demo {} needs a cluster in region {}",
                    demo.name, region.code
                ),
                idempotency_key: None,
                parent_id: None,
                created_by: format!("planner:demo:{}", demo.id),
                max_attempts: self.config.tasks.default_max_attempts,
                seal: None,
            })
            .await?;
        let reason = format!(
            "requested region {} had no cluster; provisioning {name}",
            region.code
        );
        self.store
            .place_demo(demo.id, region_id, Some(cluster.id), &reason)
            .await?;
        Ok(Step::Waiting(reason))
    }

    /// `auto`: among ready clusters (agent connected, API reachable) of enabled regions, the one running the fewest
    /// demos, then the one with the shortest round trip to its agent, then the one heard from most recently. The
    /// choice and its reason are recorded on the demo.
    async fn place_automatically(&self, demo: &Demo) -> Result<Step, StoreError> {
        let counts = self.store.demo_counts().await?;
        let regions = self.store.regions().await?;
        let mut candidates: Vec<_> = self
            .store
            .clusters()
            .await?
            .into_iter()
            .filter(|c| {
                c.status == "ready"
                    && c.agent.connected
                    && c.agent.kubernetes_reachable == Some(true)
            })
            .filter(|c| regions.iter().any(|r| r.id == c.region_id && r.enabled))
            .map(|c| {
                let load = counts
                    .iter()
                    .find(|(id, _)| *id == c.id)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                (load, c)
            })
            .collect();
        // Unmeasured round trips sort last.
        candidates.sort_by(|(load_a, a), (load_b, b)| {
            load_a
                .cmp(load_b)
                .then_with(|| {
                    let rtt = |c: &crate::store::Cluster| c.agent.rtt_ms.unwrap_or(f64::INFINITY);
                    rtt(a).total_cmp(&rtt(b))
                })
                .then_with(|| b.agent.last_heartbeat_at.cmp(&a.agent.last_heartbeat_at))
        });
        let Some((load, cluster)) = candidates.into_iter().next() else {
            return Ok(Step::Failed(
                "no enabled region has a ready cluster with a connected agent".into(),
            ));
        };
        let rtt = cluster
            .agent
            .rtt_ms
            .map(|ms| format!("{ms:.1} ms"))
            .unwrap_or_else(|| "not measured yet".into());
        let reason = format!(
            "auto: region {} (cluster {}) is ready with a connected agent, runs the fewest demos ({load}), agent round trip {rtt}",
            cluster.region_code, cluster.name
        );
        self.store
            .place_demo(demo.id, cluster.region_id, Some(cluster.id), &reason)
            .await?;
        Ok(Step::Done(reason))
    }

    async fn ensure_agent(&self, demo: &Demo) -> Result<Step, StoreError> {
        let Some(cluster_id) = demo.cluster_id else {
            return Ok(Step::Failed("the demo has no cluster".into()));
        };
        let cluster = self.store.cluster(cluster_id).await?;
        Ok(if cluster.agent.connected {
            Step::Done(format!(
                "agent {} connected",
                cluster.agent.version.unwrap_or_default()
            ))
        } else {
            Step::Waiting(format!("waiting for the agent of cluster {}", cluster.name))
        })
    }

    async fn manifest(&self, demo: &Demo) -> Result<String, StoreError> {
        let template = self.store.template_by_id(demo.template_id).await?;
        let cluster = self
            .store
            .cluster(demo.cluster_id.unwrap_or_default())
            .await?;
        let config = &demo.config.0;
        let env = config["env"].as_object().cloned().unwrap_or_default();
        Ok(render::manifest(
            &template,
            &render::DemoSpec {
                demo_id: &demo.id.to_string(),
                name: &demo.name,
                version: demo.version,
                image: &demo.image,
                replicas: config["replicas"].as_i64().unwrap_or(1) as i32,
                env: &env,
                host: &self.host(demo, &cluster.name),
            },
        ))
    }

    fn host(&self, demo: &Demo, cluster_name: &str) -> String {
        format!(
            "{}.{}.{}",
            demo.name, cluster_name, self.config.demos_domain
        )
    }

    async fn render(&self, demo: &Demo) -> Result<Step, StoreError> {
        let manifest = self.manifest(demo).await?;
        let objects =
            manifest.matches("\nkind: ").count() + usize::from(manifest.starts_with("kind: "));
        Ok(Step::Done(format!(
            "{objects} objects rendered (Namespace, Deployment with probes on the template's port and health path, Service, Ingress, NetworkPolicy)"
        )))
    }

    async fn apply(&self, demo: &Demo, step: &DemoStep) -> Result<Step, StoreError> {
        let manifest = self.manifest(demo).await?;
        let documents = manifest.split("\n---\n").count();
        let payload = ApplyPayload {
            manifest,
            wait_timeout_seconds: 300,
            force_conflicts: true,
            prune: Some(render::object_set(&demo.id.to_string())),
            tier: crate::taskspec::Tier::Operator,
        };
        // A demo is an operator's: its rendered objects pass the same policy as an operator's own task.
        let problems = payload.validate(&self.config.apply_policy.policy());
        if let Some(problem) = problems.first() {
            return Ok(Step::Failed(format!(
                "the rendered manifest is refused: {}: {}",
                problem.field, problem.message
            )));
        }
        let task = self
            .step_task(
                demo,
                step,
                "apply",
                serde_json::to_value(&payload).expect("payload serializes"),
                format!("deploy of demo {} version {}", demo.name, demo.version),
            )
            .await?;
        let applied = task
            .objects
            .0
            .iter()
            .filter(|o| o.outcome == "applied" || o.outcome == "unchanged")
            .count();
        Ok(match task.state.as_str() {
            "failed" | "cancelled" => {
                Step::Failed(task.error.unwrap_or_else(|| task.state.clone()))
            }
            // The task goes on to wait for the rollout (the next step); the objects are applied already.
            state if state == "succeeded" || applied >= documents => Step::Done(format!(
                "{applied} objects applied by the agent (task {})",
                task.id
            )),
            state => Step::Waiting(format!("apply task {} is {state}", task.id)),
        })
    }

    /// Deletes what the demo put on its cluster: every object labelled with its id.
    async fn prune(&self, demo: &Demo, step: &DemoStep) -> Result<Step, StoreError> {
        let Some(cluster_id) = demo.cluster_id else {
            return Ok(Step::Done("the demo was never placed on a cluster".into()));
        };
        let cluster = self.store.cluster(cluster_id).await?;
        if cluster.status == "deleted" {
            return Ok(Step::Done(format!(
                "cluster {} is deleted and its objects with it",
                cluster.name
            )));
        }
        let payload = DeletePayload {
            objects: render::object_set(&demo.id.to_string()),
        };
        let task = self
            .step_task(
                demo,
                step,
                "delete",
                serde_json::to_value(&payload).expect("payload serializes"),
                format!("delete of demo {}", demo.name),
            )
            .await?;
        let deleted = task
            .objects
            .0
            .iter()
            .filter(|o| o.outcome == "deleted")
            .count();
        Ok(match task.state.as_str() {
            "succeeded" => Step::Done(format!(
                "{deleted} objects deleted by the agent (task {})",
                task.id
            )),
            "failed" | "cancelled" => {
                Step::Failed(task.error.unwrap_or_else(|| task.state.clone()))
            }
            state => Step::Waiting(format!("delete task {} is {state}", task.id)),
        })
    }

    /// The agent task of a step: queued on the first look (once per attempt, even if two planners race), read
    /// back on later ones.
    async fn step_task(
        &self,
        demo: &Demo,
        step: &DemoStep,
        kind: &str,
        payload: serde_json::Value,
        reason: String,
    ) -> Result<Task, StoreError> {
        if let Some(task_id) = step.task_id {
            return self.store.task(task_id).await;
        }
        let mut task = NewTask {
            id: Uuid::new_v4(),
            cluster_id: demo.cluster_id.unwrap_or_default(),
            kind: kind.into(),
            payload,
            reason,
            idempotency_key: Some(format!(
                "demo:{}:v{}:{}:a{}",
                demo.id, demo.version, step.name, step.attempt
            )),
            parent_id: None,
            created_by: format!("planner:demo:{}", demo.id),
            max_attempts: self.config.tasks.default_max_attempts,
            seal: None,
        };
        self.signer.seal(&mut task).expect(
            "the planner's payloads are serialized from the typed apply and delete payloads",
        );
        let inserted = self.store.insert_task(task).await?;
        let task = match inserted {
            TaskInsert::Created(task) | TaskInsert::Existing(task) => task,
        };
        self.store
            .set_step(
                demo,
                step.position,
                "running",
                &format!("{kind} task queued for the agent"),
                Some(task.id),
                None,
            )
            .await?;
        Ok(task)
    }

    async fn wait_ready(&self, demo: &Demo, steps: &[DemoStep]) -> Result<Step, StoreError> {
        let Some(task_id) = steps
            .iter()
            .find(|s| s.name == "apply")
            .and_then(|s| s.task_id)
        else {
            return Ok(Step::Failed("the apply step has no task".into()));
        };
        let task = self.store.task(task_id).await?;
        Ok(match task.state.as_str() {
            "succeeded" => Step::Done(format!("deployment {} available", demo.name)),
            "failed" | "cancelled" => {
                Step::Failed(task.error.unwrap_or_else(|| task.state.clone()))
            }
            _ => Step::Waiting(format!(
                "waiting for deployment {} to become available",
                demo.name
            )),
        })
    }

    async fn publish(&self, demo: &Demo) -> Result<Step, StoreError> {
        if demo.config.0["replicas"].as_i64() == Some(0) {
            return Ok(Step::Finished(
                "stopped: no replicas run, the demo is offline".into(),
                DemoEnd::Offline,
            ));
        }
        let cluster = self
            .store
            .cluster(demo.cluster_id.unwrap_or_default())
            .await?;
        let url = format!("http://{}/", self.host(demo, &cluster.name));
        Ok(Step::Finished(url.clone(), DemoEnd::Online { url }))
    }
}
