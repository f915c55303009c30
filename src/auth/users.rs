//! Users and their memberships in customers.

use sqlx::PgConnection;

use super::{AuthMethod, AuthUser, CustomerRef, Role, Scope};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::PageRequest;

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Sign-in name.
    pub username: &'a str,
    /// argon2id PHC string, never the password itself.
    pub password_hash: &'a str,
    /// Role.
    pub role: Role,
    /// Sees every customer.
    pub is_superuser: bool,
}

/// Checks a username: 1–150 characters of letters, digits and `@ . + - _` (Django's rule,
/// so usernames carry over from the original).
pub fn validate_username(username: &str) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    if username.is_empty() || username.chars().count() > 150 {
        errors.add("username", "Enter a username of 1 to 150 characters.");
    } else if !username
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        errors.add(
            "username",
            "Use only letters, digits and the characters @ . + - _",
        );
    }
    errors.into_result()
}

/// Inserts a user and returns its id. A taken username is a field error on `username`.
pub async fn create_user(conn: &mut PgConnection, user: &NewUser<'_>) -> AppResult<i64> {
    validate_username(user.username)?;
    Ok(sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, role, is_superuser)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(user.username)
    .bind(user.password_hash)
    .bind(user.role)
    .bind(user.is_superuser)
    .fetch_one(conn)
    .await?)
}

/// Makes `user_id` a member of `customer_id` (idempotent).
pub async fn add_membership(
    conn: &mut PgConnection,
    user_id: i64,
    customer_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO user_customers (user_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(customer_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Id and password hash of the user with this username, for signing in.
pub async fn credentials_for(
    conn: &mut PgConnection,
    username: &str,
) -> sqlx::Result<Option<(i64, String)>> {
    sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1 AND is_active")
        .bind(username)
        .fetch_optional(conn)
        .await
}

/// Id of the user with this username.
pub async fn id_for_username(conn: &mut PgConnection, username: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(conn)
        .await
}

/// Stamps a successful sign-in.
pub async fn record_login(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many users exist.
pub async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(conn)
        .await
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    role: Role,
    is_superuser: bool,
    customers: sqlx::types::Json<Vec<CustomerJson>>,
}

#[derive(serde::Deserialize)]
struct CustomerJson {
    id: i64,
    name: String,
}

/// The columns of an [`AuthUser`] from `users u`, with the user's customers as JSON.
const AUTH_USER: &str = "SELECT u.id, u.username, u.role, u.is_superuser,
        COALESCE((SELECT json_agg(json_build_object('id', c.id, 'name', c.name) ORDER BY c.name)
                  FROM user_customers uc JOIN customers c ON c.id = uc.customer_id
                  WHERE uc.user_id = u.id), '[]'::json) AS customers";

/// Loads an active user with their customers (one query), as the request's [`AuthUser`].
pub async fn load_auth_user(
    conn: &mut PgConnection,
    user_id: i64,
    method: AuthMethod,
) -> sqlx::Result<Option<AuthUser>> {
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{AUTH_USER} FROM users u WHERE u.id = $1 AND u.is_active"
    )))
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.into_auth_user(method, None)))
}

/// The active user of an API token that has not expired, with the token's name, in one
/// round trip (a request's only query before its own work), and when the token expires.
/// Records the token's use at most once a minute, so a busy script does not turn every read
/// into a write.
pub async fn load_token_user(
    conn: &mut PgConnection,
    token_hash: &str,
) -> sqlx::Result<Option<(AuthUser, Option<time::OffsetDateTime>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        token_name: String,
        expires_at: Option<time::OffsetDateTime>,
    }
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH token AS (SELECT id, user_id, name, last_used_at, expires_at FROM api_tokens
                       WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > now())),
              touched AS (
                UPDATE api_tokens SET last_used_at = now() FROM token
                WHERE api_tokens.id = token.id
                  AND (token.last_used_at IS NULL
                       OR token.last_used_at < now() - interval '1 minute'))
         {AUTH_USER}, token.name AS token_name, token.expires_at
         FROM token JOIN users u ON u.id = token.user_id AND u.is_active"
    )))
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let user = r.user.into_auth_user(AuthMethod::Token, Some(r.token_name));
        (user, r.expires_at)
    }))
}

impl UserRow {
    fn into_auth_user(self, method: AuthMethod, token: Option<String>) -> AuthUser {
        AuthUser {
            id: self.id,
            username: self.username,
            role: self.role,
            is_superuser: self.is_superuser,
            customers: self
                .customers
                .0
                .into_iter()
                .map(|c| CustomerRef {
                    id: c.id,
                    name: c.name,
                })
                .collect(),
            method,
            token,
            client_addr: None,
        }
    }
}

/// A user as the administration pages and the API show it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Role within their customers.
    pub role: Role,
    /// Sees and manages every customer.
    pub is_superuser: bool,
    /// May sign in; a deactivated user's sessions and tokens are ended.
    pub is_active: bool,
    /// Customer ids.
    pub customers: Vec<i64>,
    /// Last sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login: Option<time::OffsetDateTime>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// Customer names, in the order of `customers` (pages).
    #[serde(skip)]
    pub customer_names: Vec<String>,
}

