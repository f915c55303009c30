//! Devices: the routers and switches jobs run on, each optionally in a region.

use std::net::IpAddr;

use serde::Serialize;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::auth::Scope;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::{PageRequest, Total};
use crate::types::{HealthStatus, Reachability};

mod export;
mod filter;
mod input;

pub use export::CSV_COLUMNS;
use export::CsvRows;
pub use filter::{
    CredentialFilter, DeviceFilter, FILTERS, MAX_VALUES, MULTI_VALUED, RegionFilter, SORTS,
    push_exact_matches,
};
use filter::{order_by, push_scope};
pub use input::{BulkEdit, BulkEditInput, DeviceChanges, DeviceInput};

/// A device row, with its region's name and health for display.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Device {
    /// Id.
    pub id: i64,
    /// Owning customer.
    #[serde(rename = "customer")]
    pub customer_id: i64,
    /// Unique per customer.
    pub hostname: String,
    /// Management address (IPv4 or IPv6).
    #[schema(value_type = String, example = "192.0.2.10")]
    pub mgmt_ip: IpAddr,
    /// SSH port.
    pub port: i32,
    /// Vendor ("cisco", "juniper", "arista", …).
    pub vendor: String,
    /// Platform ("ios", "junos", "eos", …).
    pub platform: String,
    /// Role ("core", "edge", …).
    pub role: String,
    /// Site ("par1").
    pub site: String,
    /// Free tags.
    pub tags: Vec<String>,
    /// Credential used to sign in.
    #[serde(rename = "credential")]
    pub credential_id: Option<i64>,
    /// Disabled devices are never targeted by jobs.
    pub enabled: bool,
    /// Region, if assigned; jobs on the device are routed to its queue.
    #[serde(rename = "region")]
    pub region_id: Option<i64>,
    /// Result of the last reachability check.
    pub reachability_status: Reachability,
    /// When it was checked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_reachability_check: Option<OffsetDateTime>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The region's name (UI).
    #[serde(skip)]
    pub region_name: Option<String>,
    /// The region's identifier (UI).
    #[serde(skip)]
    pub region_identifier: Option<String>,
    /// The region's health (UI).
    #[serde(skip)]
    pub region_health: Option<HealthStatus>,
}

/// The columns of a [`Device`], from [`devices_from!`].
macro_rules! device_columns {
    () => {
        "SELECT d.id, d.customer_id, d.hostname, d.mgmt_ip, d.port, d.vendor,
        d.platform, d.role, d.site, d.tags, d.credential_id, d.enabled, a.region_id,
        d.reachability_status, d.last_reachability_check, d.created_at, d.updated_at,
        r.name AS region_name, r.identifier AS region_identifier, r.health_status AS region_health"
    };
}

/// Devices with their assignments (`d`, `a`) and regions (`r`).
macro_rules! devices_from {
    () => {
        " FROM devices d JOIN device_assignments a ON a.device_id = d.id
    LEFT JOIN regions r ON r.id = a.region_id"
    };
}

const SELECT: &str = concat!(device_columns!(), devices_from!());

/// Counts devices in scope matching `filter`.
pub async fn count(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &DeviceFilter,
) -> AppResult<i64> {
    let mut qb = QueryBuilder::new("");
    push_count(&mut qb, scope, filter, None);
    Ok(qb
        .build_query_scalar()
        .persistent(crate::db::persistent(filter.q.is_none()))
        .fetch_one(conn)
        .await?)
}

/// Appends a statement counting the devices in scope that match `filter`, up to `cap` + 1
/// when a cap is given.
fn push_count(
    qb: &mut QueryBuilder<Postgres>,
    scope: &Scope,
    filter: &DeviceFilter,
    cap: Option<i64>,
) {
    if !filter.has_device_conditions() {
        // The counters the triggers keep per customer and region are exact, and cost the
        // same at a million devices as at ten.
        qb.push("SELECT COALESCE(sum(c.devices), 0)::bigint FROM device_counts c WHERE true");
        push_scope(qb, scope, "c");
        filter.push_region_match(qb, "c");
        return;
    }
    qb.push(if cap.is_some() {
        "SELECT count(*) FROM (SELECT 1"
    } else {
        "SELECT count(*)"
    });
    // Every device has exactly one assignment row (a trigger adds it with the device, and
    // it goes only with the device): without a region filter, the count needs no join, and
    // the filter's index alone answers it.
    if filter.region.is_some() {
        qb.push(" FROM devices d JOIN device_assignments a ON a.device_id = d.id WHERE true");
    } else {
        qb.push(" FROM devices d WHERE true");
    }
    push_scope(qb, scope, "d");
    filter.push_conditions(qb, scope);
    if let Some(cap) = cap {
        // The cap is a constant of the statement's text, so every run plans for it.
        qb.push(format_args!(" LIMIT {}) AS matching", cap + 1));
    }
}

