//! Customers (tenants). Every region, device, credential and job belongs to one.

use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;

use crate::auth::{Role, Scope};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::{PageRequest, scoped_page};

/// A customer, with what it holds (for the list and for refusing a delete).
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Customer {
    /// Id.
    pub id: i64,
    /// Name, unique.
    pub name: String,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its regions.
    #[serde(skip)]
    pub regions: i64,
    /// Its devices.
    #[serde(skip)]
    pub devices: i64,
    /// Its jobs.
    #[serde(skip)]
    pub jobs: i64,
    /// Its members.
    #[serde(skip)]
    pub members: i64,
}

const SELECT: &str = "SELECT c.id, c.name, c.created_at,
        (SELECT count(*) FROM regions r WHERE r.customer_id = c.id) AS regions,
        (SELECT count(*) FROM devices d WHERE d.customer_id = c.id) AS devices,
        (SELECT count(*) FROM jobs j WHERE j.customer_id = c.id) AS jobs,
        (SELECT count(*) FROM user_customers uc WHERE uc.customer_id = c.id) AS members
    FROM customers c WHERE ($1::bigint[] IS NULL OR c.id = ANY($1))";

/// A page of the customers in scope, by name, and how many there are.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    page: PageRequest,
) -> AppResult<(Vec<Customer>, i64)> {
    let rows = format!("{SELECT} ORDER BY c.name LIMIT $2 OFFSET $3");
    let table = ("customers", "id");
    scoped_page(conn, table, sqlx::AssertSqlSafe(rows), scope.ids(), page).await
}

/// One customer in scope.
pub async fn get(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Customer> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} AND c.id = $2")))
        .bind(scope.ids())
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::NotFound)
}

/// Checks a customer name: 1 to 200 characters, trimmed.
pub fn validate_name(name: Option<&str>) -> Result<String, FieldErrors> {
    let name = name.unwrap_or_default().trim();
    if name.is_empty() || name.chars().count() > 200 {
        Err(FieldErrors::single(
            "name",
            "Enter a customer name of 1 to 200 characters.",
        ))
    } else {
        Ok(name.to_string())
    }
}

/// Creates a customer; a taken name is a field error.
pub async fn create(conn: &mut PgConnection, name: &str) -> AppResult<Customer> {
    let id: i64 = sqlx::query_scalar("INSERT INTO customers (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    get(conn, &Scope::all(), id).await
}

/// Renames a customer.
pub async fn rename(conn: &mut PgConnection, id: i64, name: &str) -> AppResult<Customer> {
    sqlx::query("UPDATE customers SET name = $2 WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    get(conn, &Scope::all(), id).await
}

/// Deletes a customer that holds nothing; one that still has regions, devices, credentials
/// or jobs is refused, with the counts (memberships go with it).
pub async fn delete(conn: &mut PgConnection, id: i64) -> AppResult<Customer> {
    // Locked first: a region, device or credential being added meanwhile waits (its foreign
    // key check needs the row), so the counts below stay true until the delete.
    sqlx::query("SELECT id FROM customers WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let c = get(conn, &Scope::all(), id).await?;
    let credentials: i64 =
        sqlx::query_scalar("SELECT count(*) FROM credentials WHERE customer_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    if c.regions + c.devices + c.jobs + credentials > 0 {
        return Err(AppError::Validation(FieldErrors::single(
            "customer",
            format!(
                "{} still has {} region(s), {} device(s), {} credential(s) and {} job(s); \
                 delete them first.",
                c.name, c.regions, c.devices, credentials, c.jobs
            ),
        )));
    }
    sqlx::query("DELETE FROM customers WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(c)
}

/// A member of a customer.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Member {
    /// User id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Superuser.
    pub is_superuser: bool,
    /// May sign in.
    pub is_active: bool,
}

/// The members of a customer, by username.
pub async fn members(conn: &mut PgConnection, id: i64) -> AppResult<Vec<Member>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.username, u.role, u.is_superuser, u.is_active
         FROM users u JOIN user_customers uc ON uc.user_id = u.id
         WHERE uc.customer_id = $1 ORDER BY u.username",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// Returns the id of the customer called `name`, creating it when missing.
pub async fn ensure(conn: &mut PgConnection, name: &str) -> AppResult<(i64, bool)> {
    let name = validate_name(Some(name)).map_err(AppError::Validation)?;
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO customers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(&name)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = created {
        return Ok((id, true));
    }
    let id = sqlx::query_scalar("SELECT id FROM customers WHERE name = $1")
        .bind(&name)
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
