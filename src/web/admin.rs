//! Administration pages: customers, users, API tokens, the audit trail and the signed-in
//! user's account. Each handler reads the form, calls one use case of
//! [`crate::usecases::admin`] and renders; the rules of who may do what live there.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::filters;
use super::flash::{self, Level};
use super::forms::{FormPairs, answer};
use super::page::{Layout, Nav, SignedIn};
use super::pager::Pager;
use crate::audit::{Entry, ObjectType};
use crate::auth::tokens::Token;
use crate::auth::users::User;
use crate::auth::{CustomerRef, Role};
use crate::customers::{self, Customer, Member};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Id, Params};
use crate::params::{AuditParams, PageParams, Reading, UserParams};
use crate::state::AppState;
use crate::usecases::admin::{self, UserInput};

/// A page that shows a secret once (a new token, a generated password) is kept by no cache,
/// so the back button cannot show it again.
const NO_STORE: [(axum::http::HeaderName, &str); 1] =
    [(axum::http::header::CACHE_CONTROL, "no-store")];

// --- customers -------------------------------------------------------------------------

/// `/customers`, with the form for a new one.
#[derive(Template, WebTemplate)]
#[template(path = "customers/index.html")]
pub struct CustomersPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's customers.
    pub customers: Vec<Customer>,
    /// Pagination.
    pub pager: Pager,
    /// The new customer's name, as typed.
    pub name: String,
    /// Errors of the form.
    pub errors: FieldErrors,
}

/// `/customers/{id}`: its members, rename and delete.
#[derive(Template, WebTemplate)]
#[template(path = "customers/show.html")]
pub struct CustomerPage {
    /// Base layout.
    pub layout: Layout,
    /// The customer.
    pub customer: Customer,
    /// Its members.
    pub members: Vec<Member>,
    /// The name, as typed.
    pub name: String,
    /// Errors of the rename form.
    pub errors: FieldErrors,
}

async fn customers_page(
    state: &AppState,
    signed_in: &SignedIn,
    page: &PageParams,
    name: String,
    errors: FieldErrors,
) -> AppResult<CustomersPage> {
    let page = page.request(Reading::Forgiving)?;
    let (customers, count) = admin::list_customers(&state.pool, &signed_in.user, page).await?;
    Ok(CustomersPage {
        layout: signed_in.layout(Nav::Customers).await?,
        pager: Pager::new(page, count, "/customers", customers.len()),
        customers,
        name,
        errors,
    })
}

/// `GET /customers` and `GET /customers/new` (superusers).
pub async fn get_customers(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Params(page): Params<PageParams>,
) -> AppResult<CustomersPage> {
    customers_page(&state, &signed_in, &page, String::new(), FieldErrors::new()).await
}

/// `POST /customers`
pub async fn post_customers(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormPairs,
) -> AppResult<Response> {
    let name = form.get("name");
    let result = admin::create_customer(&state.pool, &signed_in.user, name).await;
    let done = |c: &Customer| {
        let message = format!(
            "Customer {} created. Add its regions, devices and users next.",
            c.name
        );
        (message, format!("/customers/{}", c.id))
    };
    answer(&signed_in.session, result, done, async |errors| {
        let typed = form.string("name").unwrap_or_default();
        customers_page(&state, &signed_in, &PageParams::default(), typed, errors).await
    })
    .await
}

async fn customer_page(
    state: &AppState,
    signed_in: &SignedIn,
    id: i64,
    name: Option<String>,
    errors: FieldErrors,
) -> AppResult<CustomerPage> {
    let (customer, members) = admin::customer(&state.pool, &signed_in.user, id).await?;
    Ok(CustomerPage {
        layout: signed_in.layout(Nav::Customers).await?,
        name: name.unwrap_or_else(|| customer.name.clone()),
        customer,
        members,
        errors,
    })
}

