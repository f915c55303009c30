//! Devices: the routers and switches jobs run on, each optionally in a region.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::auth::Scope;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::PageRequest;
use crate::types::{self, HealthStatus, Reachability};

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

/// Which devices a filter keeps by region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionFilter {
    /// Devices without a region (`region=none`).
    Unassigned,
    /// Devices of this region.
    Id(i64),
}

/// The device list's filters (`?region=&site=&role=&vendor=&q=`), also used by bulk
/// assignment. Text filters match case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// By region.
    pub region: Option<RegionFilter>,
    /// Exact site.
    pub site: Option<String>,
    /// Exact role.
    pub role: Option<String>,
    /// Exact vendor.
    pub vendor: Option<String>,
    /// Substring of the hostname, or prefix of the address.
    pub q: Option<String>,
}

/// Sort orders of the device list.
pub const SORTS: &[&str] = &[
    "hostname",
    "mgmt_ip",
    "site",
    "role",
    "vendor",
    "region",
    "updated_at",
];

impl DeviceFilter {
    /// Reads the filters from key/value pairs (a query string or a JSON object's entries),
    /// recording bad values. Unknown keys are ignored, empty values mean "no filter".
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, String)>,
        errors: &mut FieldErrors,
    ) -> Self {
        let mut f = Self::default();
        for (key, value) in pairs {
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            let too_long = value.chars().count() > 200;
            match key {
                "region" => match value.as_str() {
                    "none" | "null" => f.region = Some(RegionFilter::Unassigned),
                    v => match v.parse::<i64>() {
                        Ok(id) => f.region = Some(RegionFilter::Id(id)),
                        Err(_) => errors.add("region", "Enter a region id, or \"none\"."),
                    },
                },
                "site" | "role" | "vendor" | "q" if too_long => {
                    errors.add(key, "Use at most 200 characters.")
                }
                "site" => f.site = Some(value),
                "role" => f.role = Some(value),
                "vendor" => f.vendor = Some(value),
                "q" => f.q = Some(value),
                _ => {}
            }
        }
        f
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The filters as query-string pairs (to keep them in links and forms).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self.region {
            Some(RegionFilter::Unassigned) => out.push(("region", "none".to_string())),
            Some(RegionFilter::Id(id)) => out.push(("region", id.to_string())),
            None => {}
        }
        for (k, v) in [
            ("site", &self.site),
            ("role", &self.role),
            ("vendor", &self.vendor),
            ("q", &self.q),
        ] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        out
    }

    /// Whether a filter other than the region is set (they need the `devices` row).
    fn has_device_conditions(&self) -> bool {
        self.site.is_some() || self.role.is_some() || self.vendor.is_some() || self.q.is_some()
    }

    /// Appends ` AND …` for the region filter (columns of `device_assignments a`), with the
    /// tenancy condition on `a` too so the `(customer_id, region_id)` index serves it.
    fn push_region_condition(&self, qb: &mut QueryBuilder<Postgres>, scope: &Scope) {
        if self.region.is_some() {
            push_scope(qb, scope, "a");
        }
        match self.region {
            Some(RegionFilter::Unassigned) => {
                qb.push(" AND a.region_id IS NULL");
            }
            Some(RegionFilter::Id(id)) => {
                qb.push(" AND a.region_id = ").push_bind(id);
            }
            None => {}
        }
    }

    /// Appends ` AND …` conditions for every filter (columns of `devices d` joined with
    /// `device_assignments a`).
    fn push_conditions(&self, qb: &mut QueryBuilder<Postgres>, scope: &Scope) {
        self.push_region_condition(qb, scope);
        self.push_device_conditions(qb);
    }

    /// Appends ` AND …` for the filters on the device itself (columns of `devices d`).
    fn push_device_conditions(&self, qb: &mut QueryBuilder<Postgres>) {
        for (column, value) in [
            ("site", &self.site),
            ("role", &self.role),
            ("vendor", &self.vendor),
        ] {
            if let Some(v) = value {
                qb.push(format_args!(" AND lower(d.{column}) = lower("))
                    .push_bind(v.clone())
                    .push(")");
            }
        }
        if let Some(q) = &self.q {
            let pattern = format!("%{}%", escape_like(q));
            // Only something shaped like an address can match one; leaving the address
            // branch out otherwise lets the trigram index answer alone.
            let address_like = q
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':');
            qb.push(" AND (d.hostname ILIKE ").push_bind(pattern);
            if address_like {
                qb.push(" OR host(d.mgmt_ip) LIKE ")
                    .push_bind(format!("{}%", escape_like(q)));
            }
            qb.push(")");
        }
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Appends the tenancy condition on `{alias}.customer_id`. One customer (the common case)
/// is bound as a scalar, so the planner can walk the `(customer_id, …)` indexes in order.
fn push_scope(qb: &mut QueryBuilder<Postgres>, scope: &Scope, alias: &str) {
    match scope.ids() {
        Some([one]) => {
            qb.push(format!(" AND {alias}.customer_id = "))
                .push_bind(*one);
        }
        Some(ids) => {
            qb.push(format!(" AND {alias}.customer_id = ANY("))
                .push_bind(ids.to_vec())
                .push(")");
        }
        None => {}
    }
}

