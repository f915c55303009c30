//! The JSON REST API under `/api/v1`. Handlers call the same domain functions as the UI.
//!
//! Every route is registered through [`route`] from a handler's `#[utoipa::path]`, so the
//! OpenAPI description served at `/api/v1/openapi.json` lists exactly what the router serves.

pub mod admin;
pub mod common;
pub mod credentials;
pub mod devices;
pub mod jobs;
pub mod openapi;
pub mod regions;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::state::AppState;
use common::route;

pub use common::PREFIX;

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
    let router = route(router, routes!(get_openapi));
    let router = admin::routes(router);
    let router = regions::routes(router);
    let router = devices::routes(router);
    let router = credentials::routes(router);
    jobs::routes(router)
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
