//! What every API handler module shares: route registration from a handler's OpenAPI
//! description, `201 Created`, paging and strict query strings.

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::error::FieldErrors;
use crate::state::AppState;

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

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

/// The errors an API handler met while reading its body before validation: none, since
/// [`crate::extract::ApiJson`] already refused what serde could not read.
pub(crate) fn no_errors() -> FieldErrors {
    FieldErrors::new()
}
