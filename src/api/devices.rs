//! `/api/v1/devices/`

use axum::Json;
use axum::http::Method;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Call, Deleted, ListQuery, area, created, no_errors, one_page};
use crate::devices::{self, BulkEditInput, BulkTarget, Device, DeviceFilter, DeviceInput};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{ApiJson, Id, Params};
use crate::pagination::Paginated;
use crate::params::{DeviceParams, PageParams, Reading};
use crate::snapshots::{HostKey, Snapshot};
use crate::state::AppState;
use crate::usecases::inventory;

pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let handlers = [
        routes!(list_devices, create_device),
        routes!(export_devices),
        routes!(bulk_assign_region),
        routes!(bulk_update),
        routes!(list_snapshots),
        routes!(get_snapshot),
        routes!(accept_host_key),
        routes!(get_device, save_device, delete_device),
    ];
    area(router, "devices", handlers)
}

/// Lists devices, filtered and sorted.
#[utoipa::path(
    get,
    path = "/devices/",
    params(PageParams, DeviceParams),
    responses((status = 200, description = "A page of devices.", body = Paginated<Device>, headers(("x-count-capped" = String, description = "`true` when a text search (`q`) matched more than 10,000 devices: `count` is then 10,000 and `next` follows every full page.")))),
)]
async fn list_devices(
    Call { state, user }: Call,
    list: ListQuery<DeviceParams>,
) -> AppResult<Response> {
    let (filter, sort) = &list.filter;
    let mut conn = state.pool.acquire().await?;
    let (rows, total) = devices::list(&mut conn, &user.scope(), filter, sort, list.page).await?;
    Ok(list.answer_total(rows, total))
}

/// Exports every matching device as CSV.
///
/// All of them, not a page, streamed, in the sort order asked for.
/// Columns: `id, hostname, mgmt_ip, port, vendor, platform, role, site, tags` (separated by
/// spaces)`, enabled, region` (its identifier)`, credential` (its id)`, reachability,
/// last_reachability_check, updated_at`. A free-text value a spreadsheet would take for a
/// formula (starting with `=`, `+`, `-` or `@`) is prefixed with `'`. Sent as an attachment
/// named `devices-<date>.csv`.
#[utoipa::path(
    get,
    path = "/devices/export/",
    params(DeviceParams),
    responses((status = 200, description = "Every matching device, one CSV row each after a header row.", content_type = "text/csv", body = String)),
)]
async fn export_devices(
    Call { state, user }: Call,
    Params(params): Params<DeviceParams>,
) -> AppResult<Response> {
    let (filter, sort) = params.filter(Reading::Strict)?;
    let export = inventory::export_devices(&state.pool, &user, filter, sort).await?;
    Ok(crate::extract::csv_export(export))
}

/// Creates a device (admin).
#[utoipa::path(
    post,
    path = "/devices/",
    request_body = DeviceInput,
    responses((status = 201, description = "The new device.", body = Device)),
)]
async fn create_device(
    Call { state, user }: Call,
    ApiJson(input): ApiJson<DeviceInput>,
) -> AppResult<Response> {
    let device = inventory::create_device(&state.pool, &user, &input, no_errors()).await?;
    Ok(created(format!("/devices/{}/", device.id), device))
}

/// Shows one device.
#[utoipa::path(
    get,
    path = "/devices/{id}/",
    params(("id" = i64, Path, description = "Device id.")),
    responses((status = 200, description = "The device.", body = Device)),
)]
async fn get_device(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<Device>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(devices::get(&mut conn, &user.scope(), id).await?))
}

/// Replaces (PUT) or changes (PATCH) a device's fields.
///
/// PUT needs `hostname` and `mgmt_ip`; PATCH changes only the fields given.
///
/// Operators may change a device's `region` alone (PATCH); every other field needs an admin.
#[utoipa::path(
    method(put, patch),
    path = "/devices/{id}/",
    params(("id" = i64, Path, description = "Device id.")),
    request_body = DeviceInput,
    responses((status = 200, description = "The device as saved.", body = Device)),
)]
async fn save_device(
    Call { state, user }: Call,
    Id(id): Id,
    method: Method,
    ApiJson(input): ApiJson<DeviceInput>,
) -> AppResult<Json<Device>> {
    let complete = method == Method::PUT;
    let device =
        inventory::update_device(&state.pool, &user, id, &input, complete, no_errors()).await?;
    Ok(Json(device))
}

