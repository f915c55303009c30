//! The authentication middleware: who is calling, from a bearer token or the session.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::Session;

use super::cache::Key;
use super::{AuthMethod, SESSION_USER_KEY, session_store, tokens, users};
use crate::error::AppError;
use crate::state::AppState;

/// The bearer token of a request: `None` without an `Authorization` header, `Some(Err)` for
/// a header that is not a well-formed bearer token.
fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(()),
    )
}

/// Middleware: identifies the caller from a bearer token or the session and stores the
/// [`AuthUser`] in the request extensions. A bad token is rejected here with 401; a request
/// without credentials continues anonymously and handlers that need a user reject it.
pub async fn authenticate(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let user = match bearer_token(request.headers()) {
        Some(Err(())) => return Err(AppError::Unauthenticated),
        Some(Ok(token)) => {
            if !tokens::looks_like_token(token) {
                return Err(AppError::Unauthenticated);
            }
            let hash = tokens::hash_token(token);
            let key = Key::Token(&hash);
            let cached = state.auth_cache.get(key);
            state.metrics.auth_lookup(cached.is_some());
            match cached {
                Some(user) => Some(user),
                None => {
                    let ticket = state.auth_cache.ticket();
                    let mut conn = state.pool.acquire().await?;
                    let (user, expires_at) = users::load_token_user(&mut conn, &hash)
                        .await?
                        .ok_or(AppError::Unauthenticated)?;
                    state.auth_cache.put(ticket, key, &user, expires_at);
                    Some(user)
                }
            }
        }
        None => match session
            .get::<i64>(SESSION_USER_KEY)
            .await
            .map_err(|e| session_store::session_error("reading session", e))?
        {
            Some(user_id) => {
                let key = Key::SessionUser(user_id);
                let cached = state.auth_cache.get(key);
                state.metrics.auth_lookup(cached.is_some());
                let user = match cached {
                    Some(user) => Some(user),
                    None => {
                        let ticket = state.auth_cache.ticket();
                        let mut conn = state.pool.acquire().await?;
                        let user =
                            users::load_auth_user(&mut conn, user_id, AuthMethod::Session).await?;
                        if let Some(user) = &user {
                            state.auth_cache.put(ticket, key, user, None);
                        }
                        user
                    }
                };
                if user.is_none() {
                    // The user was deleted while signed in.
                    session
                        .flush()
                        .await
                        .map_err(|e| session_store::session_error("clearing session", e))?;
                }
                user
            }
            None => None,
        },
    };
    if let Some(mut user) = user {
        user.client_addr = crate::extract::client_of(request.extensions(), request.headers());
        request.extensions_mut().insert(user);
    }
    let response = next.run(request).await;
    if response.extensions().get::<CallersChanged>().is_some() {
        state.auth_cache.clear();
    }
    Ok(response)
}

/// Marks a response to a change that may alter who a caller is or what they may do.
#[derive(Debug, Clone, Copy)]
struct CallersChanged;

/// Middleware for the routes that change users, memberships, customers and tokens: after
/// each change (any method but `GET` and `HEAD`), [`authenticate`] empties this server's
/// authentication cache before the response leaves, so the change holds at once here. Other
/// servers hear of it from the database (see [`super::cache`]).
pub async fn changes_callers(request: Request, next: Next) -> Response {
    let safe = request.method().is_safe();
    let mut response = next.run(request).await;
    if !safe {
        response.extensions_mut().insert(CallersChanged);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some(Ok("abc")));
        h.insert(header::AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some(Ok("abc")));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some(Err(())));
        h.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert_eq!(bearer_token(&h), Some(Err(())));
    }
}
