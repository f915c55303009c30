//! What every API handler module shares: route registration from a handler's OpenAPI
//! description, `201 Created`, paging and strict query strings.

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::QueryPairs;
use crate::pagination::PageRequest;
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
