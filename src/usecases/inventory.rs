//! Inventory use cases shared by the API and the pages: creating, changing and deleting
//! regions, devices and credentials, a region's manual health, bulk region assignment.
//!
//! Each function finds the object in the caller's scope first (another customer's object is
//! "not found", whatever the caller's role or body), then checks the role, then validates,
//! and runs its statements in one transaction. Moving an object to another customer is
//! refused on the `customer` field, whichever adapter sent it.

use sqlx::{PgConnection, PgPool};

use crate::auth::{AuthUser, Role};
use crate::credentials::{self, Credential, CredentialInput};
use crate::crypto::SecretBox;
use crate::customers;
use crate::devices::{self, BulkTarget, Device, DeviceInput};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::regions::{self, Region, RegionInput};
use crate::snapshots::{self, HostKey};

/// Joins the errors an adapter met while reading its input (`read`, e.g. a form's port that
/// is not a number) with validation's, so that one submission shows every problem.
fn checked<T>(validated: Result<T, FieldErrors>, read: FieldErrors) -> AppResult<T> {
    match validated {
        Ok(value) if read.is_empty() => Ok(value),
        Ok(_) => Err(AppError::Validation(read)),
        Err(mut errors) => {
            errors.extend(read);
            Err(AppError::Validation(errors))
        }
    }
}

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

/// `found` if the user has `role`: visibility first, so that another customer's object is a
/// 404 for everyone, and only a visible one can be a 403.
fn allowed<T>(user: &AuthUser, role: Role, found: T) -> AppResult<T> {
    user.require(role)?;
    Ok(found)
}

