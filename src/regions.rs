//! Regions: where devices live and which queue their jobs go to.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;

use crate::auth::Scope;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::lifecycle::queue_name;
use crate::pagination::{PageRequest, scoped_one, scoped_page};
use crate::types::{self, HealthSource, HealthStatus};

/// A region row.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Region {
    /// Id.
    pub id: i64,
    /// Owning customer.
    #[serde(rename = "customer")]
    pub customer_id: i64,
    /// Display name ("US East").
    pub name: String,
    /// Slug ("us-east-1"), unique per customer.
    pub identifier: String,
    /// Optional API endpoint of the region's site (informational; empty when unset).
    pub api_endpoint: String,
    /// Worker settings as a JSON object: `min_workers` (live workers below which the region is
    /// degraded), `max_queue_age_seconds`, and `auto_health` (false keeps a manual status).
    #[schema(value_type = Object)]
    pub worker_pool_config: Json<serde_json::Value>,
    /// Current health.
    pub health_status: HealthStatus,
    /// Why it has that health.
    pub health_message: String,
    /// When health was last evaluated or set.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_health_check: Option<OffsetDateTime>,
    /// How often the health monitor evaluates it, in seconds.
    pub health_check_interval_seconds: i32,
    /// When a live worker was first seen serving its queue; null while none has been: the
    /// region then says "no workers yet".
    #[serde(with = "time::serde::rfc3339::option")]
    pub workers_seen_at: Option<OffsetDateTime>,
    /// Failover preference: when a region is unavailable its jobs go to the default queue;
    /// the job's `region` is its highest-priority dispatch. Higher is preferred.
    pub priority: i32,
    /// Disabled regions receive no jobs.
    pub enabled: bool,
    /// Notes.
    pub description: String,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Devices assigned to it (for the UI).
    #[serde(skip)]
    pub device_count: i64,
}

impl Region {
    /// The apalis queue of this region.
    pub fn queue_name(&self) -> String {
        queue_name(&self.identifier)
    }

    /// Whether the region has never had a worker nor a health anyone measured or set: its
    /// badge says "no workers yet" instead of the status it was created with.
    pub fn awaits_workers(&self) -> bool {
        self.workers_seen_at.is_none() && self.last_health_check.is_none()
    }

    /// Whether jobs may be routed here: enabled and not offline.
    pub fn is_available(&self) -> bool {
        self.enabled && self.health_status != HealthStatus::Offline
    }

    /// The API representation, with the computed fields.
    pub fn to_json(&self) -> RegionJson {
        RegionJson {
            region: self.clone(),
            queue_name: self.queue_name(),
            is_available: self.is_available(),
        }
    }
}

/// The queue of every region of every customer (regions of two customers may share an
/// identifier, hence a queue).
pub async fn all_queues(pool: &sqlx::PgPool) -> sqlx::Result<Vec<String>> {
    let identifiers: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT identifier FROM regions ORDER BY 1")
            .fetch_all(pool)
            .await?;
    Ok(identifiers.iter().map(|i| queue_name(i)).collect())
}

/// A region as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Region)]
pub struct RegionJson {
    #[serde(flatten)]
    #[schema(inline)]
    region: Region,
    /// `region_<identifier>`.
    pub queue_name: String,
    /// Enabled and not offline.
    pub is_available: bool,
}

/// Region fields as submitted by a form or the API; every field optional so the same type
/// serves create, replace and partial update.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
pub struct RegionInput {
    /// Owning customer (create only; defaults to the user's only customer).
    pub customer: Option<i64>,
    /// Display name (required on create and replace).
    pub name: Option<String>,
    /// Slug: lowercase letters, digits and hyphens, unique per customer (required on create
    /// and replace). The region's queue is `region_<identifier>`.
    pub identifier: Option<String>,
    /// An `http://` or `https://` URL of the region's site, or empty.
    pub api_endpoint: Option<String>,
    /// JSON object of worker settings (see the region's `worker_pool_config`).
    #[schema(value_type = Option<Object>)]
    pub worker_pool_config: Option<serde_json::Value>,
    /// Seconds between health evaluations (default 60).
    #[schema(minimum = 1, maximum = 86_400)]
    pub health_check_interval_seconds: Option<i64>,
    /// Failover preference; higher is preferred (default 100).
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    pub priority: Option<i64>,
    /// Whether the region receives jobs (default true).
    pub enabled: Option<bool>,
    /// Notes for operators.
    pub description: Option<String>,
}

