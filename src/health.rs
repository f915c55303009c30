//! The health monitor: region health from worker heartbeats, failover of queued work away
//! from dead regions, and rescue of tasks held by lost workers.
//!
//! Rules (also in the README):
//! - A worker is *live* while its heartbeat is younger than three of its heartbeat periods.
//! - Every `health_check_interval_seconds`, each region (with `worker_pool_config.auto_health`
//!   not `false`) is evaluated: **offline** when no live worker serves its queue; **degraded**
//!   when fewer live workers than `worker_pool_config.min_workers`, or when its oldest pending
//!   task has waited longer than the degraded threshold; **healthy** otherwise. A region
//!   whose queue just lost its last live worker, or an offline region whose queue just got one
//!   back, is evaluated at once, not at the next interval.
//! - A manual status (API `update_health` or the region page) holds until the next evaluation.
//! - When every region of a queue is unavailable (offline or disabled), its pending tasks move
//!   to the default queue; their dispatches record where they came from.
//! - Tasks claimed by a lost worker are reset to pending (attempts kept) on their queue when it
//!   still has live workers, else on the default queue.
//!
//! Only one monitor acts at a time: it holds a PostgreSQL advisory lock on a connection of its
//! own; a standby takes over when that connection goes away.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Connection, FromRow, PgConnection, PgPool};

use crate::fleet::live_workers;
use crate::lifecycle::queue_depths;
use crate::lifecycle::{DEFAULT_QUEUE, fail_over, queue_name, requeue_held};
use crate::regions::{HealthChange, record_event};
use crate::types::{HealthSource, HealthStatus};

/// The advisory lock key of the monitor ("webnet-m").
pub const LOCK_KEY: i64 = 0x7765_626e_6574_2d6d;

/// Monitor settings.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// How often the monitor looks (regions are evaluated at their own interval).
    pub tick: Duration,
    /// A region whose oldest pending task waited longer is degraded.
    pub degraded_after: Duration,
    /// Where the advisory lock's connection goes: the pool's database when `None`; the
    /// direct connection (`--listen-database-url`) behind a transaction pooler, where a
    /// session lock would not stay on one server connection.
    pub lock_connection: Option<sqlx::postgres::PgConnectOptions>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(500),
            degraded_after: Duration::from_secs(60),
            lock_connection: None,
        }
    }
}

#[derive(Debug, Clone, FromRow)]
struct RegionRow {
    id: i64,
    identifier: String,
    name: String,
    health_status: HealthStatus,
    worker_pool_config: Json<Value>,
    last_health_check: Option<time::OffsetDateTime>,
    workers_seen_at: Option<time::OffsetDateTime>,
    due: bool,
}

/// Deletes audit rows, health events and job logs older than `age`. Returns the rows deleted.
pub async fn prune_history(conn: &mut PgConnection, age: Duration) -> sqlx::Result<u64> {
    const PRUNES: [&str; 4] = [
        "DELETE FROM audit_log WHERE at < now() - make_interval(secs => $1)",
        "DELETE FROM region_health_events WHERE created_at < now() - make_interval(secs => $1)",
        "DELETE FROM job_logs WHERE job_id IN \
         (SELECT id FROM jobs WHERE finished_at < now() - make_interval(secs => $1))",
        "DELETE FROM worker_heartbeats WHERE last_seen < now() - make_interval(secs => $1)",
    ];
    let mut deleted = 0;
    for sql in PRUNES {
        let done = sqlx::query(sql)
            .bind(age.as_secs_f64())
            .execute(&mut *conn)
            .await?;
        deleted += done.rows_affected();
    }
    Ok(deleted)
}

/// The status a region should have, and why.
pub fn evaluate(
    live: i64,
    min_workers: i64,
    oldest_pending: f64,
    degraded_after: Duration,
) -> (HealthStatus, String) {
    if live == 0 {
        return (
            HealthStatus::Offline,
            "no live worker serves its queue".to_string(),
        );
    }
    if live < min_workers {
        return (
            HealthStatus::Degraded,
            format!(
                "{live} live worker{} of {min_workers} wanted",
                if live == 1 { "" } else { "s" }
            ),
        );
    }
    if oldest_pending > degraded_after.as_secs_f64() {
        return (
            HealthStatus::Degraded,
            format!("oldest queued task has waited {oldest_pending:.0} s"),
        );
    }
    (
        HealthStatus::Healthy,
        format!("{live} live worker{}", if live == 1 { "" } else { "s" }),
    )
}

