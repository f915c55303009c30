//! The create, edit and delete pages of inventory objects (regions, devices, credentials),
//! written once: each kind says how to read its form, how to render it and which use cases
//! save and delete it, and the handlers here do the rest the same way for all of them (admin
//! only, another customer's object is "not found", errors shown in the form with a 400,
//! success as a flash message and a redirect).

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Redirect, Response};

use super::flash::{self, Level};
use super::forms::{FormPairs, answer};
use super::page::{Layout, Nav, SignedIn};
use crate::auth::{AuthUser, CustomerRef, Role};
use crate::customers;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::Id;
use crate::state::AppState;
use crate::usecases::inventory::{self, Owned};

/// What a form was opened for.
pub enum Shown<'a, T> {
    /// A new object: the form's defaults.
    New,
    /// An object as stored.
    Stored(T),
    /// What was submitted, shown again with errors; `T` when editing.
    Submitted(Option<T>, &'a FormPairs),
}

impl<T> Shown<'_, T> {
    /// The object edited, if any, owned.
    pub fn into_object(self) -> Option<T> {
        match self {
            Shown::Stored(t) | Shown::Submitted(Some(t), _) => Some(t),
            _ => None,
        }
    }
}

/// A form's fields as text, as the form shows them.
pub trait FormValues<T> {
    /// The fields of a new object: its defaults.
    fn blank() -> Self;
    /// The fields of an object as stored.
    fn stored(object: &T) -> Self;
    /// The fields as submitted, shown again with their errors.
    fn submitted(form: &FormPairs) -> Self;
}

/// What every inventory form shows besides the layout: the object edited (`None` when
/// creating), the values of its fields, their errors, and the customers a new object may be
/// created for (none when there is no choice to make).
pub struct FormFrame<T, V> {
    /// The object edited, or `None`.
    pub object: Option<T>,
    /// Submitted or current values.
    pub values: V,
    /// Inline errors.
    pub errors: FieldErrors,
    /// Customers to choose from when creating.
    pub customers: Vec<CustomerRef>,
}

impl<T, V: FormValues<T>> FormFrame<T, V> {
    async fn new(
        signed_in: &SignedIn,
        shown: Shown<'_, T>,
        errors: FieldErrors,
    ) -> AppResult<Self> {
        let values = match &shown {
            Shown::New => V::blank(),
            Shown::Stored(object) => V::stored(object),
            Shown::Submitted(_, form) => V::submitted(form),
        };
        let object = shown.into_object();
        let customers = match object {
            None => customer_choices(signed_in).await?,
            Some(_) => Vec::new(),
        };
        Ok(Self {
            object,
            values,
            errors,
            customers,
        })
    }
}

/// Customers a user may create objects for, when there is a choice to make.
async fn customer_choices(signed_in: &SignedIn) -> AppResult<Vec<CustomerRef>> {
    if signed_in.user.is_superuser {
        let mut conn = signed_in.pool().acquire().await?;
        Ok(customers::all(&mut conn).await?)
    } else if signed_in.user.customers.len() > 1 {
        Ok(signed_in.user.customers.clone())
    } else {
        Ok(Vec::new())
    }
}

/// A delete confirmation: what goes, and what follows from it.
#[derive(Template, WebTemplate)]
#[template(path = "shared/delete.html")]
pub struct DeletePage {
    /// Base layout.
    pub layout: Layout,
    /// The kind ("region").
    pub what: &'static str,
    /// The object's name.
    pub name: String,
    /// Where the confirmation posts.
    pub action: String,
    /// Where "Keep it" leads.
    pub back: String,
    /// What else changes.
    pub impact: String,
}

/// A kind of object with a create and an edit form, and a delete button.
pub trait ObjectForm: Owned + Send + Sync + 'static {
    /// The list page, where a deletion leads.
    const LIST: &'static str;
    /// The navigation entry its pages highlight.
    const NAV: Nav;
    /// What the form reads, for the use case.
    type Input: Send + Sync;
    /// The fields the form shows.
    type Values: FormValues<Self> + Send;
    /// The rendered form.
    type Page: IntoResponse;

    /// Reads the submitted form, recording fields it cannot read (a number that is not one).
    fn read(form: &FormPairs, errors: &mut FieldErrors) -> Self::Input;

    /// The form page around `form`.
    fn page(
        signed_in: &SignedIn,
        form: FormFrame<Self, Self::Values>,
    ) -> impl Future<Output = AppResult<Self::Page>> + Send;

    /// Creates the object (`id` is `None`) or replaces the fields of object `id`.
    fn save(
        state: &AppState,
        user: &AuthUser,
        id: Option<i64>,
        input: &Self::Input,
        read: FieldErrors,
    ) -> impl Future<Output = AppResult<Self>> + Send;

    /// The flash message after a save, and where to go next.
    fn saved(&self, created: bool) -> (String, String);

    /// Its name, its page, and what deleting it changes besides, for the confirmation.
    fn deleting(&self) -> (String, String, String);

    /// Deletes object `id`; answers the flash message.
    fn delete(
        state: &AppState,
        user: &AuthUser,
        id: i64,
    ) -> impl Future<Output = AppResult<String>> + Send;
}

