//! API tokens: `wn_` followed by 40 random characters, shown once; only a SHA-256 hash is
//! stored. Because the secret has ~238 bits of entropy, a fast hash is the right tool here
//! (unlike passwords), and lets a request find its token with one indexed lookup.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

const PREFIX: &str = "wn_";
const SECRET_LEN: usize = 40;
/// How many characters of the token are kept in clear, to tell tokens apart in a list.
const DISPLAY_PREFIX_LEN: usize = PREFIX.len() + 6;

/// Hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a string has the shape of one of our tokens (so garbage is rejected before the
/// database is asked).
pub fn looks_like_token(token: &str) -> bool {
    token.len() == PREFIX.len() + SECRET_LEN
        && token.starts_with(PREFIX)
        && token[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// Creates a token for `user_id` and returns it in clear; this is the only time it exists
/// outside the client.
pub async fn create_token(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
) -> sqlx::Result<String> {
    Ok(insert(conn, user_id, name, None).await?.1)
}

/// Inserts a new token; returns its id and the token in clear.
async fn insert(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
    expires_at: Option<time::OffsetDateTime>,
) -> sqlx::Result<(i64, String)> {
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    let token = format!("{PREFIX}{secret}");
    let id = sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(&token[..DISPLAY_PREFIX_LEN])
    .bind(hash_token(&token))
    .bind(expires_at)
    .fetch_one(conn)
    .await?;
    Ok((id, token))
}

/// An API token as its owner and administrators see it; the secret itself is gone.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Token {
    /// Id.
    pub id: i64,
    /// The user it acts as.
    #[serde(rename = "user")]
    pub user_id: i64,
    /// That user's name (pages).
    #[serde(skip)]
    pub username: String,
    /// What it is for.
    pub name: String,
    /// Its first characters, to tell tokens apart.
    pub prefix: String,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// Last used (to the minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<time::OffsetDateTime>,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

const SELECT_TOKENS: &str = "SELECT t.id, t.user_id, u.username, t.name, t.prefix, t.created_at,
        t.last_used_at, t.expires_at
    FROM api_tokens t JOIN users u ON u.id = t.user_id";

/// The tokens of these users, newest first.
pub async fn list(conn: &mut PgConnection, user_ids: &[i64]) -> sqlx::Result<Vec<Token>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_TOKENS} WHERE t.user_id = ANY($1) ORDER BY t.created_at DESC, t.id DESC"
    )))
    .bind(user_ids)
    .fetch_all(conn)
    .await
}

/// One token.
pub async fn get(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Token>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_TOKENS} WHERE t.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Creates a token that stops working at `expires_at`, if given; returns it with its secret,
/// which exists only in this answer.
pub async fn create_expiring(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
    expires_at: Option<time::OffsetDateTime>,
) -> sqlx::Result<(Token, String)> {
    let (id, secret) = insert(conn, user_id, name, expires_at).await?;
    let token = get(conn, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok((token, secret))
}

/// Revokes one token.
pub async fn revoke(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM api_tokens WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every token of a user; returns how many.
pub async fn revoke_all(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_checked_before_any_lookup() {
        assert!(looks_like_token(&format!("wn_{}", "a".repeat(40))));
        assert!(!looks_like_token(&format!("wn_{}", "a".repeat(39))));
        assert!(!looks_like_token(&format!("xx_{}", "a".repeat(40))));
        assert!(!looks_like_token(&format!("wn_{}!", "a".repeat(39))));
    }

    #[test]
    fn the_hash_is_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
