//! `GET /api/v1/fleet`: every region's health now and its samples over a window, for the console's overview.

use axum::Json;
use axum::extract::State;
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ApiState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody, Problems};
use super::query::QueryParams;
use crate::domain::RegionHealth;
use crate::fleet::{agents, count, region_health};
use crate::store::RegionSample;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FleetQuery {
    /// How far back the samples go.
    #[param(minimum = 1, maximum = 1440, default = 60)]
    pub minutes: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Fleet {
    /// Seconds between two samples of a region.
    pub sample_interval_seconds: u32,
    pub regions: Vec<RegionOverview>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionOverview {
    pub id: Uuid,
    pub code: String,
    pub display_name: String,
    pub enabled: bool,
    /// Now: from the clusters' status and agents, and the tasks that failed in the last sample.
    pub health: RegionHealth,
    pub clusters: i32,
    pub agents_connected: i32,
    /// Mean round trip of the connected agents now.
    pub rtt_ms: Option<f64>,
    /// Oldest first; one per interval the control plane was running.
    pub samples: Vec<RegionSample>,
}

/// The fleet by region: health now and samples over a window (viewer)
///
/// Samples are taken every `console.sample_interval_seconds` and kept for `console.sample_retention_hours`.
#[utoipa::path(
    get,
    path = "/fleet",
    operation_id = "fleet_overview",
    params(FleetQuery),
    responses(
        (status = 200, description = "Every region with its health and samples", body = Fleet),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    )
)]
pub async fn overview(
    State(state): State<ApiState>,
    principal: Principal,
    QueryParams(query): QueryParams<FleetQuery>,
) -> Result<Json<Fleet>, ApiError> {
    principal.require(Role::Viewer, "see the fleet")?;
    let minutes = query.minutes.unwrap_or(60);
    let mut problems = Problems::default();
    if !(1..=1440).contains(&minutes) {
        problems.add("minutes", "must be between 1 and 1440");
    }
    problems.into_result()?;
    let regions = state.store.regions().await?;
    let clusters = state.store.clusters().await?;
    let mut samples = state
        .store
        .fleet_samples(Utc::now() - TimeDelta::minutes(minutes))
        .await?;
    let regions = regions
        .into_iter()
        .map(|region| {
            let own: Vec<_> = clusters
                .iter()
                .filter(|c| c.region_id == region.id)
                .collect();
            let (mine, rest): (Vec<RegionSample>, Vec<RegionSample>) = samples
                .drain(..)
                .partition(|sample| sample.region_id == region.id);
            samples = rest;
            let recent_failures = mine.last().map_or(0, |sample| sample.tasks_failed);
            let (agents_connected, rtt_ms) = agents(&own);
            RegionOverview {
                health: region_health(&region, &own, recent_failures),
                id: region.id,
                code: region.code,
                display_name: region.display_name,
                enabled: region.enabled,
                clusters: count(own.len()),
                agents_connected,
                rtt_ms,
                samples: mine,
            }
        })
        .collect();
    Ok(Json(Fleet {
        sample_interval_seconds: state.config.console.sample_interval_seconds,
        regions,
    }))
}
