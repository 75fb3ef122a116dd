//! Image template revisions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::templates::LoadedTemplate;

/// An image template revision (`images/templates/<name>/template.yaml` + Dockerfile); a changed template is a new
/// revision.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[schema(as = Template)]
pub struct TemplateRow {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub revision: i32,
    pub title: String,
    pub description: String,
    pub runtime: String,
    pub process: String,
    pub port: i32,
    pub health_check_path: String,
    #[schema(value_type = Vec<crate::templates::EnvVar>)]
    pub env: Json<serde_json::Value>,
    #[schema(value_type = crate::templates::Resources)]
    pub resources: Json<serde_json::Value>,
    pub image_required: bool,
    pub default_image: Option<String>,
    pub dockerfile: Option<String>,
    pub content_sha256: String,
    pub latest: bool,
    pub loaded_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT id, name, version, revision, title, description, runtime, process, port,
        health_check_path, env, resources, image_required, default_image, dockerfile, content_sha256, latest,
        loaded_at FROM image_templates";

impl Store {
    /// Stores a template unless this exact content is known; changed content becomes a new revision and the
    /// latest one. Returns the revision now latest. Serialised by an advisory lock, so processes starting
    /// together do not race.
    pub async fn upsert_template(&self, template: &LoadedTemplate) -> Result<i32, StoreError> {
        let spec = &template.spec;
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('edgefleet_image_templates'))")
            .execute(&mut *tx)
            .await?;
        let known: Option<(Uuid, i32)> = sqlx::query_as(
            "SELECT id, revision FROM image_templates WHERE name = $1 AND content_sha256 = $2",
        )
        .bind(&spec.name)
        .bind(&template.content_sha256)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, revision) = match known {
            Some(found) => found,
            None => {
                let revision: i32 = sqlx::query_scalar(
                    "SELECT coalesce(max(revision), 0) + 1 FROM image_templates WHERE name = $1 AND version = $2",
                )
                .bind(&spec.name)
                .bind(&spec.version)
                .fetch_one(&mut *tx)
                .await?;
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO image_templates (id, name, version, revision, title, description, runtime, process,
                         port, health_check_path, env, resources, image_required, default_image, dockerfile,
                         content_sha256)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(id)
                .bind(&spec.name)
                .bind(&spec.version)
                .bind(revision)
                .bind(&spec.title)
                .bind(&spec.description)
                .bind(&spec.runtime)
                .bind(&spec.process)
                .bind(spec.port as i32)
                .bind(&spec.health_check_path)
                .bind(Json(&spec.env))
                .bind(Json(&spec.resources))
                .bind(spec.image_required)
                .bind(&spec.default_image)
                .bind(&template.dockerfile)
                .bind(&template.content_sha256)
                .execute(&mut *tx)
                .await?;
                (id, revision)
            }
        };
        // Two statements: the unique index on the latest revision is checked row by row.
        sqlx::query(
            "UPDATE image_templates SET latest = false WHERE name = $1 AND latest AND id <> $2",
        )
        .bind(&spec.name)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE image_templates SET latest = true WHERE id = $1 AND NOT latest")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Latest revision of every template, or every revision with `all`.
    pub async fn templates(&self, all: bool) -> Result<Vec<TemplateRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE $1 OR latest ORDER BY name, loaded_at DESC"
            )))
            .bind(all)
            .fetch_all(self.pool())
            .await?,
        )
    }

    pub async fn template_by_id(&self, id: Uuid) -> Result<TemplateRow, StoreError> {
        sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::not_found("image template", id))
    }

    /// Every revision of one template, newest first.
    pub async fn template_revisions(&self, name: &str) -> Result<Vec<TemplateRow>, StoreError> {
        let rows = sqlx::query_as::<_, TemplateRow>(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE name = $1 ORDER BY loaded_at DESC"
        )))
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        if rows.is_empty() {
            return Err(StoreError::not_found("image template", name));
        }
        Ok(rows)
    }
}