/// One pass of the monitor: evaluate due regions, fail over and rescue. `previous` holds the
/// live-worker counts of the previous pass, to notice a queue losing its last worker.
/// Returns the number of tasks failed over and rescued.
pub async fn pass(
    conn: &mut PgConnection,
    config: &MonitorConfig,
    previous: &mut HashMap<String, i64>,
) -> sqlx::Result<(u64, u64)> {
    let live = live_workers(conn).await?;
    let depths = queue_depths(conn).await?;
    let regions: Vec<RegionRow> = sqlx::query_as(
        "SELECT id, identifier, name, health_status, worker_pool_config, last_health_check,
                workers_seen_at,
                -- A new region gets a few seconds for workers to pick up its queue.
                CASE WHEN last_health_check IS NULL THEN created_at < now() - interval '5 seconds'
                     ELSE last_health_check < now() - make_interval(secs => health_check_interval_seconds)
                END AS due
         FROM regions ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    for region in &regions {
        let queue = queue_name(&region.identifier);
        let n = live.get(&queue).copied().unwrap_or(0);
        if n > 0 && region.workers_seen_at.is_none() {
            sqlx::query(
                "UPDATE regions SET workers_seen_at = now() WHERE id = $1 AND workers_seen_at IS NULL",
            )
            .bind(region.id)
            .execute(&mut *conn)
            .await?;
        }
        let config_obj = &region.worker_pool_config.0;
        if config_obj.get("auto_health") == Some(&Value::Bool(false)) {
            continue;
        }
        // Losing the last worker is acted on at once, not at the next interval (a manual
        // status otherwise holds until the next evaluation).
        // Likewise a dead region's first worker coming back.
        let before = previous.get(&queue).copied().unwrap_or(0);
        let urgent = (n == 0 && before > 0 && region.health_status != HealthStatus::Offline)
            || (n > 0 && before == 0 && region.health_status == HealthStatus::Offline);
        if !region.due && !urgent {
            continue;
        }
        let min_workers = config_obj
            .get("min_workers")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let oldest = depths.get(&queue).map_or(0.0, |d| d.1);
        let (status, mut reason) = evaluate(n, min_workers, oldest, config.degraded_after);
        if n == 0 && region.workers_seen_at.is_none() {
            // Not a failure: nobody has started one yet. Say how.
            reason = format!(
                "no workers yet: start `webnet worker --region {}` near its devices",
                region.identifier
            );
        }
        // Only if nobody set a status since this pass read it: a manual status set a moment
        // ago must hold until the next evaluation, not be overwritten from a stale read.
        let unchanged = sqlx::query(
            "UPDATE regions SET health_status = $2, health_message = $3, last_health_check = now(),
                    updated_at = now()
             WHERE id = $1 AND health_status = $4 AND last_health_check IS NOT DISTINCT FROM $5",
        )
        .bind(region.id)
        .bind(status)
        .bind(&reason)
        .bind(region.health_status)
        .bind(region.last_health_check)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if unchanged && status != region.health_status {
            tracing::info!(region = %region.name, from = %region.health_status, to = %status, reason = %reason, "region health changed");
            let change = HealthChange {
                region_id: region.id,
                from: region.health_status,
                to: status,
                reason: &reason,
                source: HealthSource::Monitor,
            };
            record_event(conn, &change).await?;
        }
    }
    let default_live = live.get(DEFAULT_QUEUE).copied().unwrap_or(0) > 0;
    let failed_over = fail_over(conn, default_live).await?;
    if !default_live {
        let served: Vec<String> = live
            .iter()
            .filter(|(queue, n)| **n > 0 && queue.as_str() != DEFAULT_QUEUE)
            .map(|(queue, _)| queue.clone())
            .collect();
        let returned = crate::lifecycle::return_from_default(conn, &served).await?;
        if returned > 0 {
            tracing::warn!(
                tasks = returned,
                "no worker serves the default queue: moved its waiting tasks back to their regions"
            );
        }
    }
    let rescued = rescue(conn).await?;
    *previous = live;
    Ok((failed_over, rescued))
}

/// Marks workers whose heartbeat went stale as lost and re-queues the tasks they held.
pub async fn rescue(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let live = live_workers(&mut *conn).await?;
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM worker_heartbeats
         WHERE lost_at IS NULL AND last_seen < now() - make_interval(secs => 3 * heartbeat_ms / 1000.0)",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut rescued = 0;
    for name in stale {
        // Marked lost and emptied in one transaction that holds the worker's heartbeat row:
        // a worker coming back cannot renew its lease (its upsert waits) while its tasks are
        // being taken, and one that came back just now is no longer stale and is left alone.
        let mut tx = conn.begin().await?;
        let still_stale: Option<String> = sqlx::query_scalar(
            "UPDATE worker_heartbeats SET lost_at = now()
             WHERE name = $1 AND lost_at IS NULL
               AND last_seen < now() - make_interval(secs => 3 * heartbeat_ms / 1000.0)
             RETURNING name",
        )
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?;
        if still_stale.is_none() {
            continue;
        }
        let held = requeue_held(
            &mut tx,
            &format!("{name}:"),
            None,
            &[],
            &live,
            &format!("worker {name} was lost"),
        )
        .await?;
        tx.commit().await?;
        if held > 0 {
            tracing::warn!(worker = %name, tasks = held, "worker lost; its tasks were re-queued");
        }
        rescued += held;
    }
    // A process that died before its first heartbeat was written, whose row was removed
    // while it still held tasks, or that claimed tasks after it was given up for lost, is
    // found by its tasks instead.
    let orphans = crate::lifecycle::orphaned_holders(conn).await?;
    for holder in orphans {
        let process = holder.rsplitn(3, ':').last().unwrap_or(&holder).to_string();
        let held = requeue_held(
            conn,
            &holder,
            None,
            &[],
            &live,
            &format!("worker {process} is gone"),
        )
        .await?;
        if held > 0 {
            tracing::warn!(worker = %process, tasks = held, "tasks held by a worker without a heartbeat were re-queued");
        }
        rescued += held;
    }
    Ok(rescued)
}

/// Runs the monitor for ever: waits for the advisory lock (standby), then acts every tick.
/// Returns only if the pool closes.
pub async fn run(pool: PgPool, config: MonitorConfig) {
    // The lock lives on a connection of its own, outside the request pool.
    let target = (config.lock_connection.clone()).unwrap_or_else(|| crate::db::same_as(&pool));
    let own = crate::db::own_connection(&target, Some(Duration::from_secs(2)));
    // One line when the database goes away and one when the monitor is back, not one per try.
    let mut unavailable = false;
    loop {
        if pool.is_closed() {
            return;
        }
        let mut conn = match own.acquire().await {
            Ok(c) => c,
            Err(e) => {
                if !unavailable {
                    unavailable = true;
                    tracing::warn!(error = %e, "health monitor: database unavailable; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_default();
        if !locked {
            drop(conn);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::info!("health monitor active");
        let mut previous = HashMap::new();
        loop {
            if pool.is_closed() {
                return;
            }
            let started = std::time::Instant::now();
            match pass(&mut conn, &config, &mut previous).await {
                Ok((moved, rescued)) => {
                    // What a fleet costs the monitor (scripts/scale-test.sh reads it).
                    tracing::debug!(
                        elapsed_ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
                        "health monitor pass"
                    );
                    if moved > 0 {
                        tracing::warn!(
                            tasks = moved,
                            "failed over queued tasks to the default queue"
                        );
                    }
                    if rescued > 0 {
                        tracing::warn!(tasks = rescued, "rescued tasks from lost workers");
                    }
                }
                Err(e) => {
                    // The lock went with the connection if it broke; start over.
                    unavailable = crate::db::is_unavailable(&e);
                    tracing::warn!(error = %e, "health monitor pass failed; taking the lock again");
                    break;
                }
            }
            tokio::time::sleep(config.tick).await;
        }
        let _ = conn.detach().close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_live_workers_and_queue_age() {
        let limit = Duration::from_secs(60);
        assert_eq!(evaluate(0, 1, 0.0, limit).0, HealthStatus::Offline);
        assert_eq!(evaluate(1, 2, 0.0, limit).0, HealthStatus::Degraded);
        assert_eq!(evaluate(2, 2, 61.0, limit).0, HealthStatus::Degraded);
        let (status, reason) = evaluate(2, 1, 3.0, limit);
        assert_eq!(status, HealthStatus::Healthy);
        assert_eq!(reason, "2 live workers");
    }
}