// A text search runs unprepared (`persistent(false)`), so that PostgreSQL plans it for
// the pattern given: the cached generic plan, chosen after five runs, cannot tell a prefix
// that matches 256 devices from one that matches a million, and walked every device in
// hostname order for what the address or trigram index answers in milliseconds. Exact
// filters (site, role, vendor, region) keep their prepared statements, whose generic plans
// follow the right indexes and save the planning (a quarter of the site filter's time).

/// Where the device list stops counting the matches of a text search (`q`): a search that
/// matches most of a million devices would otherwise cost seconds to count. Lists without
/// `q` count exactly.
pub const COUNT_CAP: i64 = 10_000;

/// The cap of [`COUNT_CAP`] for `filter`'s count: only text searches have one.
fn count_cap(filter: &DeviceFilter) -> Option<i64> {
    filter.q.is_some().then_some(COUNT_CAP)
}

/// The total of a list from a count made up to `cap` + 1.
fn total(counted: i64, cap: Option<i64>) -> Total {
    match cap {
        Some(cap) => Total {
            count: counted.min(cap),
            capped: counted > cap,
        },
        None => Total::exact(counted),
    }
}

/// A listed device with the list's total, counted by the same statement.
#[derive(FromRow)]
struct Counted {
    #[sqlx(flatten)]
    device: Device,
    total: i64,
}

/// A page of devices in scope matching `filter`, sorted by `sort` (see [`SORTS`]; a
/// leading `-` reverses), and how many match (see [`COUNT_CAP`]).
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &DeviceFilter,
    sort: &str,
    page: PageRequest,
) -> AppResult<(Vec<Device>, Total)> {
    if sort.trim_start_matches('-') == "region" && *filter == DeviceFilter::default() {
        return list_by_region(conn, scope, sort.starts_with('-'), page).await;
    }
    // The total is a subquery of the page's statement (PostgreSQL runs it once): one round
    // trip, not two. Only a page past the end has no row to carry it.
    let cap = count_cap(filter);
    let mut qb = QueryBuilder::new(concat!(device_columns!(), ", ("));
    push_count(&mut qb, scope, filter, cap);
    qb.push(concat!(") AS total", devices_from!(), " WHERE true"));
    push_scope(&mut qb, scope, "d");
    filter.push_conditions(&mut qb, scope);
    qb.push(order_by(sort));
    page.push_limit(&mut qb);
    let rows: Vec<Counted> = qb
        .build_query_as()
        .persistent(crate::db::persistent(filter.q.is_none()))
        .fetch_all(&mut *conn)
        .await?;
    let counted = match rows.first() {
        Some(row) => row.total,
        None if page.offset() == 0 => 0,
        None => {
            let mut qb = QueryBuilder::new("");
            push_count(&mut qb, scope, filter, cap);
            qb.build_query_scalar()
                .persistent(crate::db::persistent(filter.q.is_none()))
                .fetch_one(conn)
                .await?
        }
    };
    let rows = rows.into_iter().map(|r| r.device).collect();
    Ok((rows, total(counted, cap)))
}

/// Writes every device in scope matching `filter`, in `sort` order, to `out` as CSV
/// ([`CSV_COLUMNS`]) in chunks of about `chunk` bytes, as PostgreSQL sends the rows, without
/// holding the list in memory. One statement, so the rows are those of one snapshot. Stops
/// early, without an error, when the reader hangs up.
pub async fn export_csv(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &DeviceFilter,
    sort: &str,
    chunk: usize,
    out: &tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
) -> AppResult<()> {
    use futures::TryStreamExt as _;

    let mut qb = QueryBuilder::new(SELECT);
    qb.push(" WHERE true");
    push_scope(&mut qb, scope, "d");
    filter.push_conditions(&mut qb, scope);
    qb.push(order_by(sort));
    let mut rows = qb
        .build_query_as::<Device>()
        .persistent(crate::db::persistent(filter.q.is_none()))
        .fetch(conn);
    let mut csv = CsvRows::new();
    while let Some(device) = rows.try_next().await? {
        csv.push(export::Row {
            id: device.id,
            hostname: &device.hostname,
            mgmt_ip: device.mgmt_ip.to_string(),
            port: device.port,
            vendor: &device.vendor,
            platform: &device.platform,
            role: &device.role,
            site: &device.site,
            tags: &device.tags,
            enabled: device.enabled,
            region: device.region_identifier.as_deref(),
            credential: device.credential_id,
            reachability: device.reachability_status.as_str(),
            last_reachability_check: device.last_reachability_check,
            updated_at: device.updated_at,
        });
        if csv.len() >= chunk && out.send(Ok(csv.take())).await.is_err() {
            return Ok(());
        }
    }
    let _ = out.send(Ok(csv.take())).await;
    Ok(())
}