const SELECT: &str = "SELECT d.id, d.customer_id, d.hostname, d.mgmt_ip, d.port, d.vendor,
        d.platform, d.role, d.site, d.tags, d.credential_id, d.enabled, a.region_id,
        d.reachability_status, d.last_reachability_check, d.created_at, d.updated_at,
        r.name AS region_name, r.identifier AS region_identifier, r.health_status AS region_health
    FROM devices d JOIN device_assignments a ON a.device_id = d.id
    LEFT JOIN regions r ON r.id = a.region_id";

fn order_by(sort: &str) -> &'static str {
    let (desc, key) = match sort.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, sort),
    };
    // Each order ends in a unique key, and matches an index within one customer
    // (`customer_id` is constant there, so the planner skips it).
    match (key, desc) {
        ("mgmt_ip", false) => " ORDER BY d.mgmt_ip, d.id",
        ("mgmt_ip", true) => " ORDER BY d.mgmt_ip DESC, d.id DESC",
        ("site", false) => " ORDER BY lower(d.site), d.hostname, d.customer_id",
        ("site", true) => " ORDER BY lower(d.site) DESC, d.hostname DESC, d.customer_id DESC",
        ("role", false) => " ORDER BY lower(d.role), d.hostname, d.customer_id",
        ("role", true) => " ORDER BY lower(d.role) DESC, d.hostname DESC, d.customer_id DESC",
        ("vendor", false) => " ORDER BY lower(d.vendor), d.hostname, d.customer_id",
        ("vendor", true) => " ORDER BY lower(d.vendor) DESC, d.hostname DESC, d.customer_id DESC",
        ("region", false) => " ORDER BY r.name NULLS FIRST, d.hostname, d.customer_id",
        ("region", true) => " ORDER BY r.name DESC NULLS LAST, d.hostname, d.customer_id",
        ("updated_at", false) => " ORDER BY d.updated_at, d.id",
        ("updated_at", true) => " ORDER BY d.updated_at DESC, d.id DESC",
        (_, true) => " ORDER BY d.hostname DESC, d.customer_id DESC",
        _ => " ORDER BY d.hostname, d.customer_id",
    }
}

/// Counts devices in scope matching `filter`.
pub async fn count(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &DeviceFilter,
) -> AppResult<i64> {
    // Count on the narrow table alone unless the filter needs the devices' columns.
    let mut qb = if filter.has_device_conditions() {
        let mut qb = QueryBuilder::new(
            "SELECT count(*) FROM devices d JOIN device_assignments a ON a.device_id = d.id WHERE true",
        );
        push_scope(&mut qb, scope, "d");
        qb
    } else {
        let mut qb = QueryBuilder::new("SELECT count(*) FROM device_assignments a WHERE true");
        push_scope(&mut qb, scope, "a");
        qb
    };
    filter.push_conditions(&mut qb, scope);
    Ok(qb.build_query_scalar().fetch_one(conn).await?)
}