/// Validated region fields; `None` leaves a field as it is (or at its default on create).
#[derive(Debug, Default, Clone)]
pub struct RegionChanges {
    name: Option<String>,
    identifier: Option<String>,
    api_endpoint: Option<String>,
    worker_pool_config: Option<serde_json::Value>,
    health_check_interval_seconds: Option<i32>,
    priority: Option<i32>,
    enabled: Option<bool>,
    description: Option<String>,
}

impl RegionInput {
    /// Validates every field, collecting all errors. With `complete`, `name` and
    /// `identifier` are required (create and replace).
    pub fn validate(&self, complete: bool) -> Result<RegionChanges, FieldErrors> {
        let mut e = FieldErrors::new();
        let name = e.check_given("name", self.name.as_deref(), |v| {
            types::required_text(v, 200)
        });
        let identifier = e.check_given("identifier", self.identifier.as_deref(), types::identifier);
        if complete {
            e.require([
                ("name", self.name.is_some()),
                ("identifier", self.identifier.is_some()),
            ]);
        }
        let api_endpoint = e.check_given("api_endpoint", self.api_endpoint.as_deref(), |v| {
            types::text(v, 500).and_then(|v| {
                if v.is_empty() || v.starts_with("http://") || v.starts_with("https://") {
                    Ok(v)
                } else {
                    Err("Enter an http:// or https:// URL, or leave it empty.".into())
                }
            })
        });
        let worker_pool_config = match &self.worker_pool_config {
            Some(v) if v.is_object() => Some(v.clone()),
            Some(_) => {
                e.add(
                    "worker_pool_config",
                    "Enter a JSON object, e.g. {\"min_workers\": 2}.",
                );
                None
            }
            None => None,
        };
        let health_check_interval_seconds = self.health_check_interval_seconds.and_then(|v| {
            e.check(
                "health_check_interval_seconds",
                if (1..=86_400).contains(&v) {
                    Ok(v as i32)
                } else {
                    Err("Enter a number of seconds between 1 and 86400.".into())
                },
            )
        });
        let priority = self.priority.and_then(|v| {
            e.check(
                "priority",
                i32::try_from(v)
                    .ok()
                    .filter(|p| (-1_000_000..=1_000_000).contains(p))
                    .ok_or_else(|| "Enter a priority between -1000000 and 1000000.".to_string()),
            )
        });
        let description = e.check_given("description", self.description.as_deref(), |v| {
            types::text(v, 2000)
        });
        if e.is_empty() {
            Ok(RegionChanges {
                name,
                identifier,
                api_endpoint,
                worker_pool_config,
                health_check_interval_seconds,
                priority,
                enabled: self.enabled,
                description,
            })
        } else {
            Err(e)
        }
    }
}

/// Regions with how many devices each has (for pages).
const SELECT_WITH_COUNTS: &str = "SELECT r.id, r.customer_id, r.name, r.identifier, r.api_endpoint,
        r.worker_pool_config, r.health_status, r.health_message, r.last_health_check,
        r.health_check_interval_seconds, r.workers_seen_at, r.priority, r.enabled, r.description,
        r.created_at, r.updated_at,
        COALESCE((SELECT c.devices FROM device_counts c
                  WHERE c.customer_id = r.customer_id AND c.region_id = r.id), 0) AS device_count
    FROM regions r";

/// Regions without device counts (for the API and selects, which do not show them).
const SELECT: &str = "SELECT r.id, r.customer_id, r.name, r.identifier, r.api_endpoint,
        r.worker_pool_config, r.health_status, r.health_message, r.last_health_check,
        r.health_check_interval_seconds, r.workers_seen_at, r.priority, r.enabled, r.description,
        r.created_at, r.updated_at, 0::bigint AS device_count
    FROM regions r";

/// Whether to count each region's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// Fill `device_count`.
    With,
    /// Leave it 0.
    Without,
}

