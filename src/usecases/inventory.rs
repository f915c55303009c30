//! Inventory use cases shared by the API and the pages: changing a region, a device or a
//! credential. Another customer's object is "not found"; moving an object to another
//! customer is refused on the `customer` field, whichever adapter sent it.

use sqlx::PgPool;

use crate::auth::{AuthUser, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::crypto::SecretBox;
use crate::devices::{self, Device, DeviceInput};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::regions::{self, Region, RegionInput};

/// Refuses a `customer` that is not the object's own.
fn same_customer(asked: Option<i64>, current: i64, what: &str) -> AppResult<()> {
    match asked {
        Some(c) if c != current => Err(AppError::Validation(FieldErrors::single(
            "customer",
            format!("A {what} cannot move to another customer."),
        ))),
        _ => Ok(()),
    }
}

/// Changes a region (admin): every field when `complete` (PUT, a form), else those given.
pub async fn update_region(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    input: &RegionInput,
    complete: bool,
) -> AppResult<Region> {
    user.require(Role::Admin)?;
    let mut conn = pool.acquire().await?;
    // 404 before 400: another customer's region does not exist, whatever the body says.
    let current = regions::get(&mut conn, &user.scope(), id).await?;
    same_customer(input.customer, current.customer_id, "region")?;
    let changes = input.validate(complete).map_err(AppError::Validation)?;
    regions::update(&mut conn, &user.scope(), id, &changes).await
}

/// Changes a device: operators may move it between regions, everything else is an
/// admin's.
pub async fn update_device(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    input: &DeviceInput,
    complete: bool,
) -> AppResult<Device> {
    let mut conn = pool.acquire().await?;
    let current = devices::get(&mut conn, &user.scope(), id).await?;
    let changes = input.validate(complete).map_err(AppError::Validation)?;
    if !complete && changes.only_region() {
        user.require(Role::Operator)?;
    } else {
        user.require(Role::Admin)?;
    }
    same_customer(input.customer, current.customer_id, "device")?;
    devices::update(&mut conn, &user.scope(), id, &changes).await
}

/// Changes a credential (admin); an omitted password is kept.
pub async fn update_credential(
    pool: &PgPool,
    secrets: &SecretBox,
    user: &AuthUser,
    id: i64,
    input: &CredentialInput,
    complete: bool,
) -> AppResult<Credential> {
    let mut conn = pool.acquire().await?;
    let current = credentials::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Admin)?;
    same_customer(input.customer, current.customer_id, "credential")?;
    let changes = input.validate(complete).map_err(AppError::Validation)?;
    credentials::update(&mut conn, secrets, &user.scope(), id, &changes).await
}