/// A page of devices in scope matching `filter`, sorted by `sort` (see [`SORTS`]; a
/// leading `-` reverses), and the total count.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &DeviceFilter,
    sort: &str,
    page: PageRequest,
) -> AppResult<(Vec<Device>, i64)> {
    let total = count(conn, scope, filter).await?;
    let mut qb = QueryBuilder::new(SELECT);
    qb.push(" WHERE true");
    push_scope(&mut qb, scope, "d");
    filter.push_conditions(&mut qb, scope);
    qb.push(order_by(sort));
    qb.push(" LIMIT ")
        .push_bind(page.page_size)
        .push(" OFFSET ")
        .push_bind(page.offset());
    let rows = qb.build_query_as::<Device>().fetch_all(conn).await?;
    Ok((rows, total))
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

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Submitted device fields.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
pub struct DeviceInput {
    /// Owning customer (create only).
    pub customer: Option<i64>,
    /// Hostname, unique per customer (required on create and replace).
    pub hostname: Option<String>,
    /// Management address, IPv4 or IPv6 (required on create and replace).
    pub mgmt_ip: Option<String>,
    /// SSH port (default 22).
    #[schema(minimum = 1, maximum = 65_535)]
    pub port: Option<i64>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Free tags.
    pub tags: Option<Vec<String>>,
    /// Credential id, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub credential: Option<Option<i64>>,
    /// Whether jobs may target the device (default true).
    pub enabled: Option<bool>,
    /// Region id, or null to unassign.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub region: Option<Option<i64>>,
}

/// Validated device fields.
#[derive(Debug, Default, Clone)]
pub struct DeviceChanges {
    hostname: Option<String>,
    mgmt_ip: Option<IpAddr>,
    port: Option<i32>,
    vendor: Option<String>,
    platform: Option<String>,
    role: Option<String>,
    site: Option<String>,
    tags: Option<Vec<String>>,
    credential: Option<Option<i64>>,
    enabled: Option<bool>,
    region: Option<Option<i64>>,
}

impl DeviceChanges {
    /// Whether the change touches nothing but the region (operators may do that).
    pub fn only_region(&self) -> bool {
        let DeviceChanges { region, .. } = self;
        let rest = DeviceChanges {
            region: None,
            ..self.clone()
        };
        region.is_some() && rest.is_noop()
    }

    fn is_noop(&self) -> bool {
        self.hostname.is_none()
            && self.mgmt_ip.is_none()
            && self.port.is_none()
            && self.vendor.is_none()
            && self.platform.is_none()
            && self.role.is_none()
            && self.site.is_none()
            && self.tags.is_none()
            && self.credential.is_none()
            && self.enabled.is_none()
            && self.region.is_none()
    }
}

impl DeviceInput {
    /// Validates every field; with `complete`, hostname and mgmt_ip are required.
    pub fn validate(&self, complete: bool) -> Result<DeviceChanges, FieldErrors> {
        let mut e = FieldErrors::new();
        let hostname = self
            .hostname
            .as_deref()
            .and_then(|v| types::hostname(v).map_err(|m| e.add("hostname", m)).ok());
        let mgmt_ip = self
            .mgmt_ip
            .as_deref()
            .and_then(|v| types::address(v).map_err(|m| e.add("mgmt_ip", m)).ok());
        if complete {
            if self.hostname.is_none() {
                e.add("hostname", "This field is required.");
            }
            if self.mgmt_ip.is_none() {
                e.add("mgmt_ip", "This field is required.");
            }
        }
        let port = self
            .port
            .and_then(|v| types::port(v).map_err(|m| e.add("port", m)).ok());
        let mut text = |name: &str, v: &Option<String>| {
            v.as_deref()
                .and_then(|v| types::text(v, 100).map_err(|m| e.add(name, m)).ok())
        };
        let vendor = text("vendor", &self.vendor).map(|v| v.to_lowercase());
        let platform = text("platform", &self.platform).map(|v| v.to_lowercase());
        let role = text("role", &self.role);
        let site = text("site", &self.site);
        let tags = self.tags.as_ref().and_then(|tags| {
            let cleaned: Vec<String> = tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if cleaned.len() > 50 || cleaned.iter().any(|t| t.chars().count() > 64) {
                e.add("tags", "Use at most 50 tags of at most 64 characters.");
                None
            } else {
                let mut cleaned = cleaned;
                cleaned.sort();
                cleaned.dedup();
                Some(cleaned)
            }
        });
        if e.is_empty() {
            Ok(DeviceChanges {
                hostname,
                mgmt_ip,
                port,
                vendor,
                platform,
                role,
                site,
                tags,
                credential: self.credential,
                enabled: self.enabled,
                region: self.region,
            })
        } else {
            Err(e)
        }
    }
}

/// Checks that the referenced region and credential exist and belong to `customer_id`;
/// anything else is "no such …" on that field, whoever owns it.
async fn check_references(
    conn: &mut PgConnection,
    customer_id: i64,
    c: &DeviceChanges,
) -> AppResult<()> {
    let mut e = FieldErrors::new();
    if let Some(Some(region)) = c.region {
        let ok: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM regions WHERE id = $1 AND customer_id = $2)",
        )
        .bind(region)
        .bind(customer_id)
        .fetch_one(&mut *conn)
        .await?;
        if !ok {
            e.add("region", format!("No region with id {region}."));
        }
    }
    if let Some(Some(credential)) = c.credential {
        let ok: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE id = $1 AND customer_id = $2)",
        )
        .bind(credential)
        .bind(customer_id)
        .fetch_one(&mut *conn)
        .await?;
        if !ok {
            e.add("credential", format!("No credential with id {credential}."));
        }
    }
    e.into_result()
}

