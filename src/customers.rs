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

/// The customer a new object of `user` belongs to: the one asked for (which the user must
/// see), or the user's only customer when none is given.
pub async fn for_new_object(
    conn: &mut PgConnection,
    user: &crate::auth::AuthUser,
    requested: Option<i64>,
) -> AppResult<i64> {
    match requested {
        Some(id) => {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)")
                    .bind(id)
                    .fetch_one(conn)
                    .await?;
            if exists && user.can_see_customer(id) {
                Ok(id)
            } else {
                Err(crate::error::AppError::Validation(FieldErrors::single(
                    "customer",
                    format!("No customer with id {id}."),
                )))
            }
        }
        None if user.customers.len() == 1 => Ok(user.customers[0].id),
        None => Err(crate::error::AppError::Validation(FieldErrors::single(
            "customer",
            "This field is required: you belong to more than one customer (or none).",
        ))),
    }
}

/// Every customer, by name.
pub async fn all(conn: &mut PgConnection) -> AppResult<Vec<crate::auth::CustomerRef>> {
    Ok(
        sqlx::query_as("SELECT id, name FROM customers ORDER BY name")
            .fetch_all(conn)
            .await?,
    )
}
