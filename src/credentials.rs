//! Device credentials. Passwords are encrypted at rest ([`SecretBox`]) and never leave the
//! server: the API and the pages show only whether one is set.

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;

use crate::auth::Scope;
use crate::crypto::{Secret, SecretBox};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::{PageRequest, scoped_one, scoped_page};
use crate::types;

/// A credential as shown: no secrets.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Credential {
    /// Id.
    pub id: i64,
    /// Owning customer.
    #[serde(rename = "customer")]
    pub customer_id: i64,
    /// Label, unique per customer.
    pub name: String,
    /// Sign-in name on the devices.
    pub username: String,
    /// Whether a password is stored.
    pub has_password: bool,
    /// Whether an enable password is stored.
    pub has_enable_password: bool,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Submitted credential fields. `password`/`enable_password` are write-only: an empty
/// string clears them, absence keeps them.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
pub struct CredentialInput {
    /// Owning customer (create only).
    pub customer: Option<i64>,
    /// Label.
    pub name: Option<String>,
    /// Sign-in name.
    pub username: Option<String>,
    /// Password (write-only: stored encrypted, never returned).
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// Enable password (write-only: stored encrypted, never returned).
    #[schema(value_type = Option<String>)]
    pub enable_password: Option<Secret>,
}

/// Validated credential fields.
#[derive(Debug, Default, Clone)]
pub struct CredentialChanges {
    name: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    enable_password: Option<Secret>,
}

impl CredentialInput {
    /// The secret fields this input sets, by name (for the audit trail, which never holds
    /// their values).
    pub fn secrets_given(&self) -> Vec<&'static str> {
        [
            ("password", &self.password),
            ("enable_password", &self.enable_password),
        ]
        .into_iter()
        .filter(|(_, v)| v.as_ref().is_some_and(|v| !v.is_empty()))
        .map(|(k, _)| k)
        .collect()
    }

    /// Validates; with `complete`, name and username are required.
    pub fn validate(&self, complete: bool) -> Result<CredentialChanges, FieldErrors> {
        let mut e = FieldErrors::new();
        let mut field = |name: &str, v: &Option<String>, max: usize| {
            e.check_given(name, v.as_deref(), |v| types::required_text(v, max))
        };
        let name = field("name", &self.name, 200);
        let username = field("username", &self.username, 200);
        if complete {
            e.require([
                ("name", self.name.is_some()),
                ("username", self.username.is_some()),
            ]);
        }
        for (key, v) in [
            ("password", &self.password),
            ("enable_password", &self.enable_password),
        ] {
            if v.as_ref().is_some_and(|p| p.len() > 1024) {
                e.add(key, "Use at most 1024 characters.");
            }
        }
        if e.is_empty() {
            Ok(CredentialChanges {
                name,
                username,
                password: self.password.clone(),
                enable_password: self.enable_password.clone(),
            })
        } else {
            Err(e)
        }
    }
}

/// The additional data binding a ciphertext to its customer and field.
fn context(customer_id: i64, field: &str) -> String {
    format!("credential:{customer_id}:{field}")
}

fn seal(sb: &SecretBox, customer_id: i64, field: &str, v: &Option<Secret>) -> Option<Vec<u8>> {
    v.as_ref()
        .filter(|p| !p.is_empty())
        .map(|p| sb.seal(&context(customer_id, field), p.expose()))
}

const SELECT: &str =
    "SELECT id, customer_id, name, username, password_enc IS NOT NULL AS has_password,
        enable_password_enc IS NOT NULL AS has_enable_password, created_at, updated_at
    FROM credentials";

/// Credentials in scope, by name.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    page: PageRequest,
) -> AppResult<(Vec<Credential>, i64)> {
    let rows = format!(
        "{SELECT} WHERE ($1::bigint[] IS NULL OR customer_id = ANY($1))
         ORDER BY name, id LIMIT $2 OFFSET $3"
    );
    let table = ("credentials", "customer_id");
    scoped_page(conn, table, sqlx::AssertSqlSafe(rows), scope.ids(), page).await
}

/// One credential in scope.
pub async fn get(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Credential> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2::bigint[] IS NULL OR customer_id = ANY($2))");
    scoped_one(conn, sqlx::AssertSqlSafe(sql), id, scope.ids()).await
}

/// Creates a credential, encrypting its secrets.
pub async fn create(
    conn: &mut PgConnection,
    sb: &SecretBox,
    customer_id: i64,
    c: &CredentialChanges,
) -> AppResult<Credential> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO credentials (customer_id, name, username, password_enc, enable_password_enc)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(customer_id)
    .bind(&c.name)
    .bind(&c.username)
    .bind(seal(sb, customer_id, "password", &c.password))
    .bind(seal(sb, customer_id, "enable_password", &c.enable_password))
    .fetch_one(&mut *conn)
    .await?;
    get(conn, &Scope::all(), id).await
}

/// Updates a credential in scope; secrets are replaced only when given.
pub async fn update(
    conn: &mut PgConnection,
    sb: &SecretBox,
    scope: &Scope,
    id: i64,
    c: &CredentialChanges,
) -> AppResult<Credential> {
    let current = get(conn, scope, id).await?;
    let cid = current.customer_id;
    sqlx::query(
        "UPDATE credentials SET name = COALESCE($2, name), username = COALESCE($3, username),
            password_enc = CASE WHEN $4 THEN $5 ELSE password_enc END,
            enable_password_enc = CASE WHEN $6 THEN $7 ELSE enable_password_enc END,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&c.name)
    .bind(&c.username)
    .bind(c.password.is_some())
    .bind(seal(sb, cid, "password", &c.password))
    .bind(c.enable_password.is_some())
    .bind(seal(sb, cid, "enable_password", &c.enable_password))
    .execute(&mut *conn)
    .await?;
    get(conn, scope, id).await
}

/// Deletes a credential in scope; refused (400) while devices use it.
pub async fn delete(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<()> {
    let credential = get(conn, scope, id).await?;
    sqlx::query("DELETE FROM credentials WHERE id = $1")
        .bind(credential.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Decrypted secrets of a credential, for the workers that sign in to devices.
#[derive(Clone, Debug)]
pub struct Secrets {
    /// Sign-in name.
    pub username: String,
    /// Password, if set.
    pub password: Option<Secret>,
    /// Enable password, if set.
    pub enable_password: Option<Secret>,
}

/// Loads and decrypts a credential's secrets.
pub async fn secrets(conn: &mut PgConnection, sb: &SecretBox, id: i64) -> AppResult<Secrets> {
    let (customer_id, username, password, enable): (i64, String, Option<Vec<u8>>, Option<Vec<u8>>) =
        sqlx::query_as(
            "SELECT customer_id, username, password_enc, enable_password_enc FROM credentials WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::NotFound)?;
    let open = |field: &str, v: Option<Vec<u8>>| -> AppResult<Option<Secret>> {
        v.map(|c| sb.open(&context(customer_id, field), &c).map(Secret::new))
            .transpose()
            .map_err(AppError::Internal)
    };
    Ok(Secrets {
        username,
        password: open("password", password)?,
        enable_password: open("enable_password", enable)?,
    })
}