const SELECT_USERS: &str = "SELECT u.id, u.username, u.role, u.is_superuser, u.is_active,
        u.last_login_at AS last_login, u.created_at,
        COALESCE(array_agg(c.id ORDER BY c.name) FILTER (WHERE c.id = ANY(COALESCE($1, ARRAY[c.id]))), '{}') AS customers,
        COALESCE(array_agg(c.name ORDER BY c.name) FILTER (WHERE c.id = ANY(COALESCE($1, ARRAY[c.id]))), '{}') AS customer_names
    FROM users u
    LEFT JOIN user_customers uc ON uc.user_id = u.id
    LEFT JOIN customers c ON c.id = uc.customer_id
    WHERE ($1::bigint[] IS NULL
           OR EXISTS (SELECT 1 FROM user_customers x WHERE x.user_id = u.id AND x.customer_id = ANY($1)))";

/// A user's memberships are listed only within `scope`: another customer's membership of a
/// shared user is that customer's business.
///
/// A page of the users that share a customer with `scope` (every user for superusers),
/// whose username contains `search`, by username; and how many match.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    search: Option<&str>,
    page: PageRequest,
) -> AppResult<(Vec<User>, i64)> {
    let pattern = search.map(|s| format!("%{}%", s.replace('%', "\\%").replace('_', "\\_")));
    let rows: Vec<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_USERS} AND ($2::text IS NULL OR u.username ILIKE $2)
         GROUP BY u.id ORDER BY u.username LIMIT $3 OFFSET $4"
    )))
    .bind(scope.ids())
    .bind(&pattern)
    .bind(page.page_size)
    .bind(page.offset())
    .fetch_all(&mut *conn)
    .await?;
    let count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM ({SELECT_USERS} AND ($2::text IS NULL OR u.username ILIKE $2)
         GROUP BY u.id) AS matching"
    )))
    .bind(scope.ids())
    .bind(&pattern)
    .fetch_one(conn)
    .await?;
    Ok((rows, count))
}

/// One user that shares a customer with `scope`.
pub async fn get(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<User> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_USERS} AND u.id = $2 GROUP BY u.id"
    )))
    .bind(scope.ids())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(AppError::NotFound)
}

/// What an administrator may change of a user; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// Role.
    pub role: Option<Role>,
    /// Superuser.
    pub is_superuser: Option<bool>,
    /// May sign in.
    pub is_active: Option<bool>,
}

/// Applies `changes` to user `id`.
pub async fn update(conn: &mut PgConnection, id: i64, changes: &UserChanges) -> AppResult<()> {
    sqlx::query(
        "UPDATE users SET role = COALESCE($2, role), is_superuser = COALESCE($3, is_superuser),
                          is_active = COALESCE($4, is_active)
         WHERE id = $1",
    )
    .bind(id)
    .bind(changes.role)
    .bind(changes.is_superuser)
    .bind(changes.is_active)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a user's row until the transaction ends, so that checks made on it (superuser or
/// not, the customers it belongs to) still hold when the change is written.
pub async fn lock(conn: &mut PgConnection, id: i64) -> AppResult<()> {
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether every customer of the user is in `scope`: then the user is wholly the business
/// of whoever holds that scope.
pub async fn within(conn: &mut PgConnection, id: i64, scope: &Scope) -> AppResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM user_customers
                            WHERE user_id = $1 AND NOT (customer_id = ANY(COALESCE($2, ARRAY[customer_id]))))",
    )
    .bind(id)
    .bind(scope.ids())
    .fetch_one(conn)
    .await?)
}

/// Makes the user's memberships among the customers of `within` exactly `customers`;
/// memberships outside `within` (which the caller does not see) are kept.
pub async fn set_customers(
    conn: &mut PgConnection,
    id: i64,
    customers: &[i64],
    within: &Scope,
) -> AppResult<()> {
    sqlx::query(
        "DELETE FROM user_customers WHERE user_id = $1 AND NOT (customer_id = ANY($2))
           AND ($3::bigint[] IS NULL OR customer_id = ANY($3))",
    )
    .bind(id)
    .bind(customers)
    .bind(within.ids())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO user_customers (user_id, customer_id)
         SELECT $1, c FROM unnest($2::bigint[]) AS c ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(customers)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a new password hash.
pub async fn set_password_hash(conn: &mut PgConnection, id: i64, hash: &str) -> AppResult<()> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// The stored password hash of a user, to check a current password.
pub async fn password_hash(conn: &mut PgConnection, id: i64) -> AppResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// How many active superusers there are, counted under a lock so that two administrators
/// cannot each remove "one of two" at once.
pub async fn active_superusers(conn: &mut PgConnection) -> AppResult<i64> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM users WHERE is_superuser AND is_active ORDER BY id FOR UPDATE",
    )
    .fetch_all(conn)
    .await?;
    Ok(ids.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_djangos_rule() {
        assert!(validate_username("alice.o+ops@example_1-x").is_ok());
        for bad in ["", "has space", "<script>", &"a".repeat(151)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }
}