/// Deletes a device (admin).
#[utoipa::path(
    delete,
    path = "/devices/{id}/",
    params(("id" = i64, Path, description = "Device id.")),
    responses(Deleted),
)]
async fn delete_device(Call { state, user }: Call, Id(id): Id) -> AppResult<Deleted> {
    inventory::delete_device(&state.pool, &user, id).await?;
    Ok(Deleted)
}

/// Body of `bulk_assign_region`: `device_ids` or `filters`, and `region`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct BulkAssign {
    /// The devices to assign, by id.
    device_ids: Option<Vec<i64>>,
    /// Or every device matching these filters (`region`, `site`, `role`, `vendor`,
    /// `platform`, `tag`, `enabled`, `reachability`, `credential`, `q`, as in the device
    /// list); `{}` is every device.
    #[schema(value_type = Option<Object>)]
    filters: Option<serde_json::Map<String, Value>>,
    /// The region id, or null to unassign.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, required = true)]
    region: Option<Option<i64>>,
}

/// The outcome of `bulk_assign_region`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct BulkAssigned {
    /// How many devices were changed.
    updated: u64,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Turns a JSON filter value into the string a query parameter would carry.
/// Validates a bulk request's target, shared with the UI.
pub(crate) fn bulk_target(
    device_ids: Option<Vec<i64>>,
    filters: Option<&serde_json::Map<String, Value>>,
) -> AppResult<BulkTarget> {
    match (device_ids, filters) {
        (Some(_), Some(_)) => Err(AppError::Validation(FieldErrors::single(
            "filters",
            "Give either device_ids or filters, not both.",
        ))),
        (Some(ids), None) => Ok(BulkTarget::Ids(ids)),
        (None, Some(filters)) => Ok(BulkTarget::Matching(
            DeviceFilter::from_json(filters, "filters").map_err(AppError::Validation)?,
        )),
        (None, None) => Err(AppError::Validation(FieldErrors::single(
            "device_ids",
            "Give device_ids (a list of ids) or filters (an object).",
        ))),
    }
}

/// Assigns many devices to a region (or unassigns them) in one statement (operator).
#[utoipa::path(
    post,
    path = "/devices/bulk_assign_region/",
    request_body = BulkAssign,
    responses((status = 200, description = "How many devices changed.", body = BulkAssigned)),
)]
async fn bulk_assign_region(
    Call { state, user }: Call,
    ApiJson(body): ApiJson<BulkAssign>,
) -> AppResult<Json<BulkAssigned>> {
    let target = bulk_target(body.device_ids, body.filters.as_ref())?;
    let Some(region) = body.region else {
        return Err(AppError::Validation(FieldErrors::single(
            "region",
            "This field is required (a region id, or null to unassign).",
        )));
    };
    let (updated, _) = inventory::bulk_assign(&state.pool, &user, &target, region).await?;
    Ok(Json(BulkAssigned { updated }))
}

/// Body of `bulk_update`: `device_ids` or `filters`, the `changes`, and `dry_run`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkUpdate {
    /// The devices to change, by id.
    device_ids: Option<Vec<i64>>,
    /// Or every device matching these filters (`region`, `site`, `role`, `vendor`,
    /// `platform`, `tag`, `enabled`, `reachability`, `credential`, `q`, as in the device
    /// list); `{}` is every device.
    #[schema(value_type = Option<Object>)]
    filters: Option<serde_json::Map<String, Value>>,
    /// The fields to set on every one of them; the others stay as they are.
    changes: BulkEditInput,
    /// Only say what would change: the count and the first devices with their old and new
    /// values, nothing written.
    #[serde(default)]
    dry_run: bool,
}

