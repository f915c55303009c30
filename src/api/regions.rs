//! `/api/v1/regions/`

use axum::Json;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Call, Deleted, ListQuery, area, created, no_errors};
use crate::devices::{self, RegionFilter};
use crate::error::AppResult;
use crate::extract::{ApiJson, Id};
use crate::pagination::Paginated;
use crate::params::{DeviceParams, PageParams};
use crate::regions::{self, RegionJson};
use crate::state::AppState;
use crate::usecases::inventory;

pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let handlers = [
        routes!(list_regions, create_region),
        routes!(get_region, save_region, delete_region),
        routes!(update_region_health),
        routes!(list_region_devices),
    ];
    area(router, "regions", handlers)
}

/// Lists the caller's regions, highest priority first.
#[utoipa::path(
    get,
    path = "/regions/",
    params(PageParams),
    responses((status = 200, description = "A page of regions.", body = Paginated<RegionJson>)),
)]
async fn list_regions(
    Call { state, user }: Call,
    list: ListQuery,
) -> AppResult<Json<Paginated<RegionJson>>> {
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = regions::list(
        &mut conn,
        &user.scope(),
        list.page,
        regions::Counts::Without,
    )
    .await?;
    let results = rows.iter().map(|r| r.to_json()).collect();
    Ok(list.answer(results, count))
}

/// Creates a region (admin).
///
/// `customer` may be left out when the caller belongs to exactly one customer.
#[utoipa::path(
    post,
    path = "/regions/",
    request_body = regions::RegionInput,
    responses((status = 201, description = "The new region.", body = RegionJson)),
)]
async fn create_region(
    Call { state, user }: Call,
    ApiJson(input): ApiJson<regions::RegionInput>,
) -> AppResult<Response> {
    let region = inventory::create_region(&state.pool, &user, &input, no_errors()).await?;
    Ok(created(
        format!("/regions/{}/", region.id),
        region.to_json(),
    ))
}

/// Shows one region.
#[utoipa::path(
    get,
    path = "/regions/{id}/",
    params(("id" = i64, Path, description = "Region id.")),
    responses((status = 200, description = "The region.", body = RegionJson)),
)]
async fn get_region(Call { state, user }: Call, Id(id): Id) -> AppResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let region = regions::get(&mut conn, &user.scope(), id).await?;
    Ok(Json(region.to_json()).into_response())
}

/// Replaces (PUT) or changes (PATCH) a region's fields (admin).
///
/// PUT needs `name` and `identifier`; PATCH changes only the fields given.
#[utoipa::path(
    method(put, patch),
    path = "/regions/{id}/",
    params(("id" = i64, Path, description = "Region id.")),
    request_body = regions::RegionInput,
    responses((status = 200, description = "The region as saved.", body = RegionJson)),
)]
async fn save_region(
    Call { state, user }: Call,
    Id(id): Id,
    method: Method,
    ApiJson(input): ApiJson<regions::RegionInput>,
) -> AppResult<Json<RegionJson>> {
    let complete = method == Method::PUT;
    let region =
        inventory::update_region(&state.pool, &user, id, &input, complete, no_errors()).await?;
    Ok(Json(region.to_json()))
}

/// Deletes a region (admin).
///
/// Its devices become unassigned; past jobs keep their history, and tasks still queued for it
/// move to the default queue.
#[utoipa::path(
    delete,
    path = "/regions/{id}/",
    params(("id" = i64, Path, description = "Region id.")),
    responses(Deleted),
)]
async fn delete_region(Call { state, user }: Call, Id(id): Id) -> AppResult<Deleted> {
    inventory::delete_region(&state.pool, &user, id).await?;
    Ok(Deleted)
}

/// Body of `update_health`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct HealthUpdate {
    /// `healthy`, `degraded` or `offline`.
    #[schema(value_type = crate::types::HealthStatus)]
    health_status: Option<String>,
    /// Why (shown next to the badge).
    message: Option<String>,
}

/// Sets a region's health by hand (admin), as the seed's operators did.
///
/// The health monitor re-evaluates it at the next interval unless the region's
/// `worker_pool_config` has `"auto_health": false`. Going offline fails its queued jobs over to
/// the default queue.
#[utoipa::path(
    post,
    path = "/regions/{id}/update_health/",
    params(("id" = i64, Path, description = "Region id.")),
    request_body = HealthUpdate,
    responses((status = 200, description = "The region with its new health.", body = RegionJson)),
)]
async fn update_region_health(
    Call { state, user }: Call,
    Id(id): Id,
    ApiJson(body): ApiJson<HealthUpdate>,
) -> AppResult<Response> {
    let region = inventory::set_region_health(
        &state.pool,
        &user,
        id,
        body.health_status.as_deref(),
        body.message.as_deref(),
    )
    .await?;
    Ok(Json(region.to_json()).into_response())
}

/// Lists the devices assigned to a region; takes the device list's filters.
#[utoipa::path(
    get,
    path = "/regions/{id}/devices/",
    params(("id" = i64, Path, description = "Region id."), PageParams, DeviceParams),
    responses((status = 200, description = "A page of the region's devices.", body = Paginated<devices::Device>, headers(("x-count-capped" = String, description = "`true` when a text search (`q`) matched more than 10,000 devices: `count` is then 10,000 and `next` follows every full page.")))),
)]
async fn list_region_devices(
    Call { state, user }: Call,
    Id(id): Id,
    mut list: ListQuery<DeviceParams>,
) -> AppResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let region = regions::get(&mut conn, &user.scope(), id).await?;
    let (filter, sort) = &mut list.filter;
    filter.region = Some(RegionFilter::Id(region.id));
    let (rows, total) = devices::list(&mut conn, &user.scope(), filter, sort, list.page).await?;
    Ok(list.answer_total(rows, total))
}
