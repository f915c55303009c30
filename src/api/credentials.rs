//! `/api/v1/credentials/`: secrets are write-only.

use axum::Json;
use axum::http::Method;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Call, Deleted, ListQuery, area, created, no_errors};
use crate::credentials::{self, Credential, CredentialInput};
use crate::error::AppResult;
use crate::extract::{ApiJson, Id};
use crate::pagination::Paginated;
use crate::params::PageParams;
use crate::state::AppState;
use crate::usecases::inventory;

pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let handlers = [
        routes!(list_credentials, create_credential),
        routes!(get_credential, save_credential, delete_credential),
    ];
    area(router, "credentials", handlers)
}

/// Lists credentials, without their secrets.
#[utoipa::path(
    get,
    path = "/credentials/",
    params(PageParams),
    responses((status = 200, description = "A page of credentials.", body = Paginated<Credential>)),
)]
async fn list_credentials(
    Call { state, user }: Call,
    list: ListQuery,
) -> AppResult<Json<Paginated<Credential>>> {
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = credentials::list(&mut conn, &user.scope(), list.page).await?;
    Ok(list.answer(rows, count))
}

/// Creates a credential (admin); its passwords are encrypted at rest.
#[utoipa::path(
    post,
    path = "/credentials/",
    request_body = CredentialInput,
    responses((status = 201, description = "The new credential.", body = Credential)),
)]
async fn create_credential(
    Call { state, user }: Call,
    ApiJson(input): ApiJson<CredentialInput>,
) -> AppResult<Response> {
    let credential =
        inventory::create_credential(&state.pool, &state.secrets, &user, &input, no_errors())
            .await?;
    Ok(created(
        format!("/credentials/{}/", credential.id),
        credential,
    ))
}

/// Shows one credential, without its secrets.
#[utoipa::path(
    get,
    path = "/credentials/{id}/",
    params(("id" = i64, Path, description = "Credential id.")),
    responses((status = 200, description = "The credential.", body = Credential)),
)]
async fn get_credential(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<Credential>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(credentials::get(&mut conn, &user.scope(), id).await?))
}

/// Replaces (PUT) or changes (PATCH) a credential's fields (admin).
///
/// PUT needs `name` and `username`; PATCH changes only the fields given.
#[utoipa::path(
    method(put, patch),
    path = "/credentials/{id}/",
    params(("id" = i64, Path, description = "Credential id.")),
    request_body = CredentialInput,
    responses((status = 200, description = "The credential as saved.", body = Credential)),
)]
async fn save_credential(
    Call { state, user }: Call,
    Id(id): Id,
    method: Method,
    ApiJson(input): ApiJson<CredentialInput>,
) -> AppResult<Json<Credential>> {
    let complete = method == Method::PUT;
    let (pool, secrets) = (&state.pool, &state.secrets);
    let credential =
        inventory::update_credential(pool, secrets, &user, id, &input, complete, no_errors())
            .await?;
    Ok(Json(credential))
}

/// Deletes a credential (admin).
///
/// One still used by devices is refused with a field error on `credential`.
#[utoipa::path(
    delete,
    path = "/credentials/{id}/",
    params(("id" = i64, Path, description = "Credential id.")),
    responses(
        Deleted,
        (status = 400, description = "Devices still use it (see `errors.credential`).", body = super::openapi::ValidationErrors),
    ),
)]
async fn delete_credential(Call { state, user }: Call, Id(id): Id) -> AppResult<Deleted> {
    inventory::delete_credential(&state.pool, &user, id).await?;
    Ok(Deleted)
}
