//! Creating an account: a validated username, an argon2id password hash, the user and its
//! memberships (missing customers are created), in one transaction.

use sqlx::PgPool;

use super::Role;
use super::password::hash_password;
use super::users::{self, NewUser};
use crate::customers;
use crate::error::AppResult;

/// Creates a user and its memberships in one transaction; missing customers are created.
pub async fn create_user(
    pool: &PgPool,
    username: &str,
    role: Role,
    superuser: bool,
    customer_names: &[String],
    password: String,
) -> AppResult<i64> {
    users::validate_username(username)?;
    let hash = hash_password(password).await?;
    let mut tx = crate::db::begin(pool).await?;
    let user_id = users::create_user(
        &mut tx,
        &NewUser {
            username,
            password_hash: &hash,
            role,
            is_superuser: superuser,
        },
    )
    .await?;
    for name in customer_names {
        let (customer_id, _) = customers::ensure(&mut tx, name).await?;
        users::add_membership(&mut tx, user_id, customer_id).await?;
    }
    tx.commit().await?;
    Ok(user_id)
}
