//! `/account`: one's own password and sessions.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{Redirect, Response};

use crate::error::{AppResult, FieldErrors};
use crate::usecases::admin;
use crate::web::filters;
use crate::web::flash::{self, Level};
use crate::web::forms::{FormPairs, answer};
use crate::web::page::{Layout, Nav, SignedIn};

/// `/account`: the signed-in user's password and sessions.
#[derive(Template, WebTemplate)]
#[template(path = "account/index.html")]
pub struct AccountPage {
    /// Base layout.
    pub layout: Layout,
    /// Errors of the password form.
    pub errors: FieldErrors,
}

/// `GET /account`
pub async fn get_account(signed_in: SignedIn) -> AppResult<AccountPage> {
    Ok(AccountPage {
        layout: signed_in.layout(Nav::Account).await?,
        errors: FieldErrors::new(),
    })
}

/// `POST /account/password`: the current password, and the new one twice.
pub async fn post_account_password(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    let result = admin::change_own_password(
        signed_in.pool(),
        &signed_in.user,
        form.get("current_password"),
        form.get("password"),
        form.get("password_confirm"),
    )
    .await;
    let done = |_: &()| ("Password changed.".to_string(), "/account".to_string());
    answer(&signed_in.session, result, done, async |errors| {
        Ok(AccountPage {
            layout: signed_in.layout(Nav::Account).await?,
            errors,
        })
    })
    .await
}

/// `POST /account/sessions`: signs out every other browser session of the user.
pub async fn post_account_sessions(signed_in: SignedIn) -> AppResult<Redirect> {
    let current = signed_in
        .session
        .id()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let n = admin::sign_out_elsewhere(signed_in.pool(), &signed_in.user, &current).await?;
    let message = match n {
        0 => "You had no other session.".to_string(),
        1 => "1 other session signed out.".to_string(),
        n => format!("{n} other sessions signed out."),
    };
    flash::push(&signed_in.session, Level::Success, message).await?;
    Ok(Redirect::to("/account"))
}