/// The form page of `T`, showing `shown`.
async fn form_page<T: ObjectForm>(
    signed_in: &SignedIn,
    shown: Shown<'_, T>,
    errors: FieldErrors,
) -> AppResult<T::Page> {
    T::page(signed_in, FormFrame::new(signed_in, shown, errors).await?).await
}

/// `GET /<kind>/new`
pub async fn get_new<T: ObjectForm>(signed_in: SignedIn) -> AppResult<T::Page> {
    signed_in.user.require(Role::Admin)?;
    form_page::<T>(&signed_in, Shown::New, FieldErrors::new()).await
}

/// `GET /<kind>/{id}/edit`
pub async fn get_edit<T: ObjectForm>(signed_in: SignedIn, Id(id): Id) -> AppResult<T::Page> {
    let stored = inventory::to_change::<T>(signed_in.pool(), &signed_in.user, id).await?;
    form_page::<T>(&signed_in, Shown::Stored(stored), FieldErrors::new()).await
}

/// `POST /<kind>`: creates one.
pub async fn post_new<T: ObjectForm>(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    submit::<T>(signed_in, None, form).await
}

/// `POST /<kind>/{id}`: saves one.
pub async fn post_edit<T: ObjectForm>(
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    submit::<T>(signed_in, Some(id), form).await
}

/// A superuser may name a new customer in the form (`new_customer`): it is created first and
/// the form goes on as if it had been chosen. Its errors are reported on `new_customer`.
async fn with_new_customer(
    signed_in: &SignedIn,
    mut form: FormPairs,
    read: &mut FieldErrors,
) -> AppResult<FormPairs> {
    let Some(name) = form
        .get("new_customer")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Ok(form);
    };
    match crate::usecases::admin::create_customer(signed_in.pool(), &signed_in.user, Some(name))
        .await
    {
        Ok(customer) => {
            form.0
                .retain(|(k, _)| k != "customer" && k != "new_customer");
            form.0.push(("customer".into(), customer.id.to_string()));
        }
        Err(AppError::Validation(errors)) => {
            errors
                .0
                .into_values()
                .flatten()
                .for_each(|m| read.add("new_customer", m));
        }
        Err(e) => return Err(e),
    }
    Ok(form)
}

async fn submit<T: ObjectForm>(
    signed_in: SignedIn,
    id: Option<i64>,
    form: FormPairs,
) -> AppResult<Response> {
    let mut read = FieldErrors::new();
    let form = with_new_customer(&signed_in, form, &mut read).await?;
    let input = T::read(&form, &mut read);
    let result = T::save(&signed_in.state, &signed_in.user, id, &input, read).await;
    let done = |saved: &T| saved.saved(id.is_none());
    answer(&signed_in.session, result, done, async |errors| {
        let current = match id {
            Some(id) => {
                Some(inventory::to_change::<T>(signed_in.pool(), &signed_in.user, id).await?)
            }
            None => None,
        };
        form_page::<T>(&signed_in, Shown::Submitted(current, &form), errors).await
    })
    .await
}

/// `GET /<kind>/{id}/delete`: asks, saying what else changes.
pub async fn get_delete<T: ObjectForm>(signed_in: SignedIn, Id(id): Id) -> AppResult<DeletePage> {
    let object = inventory::to_change::<T>(signed_in.pool(), &signed_in.user, id).await?;
    let (name, back, impact) = object.deleting();
    Ok(DeletePage {
        layout: signed_in.layout(T::NAV).await?,
        what: T::WHAT,
        name,
        action: format!("{back}/delete"),
        back,
        impact,
    })
}

/// `POST /<kind>/{id}/delete`: deletes, or says on the list why it cannot.
pub async fn post_delete<T: ObjectForm>(signed_in: SignedIn, Id(id): Id) -> AppResult<Redirect> {
    let (level, message) = match T::delete(&signed_in.state, &signed_in.user, id).await {
        Ok(message) => (Level::Success, message),
        Err(AppError::Validation(errors)) => {
            let why = errors.0.into_values().flatten().next();
            (
                Level::Error,
                why.unwrap_or_else(|| "It cannot be deleted.".into()),
            )
        }
        Err(e) => return Err(e),
    };
    flash::push(&signed_in.session, level, message).await?;
    Ok(Redirect::to(T::LIST))
}
