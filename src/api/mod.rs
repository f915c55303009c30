//! The JSON REST API under `/api/v1`. Handlers call the same domain functions as the UI.

pub mod credentials;
pub mod devices;
pub mod extract;
pub mod jobs;
pub mod regions;

use axum::Json;
use axum::Router;
use axum::routing::{MethodRouter, get};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::PageRequest;
use extract::QueryPairs;

/// Routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    let router = Router::new();
    let router = route(router, "/me/", get(get_me));
    let router = regions::routes(router);
    let router = devices::routes(router);
    let router = credentials::routes(router);
    let router = jobs::routes(router);
    router.fallback(|| async { AppError::NotFound })
}

/// Registers `path` both with and without a trailing slash (Django REST framework's paths
/// end in one, the seed's shortcuts do not), so both spellings work.
pub(crate) fn route(
    router: Router<AppState>,
    path: &str,
    handler: MethodRouter<AppState>,
) -> Router<AppState> {
    let bare = path.trim_end_matches('/');
    router
        .route(&format!("{bare}/"), handler.clone())
        .route(bare, handler)
}

/// Reads `page`/`page_size`, failing with field errors.
pub(crate) fn page_request(query: &QueryPairs) -> AppResult<PageRequest> {
    let mut errors = FieldErrors::new();
    let page = PageRequest::parse(query.get("page"), query.get("page_size"), &mut errors);
    errors.into_result()?;
    Ok(page)
}

/// `GET /api/v1/me/`: who the caller is, their role and customers.
async fn get_me(user: AuthUser) -> AppResult<Json<AuthUser>> {
    Ok(Json(user))
}
