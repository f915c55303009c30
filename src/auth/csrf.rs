//! CSRF protection for browser sessions: a random per-session token that every form carries
//! as `csrf_token` and every htmx request sends as `X-CSRF-Token` (set once on `<body>`).
//! Requests authenticated by an API token carry no ambient credentials and need none.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use rand::distr::Alphanumeric;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::{AuthMethod, AuthUser};
use crate::error::{AppError, AppResult};

/// Session key of the token.
const SESSION_KEY: &str = "csrf_token";
/// Request header htmx sends the token in.
pub const HEADER: &str = "x-csrf-token";
/// Form field that carries the token.
pub const FIELD: &str = "csrf_token";
/// Largest form body read to find the token.
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The session's token, created on first use.
pub async fn token(session: &Session) -> AppResult<String> {
    let existing: Option<String> = session
        .get(SESSION_KEY)
        .await
        .map_err(|e| crate::auth::session_store::session_error("reading session", e))?;
    if let Some(token) = existing {
        return Ok(token);
    }
    let token: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    session
        .insert(SESSION_KEY, &token)
        .await
        .map_err(|e| crate::auth::session_store::session_error("writing session", e))?;
    Ok(token)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Middleware for the web UI: every unsafe request, signed in or not (the sign-in form
/// too), must carry the session's token, unless it authenticated with an API token.
pub async fn protect_web(session: Session, request: Request, next: Next) -> AppResult<Response> {
    if is_safe(request.method()) || auth_method(&request) == Some(AuthMethod::Token) {
        return Ok(next.run(request).await);
    }
    let request = verify(&session, request).await?;
    Ok(next.run(request).await)
}

/// Middleware for the API: only session-authenticated unsafe requests need the token;
/// anonymous ones are left to the handlers, which answer 401.
pub async fn protect_api(session: Session, request: Request, next: Next) -> AppResult<Response> {
    if is_safe(request.method()) || auth_method(&request) != Some(AuthMethod::Session) {
        return Ok(next.run(request).await);
    }
    let request = verify(&session, request).await?;
    Ok(next.run(request).await)
}

fn auth_method(request: &Request) -> Option<AuthMethod> {
    request.extensions().get::<AuthUser>().map(|u| u.method)
}

async fn verify(session: &Session, request: Request) -> AppResult<Request> {
    let expected: Option<String> = session
        .get(SESSION_KEY)
        .await
        .map_err(|e| crate::auth::session_store::session_error("reading session", e))?;
    let Some(expected) = expected else {
        return Err(AppError::Csrf);
    };
    if let Some(given) = request.headers().get(HEADER) {
        return match given.to_str() {
            Ok(given) if matches(&expected, given) => Ok(request),
            _ => Err(AppError::Csrf),
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(AppError::Csrf);
    }
    // Read the form to find the token, then hand the same bytes on to the handler.
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AppError::BadRequest("The form is too large.".into()))?;
    let given = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    match given {
        Some(given) if matches(&expected, &given) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(AppError::Csrf),
    }
}
