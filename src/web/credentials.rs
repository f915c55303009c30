//! Credential pages. Secrets are write-only: forms never show them back.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::filters;
use super::flash::{self, Level};
use super::forms::{FormPairs, combine};
use super::page::{Layout, Nav, SignedIn};
use super::pager::Pager;
use super::regions::customer_choices;
use crate::auth::{CustomerRef, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::customers;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Id, QueryPairs};
use crate::pagination::PageRequest;
use crate::state::AppState;

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
    query: QueryPairs,
) -> AppResult<CredentialsPage> {
    let mut errors = FieldErrors::new();
    let page = PageRequest::parse(query.get("page"), None, &mut errors);
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = credentials::list(&mut conn, &signed_in.user.scope(), page).await?;
    Ok(CredentialsPage {
        layout: signed_in.layout(Nav::Credentials).await?,
        pager: Pager::new(page, count, "/credentials", rows.len()),
        credentials: rows,
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
    })
}

/// `GET /credentials/new`
pub async fn get_new_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> AppResult<CredentialFormPage> {
    signed_in.user.require(Role::Admin)?;
    Ok(CredentialFormPage {
        customers: customer_choices(&state, &signed_in).await?,
        layout: signed_in.layout(Nav::Credentials).await?,
        credential: None,
        name: String::new(),
        username: String::new(),
        customer: String::new(),
        errors: FieldErrors::new(),
    })
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
    signed_in.user.require(Role::Admin)?;
    let mut errors = FieldErrors::new();
    let input = credential_input(&form, &mut errors);
    let result = async {
        let changes = combine(input.validate(true), errors)?;
        let mut tx = state.pool.begin().await?;
        let customer = customers::for_new_object(&mut tx, &signed_in.user, input.customer).await?;
        let c = credentials::create(&mut tx, &state.secrets, customer, &changes).await?;
        tx.commit().await?;
        Ok(c)
    }
    .await;
    match result {
        Ok(c) => {
            flash::push(
                &signed_in.session,
                Level::Success,
                format!("Credential {} created.", c.name),
            )
            .await?;
            Ok(Redirect::to("/credentials").into_response())
        }
        Err(AppError::Validation(errors)) => Ok((
            StatusCode::BAD_REQUEST,
            CredentialFormPage {
                customers: customer_choices(&state, &signed_in).await?,
                layout: signed_in.layout(Nav::Credentials).await?,
                credential: None,
                name: form.string("name").unwrap_or_default(),
                username: form.string("username").unwrap_or_default(),
                customer: form.string("customer").unwrap_or_default(),
                errors,
            },
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// `GET /credentials/{id}/edit`
pub async fn get_edit_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<CredentialFormPage> {
    let mut conn = state.pool.acquire().await?;
    let c = credentials::get(&mut conn, &signed_in.user.scope(), id).await?;
    signed_in.user.require(Role::Admin)?;
    Ok(CredentialFormPage {
        layout: signed_in.layout(Nav::Credentials).await?,
        name: c.name.clone(),
        username: c.username.clone(),
        customer: c.customer_id.to_string(),
        credential: Some(c),
        errors: FieldErrors::new(),
        customers: Vec::new(),
    })
}

/// `POST /credentials/{id}`
pub async fn post_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let scope = signed_in.user.scope();
    let mut conn = state.pool.acquire().await?;
    let current = credentials::get(&mut conn, &scope, id).await?;
    signed_in.user.require(Role::Admin)?;
    let mut errors = FieldErrors::new();
    let input = credential_input(&form, &mut errors);
    drop(conn);
    let result = match combine(input.validate(true), errors) {
        Ok(_) => {
            crate::usecases::inventory::update_credential(
                &state.pool,
                &state.secrets,
                &signed_in.user,
                id,
                &input,
                true,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => {
            flash::push(
                &signed_in.session,
                Level::Success,
                format!("Credential {} saved.", c.name),
            )
            .await?;
            Ok(Redirect::to("/credentials").into_response())
        }
        Err(AppError::Validation(errors)) => Ok((
            StatusCode::BAD_REQUEST,
            CredentialFormPage {
                layout: signed_in.layout(Nav::Credentials).await?,
                name: form.string("name").unwrap_or_default(),
                username: form.string("username").unwrap_or_default(),
                customer: current.customer_id.to_string(),
                credential: Some(current),
                errors,
                customers: Vec::new(),
            },
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// `POST /credentials/{id}/delete`
pub async fn post_delete_credential(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<Response> {
    let scope = signed_in.user.scope();
    let mut conn = state.pool.acquire().await?;
    let c = credentials::get(&mut conn, &scope, id).await?;
    signed_in.user.require(Role::Admin)?;
    match credentials::delete(&mut conn, &scope, id).await {
        Ok(()) => {
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