/// The ids and hostnames of the devices in scope among `ids`, by hostname (at most 10,000).
pub async fn hostnames(
    conn: &mut PgConnection,
    scope: &Scope,
    ids: &[i64],
) -> AppResult<Vec<(i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, hostname FROM devices
         WHERE id = ANY($1) AND ($2::bigint[] IS NULL OR customer_id = ANY($2))
         ORDER BY hostname LIMIT 10000",
    )
    .bind(ids)
    .bind(scope.ids())
    .fetch_all(conn)
    .await?)
}

/// Devices with the same region name, and how many there are.
#[derive(FromRow)]
struct RegionBucket {
    region_ids: Vec<Option<i64>>,
    devices: i64,
}

/// A page of every device in scope sorted by region name (devices without a region first, or
/// last when reversed), then hostname. Sorting a million joined rows for each page took half
/// a second; instead the counters give each region's size, the page is located among the
/// regions in name order, and only the one or two regions it falls in are read, each along
/// its index in hostname order. The order is the one [`order_by`] gives for `region`.
async fn list_by_region(
    conn: &mut PgConnection,
    scope: &Scope,
    desc: bool,
    page: PageRequest,
) -> AppResult<(Vec<Device>, Total)> {
    let mut qb = QueryBuilder::new(
        "SELECT array_agg(c.region_id) AS region_ids, sum(c.devices)::bigint AS devices
         FROM device_counts c LEFT JOIN regions r ON r.id = c.region_id
         WHERE c.devices > 0",
    );
    push_scope(&mut qb, scope, "c");
    qb.push(if desc {
        " GROUP BY r.name ORDER BY r.name DESC NULLS LAST"
    } else {
        " GROUP BY r.name ORDER BY r.name NULLS FIRST"
    });
    let buckets: Vec<RegionBucket> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let total = buckets.iter().map(|b| b.devices).sum();
    let mut skip = page.offset();
    let mut rows = Vec::new();
    for bucket in buckets {
        let wanted = page.page_size - rows.len() as i64;
        if wanted == 0 {
            break;
        }
        if skip >= bucket.devices {
            skip -= bucket.devices;
            continue;
        }
        let mut qb = QueryBuilder::new(SELECT);
        qb.push(" WHERE true");
        push_scope(&mut qb, scope, "d");
        push_scope(&mut qb, scope, "a");
        let ids: Vec<i64> = bucket.region_ids.iter().flatten().copied().collect();
        match ids.as_slice() {
            [] => qb.push(" AND a.region_id IS NULL"),
            [one] => qb.push(" AND a.region_id = ").push_bind(*one),
            _ => qb.push(" AND a.region_id = ANY(").push_bind(ids).push(")"),
        };
        // The assignment's copy of the hostname, which its region index is ordered by.
        qb.push(" ORDER BY a.hostname, a.customer_id LIMIT ")
            .push_bind(wanted)
            .push(" OFFSET ")
            .push_bind(skip);
        rows.extend(qb.build_query_as::<Device>().fetch_all(&mut *conn).await?);
        skip = 0;
    }
    Ok((rows, Total::exact(total)))
}

/// One device in scope; 404 otherwise.
pub async fn get(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Device> {
    let mut qb = QueryBuilder::new(SELECT);
    qb.push(" WHERE d.id = ").push_bind(id);
    push_scope(&mut qb, scope, "d");
    qb.build_query_as::<Device>()
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::NotFound)
}

