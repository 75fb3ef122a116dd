//! Demos and the steps of their deploys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::{
    ClusterStatus, DemoConfig, DemoEnd, DemoStatus, RequestedRegion, StepName, StepState, TaskState,
};

fn final_task_states() -> Vec<TaskState> {
    TaskState::ALL
        .iter()
        .copied()
        .filter(|s| s.is_final())
        .collect()
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Demo {
    pub id: Uuid,
    pub name: String,
    pub owner: String,
    pub template_id: Uuid,
    pub image: String,
    /// A region id, or `auto`.
    #[schema(value_type = String)]
    pub requested_region: RequestedRegion,
    pub region_id: Option<Uuid>,
    /// Why this region and cluster were chosen.
    pub region_reason: Option<String>,
    pub cluster_id: Option<Uuid>,
    #[schema(value_type = DemoConfig)]
    pub config: Json<DemoConfig>,
    pub version: i32,
    pub status: DemoStatus,
    pub current_step: Option<StepName>,
    pub error: Option<String>,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set by a delete request; the demo is `deleted_at` once its objects are gone.
    pub delete_requested_at: Option<DateTime<Utc>>,
    /// Set once a delete finished (a soft delete).
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct DemoStep {
    /// `demo_steps.id`: what the step's tasks refer to.
    #[serde(skip)]
    pub id: i64,
    pub version: i32,
    pub position: i32,
    pub name: StepName,
    pub state: StepState,
    pub message: Option<String>,
    pub task_id: Option<Uuid>,
    /// 1, plus one per retry of the step; each attempt runs its own task.
    pub attempt: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub struct NewDemo {
    pub name: String,
    pub owner: String,
    pub template_id: Uuid,
    pub image: String,
    pub requested_region: RequestedRegion,
    pub config: DemoConfig,
    pub idempotency_key: Option<String>,
    pub trace_parent: Option<String>,
}

pub enum DemoInsert {
    Created(Demo),
    Existing(Demo),
}

const SELECT: &str = "SELECT id, name, owner, template_id, image, requested_region, region_id, region_reason,
        cluster_id, config, version, status, current_step, error, url, created_at, updated_at, delete_requested_at,
        deleted_at
    FROM demos";

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct DemoVersion {
    pub version: i32,
    pub template_id: Uuid,
    pub image: String,
    #[schema(value_type = DemoConfig)]
    pub config: Json<DemoConfig>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// What a new version of a demo changes; `None` keeps the current value.
pub struct DemoChange {
    pub template_id: Option<Uuid>,
    pub image: Option<String>,
    pub config: Option<DemoConfig>,
    pub reason: String,
    pub by: String,
    /// The W3C `traceparent` of the request that made the version; the planner continues its trace.
    pub trace_parent: Option<String>,
}

impl Store {
    /// The trace context a demo version was made in, if traces were on.
    pub async fn demo_version_trace(
        &self,
        demo_id: Uuid,
        version: i32,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT trace_parent FROM demo_versions WHERE demo_id = $1 AND version = $2",
        )
        .bind(demo_id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }
}

#[allow(clippy::too_many_arguments)]
async fn record_version(
    conn: &mut sqlx::PgConnection,
    demo_id: Uuid,
    version: i32,
    template_id: Uuid,
    image: &str,
    config: &DemoConfig,
    reason: &str,
    by: &str,
    trace_parent: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO demo_versions (demo_id, version, template_id, image, config, reason, created_by, trace_parent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(demo_id)
    .bind(version)
    .bind(template_id)
    .bind(image)
    .bind(Json(config))
    .bind(reason)
    .bind(by)
    .bind(trace_parent)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_steps(
    conn: &mut sqlx::PgConnection,
    demo_id: Uuid,
    version: i32,
    steps: &[StepName],
) -> Result<(), StoreError> {
    for (position, step) in steps.iter().enumerate() {
        sqlx::query("INSERT INTO demo_steps (demo_id, version, position, name, state) VALUES ($1, $2, $3, $4, $5)")
            .bind(demo_id)
            .bind(version)
            .bind(position as i32)
            .bind(step)
            .bind(StepState::Pending)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Reads a demo and locks its row for the transaction, which serialises changes to one demo. Deleted demos are
/// found only with `include_deleted`.
async fn lock_demo(
    tx: &mut sqlx::PgConnection,
    demo_id: Uuid,
    include_deleted: bool,
) -> Result<Demo, StoreError> {
    let live = if include_deleted {
        ""
    } else {
        " AND deleted_at IS NULL"
    };
    sqlx::query_as::<_, Demo>(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE id = $1{live} FOR UPDATE"
    )))
    .bind(demo_id)
    .fetch_optional(tx)
    .await?
    .ok_or_else(|| StoreError::not_found("demo", demo_id))
}

impl Store {
    /// Makes a new version of a demo (update, rollback, stop, start) and queues its deploy. The row lock
    /// serialises concurrent changes: each gets its own version, and the planner deploys the newest.
    pub async fn change_demo(&self, demo_id: Uuid, change: DemoChange) -> Result<Demo, StoreError> {
        let mut tx = self.pool().begin().await?;
        let current = lock_demo(&mut tx, demo_id, false).await?;
        if current.delete_requested_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "demo {} is being deleted",
                current.name
            )));
        }
        let version = current.version + 1;
        let template_id = change.template_id.unwrap_or(current.template_id);
        let image = change.image.unwrap_or(current.image);
        let config = change.config.unwrap_or(current.config.0);
        record_version(
            &mut tx,
            demo_id,
            version,
            template_id,
            &image,
            &config,
            &change.reason,
            &change.by,
            change.trace_parent.as_deref(),
        )
        .await?;
        sqlx::query(
            "UPDATE demos SET version = $2, template_id = $3, image = $4, config = $5, status = $7,
                    error = NULL, current_step = $6, updated_at = now()
             WHERE id = $1",
        )
        .bind(demo_id)
        .bind(version)
        .bind(template_id)
        .bind(&image)
        .bind(Json(&config))
        .bind(StepName::DEPLOY[0])
        .bind(DemoStatus::Developing)
        .execute(&mut *tx)
        .await?;
        insert_steps(&mut tx, demo_id, version, StepName::DEPLOY).await?;
        tx.commit().await?;
        self.demo(demo_id).await
    }

    pub async fn demo_versions(&self, demo_id: Uuid) -> Result<Vec<DemoVersion>, StoreError> {
        Ok(sqlx::query_as::<_, DemoVersion>(
            "SELECT version, template_id, image, config, reason, created_by, created_at
             FROM demo_versions WHERE demo_id = $1 ORDER BY version DESC",
        )
        .bind(demo_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Creates a demo and the steps of its first deploy. The same idempotency key returns the first demo, so a
    /// double click or a retried request makes one deploy.
    pub async fn insert_demo(&self, new: NewDemo) -> Result<DemoInsert, StoreError> {
        if let Some(existing) = self
            .demo_by_idempotency_key(new.idempotency_key.as_deref())
            .await?
        {
            return Ok(DemoInsert::Existing(existing));
        }
        let id = Uuid::new_v4();
        let mut tx = self.pool().begin().await?;
        // No conflict target: a concurrent request with the same key may collide on the name index before the
        // key index, and either collision must end in "do nothing" so the reason can be told apart below.
        let inserted = sqlx::query(
            "INSERT INTO demos (id, name, owner, template_id, image, requested_region, config, status, current_step,
                                idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $8, $9)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&new.name)
        .bind(&new.owner)
        .bind(new.template_id)
        .bind(&new.image)
        .bind(new.requested_region)
        .bind(Json(&new.config))
        .bind(StepName::DEPLOY[0])
        .bind(&new.idempotency_key)
        .bind(DemoStatus::Developing)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return match self
                .demo_by_idempotency_key(new.idempotency_key.as_deref())
                .await?
            {
                Some(existing) => Ok(DemoInsert::Existing(existing)),
                None => Err(StoreError::Conflict(format!(
                    "a demo named {:?} already exists",
                    new.name
                ))),
            };
        }
        record_version(
            &mut tx,
            id,
            1,
            new.template_id,
            &new.image,
            &new.config,
            "created",
            &new.owner,
            new.trace_parent.as_deref(),
        )
        .await?;
        insert_steps(&mut tx, id, 1, StepName::DEPLOY).await?;
        tx.commit().await?;
        Ok(DemoInsert::Created(self.demo(id).await?))
    }

    async fn demo_by_idempotency_key(&self, key: Option<&str>) -> Result<Option<Demo>, StoreError> {
        let Some(key) = key else { return Ok(None) };
        Ok(sqlx::query_as::<_, Demo>(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE idempotency_key = $1"
        )))
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn demo(&self, id: Uuid) -> Result<Demo, StoreError> {
        sqlx::query_as::<_, Demo>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("demo", id))
    }

    pub async fn demos(&self) -> Result<Vec<Demo>, StoreError> {
        Ok(sqlx::query_as::<_, Demo>(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE deleted_at IS NULL ORDER BY created_at DESC"
        )))
        .fetch_all(self.pool())
        .await?)
    }

    /// The demo and its current version's steps as of one moment. Read apart, a reader could see the last step
    /// succeeded but the demo row from before the same commit set its status.
    pub async fn demo_with_steps(&self, id: Uuid) -> Result<(Demo, Vec<DemoStep>), StoreError> {
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let demo =
            sqlx::query_as::<_, Demo>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found("demo", id))?;
        let steps = sqlx::query_as::<_, DemoStep>(
            "SELECT id, version, position, name, state, message, task_id, attempt, started_at, finished_at
             FROM demo_steps WHERE demo_id = $1 AND version = $2 ORDER BY position",
        )
        .bind(demo.id)
        .bind(demo.version)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((demo, steps))
    }

    /// Takes one demo whose current deploy has unfinished steps and is due, for `lease`; several planners
    /// (processes) never work on one demo at once. Returns the demo and its wake count at the claim.
    pub async fn claim_demo(&self, lease: Duration) -> Result<Option<(Demo, i64)>, StoreError> {
        let claimed: Option<(Uuid, i64)> = sqlx::query_as(
            "UPDATE demos SET planner_lease = now() + make_interval(secs => $1)
             WHERE id = (SELECT d.id FROM demos d
                         WHERE d.deleted_at IS NULL AND (d.planner_lease IS NULL OR d.planner_lease < now())
                           AND (d.planner_revisit_at IS NULL OR d.planner_revisit_at <= now())
                           AND EXISTS (SELECT 1 FROM demo_steps s WHERE s.demo_id = d.id AND s.version = d.version
                                       AND s.state IN ('pending', 'running'))
                           AND NOT EXISTS (SELECT 1 FROM demo_steps s WHERE s.demo_id = d.id AND s.version = d.version
                                           AND s.state = 'failed')
                         ORDER BY d.updated_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
             RETURNING id, planner_wakes",
        )
        .bind(lease.as_secs_f64())
        .fetch_optional(self.pool())
        .await?;
        match claimed {
            Some((id, wakes)) => Ok(Some((self.demo(id).await?, wakes))),
            None => Ok(None),
        }
    }

    /// Hands the demo back, to be looked at again after `revisit_after` (its steps wait on a cluster, an agent,
    /// a rollout) - or at once if it was woken since the claim.
    pub async fn release_demo(
        &self,
        id: Uuid,
        wakes_at_claim: i64,
        revisit_after: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE demos SET planner_lease = NULL,
                    planner_revisit_at = CASE WHEN planner_wakes = $2 THEN now() + make_interval(secs => $3) END
             WHERE id = $1",
        )
        .bind(id)
        .bind(wakes_at_claim)
        .bind(revisit_after.as_secs_f64())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves a step to `state` with a message, and mirrors it on the demo; `end` (with the last step) sets the
    /// demo's final state in the same transaction, so no reader sees one without the other. A move the stored
    /// state does not allow (the step finished or was retried meanwhile, or the demo moved on to a newer version
    /// or a delete) is a conflict and changes nothing.
    pub async fn set_step(
        &self,
        demo: &Demo,
        step: &DemoStep,
        state: StepState,
        message: &str,
        task_id: Option<Uuid>,
        end: Option<&DemoEnd>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // The demo row first (as every change to a demo locks it): a look at a version the demo has left (a new
        // version or a delete came meanwhile) must not write its state onto the demo.
        let current: i32 = sqlx::query_scalar("SELECT version FROM demos WHERE id = $1 FOR UPDATE")
            .bind(demo.id)
            .fetch_one(&mut *tx)
            .await?;
        if current != step.version {
            return Err(StoreError::Conflict(format!(
                "demo {} moved on from version {} to {current}",
                demo.name, step.version
            )));
        }
        let stored: StepState = sqlx::query_scalar(
            "SELECT state FROM demo_steps WHERE id = $1 AND attempt = $2 FOR UPDATE",
        )
        .bind(step.id)
        .bind(step.attempt)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "step {} of demo {} was retried meanwhile",
                step.name, demo.name
            ))
        })?;
        stored
            .advance(state)
            .map_err(|error| StoreError::Conflict(error.to_string()))?;
        sqlx::query(
            "UPDATE demo_steps SET state = $2, message = $3, task_id = coalesce($4, task_id),
                    started_at = coalesce(started_at, now()),
                    finished_at = CASE WHEN $5 THEN now() END
             WHERE id = $1",
        )
        .bind(step.id)
        .bind(state)
        .bind(message)
        .bind(task_id)
        .bind(state.is_finished())
        .execute(&mut *tx)
        .await?;
        // After the last step succeeded there is no current step any more.
        let current =
            (!(step.name.is_last() && state == StepState::Succeeded)).then_some(step.name);
        let error =
            (state == StepState::Failed).then(|| format!("{} failed: {message}", step.name));
        sqlx::query(
            "UPDATE demos SET current_step = $2, error = $3, updated_at = now() WHERE id = $1",
        )
        .bind(demo.id)
        .bind(current)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        if let Some(end) = end {
            sqlx::query(
                "UPDATE demos SET status = $2, url = $3,
                        deleted_at = CASE WHEN $4 THEN now() ELSE deleted_at END
                 WHERE id = $1",
            )
            .bind(demo.id)
            .bind(end.status())
            .bind(end.url())
            .bind(end.status() == DemoStatus::Closed)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn place_demo(
        &self,
        demo_id: Uuid,
        region_id: Uuid,
        cluster_id: Option<Uuid>,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE demos SET region_id = $2, cluster_id = $3, region_reason = $4, updated_at = now() WHERE id = $1",
        )
        .bind(demo_id)
        .bind(region_id)
        .bind(cluster_id)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Starts deleting a demo: a new version whose steps prune its objects and then close it. The demo goes
    /// offline at once; a deploy in flight is abandoned and its unfinished tasks are cancelled. Repeating the
    /// request while the delete runs changes nothing.
    pub async fn request_demo_delete(
        &self,
        demo_id: Uuid,
        by: &str,
        trace_parent: Option<&str>,
    ) -> Result<Demo, StoreError> {
        let mut tx = self.pool().begin().await?;
        let current = lock_demo(&mut tx, demo_id, true).await?;
        if current.delete_requested_at.is_some() {
            tx.rollback().await?;
            return Ok(current);
        }
        let unfinished: Vec<Uuid> = sqlx::query_scalar(
            "SELECT s.task_id FROM demo_steps s JOIN tasks t ON t.id = s.task_id
             WHERE s.demo_id = $1 AND s.version = $2 AND NOT (t.state = ANY($3))",
        )
        .bind(demo_id)
        .bind(current.version)
        .bind(final_task_states())
        .fetch_all(&mut *tx)
        .await?;
        let version = current.version + 1;
        record_version(
            &mut tx,
            demo_id,
            version,
            current.template_id,
            &current.image,
            &current.config.0,
            "delete",
            by,
            trace_parent,
        )
        .await?;
        sqlx::query(
            "UPDATE demos SET version = $2, status = $4, url = NULL, error = NULL, current_step = $3,
                    delete_requested_at = now(), updated_at = now()
             WHERE id = $1",
        )
        .bind(demo_id)
        .bind(version)
        .bind(StepName::TEARDOWN[0])
        .bind(DemoStatus::Offline)
        .execute(&mut *tx)
        .await?;
        insert_steps(&mut tx, demo_id, version, StepName::TEARDOWN).await?;
        tx.commit().await?;
        for task_id in unfinished {
            match self.cancel_task(task_id, by).await {
                // It finished in the meantime: the prune deletes what it applied.
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
        self.demo(demo_id).await
    }

    /// Resumes the current deploy (or delete) from its failed step: that step becomes pending again as a new
    /// attempt, and the planner picks the demo up.
    pub async fn retry_demo(&self, demo_id: Uuid, by: &str) -> Result<Demo, StoreError> {
        let mut tx = self.pool().begin().await?;
        let current = lock_demo(&mut tx, demo_id, false).await?;
        let step: Option<StepName> = sqlx::query_scalar(
            "UPDATE demo_steps SET state = $4, message = 'retry requested by ' || $3, task_id = NULL,
                    attempt = attempt + 1, started_at = NULL, finished_at = NULL
             WHERE demo_id = $1 AND version = $2 AND state = $5
             RETURNING name",
        )
        .bind(demo_id)
        .bind(current.version)
        .bind(by)
        .bind(StepState::Failed.retry().expect("a failed step can be retried"))
        .bind(StepState::Failed)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(step) = step else {
            return Err(StoreError::Conflict(format!(
                "demo {} has no failed step to retry",
                current.name
            )));
        };
        sqlx::query(
            "UPDATE demos SET error = NULL, current_step = $2, updated_at = now(),
                    status = CASE WHEN delete_requested_at IS NULL THEN $3 ELSE status END
             WHERE id = $1",
        )
        .bind(demo_id)
        .bind(step)
        .bind(DemoStatus::Developing)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.demo(demo_id).await
    }

    /// The region's live cluster that is ready with a connected agent, if any.
    pub async fn ready_cluster_in_region(
        &self,
        region_id: Uuid,
    ) -> Result<Option<super::Cluster>, StoreError> {
        Ok(self.clusters().await?.into_iter().find(|c| {
            c.region_id == region_id && c.status == ClusterStatus::Ready && c.agent.connected
        }))
    }

    /// Another demo named `name` on the cluster whose delete was requested and has not finished.
    pub async fn demo_being_deleted(
        &self,
        name: &str,
        cluster_id: Uuid,
        except: Uuid,
    ) -> Result<Option<Demo>, StoreError> {
        Ok(sqlx::query_as::<_, Demo>(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE name = $1 AND cluster_id = $2 AND id <> $3
               AND delete_requested_at IS NOT NULL AND deleted_at IS NULL
             ORDER BY delete_requested_at LIMIT 1"
        )))
        .bind(name)
        .bind(cluster_id)
        .bind(except)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every demo ever placed on the cluster (deleted ones too: their pods log while they are pruned).
    pub async fn demo_ids_on_cluster(&self, cluster_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM demos WHERE cluster_id = $1")
                .bind(cluster_id)
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// How many live demos each cluster runs (for placing `auto` demos).
    pub async fn demo_counts(&self) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT cluster_id, count(*) FROM demos WHERE deleted_at IS NULL AND cluster_id IS NOT NULL GROUP BY cluster_id",
        )
        .fetch_all(self.pool())
        .await?)
    }
}