/// `GET /customers/{id}`
pub async fn get_customer(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<CustomerPage> {
    customer_page(&state, &signed_in, id, None, FieldErrors::new()).await
}

/// `POST /customers/{id}`: renames it.
pub async fn post_customer(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let name = form.get("name");
    let result = admin::rename_customer(&state.pool, &signed_in.user, id, name).await;
    let done = |c: &Customer| {
        (
            format!("Customer {} saved.", c.name),
            format!("/customers/{id}"),
        )
    };
    answer(&signed_in.session, result, done, async |errors| {
        let typed = form.string("name");
        customer_page(&state, &signed_in, id, typed, errors).await
    })
    .await
}

/// `POST /customers/{id}/delete`: deletes it, or says what it still holds.
pub async fn post_delete_customer(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<Redirect> {
    match admin::delete_customer(&state.pool, &signed_in.user, id).await {
        Ok(c) => {
            let message = format!("Customer {} deleted.", c.name);
            flash::push(&signed_in.session, Level::Success, message).await?;
            Ok(Redirect::to("/customers"))
        }
        Err(AppError::Validation(e)) => {
            let why = e.first("customer").unwrap_or("It cannot be deleted.");
            flash::push(&signed_in.session, Level::Error, why).await?;
            Ok(Redirect::to(&format!("/customers/{id}")))
        }
        Err(e) => Err(e),
    }
}

// --- users -----------------------------------------------------------------------------

/// `/users`
#[derive(Template, WebTemplate)]
#[template(path = "users/index.html")]
pub struct UsersPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's users.
    pub users: Vec<User>,
    /// Pagination.
    pub pager: Pager,
    /// The search, as typed.
    pub q: String,
}

/// `/users/new` and `/users/{id}`.
#[derive(Template, WebTemplate)]
#[template(path = "users/form.html")]
pub struct UserFormPage {
    /// Base layout.
    pub layout: Layout,
    /// The user edited, or `None` for a new one.
    pub user: Option<User>,
    /// Username, as typed.
    pub username: String,
    /// Role chosen.
    pub role: String,
    /// Customers chosen.
    pub chosen: Vec<i64>,
    /// Superuser box.
    pub is_superuser: bool,
    /// Active box.
    pub is_active: bool,
    /// Customers that may be handed out.
    pub customers: Vec<CustomerRef>,
    /// Whether the signed-in user is a superuser (may grant it).
    pub may_grant_superuser: bool,
    /// A password generated just now, shown once.
    pub generated: Option<String>,
    /// Errors.
    pub errors: FieldErrors,
    /// The user's tokens (edit).
    pub tokens: Vec<Token>,
}

impl UserFormPage {
    /// The roles, for the select.
    pub fn roles(&self) -> [Role; 3] {
        Role::ALL
    }

    /// Whether customer `id` is chosen.
    pub fn is_chosen(&self, id: &i64) -> bool {
        self.chosen.contains(id)
    }
}

/// `GET /users` (admins and superusers).
pub async fn get_users(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Params(page): Params<PageParams>,
    Params(params): Params<UserParams>,
) -> AppResult<UsersPage> {
    let page = page.request(Reading::Forgiving)?;
    let search = params.search();
    let (users, count) = admin::list_users(&state.pool, &signed_in.user, search, page).await?;
    let q = search.unwrap_or_default().to_string();
    let base = match search {
        Some(q) => format!(
            "/users?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("q", q)
                .finish()
        ),
        None => "/users".to_string(),
    };
    Ok(UsersPage {
        layout: signed_in.layout(Nav::Users).await?,
        pager: Pager::new(page, count, &base, users.len()),
        users,
        q,
    })
}

/// What the form shows for a user: as stored, or as submitted.
enum UserShown<'a> {
    Stored(Option<User>),
    Submitted(Option<User>, &'a FormPairs),
}

async fn user_form(
    state: &AppState,
    signed_in: &SignedIn,
    shown: UserShown<'_>,
    generated: Option<String>,
    errors: FieldErrors,
) -> AppResult<UserFormPage> {
    let me = &signed_in.user;
    let customers = if me.is_superuser {
        customers::all(&mut *state.pool.acquire().await?).await?
    } else {
        me.customers.clone()
    };
    let (username, role, chosen, is_superuser, is_active, user) = match shown {
        UserShown::Stored(Some(u)) => (
            u.username.clone(),
            u.role.as_str().to_string(),
            u.customers.clone(),
            u.is_superuser,
            u.is_active,
            Some(u),
        ),
        UserShown::Stored(None) => (
            String::new(),
            "viewer".into(),
            Vec::new(),
            false,
            true,
            None,
        ),
        UserShown::Submitted(u, form) => (
            form.string("username")
                .or_else(|| u.as_ref().map(|u| u.username.clone()))
                .unwrap_or_default(),
            form.string("role").unwrap_or_default(),
            form.all("customers")
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            form.checked("is_superuser"),
            form.checked("is_active"),
            u,
        ),
    };
    let tokens = match &user {
        Some(u) => admin::list_tokens(&state.pool, me, Some(u.id))
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(UserFormPage {
        layout: signed_in.layout(Nav::Users).await?,
        user,
        username,
        role,
        chosen,
        is_superuser,
        is_active,
        customers,
        may_grant_superuser: me.is_superuser,
        generated,
        errors,
        tokens,
    })
}

/// Reads the user form. An unchecked box is absent from a form: the edit form always shows
/// `is_active`, so its absence means "deactivate".
fn user_input(form: &FormPairs, editing: bool, errors: &mut FieldErrors) -> UserInput {
    let mut customers = Vec::new();
    for raw in form.all("customers") {
        match raw.parse() {
            Ok(id) => customers.push(id),
            Err(_) => errors.add("customers", "Choose customers from the list."),
        }
    }
    UserInput {
        username: form.string("username"),
        role: form.string("role"),
        customers: Some(customers),
        is_superuser: Some(form.checked("is_superuser")),
        is_active: editing.then(|| form.checked("is_active")),
        password: form.string("password"),
    }
}

/// `GET /users/new`
pub async fn get_new_user(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> AppResult<UserFormPage> {
    signed_in.user.require(Role::Admin)?;
    let shown = UserShown::Stored(None);
    user_form(&state, &signed_in, shown, None, FieldErrors::new()).await
}

/// `POST /users`
pub async fn post_users(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormPairs,
) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let input = user_input(&form, false, &mut read);
    let confirm = form.get("password_confirm");
    let result = admin::create_user(&state.pool, &signed_in.user, &input, confirm, read).await;
    let done = |u: &User| {
        let message = format!("User {} created; they can sign in now.", u.username);
        (message, format!("/users/{}", u.id))
    };
    answer(&signed_in.session, result, done, async |errors| {
        let shown = UserShown::Submitted(None, &form);
        user_form(&state, &signed_in, shown, None, errors).await
    })
    .await
}

/// `GET /users/{id}`
pub async fn get_user(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<UserFormPage> {
    signed_in.user.require(Role::Admin)?;
    let user = admin::user(&state.pool, &signed_in.user, id).await?;
    let shown = UserShown::Stored(Some(user));
    user_form(&state, &signed_in, shown, None, FieldErrors::new()).await
}

/// `POST /users/{id}`: role, customers, activity.
pub async fn post_user(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let mut input = user_input(&form, true, &mut read);
    input.username = None;
    input.password = None;
    let result = admin::update_user(&state.pool, &signed_in.user, id, &input, read).await;
    let done = |u: &User| {
        (
            format!("User {} saved.", u.username),
            format!("/users/{id}"),
        )
    };
    answer(&signed_in.session, result, done, async |errors| {
        let user = admin::user(&state.pool, &signed_in.user, id).await?;
        let shown = UserShown::Submitted(Some(user), &form);
        user_form(&state, &signed_in, shown, None, errors).await
    })
    .await
}

/// `POST /users/{id}/password`: sets the password typed twice, or (with `generate`) a new
/// one shown once on the page that answers.
pub async fn post_user_password(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let (given, confirm) = if form.checked("generate") {
        (None, None)
    } else {
        (
            Some(form.get("password").unwrap_or_default()),
            form.get("password_confirm"),
        )
    };
    let me = &signed_in.user;
    match admin::set_password(&state.pool, me, id, given, confirm).await {
        Ok((user, generated)) => {
            let shown = UserShown::Stored(Some(user));
            let page = user_form(&state, &signed_in, shown, generated, FieldErrors::new());
            Ok((NO_STORE, page.await?).into_response())
        }
        Err(AppError::Validation(errors)) => {
            let user = admin::user(&state.pool, me, id).await?;
            let page = user_form(
                &state,
                &signed_in,
                UserShown::Stored(Some(user)),
                None,
                errors,
            );
            Ok((StatusCode::BAD_REQUEST, page.await?).into_response())
        }
        Err(e) => Err(e),
    }
}

// --- tokens ----------------------------------------------------------------------------

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
    state: &AppState,
    signed_in: &SignedIn,
    new_token: Option<(Token, String)>,
    typed: Option<&FormPairs>,
    errors: FieldErrors,
) -> AppResult<TokensPage> {
    let me = &signed_in.user;
    let own = admin::list_tokens(&state.pool, me, None).await?;
    let managed = if me.require(Role::Admin).is_ok() {
        let all = admin::managed_tokens(&state.pool, me).await?;
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
pub async fn get_tokens(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> AppResult<TokensPage> {
    tokens_page(&state, &signed_in, None, None, FieldErrors::new()).await
}

/// `POST /tokens`: makes a token and shows it once, on the page that answers (never stored
/// in the session or a URL).
pub async fn post_tokens(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormPairs,
) -> AppResult<Response> {
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
    match admin::create_token(&state.pool, &signed_in.user, name, expires_at, read).await {
        Ok(made) => {
            let page = tokens_page(&state, &signed_in, Some(made), None, FieldErrors::new());
            Ok((NO_STORE, page.await?).into_response())
        }
        Err(AppError::Validation(errors)) => {
            let page = tokens_page(&state, &signed_in, None, Some(&form), errors);
            Ok((StatusCode::BAD_REQUEST, page.await?).into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /tokens/{id}/revoke`
pub async fn post_revoke_token(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Id(id): Id,
) -> AppResult<Redirect> {
    let token = admin::revoke_token(&state.pool, &signed_in.user, id).await?;
    let message = format!(
        "Token {} of {} revoked; it is refused from now on.",
        token.name, token.username
    );
    flash::push(&signed_in.session, Level::Success, message).await?;
    Ok(Redirect::to("/tokens"))
}

// --- audit -----------------------------------------------------------------------------

/// `/audit`
#[derive(Template, WebTemplate)]
#[template(path = "audit/index.html")]
pub struct AuditPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's rows.
    pub entries: Vec<Entry>,
    /// Pagination.
    pub pager: Pager,
    /// The filters, as given.
    pub params: AuditParams,
}

impl AuditPage {
    /// The object types, for the filter.
    pub fn object_types(&self) -> [ObjectType; 7] {
        ObjectType::ALL
    }

    /// A filter's value, or "".
    pub fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }

    /// Where an object's page is, if it has one.
    pub fn link(&self, e: &Entry) -> Option<String> {
        let id = e.object_id?;
        let base = match e.object_type {
            ObjectType::Region => "/regions",
            ObjectType::Device => "/devices",
            ObjectType::Job => "/jobs",
            ObjectType::Customer => "/customers",
            ObjectType::User => "/users",
            ObjectType::Credential | ObjectType::Token => return None,
        };
        Some(format!("{base}/{id}"))
    }
}

/// `GET /audit`
pub async fn get_audit(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Params(page): Params<PageParams>,
    Params(params): Params<AuditParams>,
) -> AppResult<AuditPage> {
    let page = page.request(Reading::Forgiving)?;
    let filter = params.filter(Reading::Forgiving)?;
    let (entries, count) = admin::audit_log(&state.pool, &signed_in.user, &filter, page).await?;
    let query = {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &params.actor),
            ("object_type", &params.object_type),
            ("object_id", &params.object_id),
            ("since", &params.since),
            ("until", &params.until),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                ser.append_pair(k, v);
            }
        }
        ser.finish()
    };
    let base = if query.is_empty() {
        "/audit".to_string()
    } else {
        format!("/audit?{query}")
    };
    Ok(AuditPage {
        layout: signed_in.layout(Nav::Audit).await?,
        pager: Pager::new(page, count, &base, entries.len()),
        entries,
        params,
    })
}

// --- account ---------------------------------------------------------------------------

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
pub async fn post_account_password(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormPairs,
) -> AppResult<Response> {
    let result = admin::change_own_password(
        &state.pool,
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
pub async fn post_account_sessions(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> AppResult<Redirect> {
    let current = signed_in
        .session
        .id()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let n = admin::sign_out_elsewhere(&state.pool, &signed_in.user, &current).await?;
    let message = match n {
        0 => "You had no other session.".to_string(),
        1 => "1 other session signed out.".to_string(),
        n => format!("{n} other sessions signed out."),
    };
    flash::push(&signed_in.session, Level::Success, message).await?;
    Ok(Redirect::to("/account"))
}
