//! `/api/v1/credentials/`: secrets are write-only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::extract::{ApiJson, Id, QueryPairs, RequestUrl};
use super::{page_request, route};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::customers;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::Paginated;

pub(super) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = route(
        router,
        "/credentials/",
        get(list_credentials).post(create_credential),
    );
    route(
        router,
        "/credentials/{id}/",
        get(get_credential)
            .patch(update_credential)
            .put(replace_credential)
            .delete(delete_credential),
    )
}

async fn list_credentials(
    State(state): State<AppState>,
    user: AuthUser,
    query: QueryPairs,
    RequestUrl(url): RequestUrl,
) -> AppResult<Json<Paginated<Credential>>> {
    let page = page_request(&query)?;
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = credentials::list(&mut conn, &user.scope(), page).await?;
    Ok(Json(Paginated::new(rows, count, page, &url)))
}

async fn create_credential(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<CredentialInput>,
) -> AppResult<Response> {
    user.require(Role::Admin)?;
    let changes = input.validate(true).map_err(AppError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let customer = customers::for_new_object(&mut tx, &user, input.customer).await?;
    let credential = credentials::create(&mut tx, &state.secrets, customer, &changes).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(credential)).into_response())
}

async fn get_credential(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<Credential>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(credentials::get(&mut conn, &user.scope(), id).await?))
}

async fn save_credential(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    input: &CredentialInput,
    complete: bool,
) -> AppResult<Json<Credential>> {
    let mut conn = state.pool.acquire().await?;
    let current = credentials::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    if input.customer.is_some_and(|c| c != current.customer_id) {
        return Err(AppError::Validation(FieldErrors::single(
            "customer",
            "A credential cannot move to another customer.",
        )));
    }
    let changes = input.validate(complete).map_err(AppError::Validation)?;
    Ok(Json(
        credentials::update(&mut conn, &state.secrets, &user.scope(), id, &changes).await?,
    ))
}

async fn update_credential(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(input): ApiJson<CredentialInput>,
) -> AppResult<Json<Credential>> {
    save_credential(&state, &user, id, &input, false).await
}

async fn replace_credential(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    ApiJson(input): ApiJson<CredentialInput>,
) -> AppResult<Json<Credential>> {
    save_credential(&state, &user, id, &input, true).await
}

async fn delete_credential(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    credentials::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    credentials::delete(&mut conn, &user.scope(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