/// A region the user may change (admin), for an edit or delete page.
pub async fn region_to_change(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Region> {
    let mut conn = pool.acquire().await?;
    allowed(
        user,
        Role::Admin,
        regions::get(&mut conn, &user.scope(), id).await?,
    )
}

/// A device the user may change (admin), for an edit or delete page.
pub async fn device_to_change(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Device> {
    let mut conn = pool.acquire().await?;
    allowed(
        user,
        Role::Admin,
        devices::get(&mut conn, &user.scope(), id).await?,
    )
}

/// A credential the user may change (admin), for an edit page.
pub async fn credential_to_change(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
) -> AppResult<Credential> {
    let mut conn = pool.acquire().await?;
    allowed(
        user,
        Role::Admin,
        credentials::get(&mut conn, &user.scope(), id).await?,
    )
}

/// Creates a region (admin) for the customer asked for, or the user's only one.
pub async fn create_region(
    pool: &PgPool,
    user: &AuthUser,
    input: &RegionInput,
    read: FieldErrors,
) -> AppResult<Region> {
    user.require(Role::Admin)?;
    let changes = checked(input.validate(true), read)?;
    let mut tx = pool.begin().await?;
    let customer = customers::for_new_object(&mut tx, user, input.customer).await?;
    let region = regions::create(&mut tx, customer, &changes).await?;
    tx.commit().await?;
    Ok(region)
}

/// Changes a region (admin): every field when `complete` (PUT, a form), else those given.
pub async fn update_region(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    input: &RegionInput,
    complete: bool,
    read: FieldErrors,
) -> AppResult<Region> {
    let mut tx = pool.begin().await?;
    let current = allowed(
        user,
        Role::Admin,
        regions::get(&mut tx, &user.scope(), id).await?,
    )?;
    same_customer(input.customer, current.customer_id, "region")?;
    let changes = checked(input.validate(complete), read)?;
    let region = regions::update(&mut tx, &user.scope(), id, &changes).await?;
    tx.commit().await?;
    Ok(region)
}

/// Deletes a region (admin). Its devices stay, without a region; tasks still queued for it
/// move to the default queue.
pub async fn delete_region(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Region> {
    let mut tx = pool.begin().await?;
    allowed(
        user,
        Role::Admin,
        regions::get(&mut tx, &user.scope(), id).await?,
    )?;
    let region = regions::delete(&mut tx, &user.scope(), id).await?;
    tx.commit().await?;
    Ok(region)
}

/// Sets a region's health by hand (admin), as the seed's operators did.
pub async fn set_region_health(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    status: Option<&str>,
    message: Option<&str>,
) -> AppResult<Region> {
    let mut tx = pool.begin().await?;
    allowed(
        user,
        Role::Admin,
        regions::get(&mut tx, &user.scope(), id).await?,
    )?;
    let (status, message) =
        regions::validate_health(status, message).map_err(AppError::Validation)?;
    let region = regions::set_health(&mut tx, &user.scope(), id, status, &message).await?;
    tx.commit().await?;
    Ok(region)
}

/// Creates a device (admin).
pub async fn create_device(
    pool: &PgPool,
    user: &AuthUser,
    input: &DeviceInput,
    read: FieldErrors,
) -> AppResult<Device> {
    user.require(Role::Admin)?;
    let changes = checked(input.validate(true), read)?;
    let mut tx = pool.begin().await?;
    let customer = customers::for_new_object(&mut tx, user, input.customer).await?;
    let device = devices::create(&mut tx, customer, &changes).await?;
    tx.commit().await?;
    Ok(device)
}

/// Changes a device: operators may move it between regions, everything else is an
/// admin's.
pub async fn update_device(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    input: &DeviceInput,
    complete: bool,
    read: FieldErrors,
) -> AppResult<Device> {
    let mut tx = pool.begin().await?;
    let current = devices::get(&mut tx, &user.scope(), id).await?;
    let changes = checked(input.validate(complete), read)?;
    if !complete && changes.only_region() {
        user.require(Role::Operator)?;
    } else {
        user.require(Role::Admin)?;
    }
    same_customer(input.customer, current.customer_id, "device")?;
    let device = devices::update(&mut tx, &user.scope(), id, &changes).await?;
    tx.commit().await?;
    Ok(device)
}

/// Deletes a device (admin).
pub async fn delete_device(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Device> {
    let mut tx = pool.begin().await?;
    allowed(
        user,
        Role::Admin,
        devices::get(&mut tx, &user.scope(), id).await?,
    )?;
    let device = devices::delete(&mut tx, &user.scope(), id).await?;
    tx.commit().await?;
    Ok(device)
}

/// Trusts the host key a device presented last (admin).
pub async fn accept_host_key(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<HostKey> {
    let mut tx = pool.begin().await?;
    allowed(
        user,
        Role::Admin,
        devices::get(&mut tx, &user.scope(), id).await?,
    )?;
    let key = snapshots::accept_host_key(&mut tx, &user.scope(), id).await?;
    tx.commit().await?;
    Ok(key)
}

/// The region a bulk assignment moves devices to (`None`: no region), which must be visible.
async fn bulk_region(
    conn: &mut PgConnection,
    user: &AuthUser,
    region: Option<i64>,
) -> AppResult<Option<Region>> {
    let Some(id) = region else {
        return Ok(None);
    };
    match regions::get(conn, &user.scope(), id).await {
        Ok(region) => Ok(Some(region)),
        Err(AppError::NotFound) => Err(AppError::Validation(FieldErrors::single(
            "region",
            format!("No region with id {id}."),
        ))),
        Err(e) => Err(e),
    }
}

/// What a bulk assignment would do (operator): how many devices, and the target region.
pub async fn preview_bulk_assign(
    pool: &PgPool,
    user: &AuthUser,
    target: &BulkTarget,
    region: Option<i64>,
) -> AppResult<(i64, Option<Region>)> {
    user.require(Role::Operator)?;
    let mut conn = pool.acquire().await?;
    let region = bulk_region(&mut conn, user, region).await?;
    let count = match target {
        BulkTarget::Matching(filter) => devices::count(&mut conn, &user.scope(), filter).await?,
        BulkTarget::Ids(ids) => ids.len() as i64,
    };
    Ok((count, region))
}

/// Assigns many devices to a region, or to none, in one statement (operator); returns how
/// many changed and the region.
pub async fn bulk_assign(
    pool: &PgPool,
    user: &AuthUser,
    target: &BulkTarget,
    region: Option<i64>,
) -> AppResult<(u64, Option<Region>)> {
    user.require(Role::Operator)?;
    let mut tx = pool.begin().await?;
    let region = bulk_region(&mut tx, user, region).await?;
    let to = region.as_ref().map(|r| (r.id, r.customer_id));
    let updated = devices::bulk_assign_region(&mut tx, &user.scope(), target, to).await?;
    tx.commit().await?;
    Ok((updated, region))
}

/// Creates a credential (admin); its passwords are encrypted at rest.
pub async fn create_credential(
    pool: &PgPool,
    secrets: &SecretBox,
    user: &AuthUser,
    input: &CredentialInput,
    read: FieldErrors,
) -> AppResult<Credential> {
    user.require(Role::Admin)?;
    let changes = checked(input.validate(true), read)?;
    let mut tx = pool.begin().await?;
    let customer = customers::for_new_object(&mut tx, user, input.customer).await?;
    let credential = credentials::create(&mut tx, secrets, customer, &changes).await?;
    tx.commit().await?;
    Ok(credential)
}

/// Changes a credential (admin); an omitted password is kept.
pub async fn update_credential(
    pool: &PgPool,
    secrets: &SecretBox,
    user: &AuthUser,
    id: i64,
    input: &CredentialInput,
    complete: bool,
    read: FieldErrors,
) -> AppResult<Credential> {
    let mut tx = pool.begin().await?;
    let current = allowed(
        user,
        Role::Admin,
        credentials::get(&mut tx, &user.scope(), id).await?,
    )?;
    same_customer(input.customer, current.customer_id, "credential")?;
    let changes = checked(input.validate(complete), read)?;
    let credential = credentials::update(&mut tx, secrets, &user.scope(), id, &changes).await?;
    tx.commit().await?;
    Ok(credential)
}

/// Deletes a credential (admin); refused while devices use it.
pub async fn delete_credential(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Credential> {
    let mut tx = pool.begin().await?;
    let credential = allowed(
        user,
        Role::Admin,
        credentials::get(&mut tx, &user.scope(), id).await?,
    )?;
    credentials::delete(&mut tx, &user.scope(), id).await?;
    tx.commit().await?;
    Ok(credential)
}