/// Distinct non-empty values (lowercased) of a column in scope, for filter suggestions; at
/// most 500. For one customer this walks the `(customer_id, lower(column), hostname)` index
/// value by value (a "skip scan"), so it costs one probe per distinct value rather than a
/// scan of every device.
pub async fn distinct_values(
    conn: &mut PgConnection,
    scope: &Scope,
    column: &str,
) -> AppResult<Vec<String>> {
    let column = match column {
        "site" => "site",
        "role" => "role",
        _ => "vendor",
    };
    let customers: Vec<i64> = match scope.ids() {
        Some(ids) => ids.to_vec(),
        None => {
            sqlx::query_scalar("SELECT id FROM customers ORDER BY id LIMIT 50")
                .fetch_all(&mut *conn)
                .await?
        }
    };
    let sql = format!(
        "WITH RECURSIVE walk AS (
            (SELECT lower({column}) AS v FROM devices
             WHERE customer_id = $1 AND lower({column}) > '' ORDER BY lower({column}) LIMIT 1)
            UNION ALL
            SELECT (SELECT lower({column}) FROM devices
                    WHERE customer_id = $1 AND lower({column}) > walk.v
                    ORDER BY lower({column}) LIMIT 1)
            FROM walk WHERE walk.v IS NOT NULL
         )
         SELECT v FROM walk WHERE v IS NOT NULL LIMIT 500"
    );
    let mut values = Vec::new();
    for customer in customers {
        let found: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .bind(customer)
            .fetch_all(&mut *conn)
            .await?;
        values.extend(found);
    }
    values.sort();
    values.dedup();
    values.truncate(500);
    Ok(values)
}

