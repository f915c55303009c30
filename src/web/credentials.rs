//! Credential pages. Secrets are write-only: forms never show them back.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::filters;
use super::flash::{self, Level};
use super::forms::{FormPairs, answer};
use super::page::{Layout, Nav, SignedIn};
use super::pager::Pager;
use super::regions::customer_choices;
use crate::auth::{CustomerRef, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Id, Params};
use crate::params::{PageParams, Reading};
use crate::state::AppState;
use crate::usecases::inventory;

/// `/credentials`
#[derive(Template, WebTemplate)]
#[template(path = "credentials/index.html")]
pub struct CredentialsPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's credentials.
    pub credentials: Vec<Credential>,
    /// Pagination.
    pub pager: Pager,
    /// May create, edit and delete.
    pub can_manage: bool,
}

/// `/credentials/new` and `/credentials/{id}/edit`
#[derive(Template, WebTemplate)]
#[template(path = "credentials/form.html")]
pub struct CredentialFormPage {
    /// Base layout.
    pub layout: Layout,
    /// The credential being edited.
    pub credential: Option<Credential>,
    /// Name.
    pub name: String,
    /// Username.
    pub username: String,
    /// Customer id.
    pub customer: String,
    /// Inline errors.
    pub errors: FieldErrors,
    /// Customers to choose from, if more than one.
    pub customers: Vec<CustomerRef>,
}

/// `GET /credentials`
pub async fn get_credentials(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Params(page): Params<PageParams>,
) -> AppResult<CredentialsPage> {
    let page = page.request(Reading::Forgiving)?;
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = credentials::list(&mut conn, &signed_in.user.scope(), page).await?;
    Ok(CredentialsPage {
        layout: signed_in.layout(Nav::Credentials).await?,
        pager: Pager::new(page, count, "/credentials", rows.len()),
        credentials: rows,
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
    })
}

/// The credential form: `credential` is the one edited, `None` for a new one. The values
/// shown are the submitted ones when there are some, else the stored ones.
async fn credential_form(
    state: &AppState,
    signed_in: &SignedIn,
    credential: Option<Credential>,
    submitted: Option<&FormPairs>,
    errors: FieldErrors,
) -> AppResult<CredentialFormPage> {
    let stored = |f: fn(&Credential) -> String| credential.as_ref().map(f).unwrap_or_default();
    let value = |key: &str, f: fn(&Credential) -> String| match submitted {
        Some(form) => form.string(key).unwrap_or_default(),
        None => stored(f),
    };
    let customers = match credential {
        None => customer_choices(state, signed_in).await?,
        Some(_) => Vec::new(),
    };
    Ok(CredentialFormPage {
        layout: signed_in.layout(Nav::Credentials).await?,
        name: value("name", |c| c.name.clone()),
        username: value("username", |c| c.username.clone()),
        customer: value("customer", |c| c.customer_id.to_string()),
        credential,
        errors,
        customers,
    })
}

/// `GET /credentials/new`
pub async fn get_new_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> AppResult<CredentialFormPage> {
    signed_in.user.require(Role::Admin)?;
    credential_form(&state, &signed_in, None, None, FieldErrors::new()).await
}

fn credential_input(form: &FormPairs, errors: &mut FieldErrors) -> CredentialInput {
    // An empty password box on the edit form means "keep the stored one".
    let secret = |k: &str| form.string(k).filter(|v| !v.is_empty());
    CredentialInput {
        customer: form.integer("customer", errors),
        name: form.string("name"),
        username: form.string("username"),
        password: secret("password"),
        enable_password: secret("enable_password"),
    }
}

/// `POST /credentials`
pub async fn post_credentials(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormPairs,
) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let input = credential_input(&form, &mut read);
    let user = &signed_in.user;
    let result = inventory::create_credential(&state.pool, &state.secrets, user, &input, read);
    let done = |c: &Credential| {
        let message = format!("Credential {} created.", c.name);
        (message, "/credentials".to_string())
    };
    answer(&signed_in.session, result.await, done, async |errors| {
        credential_form(&state, &signed_in, None, Some(&form), errors).await
    })
    .await
}

/// `GET /credentials/{id}/edit`
pub async fn get_edit_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<CredentialFormPage> {
    let c = inventory::credential_to_change(&state.pool, &signed_in.user, id).await?;
    credential_form(&state, &signed_in, Some(c), None, FieldErrors::new()).await
}

/// `POST /credentials/{id}`
pub async fn post_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let input = credential_input(&form, &mut read);
    let (pool, user) = (&state.pool, &signed_in.user);
    let result =
        inventory::update_credential(pool, &state.secrets, user, id, &input, true, read).await;
    let done = |c: &Credential| {
        let message = format!("Credential {} saved.", c.name);
        (message, "/credentials".to_string())
    };
    answer(&signed_in.session, result, done, async |errors| {
        let current = inventory::credential_to_change(pool, user, id).await?;
        credential_form(&state, &signed_in, Some(current), Some(&form), errors).await
    })
    .await
}

/// `POST /credentials/{id}/delete`
pub async fn post_delete_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<Response> {
    match inventory::delete_credential(&state.pool, &signed_in.user, id).await {
        Ok(c) => {
            flash::push(
                &signed_in.session,
                Level::Success,
                format!("Credential {} deleted.", c.name),
            )
            .await?;
        }
        Err(AppError::Validation(e)) => {
            let message = e
                .first("credential")
                .unwrap_or("Cannot delete this credential.")
                .to_string();
            flash::push(&signed_in.session, Level::Error, message).await?;
        }
        Err(e) => return Err(e),
    }
    Ok(Redirect::to("/credentials").into_response())
}