impl Counts {
    fn select(self) -> &'static str {
        match self {
            Counts::With => SELECT_WITH_COUNTS,
            Counts::Without => SELECT,
        }
    }
}

/// Regions in scope, highest priority first, and how many there are.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    page: PageRequest,
    counts: Counts,
) -> AppResult<(Vec<Region>, i64)> {
    let rows = format!(
        "{} WHERE ($1::bigint[] IS NULL OR r.customer_id = ANY($1))
         ORDER BY r.priority DESC, r.name, r.id LIMIT $2 OFFSET $3",
        counts.select()
    );
    let table = ("regions", "customer_id");
    scoped_page(conn, table, sqlx::AssertSqlSafe(rows), scope.ids(), page).await
}

/// Every region in scope (for selects), by name.
pub async fn all(conn: &mut PgConnection, scope: &Scope, counts: Counts) -> AppResult<Vec<Region>> {
    Ok(sqlx::query_as::<_, Region>(sqlx::AssertSqlSafe(format!(
        "{} WHERE ($1::bigint[] IS NULL OR r.customer_id = ANY($1)) ORDER BY r.name, r.id",
        counts.select()
    )))
    .bind(scope.ids())
    .fetch_all(conn)
    .await?)
}

/// One region in scope; 404 otherwise.
pub async fn get(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Region> {
    let sql = format!(
        "{SELECT_WITH_COUNTS} WHERE r.id = $1 AND ($2::bigint[] IS NULL OR r.customer_id = ANY($2))"
    );
    scoped_one(conn, sqlx::AssertSqlSafe(sql), id, scope.ids()).await
}

/// Creates a region for `customer_id` (validated with `complete = true`): the row with its
/// required fields, then the rest as an update, so that both share one statement and its
/// defaults are the table's.
pub async fn create(
    conn: &mut PgConnection,
    customer_id: i64,
    c: &RegionChanges,
) -> AppResult<Region> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO regions (customer_id, name, identifier) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(customer_id)
    .bind(&c.name)
    .bind(&c.identifier)
    .fetch_one(&mut *conn)
    .await?;
    update(conn, &Scope::all(), id, c).await
}

/// Applies changes to a region in scope.
pub async fn update(
    conn: &mut PgConnection,
    scope: &Scope,
    id: i64,
    c: &RegionChanges,
) -> AppResult<Region> {
    let updated = sqlx::query(
        "UPDATE regions SET
            name = COALESCE($3, name),
            identifier = COALESCE($4, identifier),
            api_endpoint = COALESCE($5, api_endpoint),
            worker_pool_config = COALESCE($6, worker_pool_config),
            health_check_interval_seconds = COALESCE($7, health_check_interval_seconds),
            priority = COALESCE($8, priority),
            enabled = COALESCE($9, enabled),
            description = COALESCE($10, description),
            updated_at = now()
         WHERE id = $1 AND ($2::bigint[] IS NULL OR customer_id = ANY($2))",
    )
    .bind(id)
    .bind(scope.ids())
    .bind(&c.name)
    .bind(&c.identifier)
    .bind(&c.api_endpoint)
    .bind(c.worker_pool_config.as_ref().map(Json))
    .bind(c.health_check_interval_seconds)
    .bind(c.priority)
    .bind(c.enabled)
    .bind(&c.description)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(AppError::NotFound);
    }
    get(conn, scope, id).await
}

