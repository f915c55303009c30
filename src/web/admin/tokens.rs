//! `/tokens`: one's own API tokens and those of the users one manages; a new one shown once.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::Role;
use crate::auth::tokens::Token;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::Id;
use crate::usecases::admin;
use crate::web::filters;
use crate::web::flash::{self, Level};
use crate::web::forms::{FormPairs, NO_STORE};
use crate::web::page::{Layout, Nav, SignedIn};

/// `/tokens`: the signed-in user's tokens, those of the users they manage, and the form for
/// a new one (shown once after it is made).
#[derive(Template, WebTemplate)]
#[template(path = "tokens/index.html")]
pub struct TokensPage {
    /// Base layout.
    pub layout: Layout,
    /// The user's own tokens.
    pub own: Vec<Token>,
    /// Tokens of the users they manage (admins).
    pub managed: Vec<Token>,
    /// A token made just now, with its secret.
    pub new_token: Option<(Token, String)>,
    /// The name, as typed.
    pub name: String,
    /// The expiry, as typed.
    pub expires_at: String,
    /// Errors of the form.
    pub errors: FieldErrors,
}

async fn tokens_page(
    signed_in: &SignedIn,
    new_token: Option<(Token, String)>,
    typed: Option<&FormPairs>,
    errors: FieldErrors,
) -> AppResult<TokensPage> {
    let me = &signed_in.user;
    let own = admin::list_tokens(signed_in.pool(), me, None).await?;
    let managed = if me.require(Role::Admin).is_ok() {
        let all = admin::managed_tokens(signed_in.pool(), me).await?;
        all.into_iter().filter(|t| t.user_id != me.id).collect()
    } else {
        Vec::new()
    };
    let typed = |k: &str| typed.and_then(|f| f.string(k)).unwrap_or_default();
    Ok(TokensPage {
        layout: signed_in.layout(Nav::Tokens).await?,
        own,
        managed,
        new_token,
        name: typed("name"),
        expires_at: typed("expires_at"),
        errors,
    })
}

/// `GET /tokens`
pub async fn get_tokens(signed_in: SignedIn) -> AppResult<TokensPage> {
    tokens_page(&signed_in, None, None, FieldErrors::new()).await
}

/// `POST /tokens`: makes a token and shows it once, on the page that answers (never stored
/// in the session or a URL).
pub async fn post_tokens(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let expires_at = match form
        .get("expires_at")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(raw, &format) {
                // The end of the chosen day, UTC: "expires on the 30th" includes the 30th.
                Ok(day) => day.next_day().map(|d| d.midnight().assume_utc()),
                Err(_) => {
                    read.add(
                        "expires_at",
                        "Enter a date (2026-12-31), or leave it empty.",
                    );
                    None
                }
            }
        }
    };
    let name = form.get("name");
    match admin::create_token(signed_in.pool(), &signed_in.user, name, expires_at, read).await {
        Ok(made) => {
            let page = tokens_page(&signed_in, Some(made), None, FieldErrors::new());
            Ok((NO_STORE, page.await?).into_response())
        }
        Err(AppError::Validation(errors)) => {
            let page = tokens_page(&signed_in, None, Some(&form), errors);
            Ok((StatusCode::BAD_REQUEST, page.await?).into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /tokens/{id}/revoke`
pub async fn post_revoke_token(signed_in: SignedIn, Id(id): Id) -> AppResult<Redirect> {
    let token = admin::revoke_token(signed_in.pool(), &signed_in.user, id).await?;
    let message = format!(
        "Token {} of {} revoked; it is refused from now on.",
        token.name, token.username
    );
    flash::push(&signed_in.session, Level::Success, message).await?;
    Ok(Redirect::to("/tokens"))
}
