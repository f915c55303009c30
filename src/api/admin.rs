//! `/api/v1/customers/`, `/users/`, `/tokens/`, `/me/` and `/audit/`: administration.

use axum::Json;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Call, Deleted, ListQuery, area, created, no_errors, one_page};
use crate::audit::Entry;
use crate::auth::middleware::changes_callers;
use crate::auth::tokens::Token;
use crate::auth::users::User;
use crate::customers::Customer;
use crate::error::AppResult;
use crate::extract::{ApiJson, Id, Params};
use crate::pagination::Paginated;
use crate::params::{AuditParams, PageParams, Reading, TokenParams, UserParams};
use crate::state::AppState;
use crate::usecases::admin::{self, UserInput};

pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let handlers = [
        routes!(list_customers, create_customer),
        routes!(get_customer, rename_customer, delete_customer),
        routes!(list_users, create_user),
        routes!(get_user, update_user),
        routes!(set_password),
        routes!(list_tokens, create_token),
        routes!(revoke_token),
        routes!(get_me),
        routes!(list_audit),
    ];
    // A change here may alter who a caller is or what they may do: it empties the
    // authentication cache before its response leaves.
    let changes = area(OpenApiRouter::new(), "administration", handlers)
        .route_layer(axum::middleware::from_fn(changes_callers));
    router.merge(changes)
}

/// Body of the customer endpoints.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct CustomerInput {
    /// Name, unique (1 to 200 characters).
    name: Option<String>,
}

/// Lists customers (superusers).
#[utoipa::path(
    get,
    path = "/customers/",
    params(PageParams),
    responses(
        (status = 200, description = "A page of customers.", body = Paginated<Customer>),
        (status = 403, description = "Only superusers manage customers.", body = super::openapi::ErrorDetail),
    ),
)]
async fn list_customers(
    Call { state, user }: Call,
    list: ListQuery,
) -> AppResult<Json<Paginated<Customer>>> {
    let (rows, count) = admin::list_customers(&state.pool, &user, list.page).await?;
    Ok(list.answer(rows, count))
}

/// Creates a customer (superusers).
#[utoipa::path(
    post,
    path = "/customers/",
    request_body = CustomerInput,
    responses((status = 201, description = "The new customer.", body = Customer)),
)]
async fn create_customer(
    Call { state, user }: Call,
    ApiJson(input): ApiJson<CustomerInput>,
) -> AppResult<Response> {
    let c = admin::create_customer(&state.pool, &user, input.name.as_deref()).await?;
    Ok(created(format!("/customers/{}/", c.id), c))
}

/// Shows a customer (superusers).
#[utoipa::path(
    get,
    path = "/customers/{id}/",
    params(("id" = i64, Path, description = "Customer id.")),
    responses(
        (status = 200, description = "The customer.", body = Customer),
        (status = 403, description = "Only superusers manage customers.", body = super::openapi::ErrorDetail),
    ),
)]
async fn get_customer(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<Customer>> {
    Ok(Json(admin::customer(&state.pool, &user, id).await?.0))
}

/// Renames a customer (superusers).
#[utoipa::path(
    patch,
    path = "/customers/{id}/",
    params(("id" = i64, Path, description = "Customer id.")),
    request_body = CustomerInput,
    responses((status = 200, description = "The customer as saved.", body = Customer)),
)]
async fn rename_customer(
    Call { state, user }: Call,
    Id(id): Id,
    ApiJson(input): ApiJson<CustomerInput>,
) -> AppResult<Json<Customer>> {
    let c = admin::rename_customer(&state.pool, &user, id, input.name.as_deref()).await?;
    Ok(Json(c))
}

/// Deletes a customer that holds no region, device or job (superusers).
#[utoipa::path(
    delete,
    path = "/customers/{id}/",
    params(("id" = i64, Path, description = "Customer id.")),
    responses(
        Deleted,
        (status = 400, description = "It still holds regions, devices or jobs (see `errors.customer`).", body = super::openapi::ValidationErrors),
    ),
)]
async fn delete_customer(Call { state, user }: Call, Id(id): Id) -> AppResult<Deleted> {
    admin::delete_customer(&state.pool, &user, id).await?;
    Ok(Deleted)
}

/// Lists the users the caller manages (admins: those of their customers; superusers: all).
#[utoipa::path(
    get,
    path = "/users/",
    params(PageParams, UserParams),
    responses(
        (status = 200, description = "A page of users.", body = Paginated<User>),
        (status = 403, description = "Only admins and superusers manage users.", body = super::openapi::ErrorDetail),
    ),
)]
async fn list_users(
    Call { state, user }: Call,
    list: ListQuery<UserParams>,
) -> AppResult<Json<Paginated<User>>> {
    let search = list.filter.as_deref();
    let (rows, count) = admin::list_users(&state.pool, &user, search, list.page).await?;
    Ok(list.answer(rows, count))
}

/// Creates a user (admins, in their customers; superusers).
#[utoipa::path(
    post,
    path = "/users/",
    request_body = UserInput,
    responses((status = 201, description = "The new user.", body = User)),
)]
async fn create_user(
    Call { state, user }: Call,
    ApiJson(input): ApiJson<UserInput>,
) -> AppResult<Response> {
    let u = admin::create_user(&state.pool, &user, &input, None, no_errors()).await?;
    Ok(created(format!("/users/{}/", u.id), u))
}

