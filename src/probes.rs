//! Liveness, readiness and metrics endpoints for load balancers and Prometheus.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::db::Availability;
use crate::error::UNAVAILABLE_RETRY_AFTER;
use crate::state::AppState;

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

/// The database answers, within a second: a load balancer must not wait on a pool timeout
/// to learn that this server cannot serve. The outage itself is logged once, by the
/// availability watch, not per probe.
async fn get_readyz(State(state): State<AppState>) -> impl IntoResponse {
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER.to_string())],
        "database unreachable\n",
    );
    if state.availability.is_down() {
        return unavailable.into_response();
    }
    let probe = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(Availability::PERIOD, probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        _ => unavailable.into_response(),
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
