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
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
use sqlx::{Connection, FromRow, PgConnection, PgPool};

use crate::regions::{DEFAULT_QUEUE, queue_name};
use crate::types::HealthStatus;

/// The advisory lock key of the monitor ("webnet-m").
pub const LOCK_KEY: i64 = 0x7765_626e_6574_2d6d;

/// Monitor settings.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// How often the monitor looks (regions are evaluated at their own interval).
    pub tick: Duration,
    /// A region whose oldest pending task waited longer is degraded.
    pub degraded_after: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(500),
            degraded_after: Duration::from_secs(60),
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
    due: bool,
}

/// Live workers per queue.
pub async fn live_workers(conn: &mut PgConnection) -> sqlx::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT q, count(*) FROM worker_heartbeats, unnest(queues) AS q
         WHERE last_seen > now() - make_interval(secs => 3 * heartbeat_ms / 1000.0)
         GROUP BY q",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Pending tasks and the age of the oldest, per queue.
pub async fn queue_depths(conn: &mut PgConnection) -> sqlx::Result<HashMap<String, (i64, f64)>> {
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT job_type, count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(run_at)), 0)::float8
         FROM apalis.jobs WHERE status = 'Pending' GROUP BY job_type",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(q, n, age)| (q, (n, age.max(0.0))))
        .collect())
}

/// A live worker process, for the region page.
#[derive(Debug, Clone, serde::Serialize, FromRow)]
pub struct WorkerInfo {
    /// Unique name of the process start.
    pub name: String,
    /// Host it runs on.
    pub host: String,
    /// Dispatches it is running.
    pub running_tasks: i32,
    /// Last heartbeat.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: time::OffsetDateTime,
    /// Process start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
}

/// Live workers serving `queue`.
pub async fn workers_on(conn: &mut PgConnection, queue: &str) -> sqlx::Result<Vec<WorkerInfo>> {
    sqlx::query_as(
        "SELECT name, host, running_tasks, last_seen, started_at FROM worker_heartbeats
         WHERE $1 = ANY(queues) AND last_seen > now() - make_interval(secs => 3 * heartbeat_ms / 1000.0)
         ORDER BY name",
    )
    .bind(queue)
    .fetch_all(conn)
    .await
}

/// A recorded health change.
#[derive(Debug, Clone, serde::Serialize, FromRow)]
pub struct HealthEvent {
    /// Before.
    pub from_status: String,
    /// After.
    pub to_status: String,
    /// Why.
    pub reason: String,
    /// `monitor` or `manual`.
    pub source: String,
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

/// A queue's load: live workers, pending tasks, age of the oldest in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Live workers.
    pub live_workers: i64,
    /// Pending tasks.
    pub depth: i64,
    /// Seconds the oldest pending task has waited.
    pub oldest_age: f64,
}

/// Stats of every queue with workers or pending tasks.
pub async fn queue_stats(conn: &mut PgConnection) -> sqlx::Result<HashMap<String, QueueStats>> {
    let live = live_workers(&mut *conn).await?;
    let depths = queue_depths(conn).await?;
    let mut out: HashMap<String, QueueStats> = HashMap::new();
    for (q, n) in live {
        out.entry(q).or_default().live_workers = n;
    }
    for (q, (depth, age)) in depths {
        let e = out.entry(q).or_default();
        e.depth = depth;
        e.oldest_age = age;
    }
    Ok(out)
}

