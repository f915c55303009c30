//! Use cases: what a caller may do, whichever adapter it comes through (JSON API, pages,
//! CLI). Each function checks the role, scopes what it reads to the caller's customers,
//! validates, and runs its statements in one transaction; adapters parse and render.
//!
//! Reads that need no role (lists, details) go straight to the domain modules with the
//! caller's [`crate::auth::Scope`]; every change goes through a function here.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::error::{AppError, AppResult, FieldErrors};

pub mod admin;
pub mod inventory;
pub mod jobs;

/// Runs `work` in one transaction, committed when it succeeds and rolled back (by dropping
/// it) when it fails, so a change is all or nothing.
pub(crate) async fn in_transaction<T>(
    pool: &PgPool,
    work: impl AsyncFnOnce(&mut PgConnection) -> AppResult<T>,
) -> AppResult<T> {
    let mut tx = crate::db::begin(pool).await?;
    let value = work(&mut tx).await?;
    commit(tx).await?;
    Ok(value)
}

/// Commits on a task of its own, so that a request dropped while its COMMIT is on the wire
/// (the client went away) does not leave sqlx believing the transaction open: it would then
/// send a ROLLBACK after the COMMIT, and PostgreSQL warns "there is no transaction in
/// progress". The transaction's outcome is the same either way; the client just no longer
/// waits for it.
pub(crate) async fn commit(tx: Transaction<'static, Postgres>) -> AppResult<()> {
    match tokio::spawn(tx.commit()).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(AppError::Internal(anyhow::anyhow!("committing: {e}"))),
    }
}

/// Joins the errors an adapter met while reading its input (`read`, e.g. a form's port that
/// is not a number) with validation's, so that one submission shows every problem.
pub(crate) fn checked<T>(validated: Result<T, FieldErrors>, read: FieldErrors) -> AppResult<T> {
    match validated {
        Ok(value) if read.is_empty() => Ok(value),
        Ok(_) => Err(AppError::Validation(read)),
        Err(mut errors) => {
            errors.extend(read);
            Err(AppError::Validation(errors))
        }
    }
}
