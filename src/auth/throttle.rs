//! Sign-in throttling. Failures are counted per username and per client address in
//! PostgreSQL, so every server process shares the same allowance; past the limit, sign-in
//! answers 429 with `Retry-After` until the window ends.

use sqlx::PgConnection;

use crate::error::{AppError, AppResult};

/// Failures allowed for one username within the window.
pub const MAX_FAILURES_PER_USERNAME: i32 = 5;
/// Failures allowed from one address within the window (several people may share one).
pub const MAX_FAILURES_PER_ADDRESS: i32 = 20;
/// Length of the counting window, in seconds.
pub const WINDOW_SECONDS: f64 = 15.0 * 60.0;

/// The throttling keys of one sign-in attempt, with their limits.
pub fn keys(username: &str, address: Option<std::net::IpAddr>) -> Vec<(String, i32)> {
    let mut keys = vec![(
        format!("user:{}", username.to_lowercase()),
        MAX_FAILURES_PER_USERNAME,
    )];
    if let Some(addr) = address {
        keys.push((format!("addr:{addr}"), MAX_FAILURES_PER_ADDRESS));
    }
    keys
}

/// Fails with 429 when any key has used up its allowance in the current window.
pub async fn check(conn: &mut PgConnection, keys: &[(String, i32)]) -> AppResult<()> {
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    let rows: Vec<(String, i32, f64)> = sqlx::query_as(
        "SELECT key, failures,
                EXTRACT(EPOCH FROM (window_started_at + make_interval(secs => $2) - now()))::float8
         FROM login_failures WHERE key = ANY($1)",
    )
    .bind(&names)
    .bind(WINDOW_SECONDS)
    .fetch_all(conn)
    .await?;
    let retry_after = rows
        .iter()
        .filter(|(key, failures, remaining)| {
            let limit = keys
                .iter()
                .find(|(k, _)| k == key)
                .map_or(i32::MAX, |(_, l)| *l);
            *failures >= limit && *remaining > 0.0
        })
        .map(|(_, _, remaining)| remaining.ceil() as u64)
        .max();
    match retry_after {
        Some(secs) => Err(AppError::TooManyRequests {
            retry_after: secs.max(1),
        }),
        None => Ok(()),
    }
}

/// Counts one failure against every key, starting a new window where the old one ended.
pub async fn record_failure(conn: &mut PgConnection, keys: &[(String, i32)]) -> sqlx::Result<()> {
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    sqlx::query(
        "INSERT INTO login_failures (key, failures, window_started_at)
         SELECT k, 1, now() FROM unnest($1::text[]) AS k
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN login_failures.window_started_at < now() - make_interval(secs => $2)
                           THEN 1 ELSE login_failures.failures + 1 END,
           window_started_at = CASE WHEN login_failures.window_started_at < now() - make_interval(secs => $2)
                           THEN now() ELSE login_failures.window_started_at END",
    )
    .bind(&names)
    .bind(WINDOW_SECONDS)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the failures of a username after it signed in successfully.
pub async fn clear_username(conn: &mut PgConnection, username: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(format!("user:{}", username.to_lowercase()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes counters whose window has ended.
pub async fn prune(conn: &mut PgConnection) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM login_failures WHERE window_started_at < now() - make_interval(secs => $1)",
    )
    .bind(WINDOW_SECONDS)
    .execute(conn)
    .await?
    .rows_affected())
}
