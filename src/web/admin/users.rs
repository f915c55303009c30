//! `/users`: search, create, change role, customers and activity, set or reset a password.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::tokens::Token;
use crate::auth::users::User;
use crate::auth::{CustomerRef, Role};
use crate::customers;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Id, Params};
use crate::params::UserParams;
use crate::usecases::admin::{self, UserInput};
use crate::web::filters;
use crate::web::forms::{FormPairs, NO_STORE, answer};
use crate::web::page::{Layout, Nav, SignedIn};
use crate::web::pager::{Pager, Paging};

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
    /// Submitted or current values.
    pub values: UserValues,
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

/// User form values, as the form shows them.
#[derive(Debug, Clone)]
pub struct UserValues {
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
}

impl UserValues {
    fn blank() -> Self {
        Self {
            username: String::new(),
            role: "viewer".into(),
            chosen: Vec::new(),
            is_superuser: false,
            is_active: true,
        }
    }

    fn stored(u: &User) -> Self {
        Self {
            username: u.username.clone(),
            role: u.role.as_str().to_string(),
            chosen: u.customers.clone(),
            is_superuser: u.is_superuser,
            is_active: u.is_active,
        }
    }

    /// The edit form does not submit the username: the stored one stays.
    fn submitted(user: Option<&User>, form: &FormPairs) -> Self {
        Self {
            username: form
                .string("username")
                .or_else(|| user.map(|u| u.username.clone()))
                .unwrap_or_default(),
            role: form.text("role"),
            chosen: form
                .all("customers")
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            is_superuser: form.checked("is_superuser"),
            is_active: form.checked("is_active"),
        }
    }
}

impl UserFormPage {
    /// The roles, for the select.
    pub fn roles(&self) -> [Role; 3] {
        Role::ALL
    }

    /// Whether customer `id` is chosen.
    pub fn is_chosen(&self, id: &i64) -> bool {
        self.values.chosen.contains(id)
    }
}

/// `GET /users` (admins and superusers).
pub async fn get_users(
    signed_in: SignedIn,
    Paging { page, .. }: Paging,
    Params(params): Params<UserParams>,
) -> AppResult<UsersPage> {
    let search = params.search();
    let (users, count) = admin::list_users(signed_in.pool(), &signed_in.user, search, page).await?;
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
    signed_in: &SignedIn,
    shown: UserShown<'_>,
    generated: Option<String>,
    errors: FieldErrors,
) -> AppResult<UserFormPage> {
    let me = &signed_in.user;
    let customers = if me.is_superuser {
        customers::all(&mut *signed_in.pool().acquire().await?).await?
    } else {
        me.customers.clone()
    };
    let (values, user) = match shown {
        UserShown::Stored(Some(u)) => (UserValues::stored(&u), Some(u)),
        UserShown::Stored(None) => (UserValues::blank(), None),
        UserShown::Submitted(u, form) => (UserValues::submitted(u.as_ref(), form), u),
    };
    let tokens = match &user {
        Some(u) => admin::list_tokens(signed_in.pool(), me, Some(u.id))
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(UserFormPage {
        layout: signed_in.layout(Nav::Users).await?,
        user,
        values,
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
pub async fn get_new_user(signed_in: SignedIn) -> AppResult<UserFormPage> {
    signed_in.user.require(Role::Admin)?;
    let shown = UserShown::Stored(None);
    user_form(&signed_in, shown, None, FieldErrors::new()).await
}

/// `POST /users`
pub async fn post_users(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let input = user_input(&form, false, &mut read);
    let confirm = form.get("password_confirm");
    let result = admin::create_user(signed_in.pool(), &signed_in.user, &input, confirm, read).await;
    let done = |u: &User| {
        let message = format!("User {} created; they can sign in now.", u.username);
        (message, format!("/users/{}", u.id))
    };
    answer(&signed_in.session, result, done, async |errors| {
        let shown = UserShown::Submitted(None, &form);
        user_form(&signed_in, shown, None, errors).await
    })
    .await
}

/// `GET /users/{id}`
pub async fn get_user(signed_in: SignedIn, Id(id): Id) -> AppResult<UserFormPage> {
    signed_in.user.require(Role::Admin)?;
    let user = admin::user(signed_in.pool(), &signed_in.user, id).await?;
    let shown = UserShown::Stored(Some(user));
    user_form(&signed_in, shown, None, FieldErrors::new()).await
}

/// `POST /users/{id}`: role, customers, activity.
pub async fn post_user(signed_in: SignedIn, Id(id): Id, form: FormPairs) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let mut input = user_input(&form, true, &mut read);
    input.username = None;
    input.password = None;
    let result = admin::update_user(signed_in.pool(), &signed_in.user, id, &input, read).await;
    let done = |u: &User| {
        (
            format!("User {} saved.", u.username),
            format!("/users/{id}"),
        )
    };
    answer(&signed_in.session, result, done, async |errors| {
        let user = admin::user(signed_in.pool(), &signed_in.user, id).await?;
        let shown = UserShown::Submitted(Some(user), &form);
        user_form(&signed_in, shown, None, errors).await
    })
    .await
}

/// `POST /users/{id}/password`: sets the password typed twice, or (with `generate`) a new
/// one shown once on the page that answers.
pub async fn post_user_password(
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
    match admin::set_password(signed_in.pool(), me, id, given, confirm).await {
        Ok((user, generated)) => {
            let shown = UserShown::Stored(Some(user));
            let page = user_form(&signed_in, shown, generated, FieldErrors::new());
            Ok((NO_STORE, page.await?).into_response())
        }
        Err(AppError::Validation(errors)) => {
            let user = admin::user(signed_in.pool(), me, id).await?;
            let page = user_form(&signed_in, UserShown::Stored(Some(user)), None, errors);
            Ok((StatusCode::BAD_REQUEST, page.await?).into_response())
        }
        Err(e) => Err(e),
    }
}
