//! Inventory use cases shared by the API and the pages: creating, changing and deleting
//! regions, devices and credentials, a region's manual health, bulk region assignment.
//!
//! Each function finds the object in the caller's scope first (another customer's object is
//! "not found", whatever the caller's role or body), then checks the role, then validates,
//! and runs its statements in one transaction. Moving an object to another customer is
//! refused on the `customer` field, whichever adapter sent it.

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::{checked, in_transaction};
use crate::audit::{self, Action, Audited, Change, ObjectType, audited};
use crate::auth::{AuthUser, Role, Scope};
use crate::credentials::{self, Credential, CredentialInput};
use crate::crypto::SecretBox;
use crate::customers;
use crate::devices::{self, BulkEdit, BulkTarget, Device, DeviceInput};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::regions::{self, Region, RegionInput};
use crate::snapshots::{self, HostKey};

/// An object that belongs to one customer and is found in a caller's scope.
pub trait Owned: Audited + Sized {
    /// What it is called in messages ("region").
    const WHAT: &'static str;

    /// Its fields as the API shows them, to diff for the audit trail.
    fn fields(&self) -> Value;

    /// The object with this id in `scope`, else [`AppError::NotFound`].
    fn find(
        conn: &mut PgConnection,
        scope: &Scope,
        id: i64,
    ) -> impl Future<Output = AppResult<Self>> + Send;

    /// Its customer.
    fn customer_id(&self) -> i64;

    /// Deletes the object with this id in `scope`.
    fn remove(
        conn: &mut PgConnection,
        scope: &Scope,
        id: i64,
    ) -> impl Future<Output = AppResult<()>> + Send;
}