/// Shows a user the caller manages, or the caller.
#[utoipa::path(
    get,
    path = "/users/{id}/",
    params(("id" = i64, Path, description = "User id.")),
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 403, description = "Only admins and superusers manage users; admins do not manage superusers.", body = super::openapi::ErrorDetail),
    ),
)]
async fn get_user(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<User>> {
    Ok(Json(admin::user(&state.pool, &user, id).await?))
}

/// Changes a user's role, customers, activity or superuser flag.
///
/// `is_active: false` ends the user's sessions and revokes their tokens at once. The last
/// active superuser cannot be deactivated or demoted.
#[utoipa::path(
    patch,
    path = "/users/{id}/",
    params(("id" = i64, Path, description = "User id.")),
    request_body = UserInput,
    responses((status = 200, description = "The user as saved.", body = User)),
)]
async fn update_user(
    Call { state, user }: Call,
    Id(id): Id,
    ApiJson(input): ApiJson<UserInput>,
) -> AppResult<Json<User>> {
    Ok(Json(
        admin::update_user(&state.pool, &user, id, &input, no_errors()).await?,
    ))
}

/// Body of `set_password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct PasswordInput {
    /// The new password; left out, one is generated and returned once.
    password: Option<String>,
}

/// The answer of `set_password`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PasswordSet {
    /// The generated password, when none was given (shown this once).
    password: Option<String>,
}

/// Sets or resets the password of a user the caller manages.
#[utoipa::path(
    post,
    path = "/users/{id}/set_password/",
    params(("id" = i64, Path, description = "User id.")),
    request_body = PasswordInput,
    responses((status = 200, description = "Set; a generated password is returned once.", body = PasswordSet)),
)]
async fn set_password(
    Call { state, user }: Call,
    Id(id): Id,
    ApiJson(input): ApiJson<PasswordInput>,
) -> AppResult<Json<PasswordSet>> {
    let given = input.password.as_deref();
    let (_, generated) = admin::set_password(&state.pool, &user, id, given, None).await?;
    Ok(Json(PasswordSet {
        password: generated,
    }))
}

/// Body of `create_token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TokenInput {
    /// What the token is for.
    name: Option<String>,
    /// When it stops working (RFC 3339); never by default.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<time::OffsetDateTime>,
}

/// A new token, with its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NewToken {
    /// The token's fields.
    #[serde(flatten)]
    token: Token,
    /// The secret (`wn_…`), shown this once: send it as `Authorization: Bearer <token>`.
    #[serde(rename = "token")]
    secret: String,
}

/// Lists the caller's tokens, or (admins) those of a user they manage.
#[utoipa::path(
    get,
    path = "/tokens/",
    params(TokenParams),
    responses(
        (status = 200, description = "The tokens, newest first, on one page.", body = Paginated<Token>),
        (status = 403, description = "`user` is a superuser the caller may not manage.", body = super::openapi::ErrorDetail),
        (status = 404, description = "`user` is not a user the caller manages.", body = super::openapi::ErrorDetail),
    ),
)]
async fn list_tokens(
    Call { state, user }: Call,
    Params(params): Params<TokenParams>,
) -> AppResult<Json<Paginated<Token>>> {
    let owner = params.user(Reading::Strict)?;
    Ok(one_page(
        admin::list_tokens(&state.pool, &user, owner).await?,
    ))
}

/// Creates a token for the caller; the answer holds its secret, shown once.
#[utoipa::path(
    post,
    path = "/tokens/",
    request_body = TokenInput,
    responses((status = 201, description = "The token, with its secret in `token`.", body = NewToken)),
)]
async fn create_token(
    Call { state, user }: Call,
    ApiJson(input): ApiJson<TokenInput>,
) -> AppResult<Response> {
    let name = input.name.as_deref();
    let (token, secret) =
        admin::create_token(&state.pool, &user, name, input.expires_at, no_errors()).await?;
    Ok(created(
        format!("/tokens/{}/", token.id),
        NewToken { token, secret },
    ))
}

/// Revokes a token: the caller's own, or one of a user they manage. It is refused at once.
#[utoipa::path(
    delete,
    path = "/tokens/{id}/",
    params(("id" = i64, Path, description = "Token id.")),
    responses((status = 204, description = "Revoked.")),
)]
async fn revoke_token(Call { state, user }: Call, Id(id): Id) -> AppResult<StatusCode> {
    admin::revoke_token(&state.pool, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is: the same fields as a user.
#[utoipa::path(
    get,
    path = "/me/",
    tag = "auth",
    responses((status = 200, description = "The signed-in user.", body = User)),
)]
async fn get_me(Call { state, user }: Call) -> AppResult<Json<User>> {
    Ok(Json(admin::user(&state.pool, &user, user.id).await?))
}

/// The audit trail: one row per change, newest first, within the caller's customers
/// (superusers: all).
#[utoipa::path(
    get,
    path = "/audit/",
    params(PageParams, AuditParams),
    responses((status = 200, description = "A page of audit rows.", body = Paginated<Entry>)),
)]
async fn list_audit(
    Call { state, user }: Call,
    list: ListQuery<AuditParams>,
) -> AppResult<Json<Paginated<Entry>>> {
    let (rows, count) = admin::audit_log(&state.pool, &user, &list.filter, list.page).await?;
    Ok(list.answer(rows, count))
}
