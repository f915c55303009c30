//! Liveness, readiness and metrics endpoints for load balancers and Prometheus.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(get_readyz))
        .route("/metrics", get(get_metrics))
}

/// The process is up.
async fn get_healthz() -> &'static str {
    "ok\n"
}

/// The database answers.
async fn get_readyz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

/// Prometheus text exposition.
async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        {
            let fleet = match crate::metrics::fleet(&state.pool).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "fleet metrics unavailable");
                    None
                }
            };
            state.metrics.encode(fleet.as_ref())
        },
    )
}
