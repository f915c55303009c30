//! `/customers`: the customers, each with its members; create, rename, delete (superusers).

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{Redirect, Response};

use crate::customers::{Customer, Member};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::Id;
use crate::pagination::PageRequest;
use crate::usecases::admin;
use crate::web::filters;
use crate::web::flash::{self, Level};
use crate::web::forms::{FormPairs, answer};
use crate::web::page::{Layout, Nav, SignedIn};
use crate::web::pager::{Pager, Paging};

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
    signed_in: &SignedIn,
    page: PageRequest,
    name: String,
    errors: FieldErrors,
) -> AppResult<CustomersPage> {
    let (customers, count) = admin::list_customers(signed_in.pool(), &signed_in.user, page).await?;
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
    signed_in: SignedIn,
    Paging { page, .. }: Paging,
) -> AppResult<CustomersPage> {
    customers_page(&signed_in, page, String::new(), FieldErrors::new()).await
}

/// `POST /customers`
pub async fn post_customers(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    let name = form.get("name");
    let result = admin::create_customer(signed_in.pool(), &signed_in.user, name).await;
    let done = |c: &Customer| {
        let message = format!(
            "Customer {} created. Add its regions, devices and users next.",
            c.name
        );
        (message, format!("/customers/{}", c.id))
    };
    answer(&signed_in.session, result, done, async |errors| {
        let typed = form.string("name").unwrap_or_default();
        customers_page(&signed_in, PageRequest::default(), typed, errors).await
    })
    .await
}

async fn customer_page(
    signed_in: &SignedIn,
    id: i64,
    name: Option<String>,
    errors: FieldErrors,
) -> AppResult<CustomerPage> {
    let (customer, members) = admin::customer(signed_in.pool(), &signed_in.user, id).await?;
    Ok(CustomerPage {
        layout: signed_in.layout(Nav::Customers).await?,
        name: name.unwrap_or_else(|| customer.name.clone()),
        customer,
        members,
        errors,
    })
}

/// `GET /customers/{id}`
pub async fn get_customer(signed_in: SignedIn, Id(id): Id) -> AppResult<CustomerPage> {
    customer_page(&signed_in, id, None, FieldErrors::new()).await
}

/// `POST /customers/{id}`: renames it.
pub async fn post_customer(
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let name = form.get("name");
    let result = admin::rename_customer(signed_in.pool(), &signed_in.user, id, name).await;
    let done = |c: &Customer| {
        (
            format!("Customer {} saved.", c.name),
            format!("/customers/{id}"),
        )
    };
    answer(&signed_in.session, result, done, async |errors| {
        let typed = form.string("name");
        customer_page(&signed_in, id, typed, errors).await
    })
    .await
}

/// `POST /customers/{id}/delete`: deletes it, or says what it still holds.
pub async fn post_delete_customer(signed_in: SignedIn, Id(id): Id) -> AppResult<Redirect> {
    match admin::delete_customer(signed_in.pool(), &signed_in.user, id).await {
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
