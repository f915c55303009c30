//! The JSON REST API under `/api/v1`. Handlers call the same domain functions as the UI.
//!
//! Every route is registered through [`route`] from a handler's `#[utoipa::path]`, so the
//! OpenAPI description served at `/api/v1/openapi.json` lists exactly what the router serves.

pub mod credentials;
pub mod devices;
pub mod extract;
pub mod jobs;
pub mod openapi;
pub mod regions;

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::PageRequest;
use extract::QueryPairs;

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

/// Routes under `/api/v1` (paths relative to it), including `/openapi.json`.
pub fn routes() -> Router<AppState> {
    let (router, doc) = build().split_for_parts();
    // The first router built (at start-up) fixes the served document; later ones are the same.
    DOCUMENT.get_or_init(|| Arc::from(document(doc).to_pretty_json().unwrap_or_default()));
    router.fallback(|| async { AppError::NotFound })
}

/// The OpenAPI description of `/api/v1`, with full paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    document(build().into_openapi())
}

static DOCUMENT: OnceLock<Arc<str>> = OnceLock::new();

fn document(paths: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = openapi::ApiDoc::openapi().nest(PREFIX, paths);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // After nesting, so the conventions see every path.
    utoipa::Modify::modify(&openapi::Conventions, &mut doc);
    doc
}

fn build() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new();
    let router = route(router, routes!(get_me));
    let router = route(router, routes!(get_openapi));
    let router = regions::routes(router);
    let router = devices::routes(router);
    let router = credentials::routes(router);
    jobs::routes(router)
}

/// Registers handlers at their documented path, and also with the trailing slash added or
/// removed (Django REST framework's paths end in one, the seed's shortcuts do not), so both
/// spellings work. The other spelling is left out of the description: it is the same operation.
pub(crate) fn route(
    router: OpenApiRouter<AppState>,
    handlers: UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let (_, paths, method_router) = &handlers;
    let other_spellings: Vec<String> = paths
        .paths
        .keys()
        .map(|p| match p.strip_suffix('/') {
            Some(bare) => bare.to_string(),
            None => format!("{p}/"),
        })
        .collect();
    let method_router = method_router.clone();
    let router = router.routes(handlers);
    other_spellings
        .iter()
        .fold(router, |r, path| r.route(path, method_router.clone()))
}

/// A 201 answer with the new object and its `Location` (`path` under `/api/v1`).
pub(crate) fn created<T: serde::Serialize>(path: String, body: T) -> axum::response::Response {
    let location = format!("{PREFIX}{path}");
    (
        axum::http::StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// Reads `page`/`page_size`, failing with field errors. Every list calls it, so it also
/// refuses a parameter given twice and an empty page number, which a script means as
/// something the API would otherwise guess.
pub(crate) fn page_request(query: &QueryPairs) -> AppResult<PageRequest> {
    single_valued(query)?;
    let mut errors = FieldErrors::new();
    for key in ["page", "page_size"] {
        if query.get(key).is_some_and(|v| v.trim().is_empty()) {
            errors.add(key, "Enter a number, or leave the parameter out.");
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let page = PageRequest::parse(query.get("page"), query.get("page_size"), &mut errors);
    errors.into_result()?;
    Ok(page)
}

/// Fails with a field error for each query parameter given more than once.
pub(crate) fn single_valued(query: &QueryPairs) -> AppResult<()> {
    let mut seen = std::collections::BTreeSet::new();
    let mut errors = FieldErrors::new();
    for (key, _) in query.iter() {
        if !seen.insert(key) && errors.get(key).is_empty() {
            errors.add(key, "Give this parameter once.");
        }
    }
    errors.into_result()
}

/// Who the caller is: their role and the customers they belong to.
#[utoipa::path(
    get,
    path = "/me/",
    tag = "auth",
    responses((status = 200, description = "The signed-in user.", body = AuthUser)),
)]
async fn get_me(user: AuthUser) -> AppResult<Json<AuthUser>> {
    Ok(Json(user))
}

/// This document: the OpenAPI 3.1 description of every `/api/v1` endpoint.
///
/// Needs no authentication.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object)),
)]
async fn get_openapi() -> impl IntoResponse {
    let json = DOCUMENT.get().map_or_else(
        || openapi().to_pretty_json().unwrap_or_default(),
        |d| d.to_string(),
    );
    ([(header::CONTENT_TYPE, "application/json")], json)
}