/// Creates a device for `customer_id`.
pub async fn create(
    conn: &mut PgConnection,
    customer_id: i64,
    c: &DeviceChanges,
) -> AppResult<Device> {
    check_references(conn, customer_id, c).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO devices (customer_id, hostname, mgmt_ip, port, vendor, platform, role, site,
                              tags, credential_id, enabled)
         VALUES ($1, $2, $3, COALESCE($4, 22), COALESCE($5, ''), COALESCE($6, ''), COALESCE($7, ''),
                 COALESCE($8, ''), COALESCE($9, '{}'), $10, COALESCE($11, true))
         RETURNING id",
    )
    .bind(customer_id)
    .bind(&c.hostname)
    .bind(c.mgmt_ip)
    .bind(c.port)
    .bind(&c.vendor)
    .bind(&c.platform)
    .bind(&c.role)
    .bind(&c.site)
    .bind(&c.tags)
    .bind(c.credential.flatten())
    .bind(c.enabled)
    .fetch_one(&mut *conn)
    .await?;
    // The insert trigger created the assignment row.
    if let Some(Some(region)) = c.region {
        set_region(conn, id, Some(region)).await?;
    }
    get(conn, &Scope::all(), id).await
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
/// devices now have that region. With a region, only devices of the region's customer are
/// touched; listed ids that are not such devices are a 400 naming them.
pub async fn bulk_assign_region(
    conn: &mut PgConnection,
    scope: &Scope,
    target: &BulkTarget,
    region: Option<(i64, i64)>,
) -> AppResult<u64> {
    if let BulkTarget::Ids(ids) = target {
        if ids.is_empty() {
            return Err(AppError::Validation(FieldErrors::single(
                "device_ids",
                "Select at least one device.",
            )));
        }
        let mut qb = QueryBuilder::new("SELECT i FROM unnest(");
        qb.push_bind(ids.clone())
            .push("::bigint[]) AS i WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = i");
        push_scope(&mut qb, scope, "d");
        if let Some((_, customer_id)) = region {
            qb.push(" AND d.customer_id = ").push_bind(customer_id);
        }
        qb.push(") ORDER BY i LIMIT 20");
        let unknown: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        if !unknown.is_empty() {
            let list = unknown
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(AppError::Validation(FieldErrors::single(
                "device_ids",
                format!("No such devices for this region's customer: {list}."),
            )));
        }
    }
    // One statement on the narrow assignments table; the devices table is only read, and
    // only when the filter needs its columns.
    let mut qb = QueryBuilder::new("UPDATE device_assignments a SET region_id = ");
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
    Ok(qb.build().execute(conn).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        v.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn filters_parse_and_round_trip() {
        let mut e = FieldErrors::new();
        let f = DeviceFilter::from_pairs(
            pairs(&[
                ("region", "none"),
                ("site", " PAR1 "),
                ("q", "rtr"),
                ("page", "2"),
                ("role", ""),
            ]),
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!(f.region, Some(RegionFilter::Unassigned));
        assert_eq!(f.site.as_deref(), Some("PAR1"));
        assert_eq!(f.role, None);
        assert_eq!(
            DeviceFilter::from_pairs(f.to_pairs().into_iter(), &mut e),
            f
        );
    }

    #[test]
    fn a_bad_region_filter_is_a_field_error() {
        let mut e = FieldErrors::new();
        DeviceFilter::from_pairs(pairs(&[("region", "east")]), &mut e);
        assert_eq!(e.get("region").len(), 1);
    }

    #[test]
    fn like_wildcards_in_searches_are_literal() {
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }

    #[test]
    fn only_a_region_change_is_recognised() {
        let only = DeviceInput {
            region: Some(None),
            ..Default::default()
        };
        assert!(only.validate(false).unwrap().only_region());
        let more = DeviceInput {
            region: Some(Some(1)),
            site: Some("x".into()),
            ..Default::default()
        };
        assert!(!more.validate(false).unwrap().only_region());
    }

    #[test]
    fn device_validation_collects_every_error() {
        let input = DeviceInput {
            hostname: Some("bad host".into()),
            mgmt_ip: Some("300.1.1.1".into()),
            port: Some(70000),
            tags: Some(vec!["x".repeat(65)]),
            ..Default::default()
        };
        let e = input.validate(true).unwrap_err();
        for f in ["hostname", "mgmt_ip", "port", "tags"] {
            assert_eq!(e.get(f).len(), 1, "{f}");
        }
    }
}
