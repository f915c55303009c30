//! Signing in and out.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::flash::{self, Level};
use super::page::{Layout, Nav, SignedIn, safe_next};
use crate::auth::{AuthUser, SESSION_USER_KEY, password, throttle, users};
use crate::error::{AppError, AppResult};
use crate::extract::ClientAddr;
use crate::state::AppState;

/// The sign-in form.
#[derive(Template, WebTemplate)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    /// Base layout.
    pub layout: Layout,
    /// Where to go after signing in.
    pub next: String,
    /// Username to refill after a failure.
    pub username: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Shown after signing out.
    pub signed_out: bool,
}

/// Asks whether to sign out (for visitors of `GET /logout`).
#[derive(Template, WebTemplate)]
#[template(path = "auth/logout.html")]
pub struct LogoutPage {
    /// Base layout.
    pub layout: Layout,
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `GET /login`
pub async fn get_login(
    session: Session,
    user: Option<AuthUser>,
    Query(query): Query<LoginQuery>,
) -> AppResult<Response> {
    let next = safe_next(query.next.as_deref()).to_string();
    if user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(LoginPage {
        layout: Layout::for_session(&session, None, Nav::None).await?,
        next,
        username: String::new(),
        error: None,
        signed_out: query.signed_out.is_some(),
    }
    .into_response())
}

/// `POST /login`
pub async fn post_login(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(peer): ClientAddr,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    let next = safe_next(form.next.as_deref()).to_string();
    let username = form.username.trim().to_string();
    let keys = throttle::keys(&username, peer);

    let mut conn = state.pool.acquire().await?;
    throttle::check(&mut conn, &keys).await?;
    let credentials = users::credentials_for(&mut conn, &username).await?;
    // Do not hold a pooled connection through ~20 ms of hashing.
    drop(conn);
    let (user_id, hash) = match credentials {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let verified = password::verify_password(form.password, hash).await?;

    let mut conn = state.pool.acquire().await?;
    let Some(user_id) = user_id.filter(|_| verified) else {
        throttle::record_failure(&mut conn, &keys).await?;
        let page = LoginPage {
            layout: Layout::for_session(&session, None, Nav::None).await?,
            next,
            username,
            error: Some("Invalid username or password.".into()),
            signed_out: false,
        };
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };

    users::record_login(&mut conn, user_id).await?;
    throttle::clear_username(&mut conn, &username).await?;
    // A new session id at sign-in defeats session fixation; a new CSRF token too.
    session
        .cycle_id()
        .await
        .map_err(|e| anyhow::anyhow!("cycling session id: {e}"))?;
    session
        .remove::<String>("csrf_token")
        .await
        .map_err(|e| crate::auth::session_store::session_error("writing session", e))?;
    session
        .insert(SESSION_USER_KEY, user_id)
        .await
        .map_err(|e| crate::auth::session_store::session_error("writing session", e))?;
    flash::push(
        &session,
        Level::Success,
        format!("Signed in as {username}."),
    )
    .await?;
    Ok(Redirect::to(&next).into_response())
}

/// `GET /logout`: a confirmation form, since signing out changes state.
pub async fn get_logout(signed_in: Result<SignedIn, AppError>) -> AppResult<Response> {
    match signed_in {
        Ok(signed_in) => Ok(LogoutPage {
            layout: signed_in.layout(Nav::None).await?,
        }
        .into_response()),
        Err(_) => Ok(Redirect::to("/login").into_response()),
    }
}

/// `POST /logout`
pub async fn post_logout(session: Session) -> AppResult<Redirect> {
    session
        .flush()
        .await
        .map_err(|e| crate::auth::session_store::session_error("deleting session", e))?;
    Ok(Redirect::to("/login?signed_out=1"))
}
