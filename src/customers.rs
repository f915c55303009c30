//! Customers (tenants). Every region, device, credential and job belongs to one.

use sqlx::PgConnection;

use crate::error::{AppResult, FieldErrors};

/// Returns the id of the customer called `name`, creating it when missing.
pub async fn ensure(conn: &mut PgConnection, name: &str) -> AppResult<(i64, bool)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(crate::error::AppError::Validation(FieldErrors::single(
            "name",
            "Enter a customer name of 1 to 200 characters.",
        )));
    }
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO customers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = created {
        return Ok((id, true));
    }
    let id = sqlx::query_scalar("SELECT id FROM customers WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await?;
    Ok((id, false))
}
