//! `/api/v1/devices/`

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

use super::extract::{ApiJson, Id, QueryPairs, RequestUrl};
use super::{page_request, route};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::devices::{self, BulkTarget, Device, DeviceFilter, DeviceInput};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::Paginated;
use crate::{customers, regions};

pub(super) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = route(router, "/devices/", get(list_devices).post(create_device));
    let router = route(
        router,
        "/devices/bulk_assign_region/",
        post(bulk_assign_region),
    );
    let router = route(router, "/devices/{id}/snapshots/", get(list_snapshots));
    let router = route(router, "/devices/{id}/snapshots/{sid}/", get(get_snapshot));
    let router = route(
        router,
        "/devices/{id}/accept_host_key/",
        post(accept_host_key),
    );
    route(
        router,
        "/devices/{id}/",
        get(get_device)
            .put(replace_device)
            .patch(update_device)
            .delete(delete_device),
    )
}

async fn list_devices(
    State(state): State<AppState>,
    user: AuthUser,
    query: QueryPairs,
    RequestUrl(url): RequestUrl,
) -> AppResult<Json<Paginated<Device>>> {
    let page = page_request(&query)?;
    let mut errors = FieldErrors::new();
    let filter = DeviceFilter::from_pairs(query.iter(), &mut errors);
    let sort = query.get("sort").unwrap_or("hostname");
    if !devices::SORTS.contains(&sort.trim_start_matches('-')) {
        errors.add(
            "sort",
            format!(
                "Sort by one of: {} (prefix - to reverse).",
                devices::SORTS.join(", ")
            ),
        );
    }
    errors.into_result()?;
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = devices::list(&mut conn, &user.scope(), &filter, sort, page).await?;
    Ok(Json(Paginated::new(rows, count, page, &url)))
}

async fn create_device(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<DeviceInput>,
) -> AppResult<Response> {
    user.require(Role::Admin)?;
    let changes = input.validate(true).map_err(AppError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let customer = customers::for_new_object(&mut tx, &user, input.customer).await?;
    let device = devices::create(&mut tx, customer, &changes).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(device)).into_response())
}

async fn get_device(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<Device>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(devices::get(&mut conn, &user.scope(), id).await?))
}

async fn save_device(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    input: &DeviceInput,
    complete: bool,
) -> AppResult<Json<Device>> {
    let mut conn = state.pool.acquire().await?;
    let current = devices::get(&mut conn, &user.scope(), id).await?;
    let changes = input.validate(complete).map_err(AppError::Validation)?;
    // Operators may move a device between regions; everything else is an admin's.
    if !complete && changes.only_region() {
        user.require(Role::Operator)?;
    } else {
        user.require(Role::Admin)?;
    }
    if input.customer.is_some_and(|c| c != current.customer_id) {
        return Err(AppError::Validation(FieldErrors::single(
            "customer",
            "A device cannot move to another customer.",
        )));
    }
    Ok(Json(
        devices::update(&mut conn, &user.scope(), id, &changes).await?,
    ))
}

async fn replace_device(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(input): ApiJson<DeviceInput>,
) -> AppResult<Json<Device>> {
    save_device(&state, &user, id, &input, true).await
}

async fn update_device(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(input): ApiJson<DeviceInput>,
) -> AppResult<Json<Device>> {
    save_device(&state, &user, id, &input, false).await
}

async fn delete_device(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    devices::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    devices::delete(&mut conn, &user.scope(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `bulk_assign_region`.
#[derive(Debug, Deserialize)]
struct BulkAssign {
    device_ids: Option<Vec<i64>>,
    filters: Option<serde_json::Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    region: Option<Option<i64>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Turns a JSON filter value into the string a query parameter would carry.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_string(),
        other => other.to_string(),
    }
}

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
        (None, Some(filters)) => {
            let mut errors = FieldErrors::new();
            for key in filters.keys() {
                if !["region", "site", "role", "vendor", "q"].contains(&key.as_str()) {
                    errors.add(
                        format!("filters.{key}"),
                        "Unknown filter; use region, site, role, vendor or q.",
                    );
                }
            }
            let filter = DeviceFilter::from_pairs(
                filters.iter().map(|(k, v)| (k.as_str(), as_text(v))),
                &mut errors,
            );
            errors.into_result()?;
            Ok(BulkTarget::Matching(filter))
        }
        (None, None) => Err(AppError::Validation(FieldErrors::single(
            "device_ids",
            "Give device_ids (a list of ids) or filters (an object).",
        ))),
    }
}

async fn bulk_assign_region(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<BulkAssign>,
) -> AppResult<Json<Value>> {
    user.require(Role::Operator)?;
    let target = bulk_target(body.device_ids, body.filters.as_ref())?;
    let Some(region) = body.region else {
        return Err(AppError::Validation(FieldErrors::single(
            "region",
            "This field is required (a region id, or null to unassign).",
        )));
    };
    let mut conn = state.pool.acquire().await?;
    let region = match region {
        Some(id) => {
            let region = regions::get(&mut conn, &user.scope(), id)
                .await
                .map_err(|e| match e {
                    AppError::NotFound => AppError::Validation(FieldErrors::single(
                        "region",
                        format!("No region with id {id}."),
                    )),
                    other => other,
                })?;
            Some((region.id, region.customer_id))
        }
        None => None,
    };
    let updated = devices::bulk_assign_region(&mut conn, &user.scope(), &target, region).await?;
    Ok(Json(serde_json::json!({ "updated": updated })))
}

async fn list_snapshots(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let rows = crate::snapshots::list(&mut conn, &user.scope(), id).await?;
    Ok(Json(
        serde_json::json!({"count": rows.len(), "next": null, "previous": null, "results": rows}),
    ))
}

async fn get_snapshot(
    State(state): State<AppState>,
    user: AuthUser,
    axum::extract::Path((id, sid)): axum::extract::Path<(String, String)>,
) -> AppResult<Json<crate::snapshots::Snapshot>> {
    let (Ok(id), Ok(sid)) = (id.parse(), sid.parse()) else {
        return Err(AppError::NotFound);
    };
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        crate::snapshots::get(&mut conn, &user.scope(), id, sid).await?,
    ))
}

async fn accept_host_key(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<crate::snapshots::HostKey>> {
    let mut conn = state.pool.acquire().await?;
    devices::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    Ok(Json(
        crate::snapshots::accept_host_key(&mut conn, &user.scope(), id).await?,
    ))
}