/// The outcome of `bulk_update`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct BulkUpdated {
    /// How many devices were changed (0 in a dry run).
    updated: u64,
    /// How many devices the request applies to.
    count: i64,
    /// Whether nothing was written.
    dry_run: bool,
    /// In a dry run, the first 20 devices by hostname with the fields that would change
    /// (old and new values); empty otherwise.
    preview: Vec<inventory::PreviewRow>,
}

/// Changes fields of many devices at once.
///
/// Credential, site, role, vendor, platform, enabled, tags (added or removed) and region, in
/// one transaction (admin; operator for the region alone). With a credential or a region,
/// only devices of that object's customer are changed.
#[utoipa::path(
    post,
    path = "/devices/bulk_update/",
    request_body = BulkUpdate,
    responses((status = 200, description = "What changed, or with `dry_run` what would.", body = BulkUpdated)),
)]
async fn bulk_update(
    Call { state, user }: Call,
    ApiJson(body): ApiJson<BulkUpdate>,
) -> AppResult<Json<BulkUpdated>> {
    let target = bulk_target(body.device_ids, body.filters.as_ref());
    // Field errors name the body's paths: `changes.site`, and `changes` when none is given.
    let edit = body.changes.validate().map_err(|e| {
        let path = |k: String| {
            if k == "changes" {
                k
            } else {
                format!("changes.{k}")
            }
        };
        FieldErrors(e.0.into_iter().map(|(k, v)| (path(k), v)).collect())
    });
    let (target, edit) = match (target, edit) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(AppError::Validation(mut a)), Err(b)) => {
            a.extend(b);
            return Err(AppError::Validation(a));
        }
        (Err(e), _) => return Err(e),
        (_, Err(e)) => return Err(AppError::Validation(e)),
    };
    if body.dry_run {
        let plan = inventory::preview_bulk_edit(&state.pool, &user, &target, &edit).await?;
        return Ok(Json(BulkUpdated {
            updated: 0,
            count: plan.count,
            dry_run: true,
            preview: plan.preview,
        }));
    }
    let updated = inventory::bulk_edit(&state.pool, &user, &target, &edit).await?;
    Ok(Json(BulkUpdated {
        updated,
        count: updated as i64,
        dry_run: false,
        preview: Vec::new(),
    }))
}

/// Lists a device's configuration backups, newest first.
#[utoipa::path(
    get,
    path = "/devices/{id}/snapshots/",
    params(("id" = i64, Path, description = "Device id.")),
    responses((status = 200, description = "Every snapshot of the device, on one page.", body = Paginated<Snapshot>)),
)]
async fn list_snapshots(
    Call { state, user }: Call,
    Id(id): Id,
) -> AppResult<Json<Paginated<Snapshot>>> {
    let mut conn = state.pool.acquire().await?;
    let rows = crate::snapshots::list(&mut conn, &user.scope(), id).await?;
    Ok(one_page(rows))
}

/// Shows one configuration backup with its text.
#[utoipa::path(
    get,
    path = "/devices/{id}/snapshots/{sid}/",
    params(("id" = i64, Path, description = "Device id."), ("sid" = i64, Path, description = "Snapshot id.")),
    responses((status = 200, description = "The snapshot.", body = Snapshot)),
)]
async fn get_snapshot(
    Call { state, user }: Call,
    axum::extract::Path((id, sid)): axum::extract::Path<(String, String)>,
) -> AppResult<Json<Snapshot>> {
    let (Ok(id), Ok(sid)) = (id.parse(), sid.parse()) else {
        return Err(AppError::NotFound);
    };
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        crate::snapshots::get(&mut conn, &user.scope(), id, sid).await?,
    ))
}

/// Trusts the SSH host key the device presented last (admin), after it changed.
///
/// Until then the device fails every SSH job.
#[utoipa::path(
    post,
    path = "/devices/{id}/accept_host_key/",
    params(("id" = i64, Path, description = "Device id.")),
    responses((status = 200, description = "The device's host keys after the change.", body = HostKey)),
)]
async fn accept_host_key(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<HostKey>> {
    Ok(Json(
        inventory::accept_host_key(&state.pool, &user, id).await?,
    ))
}
