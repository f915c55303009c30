//! A tower-sessions store over the application's own sqlx pool: one JSONB row per session.
//!
//! The published `tower-sessions-sqlx-store` pins an older sqlx and tower-sessions; this keeps
//! one sqlx version and one pool in the binary.

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::error::AppError;

/// Sessions in the `sessions` table.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    /// A store using `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// How a store error caused by an unreachable database begins, so that the caller can
/// answer 503 rather than 500 (tower-sessions carries store errors as strings).
pub const UNAVAILABLE: &str = "database unreachable: ";

fn backend(err: sqlx::Error) -> session_store::Error {
    if crate::db::is_unavailable(&err) {
        session_store::Error::Backend(format!("{UNAVAILABLE}{err}"))
    } else {
        session_store::Error::Backend(err.to_string())
    }
}

/// Ends the browser sessions of a user, but `except` (the caller's own); returns how many.
pub async fn end_sessions(
    conn: &mut PgConnection,
    id: i64,
    except: Option<&str>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM sessions WHERE data ->> 'user_id' = $1::text AND id IS DISTINCT FROM $2",
    )
    .bind(id.to_string())
    .bind(except)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The application error for a failed session operation.
pub fn session_error(context: &str, err: tower_sessions::session::Error) -> AppError {
    match err {
        tower_sessions::session::Error::Store(session_store::Error::Backend(message))
            if message.starts_with(UNAVAILABLE) =>
        {
            AppError::Unavailable(message)
        }
        other => AppError::Internal(anyhow::anyhow!("{context}: {other}")),
    }
}

fn encode(record: &Record) -> session_store::Result<serde_json::Value> {
    serde_json::to_value(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        // Ids are 128 random bits, so a collision is all but impossible; if one happens, draw
        // again rather than overwrite someone else's session.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    /// Updates a session that exists. tower-sessions creates new sessions (and those whose
    /// id was cycled) through `create`, so a missing row here was deleted meanwhile: its user
    /// was deactivated or signed out elsewhere while this request ran. Saving must not bring
    /// it back.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sqlx::query("UPDATE sessions SET data = $2, expiry_date = $3 WHERE id = $1")
            .bind(record.id.to_string())
            .bind(encode(record)?)
            .bind(record.expiry_date)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(serde_json::Value, OffsetDateTime)> = sqlx::query_as(
            "SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > now()",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|(data, expiry_date)| {
            Ok(Record {
                id: *id,
                data: serde_json::from_value(data)
                    .map_err(|e| session_store::Error::Decode(e.to_string()))?,
                expiry_date,
            })
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for PgSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expiry_date <= now()")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
