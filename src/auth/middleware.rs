//! The authentication middleware: who is calling, from a bearer token or the session.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::Session;

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
            let mut conn = state.pool.acquire().await?;
            if !tokens::looks_like_token(token) {
                return Err(AppError::Unauthenticated);
            }
            let user = users::load_token_user(&mut conn, &tokens::hash_token(token))
                .await?
                .ok_or(AppError::Unauthenticated)?;
            Some(user)
        }
        None => match session
            .get::<i64>(SESSION_USER_KEY)
            .await
            .map_err(|e| session_store::session_error("reading session", e))?
        {
            Some(user_id) => {
                let mut conn = state.pool.acquire().await?;
                let user = users::load_auth_user(&mut conn, user_id, AuthMethod::Session).await?;
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
    Ok(next.run(request).await)
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