/// Deletes health events and job logs older than `age`. Returns the rows deleted.
pub async fn prune_history(conn: &mut PgConnection, age: Duration) -> sqlx::Result<u64> {
    let events = sqlx::query(
        "DELETE FROM region_health_events WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let logs = sqlx::query(
        "DELETE FROM job_logs WHERE job_id IN (SELECT id FROM jobs WHERE finished_at < now() - make_interval(secs => $1))",
    )
    .bind(age.as_secs_f64())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let workers = sqlx::query(
        "DELETE FROM worker_heartbeats WHERE last_seen < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(events + logs + workers)
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

/// Records a health change (the region row and an event).
pub async fn record_change(
    conn: &mut PgConnection,
    region_id: i64,
    from: HealthStatus,
    to: HealthStatus,
    reason: &str,
    source: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE regions SET health_status = $2, health_message = $3, last_health_check = now(),
                updated_at = now() WHERE id = $1",
    )
    .bind(region_id)
    .bind(to)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    if from != to {
        record_event(conn, region_id, from, to, reason, source).await?;
    }
    Ok(())
}

/// Appends a change to the region's health history.
async fn record_event(
    conn: &mut PgConnection,
    region_id: i64,
    from: HealthStatus,
    to: HealthStatus,
    reason: &str,
    source: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO region_health_events (region_id, from_status, to_status, reason, source)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(region_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(reason)
    .bind(source)
    .execute(conn)
    .await?;
    Ok(())
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
                -- A new region gets a few seconds for workers to pick up its queue.
                CASE WHEN last_health_check IS NULL THEN created_at < now() - interval '5 seconds'
                     ELSE last_health_check < now() - make_interval(secs => health_check_interval_seconds)
                END AS due
         FROM regions ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    for region in &regions {
        let config_obj = &region.worker_pool_config.0;
        if config_obj.get("auto_health") == Some(&Value::Bool(false)) {
            continue;
        }
        let queue = queue_name(&region.identifier);
        let n = live.get(&queue).copied().unwrap_or(0);
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
        let (status, reason) = evaluate(n, min_workers, oldest, config.degraded_after);
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
            record_event(
                conn,
                region.id,
                region.health_status,
                status,
                &reason,
                "monitor",
            )
            .await?;
        }
    }
    let failed_over = fail_over(conn).await?;
    let rescued = rescue(conn).await?;
    *previous = live;
    Ok((failed_over, rescued))
}

/// Moves pending tasks off the queues whose regions are all unavailable, or deleted.
pub async fn fail_over(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let mut tx = conn.begin().await?;
    let moved: Vec<(i64, i64, String)> = sqlx::query_as(
        "WITH dead AS (
            SELECT 'region_' || identifier AS queue,
                   string_agg(DISTINCT CASE WHEN NOT enabled THEN name || ' is disabled'
                                            ELSE name || ' is offline' END, ', ') AS why
            FROM regions GROUP BY identifier
            HAVING bool_and(NOT enabled OR health_status = 'offline')
            UNION ALL
            SELECT DISTINCT t.job_type, 'its region was deleted' FROM apalis.jobs t
            WHERE t.status = 'Pending' AND t.job_type LIKE 'region\\_%'
              AND NOT EXISTS (SELECT 1 FROM regions r WHERE 'region_' || r.identifier = t.job_type)
         ),
         moved AS (
            UPDATE apalis.jobs t SET job_type = 'default'
            FROM dead WHERE t.job_type = dead.queue AND t.status = 'Pending'
            RETURNING t.id, dead.queue, dead.why
         )
         UPDATE job_dispatches d SET queue = 'default', failed_over_from = moved.queue,
                routing_reason = d.routing_reason || ' → failed over: ' || moved.why
         FROM moved WHERE d.task_id = moved.id AND d.status = 'queued'
         RETURNING d.id, d.job_id, moved.queue",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (dispatch, job, from) in &moved {
        crate::jobs::log(
            &mut tx,
            *job,
            "warning",
            "",
            &format!("dispatch {dispatch} moved from {from} to the default queue: no available region serves {from}"),
        )
        .await?;
    }
    if !moved.is_empty() {
        // apalis's insert trigger does not fire on UPDATE: wake the default queue's workers.
        sqlx::query(
            "SELECT pg_notify('apalis::job::insert', json_build_object('job_type', $1::text, 'id', '')::text)",
        )
        .bind(DEFAULT_QUEUE)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(moved.len() as u64)
}

/// Marks workers whose heartbeat went stale as lost and re-queues the tasks they held.
pub async fn rescue(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let lost: Vec<String> = sqlx::query_scalar(
        "UPDATE worker_heartbeats SET lost_at = now()
         WHERE lost_at IS NULL AND last_seen < now() - make_interval(secs => 3 * heartbeat_ms / 1000.0)
         RETURNING name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut rescued = 0;
    for name in lost {
        let held = requeue_held(
            conn,
            &format!("{name}:"),
            None,
            &[],
            &format!("worker {name} was lost"),
        )
        .await?;
        if held > 0 {
            tracing::warn!(worker = %name, tasks = held, "worker lost; its tasks were re-queued");
        }
        rescued += held;
    }
    // A process that died before its first heartbeat was written, whose row was removed
    // while it still held tasks, or that claimed tasks after it was given up for lost, is
    // found by its tasks instead.
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT lock_by FROM apalis.jobs t
         WHERE status IN ('Queued', 'Running') AND lock_at < now() - interval '30 seconds'
           AND NOT EXISTS (SELECT 1 FROM worker_heartbeats w
                           WHERE starts_with(t.lock_by, w.name || ':') AND w.lost_at IS NULL)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for holder in orphans {
        let process = holder.rsplitn(3, ':').last().unwrap_or(&holder).to_string();
        let held = requeue_held(
            conn,
            &holder,
            None,
            &[],
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

/// Re-queues the tasks claimed or running under apalis consumer names that start with
/// `holder` (a process `"<name>:"`, or one consumer of it), except the task ids in
/// `running`; `only` limits it to one task. Each held task is ended and its dispatch, when
/// still open, queued again under a new task id with the attempts kept: on its queue when a
/// live worker serves it, else on the default queue; the job log says why (`why` names the
/// worker it came from). Returns how many tasks were taken from the holder.
pub async fn requeue_held(
    conn: &mut PgConnection,
    holder: &str,
    only: Option<&str>,
    running: &[String],
    why: &str,
) -> sqlx::Result<u64> {
    let mut tx = conn.begin().await?;
    let held: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT id, job_type, attempts FROM apalis.jobs
         WHERE status IN ('Queued', 'Running') AND starts_with(lock_by, $1)
           AND ($2::text IS NULL OR id = $2) AND id <> ALL($3)
         FOR UPDATE",
    )
    .bind(holder)
    .bind(only)
    .bind(running)
    .fetch_all(&mut *tx)
    .await?;
    if held.is_empty() {
        return Ok(0);
    }
    let live = live_workers(&mut tx).await?;
    for (task, queue, attempts) in &held {
        let target = if live.get(queue).copied().unwrap_or(0) > 0 {
            queue.clone()
        } else {
            DEFAULT_QUEUE.to_string()
        };
        // The held task ends here, and its dispatch (if still open) goes out again under a
        // new task id: whoever still holds the old one (an apalis lock event or result in
        // flight) cannot touch the new task nor claim the dispatch with the old one.
        let new_task = crate::jobs::new_task_id();
        sqlx::query(
            "UPDATE apalis.jobs SET status = 'Killed', done_at = now(),
                    last_result = jsonb_build_object('Err', 're-queued as task ' || $2)
             WHERE id = $1",
        )
        .bind(task)
        .bind(&new_task)
        .execute(&mut *tx)
        .await?;
        let dispatch: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE job_dispatches SET status = 'queued', worker = NULL, queue = $2, task_id = $3,
                    rescues = rescues + 1,
                    failed_over_from = CASE WHEN $2 <> queue THEN queue ELSE failed_over_from END
             WHERE task_id = $1 AND status IN ('queued', 'running') RETURNING id, job_id",
        )
        .bind(task)
        .bind(&target)
        .bind(&new_task)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((dispatch, job)) = dispatch else {
            // Finished or cancelled meanwhile: nothing to run again.
            continue;
        };
        crate::jobs::push_dispatch_task(&mut tx, dispatch, &target, &new_task).await?;
        // Attempts are kept: a dispatch that keeps failing still runs out of them.
        sqlx::query("UPDATE apalis.jobs SET attempts = $2 WHERE id = $1")
            .bind(&new_task)
            .bind(attempts)
            .execute(&mut *tx)
            .await?;
        crate::jobs::log(
            &mut tx,
            job,
            "warning",
            "",
            &format!("{why}; dispatch {dispatch} re-queued on {target}"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(held.len() as u64)
}

/// Settles a queue task whose consumer went away while its dispatch ran on: done, or
/// failed (to be retried while attempts remain). Only while `holder` still holds it.
pub async fn settle_task(pool: &PgPool, task: &str, holder: &str, ok: bool) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE apalis.jobs
         SET status = CASE WHEN $3 THEN 'Done' ELSE 'Failed' END, attempts = attempts + 1,
             done_at = now(), last_result = CASE WHEN $3 THEN '{\"Ok\": null}'::jsonb
                                                 ELSE '{\"Err\": \"dispatch failed\"}'::jsonb END
         WHERE id = $1 AND lock_by = $2 AND status IN ('Queued', 'Running')",
    )
    .bind(task)
    .bind(holder)
    .bind(ok)
    .execute(pool)
    .await?;
    Ok(())
}

/// One heartbeat of a worker process.
#[derive(Debug)]
pub struct Beat<'a> {
    /// Unique name of the process start.
    pub name: &'a str,
    /// Host it runs on.
    pub host: &'a str,
    /// webnet's version.
    pub version: &'a str,
    /// Queues it is polling now (not those whose consumer is down).
    pub queues: &'a [String],
    /// Its heartbeat period: it is lost after three.
    pub heartbeat: Duration,
    /// Dispatches it is running.
    pub running_tasks: usize,
}

/// Records a heartbeat. A worker the monitor gave up for lost is live again from here on
/// (its tasks were re-queued then; it had stopped them itself when its lease ran out), and
/// is rescued again if it dies later.
pub async fn beat(pool: &PgPool, beat: &Beat<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO worker_heartbeats (name, host, pid, version, queues, heartbeat_ms, running_tasks)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET queues = excluded.queues, running_tasks = excluded.running_tasks,
             last_seen = now(), heartbeat_ms = excluded.heartbeat_ms, lost_at = NULL",
    )
    .bind(beat.name)
    .bind(beat.host)
    .bind(std::process::id() as i32)
    .bind(beat.version)
    .bind(beat.queues)
    .bind(beat.heartbeat.as_millis().clamp(1, i32::MAX as u128) as i32)
    .bind(beat.running_tasks.min(i32::MAX as usize) as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes a worker that stopped gracefully (it is not lost: nothing to rescue).
pub async fn deregister(pool: &PgPool, name: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM worker_heartbeats WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// Runs the monitor for ever: waits for the advisory lock (standby), then acts every tick.
/// Returns only if the pool closes.
pub async fn run(pool: PgPool, config: MonitorConfig) {
    // The lock lives on a connection of its own, outside the request pool.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with((*pool.connect_options()).clone());
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
            match pass(&mut conn, &config, &mut previous).await {
                Ok((moved, rescued)) => {
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
