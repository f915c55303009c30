//! The JSON REST API under `/api/v1`. Handlers call the same domain functions as the UI.

use axum::Json;
use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};

/// Routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/", get(get_me))
        .route("/me", get(get_me))
        .fallback(|| async { AppError::NotFound })
}

/// `GET /api/v1/me/`: who the caller is, their role and customers.
async fn get_me(user: AuthUser) -> AppResult<Json<AuthUser>> {
    Ok(Json(user))
}
