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
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect();
    let token = format!("{PREFIX}{secret}");
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(name)
    .bind(&token[..DISPLAY_PREFIX_LEN])
    .bind(hash_token(&token))
    .execute(conn)
    .await?;
    Ok(token)
}

/// The user a token belongs to, if it is a known token. Records the use at most once a
/// minute, so a busy script does not turn every read into a write.
pub async fn user_for_token(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<i64>> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "WITH token AS (SELECT id, user_id, last_used_at FROM api_tokens WHERE token_hash = $1),
              touched AS (
                UPDATE api_tokens SET last_used_at = now() FROM token
                WHERE api_tokens.id = token.id
                  AND (token.last_used_at IS NULL
                       OR token.last_used_at < now() - interval '1 minute'))
         SELECT user_id FROM token",
    )
    .bind(hash_token(token))
    .fetch_optional(conn)
    .await
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
