//! Users and their memberships in customers.

use sqlx::PgConnection;

use super::{AuthMethod, AuthUser, CustomerRef, Role};
use crate::error::{AppResult, FieldErrors};

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
    sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1")
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

/// Loads a user with their customers (one query), as the request's [`AuthUser`].
pub async fn load_auth_user(
    conn: &mut PgConnection,
    user_id: i64,
    method: AuthMethod,
) -> sqlx::Result<Option<AuthUser>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT u.id, u.username, u.role, u.is_superuser,
                COALESCE((SELECT json_agg(json_build_object('id', c.id, 'name', c.name) ORDER BY c.name)
                          FROM user_customers uc JOIN customers c ON c.id = uc.customer_id
                          WHERE uc.user_id = u.id), '[]'::json) AS customers
         FROM users u WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| AuthUser {
        id: r.id,
        username: r.username,
        role: r.role,
        is_superuser: r.is_superuser,
        customers: r
            .customers
            .0
            .into_iter()
            .map(|c| CustomerRef {
                id: c.id,
                name: c.name,
            })
            .collect(),
        method,
    }))
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
