//! The HTTP application: the web UI, `/api/v1`, probes and static assets behind one stack
//! of layers (sessions, authentication, CSRF, metrics, tracing).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::session_store::PgSessionStore;
use crate::auth::{self, csrf};
use crate::state::{AppState, SESSION_COOKIE, TrustedProxies, WebConfig};
use crate::{api, probes, web};

/// Largest request body accepted anywhere.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Builds the whole HTTP application: web UI, `/api/v1`, probes and static assets.
pub fn router(state: AppState, config: &WebConfig) -> Router {
    let sessions = SessionManagerLayer::new(PgSessionStore::new(state.pool.clone()))
        .with_name(SESSION_COOKIE)
        .with_secure(config.secure_cookies)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(config.session_idle).unwrap_or(time::Duration::hours(12)),
        ));

    let web = web::routes()
        .layer(from_fn(csrf::protect_web))
        .layer(from_fn(web::render_errors));
    let api = api::routes().layer(from_fn(csrf::protect_api));

    Router::new()
        .merge(web)
        .nest(api::PREFIX, api)
        .layer(from_fn_with_state(
            state.clone(),
            auth::middleware::authenticate,
        ))
        .layer(sessions)
        .merge(probes::routes())
        .merge(web::assets::routes())
        .fallback(web::not_found)
        .layer(from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_http,
        ))
        .layer(Extension(TrustedProxies(Arc::new(
            config.trusted_proxies.clone(),
        ))))
        .layer(from_fn(refuse_nul))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(run_to_completion))
        .layer(TraceLayer::new_for_http())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Runs each request on a task of its own, so that a client that goes away mid-request
/// (a closed tab, a load generator stopping) does not cancel it halfway. Dropping a request
/// future while it waits on `BEGIN` or `COMMIT` leaves sqlx's idea of the connection's
/// transaction wrong: a `COMMIT` that did happen is followed by a stray `ROLLBACK` ("there is
/// no transaction in progress"), and a `BEGIN` that did happen is never ended, so the pooled
/// connection keeps a transaction open for its next user. Finishing the work is cheaper and
/// also what the client asked for.
async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let span = tracing::Span::current();
    match tokio::spawn(next.run(request).instrument(span)).await {
        Ok(response) => response,
        // Panics are caught inside the task (the panic layer runs in it); this is a runtime
        // shutting down.
        Err(e) => axum::response::IntoResponse::into_response(crate::error::AppError::Internal(
            anyhow::anyhow!("request task ended early: {e}"),
        )),
    }
}

/// A handler that panicked answers 500 like any other server error (logged once, internals
/// hidden) instead of dropping the connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    axum::response::IntoResponse::into_response(crate::error::AppError::Internal(anyhow::anyhow!(
        "handler panicked: {message}"
    )))
}

/// Refuses a NUL character (`%00`) in the query string or in a form body with a 400:
/// PostgreSQL text cannot hold one, so it would otherwise surface as a database error (a
/// 500) wherever the value is bound. JSON bodies are checked by the API's extractor.
async fn refuse_nul(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, crate::error::AppError> {
    use axum::http::header::CONTENT_TYPE;
    let has_nul = |raw: &[u8]| raw.windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
    if request.uri().query().is_some_and(|q| has_nul(q.as_bytes())) {
        return Err(crate::error::AppError::BadRequest(
            "The query string contains a NUL character (%00); remove it.".into(),
        ));
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(next.run(request).await);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| crate::error::AppError::BadRequest("The form is too large.".into()))?;
    if has_nul(&bytes) {
        return Err(crate::error::AppError::BadRequest(
            "The form contains a NUL character (%00); remove it.".into(),
        ));
    }
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    Ok(next.run(request).await)
}