/// Implements [`Audited`] and [`Owned`] for a domain type from its audit kind, the field that names it, how
/// its API fields are read, and its scoped lookup.
macro_rules! owned {
    ($ty:ty, $object:expr, name: $name:ident, fields: $fields:expr, find: $find:path, delete: $delete:path) => {
        audited!($ty, $object, name: $name, customers: |o: &$ty| vec![o.customer_id]);

        impl Owned for $ty {
            const WHAT: &'static str = $object.as_str();

            fn fields(&self) -> Value {
                serde_json::to_value($fields(self)).unwrap_or_default()
            }

            async fn find(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Self> {
                $find(conn, scope, id).await
            }

            fn customer_id(&self) -> i64 {
                self.customer_id
            }

            async fn remove(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<()> {
                $delete(conn, scope, id).await.map(drop)
            }
        }
    };
}

owned!(Region, ObjectType::Region, name: name, fields: Region::to_json, find: regions::get, delete: regions::delete);
owned!(Device, ObjectType::Device, name: hostname, fields: std::convert::identity, find: devices::get, delete: devices::delete);
owned!(Credential, ObjectType::Credential, name: name, fields: std::convert::identity, find: credentials::get, delete: credentials::delete);

/// The object `id` if the user sees it and has `role`. Visibility comes first, so that
/// another customer's object is a 404 for everyone and only a visible one can be a 403.
async fn find_for<T: Owned>(
    conn: &mut PgConnection,
    user: &AuthUser,
    role: Role,
    id: i64,
) -> AppResult<T> {
    let found = T::find(conn, &user.scope(), id).await?;
    user.require(role)?;
    Ok(found)
}

/// Refuses a `customer` that is not the object's own.
fn same_customer<T: Owned>(asked: Option<i64>, current: &T) -> AppResult<()> {
    match asked {
        Some(c) if c != current.customer_id() => Err(AppError::Validation(FieldErrors::single(
            "customer",
            format!("A {} cannot move to another customer.", T::WHAT),
        ))),
        _ => Ok(()),
    }
}

/// Records in the audit trail that `user` did `action` to an object, from `before` to
/// `after` (`None` on the side where it did not exist), in the change's transaction.
/// `secrets` names the secret fields that were set: the row says only "changed".
async fn record<T: Owned>(
    tx: &mut PgConnection,
    user: &AuthUser,
    action: Action,
    (before, after): (Option<&T>, Option<&T>),
    secrets: &[&str],
) -> AppResult<()> {
    let Some(object) = after.or(before) else {
        return Ok(());
    };
    let fields = |o: Option<&T>| o.map_or(Value::Null, Owned::fields);
    let mut change = object.change(action, audit::diff(&fields(before), &fields(after)));
    for secret in secrets {
        change.changes[*secret] = json!("changed");
    }
    audit::record(tx, user, &change).await
}

/// Deletes an object (admin), recording it as it was.
async fn delete<T: Owned + Send>(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<T> {
    in_transaction(pool, async |tx| {
        let object: T = find_for(tx, user, Role::Admin, id).await?;
        T::remove(tx, &user.scope(), id).await?;
        record(tx, user, Action::Delete, (Some(&object), None), &[]).await?;
        Ok(object)
    })
    .await
}

/// Creates an object (admin) for the customer asked for, or the user's only one: the
/// validated `changes` are inserted and audited in one transaction. `secrets` names the
/// secret fields that were set.
async fn create<T: Owned + Send, C>(
    pool: &PgPool,
    user: &AuthUser,
    customer: Option<i64>,
    (changes, read): (Result<C, FieldErrors>, FieldErrors),
    insert: impl AsyncFnOnce(&mut PgConnection, i64, C) -> AppResult<T>,
    secrets: &[&str],
) -> AppResult<T> {
    user.require(Role::Admin)?;
    let changes = checked(changes, read)?;
    in_transaction(pool, async |tx| {
        let customer = customers::for_new_object(tx, user, customer).await?;
        let object = insert(tx, customer, changes).await?;
        record(tx, user, Action::Create, (None, Some(&object)), secrets).await?;
        Ok(object)
    })
    .await
}

/// An object the user may change (admin), for an edit or delete page.
pub async fn to_change<T: Owned>(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<T> {
    find_for(&mut *pool.acquire().await?, user, Role::Admin, id).await
}

/// Creates a region (admin) for the customer asked for, or the user's only one.
pub async fn create_region(
    pool: &PgPool,
    user: &AuthUser,
    input: &RegionInput,
    read: FieldErrors,
) -> AppResult<Region> {
    let insert = async |tx: &mut PgConnection, customer, changes| {
        regions::create(tx, customer, &changes).await
    };
    let changes = (input.validate(true), read);
    create(pool, user, input.customer, changes, insert, &[]).await
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
    in_transaction(pool, async |tx| {
        let current: Region = find_for(tx, user, Role::Admin, id).await?;
        same_customer(input.customer, &current)?;
        let changes = checked(input.validate(complete), read)?;
        let region = regions::update(tx, &user.scope(), id, &changes).await?;
        record(
            tx,
            user,
            Action::Update,
            (Some(&current), Some(&region)),
            &[],
        )
        .await?;
        Ok(region)
    })
    .await
}

/// Deletes a region (admin). Its devices stay, without a region; tasks still queued for it
/// move to the default queue.
pub async fn delete_region(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Region> {
    delete(pool, user, id).await
}

/// Sets a region's health by hand (admin), as the seed's operators did.
pub async fn set_region_health(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    status: Option<&str>,
    message: Option<&str>,
) -> AppResult<Region> {
    in_transaction(pool, async |tx| {
        let before: Region = find_for(tx, user, Role::Admin, id).await?;
        let (status, message) =
            regions::validate_health(status, message).map_err(AppError::Validation)?;
        let region = regions::set_health(tx, &user.scope(), id, status, &message).await?;
        record(
            tx,
            user,
            Action::Health,
            (Some(&before), Some(&region)),
            &[],
        )
        .await?;
        Ok(region)
    })
    .await
}

/// Creates a device (admin).
pub async fn create_device(
    pool: &PgPool,
    user: &AuthUser,
    input: &DeviceInput,
    read: FieldErrors,
) -> AppResult<Device> {
    let insert = async |tx: &mut PgConnection, customer, changes| {
        devices::create(tx, customer, &changes).await
    };
    let changes = (input.validate(true), read);
    create(pool, user, input.customer, changes, insert, &[]).await
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
    in_transaction(pool, async |tx| {
        let current: Device = find_for(tx, user, Role::Viewer, id).await?;
        let changes = checked(input.validate(complete), read)?;
        let moves_only = !complete && changes.only_region();
        user.require(if moves_only {
            Role::Operator
        } else {
            Role::Admin
        })?;
        same_customer(input.customer, &current)?;
        let device = devices::update(tx, &user.scope(), id, &changes).await?;
        record(
            tx,
            user,
            Action::Update,
            (Some(&current), Some(&device)),
            &[],
        )
        .await?;
        Ok(device)
    })
    .await
}

/// Deletes a device (admin).
pub async fn delete_device(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Device> {
    delete(pool, user, id).await
}

/// The bytes of a device export as they are produced; an error ends it early (the reader
/// sees a cut-off transfer, not a short file passed off as whole).
pub type Export = tokio_stream::wrappers::ReceiverStream<Result<Vec<u8>, std::io::Error>>;

/// Every device in the caller's scope matching `filter`, in `sort` order, as CSV
/// ([`devices::CSV_COLUMNS`]), streamed: rows leave in 32 KiB chunks as PostgreSQL sends
/// them, and a reader who stops reading stops the query. The connection is taken before
/// this returns, so a full pool is an error answer rather than an empty file.
pub async fn export_devices(
    pool: &PgPool,
    user: &AuthUser,
    filter: devices::DeviceFilter,
    sort: String,
) -> AppResult<Export> {
    const CHUNK: usize = 32 * 1024;
    let mut conn = pool.acquire().await?;
    let scope = user.scope();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let exported = devices::export_csv(&mut conn, &scope, &filter, &sort, CHUNK, &tx).await;
        if let Err(e) = exported {
            tracing::error!(error = %e, "device export failed");
            let _ = tx
                .send(Err(std::io::Error::other("the device export failed")))
                .await;
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Trusts the host key a device presented last (admin).
pub async fn accept_host_key(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<HostKey> {
    in_transaction(pool, async |tx| {
        let device: Device = find_for(tx, user, Role::Admin, id).await?;
        let before = snapshots::host_key(tx, &user.scope(), id).await?;
        let key = snapshots::accept_host_key(tx, &user.scope(), id).await?;
        let change = Change {
            object_type: ObjectType::Device,
            object_id: Some(id),
            object_repr: device.hostname,
            action: Action::Update,
            customer_ids: vec![device.customer_id],
            changes: json!({"ssh_host_key": [before.ssh_host_key, key.ssh_host_key]}),
        };
        audit::record(tx, user, &change).await?;
        Ok(key)
    })
    .await
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
    in_transaction(pool, async |tx| {
        let region = bulk_region(tx, user, region).await?;
        let to = region.as_ref().map(|r| (r.id, r.customer_id));
        let (updated, customer_ids) =
            devices::bulk_assign_region(tx, &user.scope(), target, to).await?;
        let which = target_json(target);
        let change = Change {
            object_type: ObjectType::Device,
            object_id: None,
            object_repr: format!("{updated} device(s)"),
            action: Action::BulkAssign,
            customer_ids,
            changes: json!({
                "region": [null, region.as_ref().map(|r| r.name.clone())],
                "count": updated,
                "target": which,
            }),
        };
        audit::record(tx, user, &change).await?;
        Ok((updated, region))
    })
    .await
}

/// A bulk target as the audit trail records it.
fn target_json(target: &BulkTarget) -> Value {
    match target {
        BulkTarget::Ids(ids) => json!({"device_ids": ids}),
        BulkTarget::Matching(filter) => {
            let pairs = filter
                .to_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)));
            json!({"filters": Value::Object(pairs.collect())})
        }
    }
}

/// How many devices a bulk edit's confirmation lists, with their old and new values.
pub const BULK_PREVIEW_ROWS: i64 = 20;

/// One changed field of one device in a bulk edit's confirmation.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    /// The field (`credential`, `site`, `tags`, …).
    pub field: &'static str,
    /// Its value now, as the list shows it.
    pub old: String,
    /// Its value after the edit.
    pub new: String,
}

/// A device in a bulk edit's confirmation.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PreviewRow {
    /// Device id.
    pub id: i64,
    /// Hostname.
    pub hostname: String,
    /// The fields the edit changes on it (those it would leave as they are are left out).
    pub changes: Vec<FieldChange>,
}

/// What a bulk edit would do: how many devices it touches, and the first
/// [`BULK_PREVIEW_ROWS`] of them by hostname with their old and new values.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BulkPlan {
    /// Devices the edit applies to.
    pub count: i64,
    /// The first of them.
    pub preview: Vec<PreviewRow>,
}

/// The objects a bulk edit sets, checked visible, and the scope it then works in: narrowed
/// to their customer, since a device may only get its own customer's credential and region.
struct BulkObjects {
    scope: Scope,
    credential: Option<Option<Credential>>,
    region: Option<Option<Region>>,
}

async fn bulk_objects(
    conn: &mut PgConnection,
    user: &AuthUser,
    edit: &BulkEdit,
) -> AppResult<BulkObjects> {
    // The region alone is an operator's change, as in a single device's form.
    user.require(if edit.changes_devices() {
        Role::Admin
    } else {
        Role::Operator
    })?;
    let credential = match edit.credential {
        Some(Some(id)) => match credentials::get(conn, &user.scope(), id).await {
            Ok(c) => Some(Some(c)),
            Err(AppError::NotFound) => {
                return Err(AppError::Validation(FieldErrors::single(
                    "credential",
                    format!("No credential with id {id}."),
                )));
            }
            Err(e) => return Err(e),
        },
        Some(None) => Some(None),
        None => None,
    };
    let region = match edit.region {
        Some(id) => Some(bulk_region(conn, user, id).await?),
        None => None,
    };
    let owners = [
        credential
            .as_ref()
            .and_then(|c| c.as_ref().map(|c| c.customer_id)),
        region
            .as_ref()
            .and_then(|r| r.as_ref().map(|r| r.customer_id)),
    ];
    let scope = match owners {
        [Some(a), Some(b)] if a != b => {
            return Err(AppError::Validation(FieldErrors::single(
                "region",
                "The region and the credential belong to different customers.",
            )));
        }
        [Some(customer), _] | [None, Some(customer)] => user.scope().narrowed_to(customer),
        [None, None] => user.scope(),
    };
    Ok(BulkObjects {
        scope,
        credential,
        region,
    })
}

/// The old → new values of the fields `edit` changes on `device`, as the list shows them
/// (credentials and regions by name).
async fn field_changes(
    conn: &mut PgConnection,
    scope: &Scope,
    device: &Device,
    edit: &BulkEdit,
    objects: &BulkObjects,
) -> AppResult<Vec<FieldChange>> {
    let mut out = Vec::new();
    let mut push = |field: &'static str, old: String, new: String| {
        if old != new {
            out.push(FieldChange { field, old, new });
        }
    };
    const NONE: &str = "none";
    if let Some(new) = &objects.credential {
        let old = match device.credential_id {
            Some(id) => credentials::get(conn, scope, id).await.map(|c| c.name)?,
            None => NONE.into(),
        };
        let new = new.as_ref().map_or(NONE.into(), |c| c.name.clone());
        push("credential", old, new);
    }
    for (field, old, new) in [
        ("site", &device.site, &edit.site),
        ("role", &device.role, &edit.role),
        ("vendor", &device.vendor, &edit.vendor),
        ("platform", &device.platform, &edit.platform),
    ] {
        if let Some(new) = new {
            push(field, old.clone(), new.clone());
        }
    }
    if let Some(new) = edit.enabled {
        let word = |b: bool| if b { "enabled" } else { "disabled" }.to_string();
        push("enabled", word(device.enabled), word(new));
    }
    if !edit.tags_add.is_empty() || !edit.tags_remove.is_empty() {
        let mut tags: Vec<String> = device
            .tags
            .iter()
            .chain(&edit.tags_add)
            .filter(|t| !edit.tags_remove.contains(t))
            .cloned()
            .collect();
        tags.sort();
        tags.dedup();
        push("tags", device.tags.join(", "), tags.join(", "));
    }
    if let Some(new) = &objects.region {
        let old = match device.region_id {
            Some(id) => regions::get(conn, scope, id).await.map(|r| r.name)?,
            None => NONE.into(),
        };
        push(
            "region",
            old,
            new.as_ref().map_or(NONE.into(), |r| r.name.clone()),
        );
    }
    Ok(out)
}

/// What a bulk edit would do (admin; operator for the region alone), without changing
/// anything: the count and the first devices with their old and new values.
pub async fn preview_bulk_edit(
    pool: &PgPool,
    user: &AuthUser,
    target: &BulkTarget,
    edit: &BulkEdit,
) -> AppResult<BulkPlan> {
    let mut conn = pool.acquire().await?;
    let objects = bulk_objects(&mut conn, user, edit).await?;
    let (count, first) =
        devices::bulk_preview(&mut conn, &objects.scope, target, BULK_PREVIEW_ROWS).await?;
    let mut preview = Vec::with_capacity(first.len());
    for device in &first {
        let changes = field_changes(&mut conn, &objects.scope, device, edit, &objects).await?;
        preview.push(PreviewRow {
            id: device.id,
            hostname: device.hostname.clone(),
            changes,
        });
    }
    Ok(BulkPlan { count, preview })
}

/// Applies a bulk edit (admin; operator for the region alone) in one transaction, and
/// records it; returns how many devices it changed.
pub async fn bulk_edit(
    pool: &PgPool,
    user: &AuthUser,
    target: &BulkTarget,
    edit: &BulkEdit,
) -> AppResult<u64> {
    in_transaction(pool, async |tx| {
        let objects = bulk_objects(tx, user, edit).await?;
        let region = objects
            .region
            .as_ref()
            .map(|r| r.as_ref().map(|r| (r.id, r.customer_id)));
        let (updated, customer_ids) =
            devices::bulk_edit(tx, &objects.scope, target, edit, region).await?;
        // `{field: [before, after]}` as for one device; the befores differ from device to
        // device, so they are null, as in a bulk assignment's entry.
        let name = |o: Option<&String>| o.map_or(Value::Null, |n| json!(n));
        let mut changes = serde_json::Map::new();
        let mut set = |field: &str, after: Value| {
            changes.insert(field.into(), json!([null, after]));
        };
        if let Some(c) = &objects.credential {
            set("credential", name(c.as_ref().map(|c| &c.name)));
        }
        for (field, value) in [
            ("site", &edit.site),
            ("role", &edit.role),
            ("vendor", &edit.vendor),
            ("platform", &edit.platform),
        ] {
            if let Some(v) = value {
                set(field, json!(v));
            }
        }
        if let Some(enabled) = edit.enabled {
            set("enabled", json!(enabled));
        }
        if !edit.tags_add.is_empty() {
            set("tags_add", json!(edit.tags_add));
        }
        if !edit.tags_remove.is_empty() {
            set("tags_remove", json!(edit.tags_remove));
        }
        if let Some(r) = &objects.region {
            set("region", name(r.as_ref().map(|r| &r.name)));
        }
        changes.insert("count".into(), json!(updated));
        changes.insert("target".into(), target_json(target));
        let change = Change {
            object_type: ObjectType::Device,
            object_id: None,
            object_repr: format!("{updated} device(s)"),
            action: Action::BulkEdit,
            customer_ids,
            changes: Value::Object(changes),
        };
        audit::record(tx, user, &change).await?;
        Ok(updated)
    })
    .await
}

/// Creates a credential (admin); its passwords are encrypted at rest.
pub async fn create_credential(
    pool: &PgPool,
    secrets: &SecretBox,
    user: &AuthUser,
    input: &CredentialInput,
    read: FieldErrors,
) -> AppResult<Credential> {
    let insert = async |tx: &mut PgConnection, customer, changes| {
        credentials::create(tx, secrets, customer, &changes).await
    };
    let changes = (input.validate(true), read);
    create(
        pool,
        user,
        input.customer,
        changes,
        insert,
        &input.secrets_given(),
    )
    .await
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
    in_transaction(pool, async |tx| {
        let current: Credential = find_for(tx, user, Role::Admin, id).await?;
        same_customer(input.customer, &current)?;
        let changes = checked(input.validate(complete), read)?;
        let credential = credentials::update(tx, secrets, &user.scope(), id, &changes).await?;
        let set = input.secrets_given();
        record(
            tx,
            user,
            Action::Update,
            (Some(&current), Some(&credential)),
            &set,
        )
        .await?;
        Ok(credential)
    })
    .await
}

/// Deletes a credential (admin); refused while devices use it.
pub async fn delete_credential(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Credential> {
    delete(pool, user, id).await
}