/// Checks that the referenced region and credential exist and belong to `customer_id`;
/// anything else is "no such …" on that field, whoever owns it.
async fn check_references(
    conn: &mut PgConnection,
    customer_id: i64,
    c: &DeviceChanges,
) -> AppResult<()> {
    let (region, credential) = (c.region.flatten(), c.credential.flatten());
    let (region_ok, credential_ok): (bool, bool) = sqlx::query_as(
        "SELECT $1::bigint IS NULL
                OR EXISTS (SELECT 1 FROM regions WHERE id = $1 AND customer_id = $3),
                $2::bigint IS NULL
                OR EXISTS (SELECT 1 FROM credentials WHERE id = $2 AND customer_id = $3)",
    )
    .bind(region)
    .bind(credential)
    .bind(customer_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut e = FieldErrors::new();
    if let (false, Some(id)) = (region_ok, region) {
        e.add("region", format!("No region with id {id}."));
    }
    if let (false, Some(id)) = (credential_ok, credential) {
        e.add("credential", format!("No credential with id {id}."));
    }
    e.into_result()
}

/// Creates a device for `customer_id`: the row with its required fields, then the rest as
/// an update, so that both share one statement and its defaults are the table's.
pub async fn create(
    conn: &mut PgConnection,
    customer_id: i64,
    c: &DeviceChanges,
) -> AppResult<Device> {
    // The insert trigger creates the assignment row that `update` sets the region on.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO devices (customer_id, hostname, mgmt_ip) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(customer_id)
    .bind(&c.hostname)
    .bind(c.mgmt_ip)
    .fetch_one(&mut *conn)
    .await?;
    update(conn, &Scope::all(), id, c).await
}

async fn set_region(conn: &mut PgConnection, device_id: i64, region: Option<i64>) -> AppResult<()> {
    sqlx::query(
        "UPDATE device_assignments SET region_id = $2, assigned_at = now()
         WHERE device_id = $1 AND region_id IS DISTINCT FROM $2",
    )
    .bind(device_id)
    .bind(region)
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies changes to a device in scope.
pub async fn update(
    conn: &mut PgConnection,
    scope: &Scope,
    id: i64,
    c: &DeviceChanges,
) -> AppResult<Device> {
    let current = get(conn, scope, id).await?;
    check_references(conn, current.customer_id, c).await?;
    sqlx::query(
        "UPDATE devices SET
            hostname = COALESCE($2, hostname), mgmt_ip = COALESCE($3, mgmt_ip),
            port = COALESCE($4, port), vendor = COALESCE($5, vendor),
            platform = COALESCE($6, platform), role = COALESCE($7, role),
            site = COALESCE($8, site), tags = COALESCE($9, tags),
            credential_id = CASE WHEN $10 THEN $11 ELSE credential_id END,
            enabled = COALESCE($12, enabled),
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&c.hostname)
    .bind(c.mgmt_ip)
    .bind(c.port)
    .bind(&c.vendor)
    .bind(&c.platform)
    .bind(&c.role)
    .bind(&c.site)
    .bind(&c.tags)
    .bind(c.credential.is_some())
    .bind(c.credential.flatten())
    .bind(c.enabled)
    .execute(&mut *conn)
    .await?;
    if let Some(region) = c.region {
        set_region(conn, id, region).await?;
    }
    get(conn, scope, id).await
}

/// Deletes a device in scope.
pub async fn delete(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Device> {
    let device = get(conn, scope, id).await?;
    sqlx::query("DELETE FROM devices WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(device)
}

/// Which devices a bulk assignment touches.
#[derive(Debug, Clone)]
pub enum BulkTarget {
    /// These ids.
    Ids(Vec<i64>),
    /// Every device matching the filter, on every page.
    Matching(DeviceFilter),
}

/// Assigns devices in scope to `region` (or to none) in one statement; returns how many
/// devices now have that region, and the customers they belong to (for the audit trail).
/// With a region, only devices of the region's customer are touched; listed ids that are
/// not such devices are a 400 naming them.
pub async fn bulk_assign_region(
    conn: &mut PgConnection,
    scope: &Scope,
    target: &BulkTarget,
    region: Option<(i64, i64)>,
) -> AppResult<(u64, Vec<i64>)> {
    if let BulkTarget::Ids(ids) = target {
        let customer = region.map(|(_, customer_id)| customer_id);
        check_ids(conn, scope, ids, customer, "for this region's customer").await?;
    }
    // One statement on the narrow assignments table; the devices table is only read, and
    // only when the filter needs its columns.
    let mut qb = QueryBuilder::new("WITH moved AS (UPDATE device_assignments a SET region_id = ");
    qb.push_bind(region.map(|(id, _)| id))
        .push(", assigned_at = now() WHERE true");
    push_scope(&mut qb, scope, "a");
    if let Some((_, customer_id)) = region {
        qb.push(" AND a.customer_id = ").push_bind(customer_id);
    }
    match target {
        BulkTarget::Ids(ids) => {
            qb.push(" AND a.device_id = ANY(")
                .push_bind(ids.clone())
                .push(")");
        }
        BulkTarget::Matching(filter) => {
            filter.push_region_condition(&mut qb, scope);
            if filter.has_device_conditions() {
                qb.push(" AND a.device_id IN (SELECT d.id FROM devices d WHERE true");
                push_scope(&mut qb, scope, "d");
                filter.push_device_conditions(&mut qb);
                qb.push(")");
            }
        }
    }
    qb.push(
        " RETURNING a.customer_id)
         SELECT count(*), COALESCE(array_agg(DISTINCT customer_id), '{}') FROM moved",
    );
    let (count, customers): (i64, Vec<i64>) = qb
        .build_query_as()
        .persistent(crate::db::persistent(
            !matches!(target, BulkTarget::Matching(f) if f.q.is_some()),
        ))
        .fetch_one(conn)
        .await?;
    Ok((count as u64, customers))
}

/// Checks that every one of `ids` is a device in scope (of `customer`, when given); a 400
/// naming the others, "No such devices {whose}: …".
async fn check_ids(
    conn: &mut PgConnection,
    scope: &Scope,
    ids: &[i64],
    customer: Option<i64>,
    whose: &str,
) -> AppResult<()> {
    if ids.is_empty() {
        return Err(AppError::Validation(FieldErrors::single(
            "device_ids",
            "Select at least one device.",
        )));
    }
    let mut qb = QueryBuilder::new("SELECT i FROM unnest(");
    qb.push_bind(ids.to_vec())
        .push("::bigint[]) AS i WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = i");
    push_scope(&mut qb, scope, "d");
    if let Some(customer_id) = customer {
        qb.push(" AND d.customer_id = ").push_bind(customer_id);
    }
    qb.push(") ORDER BY i LIMIT 20");
    let unknown: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    if unknown.is_empty() {
        return Ok(());
    }
    let list = unknown
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(AppError::Validation(FieldErrors::single(
        "device_ids",
        format!("No such devices {whose}: {list}."),
    )))
}

/// Appends ` AND …` keeping the devices `d` of a bulk target.
fn push_target(qb: &mut QueryBuilder<Postgres>, scope: &Scope, target: &BulkTarget) {
    match target {
        BulkTarget::Ids(ids) => {
            qb.push(" AND d.id = ANY(").push_bind(ids.clone()).push(")");
        }
        BulkTarget::Matching(filter) => {
            filter.push_device_conditions(qb);
            if filter.region.is_some() {
                qb.push(" AND d.id IN (SELECT a.device_id FROM device_assignments a WHERE true");
                filter.push_region_condition(qb, scope);
                qb.push(")");
            }
        }
    }
}

/// Whether a statement on `target` should be prepared by name (see [`list`]).
fn named(target: &BulkTarget) -> bool {
    crate::db::persistent(!matches!(target, BulkTarget::Matching(f) if f.q.is_some()))
}

/// How many devices in scope a bulk target holds, and the first `limit` of them by hostname:
/// what a bulk edit's confirmation shows.
pub async fn bulk_preview(
    conn: &mut PgConnection,
    scope: &Scope,
    target: &BulkTarget,
    limit: i64,
) -> AppResult<(i64, Vec<Device>)> {
    let mut qb = QueryBuilder::new("SELECT count(*) FROM devices d WHERE true");
    push_scope(&mut qb, scope, "d");
    push_target(&mut qb, scope, target);
    let count: i64 = qb
        .build_query_scalar()
        .persistent(named(target))
        .fetch_one(&mut *conn)
        .await?;
    let mut qb = QueryBuilder::new(SELECT);
    qb.push(" WHERE true");
    push_scope(&mut qb, scope, "d");
    push_target(&mut qb, scope, target);
    qb.push(" ORDER BY d.hostname, d.customer_id LIMIT ")
        .push_bind(limit);
    let first = qb
        .build_query_as::<Device>()
        .persistent(named(target))
        .fetch_all(&mut *conn)
        .await?;
    Ok((count, first))
}

/// Applies `edit` to every device of `target` in scope: the device's own fields in one
/// statement, then the region (on the assignments table, in a second one, for exactly the
/// devices the first changed: the filter may match other devices once their site or role has
/// changed). Returns how many devices changed and their customers (for the audit trail).
/// Listed ids that are not devices in scope are a 400 naming them. `region` is the edit's
/// region as `(id, customer)` (`Some(None)`: none), resolved by the caller; a caller that
/// sets a credential or a region narrows `scope` to that object's customer first.
pub async fn bulk_edit(
    conn: &mut PgConnection,
    scope: &Scope,
    target: &BulkTarget,
    edit: &BulkEdit,
    region: Option<Option<(i64, i64)>>,
) -> AppResult<(u64, Vec<i64>)> {
    if let BulkTarget::Ids(ids) = target {
        check_ids(conn, scope, ids, None, "in this customer").await?;
    }
    if !edit.changes_devices() {
        let Some(region) = region else {
            return Ok((0, Vec::new()));
        };
        return bulk_assign_region(conn, scope, target, region).await;
    }
    let mut qb = QueryBuilder::new("WITH changed AS (UPDATE devices d SET updated_at = now()");
    if let Some(credential) = edit.credential {
        qb.push(", credential_id = ").push_bind(credential);
    }
    for (column, value) in [
        ("site", &edit.site),
        ("role", &edit.role),
        ("vendor", &edit.vendor),
        ("platform", &edit.platform),
    ] {
        if let Some(value) = value {
            qb.push(format_args!(", {column} = "))
                .push_bind(value.clone());
        }
    }
    if let Some(enabled) = edit.enabled {
        qb.push(", enabled = ").push_bind(enabled);
    }
    if !edit.tags_add.is_empty() || !edit.tags_remove.is_empty() {
        qb.push(", tags = ARRAY(SELECT DISTINCT t FROM unnest(d.tags || ")
            .push_bind(edit.tags_add.clone())
            .push("::text[]) AS t WHERE t <> ALL(")
            .push_bind(edit.tags_remove.clone())
            .push("::text[]) ORDER BY t)");
    }
    qb.push(" WHERE true");
    push_scope(&mut qb, scope, "d");
    push_target(&mut qb, scope, target);
    qb.push(
        " RETURNING d.id, d.customer_id)
         SELECT COALESCE(array_agg(id), '{}'), COALESCE(array_agg(DISTINCT customer_id), '{}')
         FROM changed",
    );
    let (changed, customers): (Vec<i64>, Vec<i64>) = qb
        .build_query_as()
        .persistent(named(target))
        .fetch_one(&mut *conn)
        .await?;
    if let Some(region) = region
        && !changed.is_empty()
    {
        let changed = BulkTarget::Ids(changed.clone());
        bulk_assign_region(conn, scope, &changed, region).await?;
    }
    Ok((changed.len() as u64, customers))
}
