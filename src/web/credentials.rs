//! Credential pages. Secrets are write-only: forms never show them back.

use askama::Template;
use askama_web::WebTemplate;

use super::filters;
use super::forms::FormPairs;
use super::object_form::{ObjectForm, Shown};
use super::page::{Layout, Nav, SignedIn};
use super::pager::{Pager, Paging};
use super::regions::customer_choices;
use crate::auth::{AuthUser, CustomerRef, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::error::{AppResult, FieldErrors};
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
    signed_in: SignedIn,
    Paging { page, .. }: Paging,
) -> AppResult<CredentialsPage> {
    let mut conn = signed_in.pool().acquire().await?;
    let (rows, count) = credentials::list(&mut conn, &signed_in.user.scope(), page).await?;
    Ok(CredentialsPage {
        layout: signed_in.layout(Nav::Credentials).await?,
        pager: Pager::new(page, count, "/credentials", rows.len()),
        credentials: rows,
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
    })
}

impl ObjectForm for Credential {
    const LIST: &'static str = "/credentials";
    const NAV: Nav = Nav::Credentials;
    type Input = CredentialInput;
    type Page = CredentialFormPage;

    fn read(form: &FormPairs, errors: &mut FieldErrors) -> CredentialInput {
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

    /// The values shown are the submitted ones when there are some, else the stored ones;
    /// secrets are never shown.
    async fn page(
        signed_in: &SignedIn,
        shown: Shown<'_, Credential>,
        errors: FieldErrors,
    ) -> AppResult<CredentialFormPage> {
        let value = |key: &str, stored: fn(&Credential) -> String| match &shown {
            Shown::Submitted(_, form) => form.string(key).unwrap_or_default(),
            _ => shown.object().map(stored).unwrap_or_default(),
        };
        let (name, username) = (
            value("name", |c| c.name.clone()),
            value("username", |c| c.username.clone()),
        );
        let customer = value("customer", |c| c.customer_id.to_string());
        let credential = shown.into_object();
        let customers = match credential {
            None => customer_choices(signed_in).await?,
            Some(_) => Vec::new(),
        };
        Ok(CredentialFormPage {
            layout: signed_in.layout(Nav::Credentials).await?,
            name,
            username,
            customer,
            credential,
            errors,
            customers,
        })
    }

    async fn save(
        state: &AppState,
        user: &AuthUser,
        id: Option<i64>,
        input: &CredentialInput,
        read: FieldErrors,
    ) -> AppResult<Credential> {
        let (pool, secrets) = (&state.pool, &state.secrets);
        match id {
            None => inventory::create_credential(pool, secrets, user, input, read).await,
            Some(id) => {
                inventory::update_credential(pool, secrets, user, id, input, true, read).await
            }
        }
    }

    fn saved(&self, created: bool) -> (String, String) {
        let verb = if created { "created" } else { "saved" };
        let message = format!("Credential {} {verb}.", self.name);
        (message, "/credentials".to_string())
    }

    fn deleting(&self) -> (String, String, String) {
        let impact = "Devices that use it must be given another credential first.".to_string();
        (
            self.name.clone(),
            format!("/credentials/{}/edit", self.id),
            impact,
        )
    }

    async fn delete(state: &AppState, user: &AuthUser, id: i64) -> AppResult<String> {
        let c = inventory::delete_credential(&state.pool, user, id).await?;
        Ok(format!("Credential {} deleted.", c.name))
    }
}
