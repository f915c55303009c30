//! Credential pages. Secrets are write-only: forms never show them back.

use askama::Template;
use askama_web::WebTemplate;

use super::filters;
use super::forms::FormPairs;
use super::object_form::{FormFrame, FormValues, ObjectForm};
use super::page::{Layout, Nav, SignedIn};
use super::pager::{Pager, Paging};
use crate::auth::{AuthUser, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::crypto::Secret;
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
    /// The credential edited, its fields and their errors.
    pub form: FormFrame<Credential, CredentialValues>,
}

/// Credential form values as strings; secrets are never shown.
#[derive(Debug, Clone, Default)]
pub struct CredentialValues {
    /// Name.
    pub name: String,
    /// Username.
    pub username: String,
    /// Customer id.
    pub customer: String,
}

impl FormValues<Credential> for CredentialValues {
    fn blank() -> Self {
        Self::default()
    }

    fn stored(c: &Credential) -> Self {
        Self {
            name: c.name.clone(),
            username: c.username.clone(),
            customer: c.customer_id.to_string(),
        }
    }

    fn submitted(form: &FormPairs) -> Self {
        Self {
            name: form.text("name"),
            username: form.text("username"),
            customer: form.text("customer"),
        }
    }
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
    type Values = CredentialValues;
    type Page = CredentialFormPage;

    fn read(form: &FormPairs, errors: &mut FieldErrors) -> CredentialInput {
        // An empty password box on the edit form means "keep the stored one".
        let secret = |k: &str| form.string(k).filter(|v| !v.is_empty()).map(Secret::new);
        CredentialInput {
            customer: form.integer("customer", errors),
            name: form.string("name"),
            username: form.string("username"),
            password: secret("password"),
            enable_password: secret("enable_password"),
        }
    }

    async fn page(
        signed_in: &SignedIn,
        form: FormFrame<Credential, CredentialValues>,
    ) -> AppResult<CredentialFormPage> {
        let layout = signed_in.layout(Nav::Credentials).await?;
        Ok(CredentialFormPage { layout, form })
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
