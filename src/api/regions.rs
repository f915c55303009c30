//! `/api/v1/regions/`

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
use crate::devices::{self, DeviceFilter, RegionFilter};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::Paginated;
use crate::{customers, regions};

pub(super) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = route(router, "/regions/", get(list_regions).post(create_region));
    let router = route(
        router,
        "/regions/{id}/",
        get(get_region)
            .put(replace_region)
            .patch(update_region)
            .delete(delete_region),
    );
    let router = route(
        router,
        "/regions/{id}/update_health/",
        post(update_region_health),
    );
    route(router, "/regions/{id}/devices/", get(list_region_devices))
}

async fn list_regions(
    State(state): State<AppState>,
    user: AuthUser,
    query: QueryPairs,
    RequestUrl(url): RequestUrl,
) -> AppResult<Json<Value>> {
    let page = page_request(&query)?;
    let mut conn = state.pool.acquire().await?;
    let (rows, count) =
        regions::list(&mut conn, &user.scope(), page, regions::Counts::Without).await?;
    let results = rows.iter().map(|r| r.to_json()).collect();
    Ok(Json(
        serde_json::to_value(Paginated::new(results, count, page, &url))
            .map_err(anyhow::Error::from)?,
    ))
}

async fn create_region(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<regions::RegionInput>,
) -> AppResult<Response> {
    user.require(Role::Admin)?;
    let changes = input.validate(true).map_err(AppError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let customer = customers::for_new_object(&mut tx, &user, input.customer).await?;
    let region = regions::create(&mut tx, customer, &changes).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(region.to_json())).into_response())
}

async fn get_region(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let region = regions::get(&mut conn, &user.scope(), id).await?;
    Ok(Json(region.to_json()).into_response())
}

async fn save_region(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    input: &regions::RegionInput,
    complete: bool,
) -> AppResult<Response> {
    user.require(Role::Admin)?;
    let mut conn = state.pool.acquire().await?;
    // 404 before 400: another customer's region does not exist, whatever the body says.
    let current = regions::get(&mut conn, &user.scope(), id).await?;
    if input.customer.is_some_and(|c| c != current.customer_id) {
        return Err(AppError::Validation(FieldErrors::single(
            "customer",
            "A region cannot move to another customer.",
        )));
    }
    let changes = input.validate(complete).map_err(AppError::Validation)?;
    let region = regions::update(&mut conn, &user.scope(), id, &changes).await?;
    Ok(Json(region.to_json()).into_response())
}

async fn replace_region(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(input): ApiJson<regions::RegionInput>,
) -> AppResult<Response> {
    save_region(&state, &user, id, &input, true).await
}

async fn update_region(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(input): ApiJson<regions::RegionInput>,
) -> AppResult<Response> {
    save_region(&state, &user, id, &input, false).await
}

async fn delete_region(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    // Invisible regions are 404 for everyone; visible ones need an admin.
    regions::get(&mut tx, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    regions::delete(&mut tx, &user.scope(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct HealthUpdate {
    health_status: Option<String>,
    message: Option<String>,
}

async fn update_region_health(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(body): ApiJson<HealthUpdate>,
) -> AppResult<Response> {
    let mut conn = state.pool.acquire().await?;
    regions::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    let (status, message) =
        regions::validate_health(body.health_status.as_deref(), body.message.as_deref())
            .map_err(AppError::Validation)?;
    let region = regions::set_health(&mut conn, &user.scope(), id, status, &message).await?;
    Ok(Json(region.to_json()).into_response())
}

async fn list_region_devices(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    query: QueryPairs,
    RequestUrl(url): RequestUrl,
) -> AppResult<Json<Paginated<devices::Device>>> {
    let page = page_request(&query)?;
    let mut conn = state.pool.acquire().await?;
    let region = regions::get(&mut conn, &user.scope(), id).await?;
    let mut errors = FieldErrors::new();
    let mut filter = DeviceFilter::from_pairs(query.iter(), &mut errors);
    errors.into_result()?;
    filter.region = Some(RegionFilter::Id(region.id));
    let sort = query.get("sort").unwrap_or("hostname");
    let (rows, count) = devices::list(&mut conn, &user.scope(), &filter, sort, page).await?;
    Ok(Json(Paginated::new(rows, count, page, &url)))
}