/// Deletes a region in scope; its devices keep existing without a region, and tasks still
/// queued for it move to the default queue. Returns the deleted region.
pub async fn delete(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Region> {
    let region = get(conn, scope, id).await?;
    sqlx::query("DELETE FROM regions WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    // Otherwise they would wait for a region that no longer exists: the default queue is
    // the only place left for them, served or not.
    crate::lifecycle::fail_over(conn, true).await?;
    Ok(region)
}

/// Sets a region's health by hand (the seed's `update_health`). The monitor's next
/// evaluation may change it again.
pub async fn set_health(
    conn: &mut PgConnection,
    scope: &Scope,
    id: i64,
    status: HealthStatus,
    message: &str,
) -> AppResult<Region> {
    let before = get(conn, scope, id).await?;
    let reason = if message.is_empty() {
        "set by hand"
    } else {
        message
    };
    let change = HealthChange {
        region_id: id,
        from: before.health_status,
        to: status,
        reason,
        source: HealthSource::Manual,
    };
    record_change(conn, &change).await?;
    if message.is_empty() {
        // The stored message is what the user typed, even when empty.
        sqlx::query("UPDATE regions SET health_message = '' WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    get(conn, scope, id).await
}

/// Validates a manual health update.
pub fn validate_health(
    status: Option<&str>,
    message: Option<&str>,
) -> Result<(HealthStatus, String), FieldErrors> {
    let mut e = FieldErrors::new();
    let status = match status {
        Some(s) => e.check("health_status", HealthStatus::parse(s)),
        None => {
            e.add("health_status", "This field is required.");
            None
        }
    };
    let message = e.check("message", types::text(message.unwrap_or(""), 500));
    match (status, message) {
        (Some(s), Some(m)) if e.is_empty() => Ok((s, m)),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_field_errors_are_reported_at_once() {
        let input = RegionInput {
            name: Some("  ".into()),
            identifier: Some("Bad Id".into()),
            worker_pool_config: Some(serde_json::json!([1])),
            priority: Some(1 << 40),
            health_check_interval_seconds: Some(0),
            api_endpoint: Some("ftp://x".into()),
            ..Default::default()
        };
        let errors = input.validate(true).unwrap_err();
        for field in [
            "name",
            "identifier",
            "worker_pool_config",
            "priority",
            "health_check_interval_seconds",
            "api_endpoint",
        ] {
            assert_eq!(errors.get(field).len(), 1, "{field}: {errors:?}");
        }
    }

    #[test]
    fn create_requires_name_and_identifier_but_patch_does_not() {
        let empty = RegionInput::default();
        let errors = empty.validate(true).unwrap_err();
        assert!(!errors.get("name").is_empty() && !errors.get("identifier").is_empty());
        assert!(empty.validate(false).is_ok());
    }

    #[test]
    fn manual_health_needs_a_known_status() {
        assert!(validate_health(Some("degraded"), Some("slow")).is_ok());
        assert!(validate_health(Some("sick"), None).is_err());
        assert!(validate_health(None, None).is_err());
    }
}

/// A recorded health change.
#[derive(Debug, Clone, serde::Serialize, FromRow)]
pub struct HealthEvent {
    /// Before.
    pub from_status: HealthStatus,
    /// After.
    pub to_status: HealthStatus,
    /// Why.
    pub reason: String,
    /// Who changed it.
    pub source: HealthSource,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// The latest health changes of a region.
pub async fn events(
    conn: &mut PgConnection,
    region_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<HealthEvent>> {
    sqlx::query_as(
        "SELECT from_status, to_status, reason, source, created_at FROM region_health_events
         WHERE region_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(region_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A change of a region's health.
#[derive(Debug, Clone, Copy)]
pub struct HealthChange<'a> {
    /// The region.
    pub region_id: i64,
    /// Before.
    pub from: HealthStatus,
    /// After.
    pub to: HealthStatus,
    /// Why (shown next to the badge).
    pub reason: &'a str,
    /// Who.
    pub source: HealthSource,
}

/// Records a health change: the region row and, when the status changed, an event.
pub async fn record_change(conn: &mut PgConnection, change: &HealthChange<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE regions SET health_status = $2, health_message = $3, last_health_check = now(),
                updated_at = now() WHERE id = $1",
    )
    .bind(change.region_id)
    .bind(change.to)
    .bind(change.reason)
    .execute(&mut *conn)
    .await?;
    if change.from != change.to {
        record_event(conn, change).await?;
    }
    Ok(())
}

/// Appends a change to the region's health history.
pub async fn record_event(conn: &mut PgConnection, change: &HealthChange<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO region_health_events (region_id, from_status, to_status, reason, source)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(change.region_id)
    .bind(change.from)
    .bind(change.to)
    .bind(change.reason)
    .bind(change.source)
    .execute(conn)
    .await?;
    Ok(())
}
