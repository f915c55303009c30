//! The job lifecycle on the queue: queue names, pushing a dispatch's task, moving tasks
//! between queues (failover), taking them back from workers (rescue, hand-back), settling
//! them, pruning them, and the job log those moves write to. Every statement on apalis's
//! tables lives here; the monitor, the workers and the job use cases call in, and this
//! module calls none of them.

use std::collections::HashMap;

use apalis::prelude::{TaskBuilder, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;
use sqlx::{Connection, FromRow, PgConnection, PgPool};

mod status;

pub use status::{JobStatus, JobType, LogLevel};

/// The queue name for a region identifier.
pub fn queue_name(identifier: &str) -> String {
    format!("region_{identifier}")
}

/// The channel that announces `queue`'s new tasks (`NOTIFY`, from a trigger on the
/// dispatches): `wq_` and the queue name's md5, since queue names may be longer than a channel
/// name can be.
pub fn queue_channel(queue: &str) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(queue.as_bytes());
    let mut channel = String::with_capacity(35);
    channel.push_str("wq_");
    for byte in digest {
        channel.push_str(&format!("{byte:02x}"));
    }
    channel
}

/// An SQL expression that makes the triggers on job logs and dispatches leave the rest of the
/// transaction's notifications to [`announce`]: a transaction that sends NOTIFY holds the
/// database-wide notification lock while its commit is flushed, so busy writers commit first
/// and notify in a statement of their own (migration 20261206000001).
pub const NOTIFY_AFTER_COMMIT: &str = "set_config('webnet.notify', 'after_commit', true)";

/// Sends what the triggers would have sent for a job written under [`NOTIFY_AFTER_COMMIT`]:
/// its log grew, and each of `queues` has a new task. Run after the commit (inside the
/// caller's transaction, it is sent when that commits), it also lets the triggers notify again
/// for the rest of the transaction. Its failure is only logged: the change is committed
/// already, and a worker that misses its wake-up finds the task at its next poll (every
/// second).
pub async fn announce(conn: &mut PgConnection, job_id: i64, queues: &[&str]) {
    let mut channels: Vec<String> = queues.iter().map(|q| queue_channel(q)).collect();
    channels.sort_unstable();
    channels.dedup();
    let sent = sqlx::query(
        "SELECT set_config('webnet.notify', '', true),
                pg_notify('webnet_job_log', json_build_object('job_id', $1::bigint, 'id', 0)::text),
                (SELECT count(pg_notify(c, '')) FROM unnest($2::text[]) AS c)",
    )
    .bind(job_id)
    .bind(&channels)
    .execute(conn)
    .await;
    if let Err(e) = sent {
        tracing::warn!(job_id, error = %e, "could not announce a job's change; workers find its tasks at their next poll");
    }
}

/// Name of the queue for devices without an available region.
pub const DEFAULT_QUEUE: &str = "default";

/// Moves waiting tasks (pending, or failed with attempts left) off the queues whose regions
/// are all unavailable, or deleted, when a live worker serves the default queue
/// (`default_live`): without one, moving them would strand them where nothing runs them,
/// so they wait on their region's queue for its workers to return.
pub async fn fail_over(conn: &mut PgConnection, default_live: bool) -> sqlx::Result<u64> {
    if !default_live {
        return Ok(0);
    }
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
            WHERE (t.status = 'Pending' OR (t.status = 'Failed' AND t.attempts < t.max_attempts)) AND t.job_type LIKE 'region\\_%'
              AND NOT EXISTS (SELECT 1 FROM regions r WHERE 'region_' || r.identifier = t.job_type)
         ),
         moved AS (
            UPDATE apalis.jobs t SET job_type = 'default'
            FROM dead WHERE t.job_type = dead.queue AND (t.status = 'Pending' OR (t.status = 'Failed' AND t.attempts < t.max_attempts))
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
        log(
            &mut tx,
            *job,
            LogLevel::Warning,
            "",
            &format!("dispatch {dispatch} moved from {from} to the default queue: no available region serves {from}"),
        )
        .await?;
    }
    // The dispatches' trigger wakes the default queue's workers (see `queue_channel`).
    tx.commit().await?;
    Ok(moved.len() as u64)
}

/// Sends waiting tasks that failed over to the default queue back to their region's queue,
/// for the regions whose queues have live workers again (`served`), when nothing serves the
/// default queue (the caller checks): otherwise they would wait there for good. Returns how
/// many went back.
pub async fn return_from_default(conn: &mut PgConnection, served: &[String]) -> sqlx::Result<u64> {
    if served.is_empty() {
        return Ok(0);
    }
    let mut tx = conn.begin().await?;
    let back: Vec<(i64, i64, String)> = sqlx::query_as(
        "WITH back AS (
            UPDATE apalis.jobs t SET job_type = d.failed_over_from
            FROM job_dispatches d
            WHERE d.task_id = t.id AND d.status = 'queued' AND t.job_type = 'default'
              AND d.failed_over_from = ANY($1)
              AND (t.status = 'Pending' OR (t.status = 'Failed' AND t.attempts < t.max_attempts))
            RETURNING d.id AS dispatch, d.failed_over_from AS queue
         )
         UPDATE job_dispatches d SET queue = back.queue, failed_over_from = NULL
         FROM back WHERE d.id = back.dispatch
         RETURNING d.id, d.job_id, back.queue",
    )
    .bind(served)
    .fetch_all(&mut *tx)
    .await?;
    for (dispatch, job, queue) in &back {
        log(
            &mut tx,
            *job,
            LogLevel::Warning,
            "",
            &format!("dispatch {dispatch} moved back from the default queue to {queue}: no worker serves the default queue, and {queue} has live workers again"),
        )
        .await?;
    }
    // The dispatches' trigger wakes the regions' workers (see `queue_channel`).
    tx.commit().await?;
    Ok(back.len() as u64)
}

/// Re-queues the tasks claimed or running under apalis consumer names that start with
/// `holder` (a process `"<name>:"`, or one consumer of it), except the task ids in
/// `running`; `only` limits it to one task; `live` counts the live workers per queue. Each held task is ended and its dispatch, when
/// still open, queued again under a new task id with the attempts kept: on its queue when a
/// live worker serves it, else on the default queue; the job log says why (`why` names the
/// worker it came from). Returns how many tasks were taken from the holder.
pub async fn requeue_held(
    conn: &mut PgConnection,
    holder: &str,
    only: Option<&str>,
    running: &[String],
    live: &HashMap<String, i64>,
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
    let serves = |queue: &str| live.get(queue).copied().unwrap_or(0) > 0;
    for (task, queue, attempts) in &held {
        // The default queue only when it has a worker: a task moved there with none would
        // wait for good, where on its own queue it runs when the region's workers return.
        let target = if serves(queue) || !serves(DEFAULT_QUEUE) {
            queue.clone()
        } else {
            DEFAULT_QUEUE.to_string()
        };
        // The held task ends here, and its dispatch (if still open) goes out again under a
        // new task id: whoever still holds the old one (an apalis lock event or result in
        // flight) cannot touch the new task nor claim the dispatch with the old one.
        let new_task = new_task_id();
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
        push_dispatch_task(&mut tx, dispatch, &target, &new_task).await?;
        // Attempts are kept: a dispatch that keeps failing still runs out of them.
        sqlx::query("UPDATE apalis.jobs SET attempts = $2 WHERE id = $1")
            .bind(&new_task)
            .bind(attempts)
            .execute(&mut *tx)
            .await?;
        log(
            &mut tx,
            job,
            LogLevel::Warning,
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

/// Attempts apalis makes at a dispatch whose handler fails for infrastructure reasons
/// (device failures are results, not handler errors).
pub const TASK_MAX_ATTEMPTS: usize = 3;

/// The argument of every apalis task: which dispatch to run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DispatchTask {
    /// `job_dispatches.id`
    pub dispatch_id: i64,
}

/// Appends a line to a job's log.
pub async fn log(
    conn: &mut PgConnection,
    job_id: i64,
    level: LogLevel,
    host: &str,
    message: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO job_logs (job_id, level, host, message) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(level)
        .bind(host)
        .bind(message)
        .execute(conn)
        .await?;
    Ok(())
}

/// A new queue task id (apalis-postgres reads task ids as ULIDs).
pub fn new_task_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// Pushes the queue task that runs `dispatch_id` onto `queue` under `task_id`, in the
/// caller's transaction. A dispatch queued again gets a new task id (see
/// [`requeue_held`]): a task id stands for one hand-over, so a worker still
/// holding an older one can neither claim the dispatch nor settle its new task.
pub async fn push_dispatch_task(
    conn: &mut PgConnection,
    dispatch_id: i64,
    queue: &str,
    task_id: &str,
) -> sqlx::Result<()> {
    let args = serde_json::to_vec(&DispatchTask { dispatch_id })
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let task = TaskBuilder::new(args)
        .task_id(TaskId::from_string(task_id.to_owned()))
        .max_attempts(TASK_MAX_ATTEMPTS)
        .build();
    apalis_postgres::queries::push_tasks(conn, queue, vec![task])
        .await
        .map_err(|e| match e {
            apalis_postgres::Error::Database(e) => e,
            other => sqlx::Error::Encode(Box::new(other)),
        })
}

/// A common table expression, `enqueued`, that pushes one apalis task per row of a CTE
/// named `dispatch` (columns `id`, `task_id` and `queue`): what [`push_dispatch_task`] does,
/// for a statement that records a job and its dispatches, so that the job, its dispatches
/// and their tasks are one statement and one round trip. The task is the one apalis writes:
/// pending, due now, the argument a [`DispatchTask`] in JSON.
pub fn enqueue_dispatches_cte() -> String {
    format!(
        "enqueued AS (
           INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                    priority, metadata)
           SELECT dispatch.task_id, dispatch.queue,
                  convert_to(json_build_object('dispatch_id', dispatch.id)::text, 'UTF8'),
                  'Pending', 0, {TASK_MAX_ATTEMPTS}, now(), 0, ''::hstore
           FROM dispatch)"
    )
}

/// Deletes queue tasks finished longer than `age` ago: apalis never deletes them, and the
/// job tables keep the history. Returns how many went.
pub async fn prune_finished_tasks(
    conn: &mut PgConnection,
    age: std::time::Duration,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM apalis.jobs
         WHERE done_at < now() - make_interval(secs => $1)
           AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
    )
    .bind(age.as_secs_f64())
    .execute(conn)
    .await?
    .rows_affected())
}

#[derive(Debug, Clone, FromRow)]
/// A dispatch its worker has claimed: what to run on which devices.
pub struct Claimed {
    /// The job.
    pub job_id: i64,
    /// Its devices in this dispatch.
    pub device_ids: Vec<i64>,
    /// What to do.
    pub job_type: JobType,
    /// Commands, timeout.
    pub payload: Json<Value>,
}

/// Claims dispatch `dispatch_id` for worker `worker`, while its apalis consumer `lock_by`
/// still holds the dispatch's queue task, and marks the job running. `None` when it is not
/// to be run: its job was cancelled (the dispatch is closed), an earlier attempt finished
/// it, or the task was handed back or rescued from this worker (whoever claims it next owns
/// it, and this worker must not run it too).
pub async fn claim_dispatch(
    pool: &PgPool,
    dispatch_id: i64,
    worker: &str,
    lock_by: &str,
) -> sqlx::Result<Option<Claimed>> {
    let claimed: Option<Claimed> = sqlx::query_as(
        "UPDATE job_dispatches d SET status = 'running', worker = $2,
                started_at = COALESCE(d.started_at, now())
         FROM jobs j
         WHERE d.id = $1 AND j.id = d.job_id AND d.status IN ('queued', 'running')
           AND j.status NOT IN ('cancelled')
           AND EXISTS (SELECT 1 FROM apalis.jobs t WHERE t.id = d.task_id AND t.lock_by = $3)
         RETURNING d.job_id, d.device_ids, j.type AS job_type, j.payload",
    )
    .bind(dispatch_id)
    .bind(worker)
    .bind(lock_by)
    .fetch_optional(pool)
    .await?;
    let Some(claimed) = claimed else {
        // Cancelled: close the dispatch. Already finished by an earlier attempt, or no
        // longer this worker's task: nothing to do.
        let cancelled = sqlx::query(
            "UPDATE job_dispatches d SET status = 'cancelled', finished_at = now()
             FROM jobs j
             WHERE d.id = $1 AND j.id = d.job_id AND j.status = 'cancelled'
               AND d.status IN ('queued', 'running')
               AND EXISTS (SELECT 1 FROM apalis.jobs t WHERE t.id = d.task_id AND t.lock_by = $2)",
        )
        .bind(dispatch_id)
        .bind(lock_by)
        .execute(pool)
        .await?
        .rows_affected();
        if cancelled == 0 {
            tracing::debug!(
                dispatch = dispatch_id,
                "dispatch finished or taken over elsewhere; not running it"
            );
        }
        return Ok(None);
    };
    sqlx::query(
        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, now())
         WHERE id = $1 AND status IN ('queued', 'scheduled')",
    )
    .bind(claimed.job_id)
    .execute(pool)
    .await?;
    Ok(Some(claimed))
}

/// Whether the job was cancelled (or deleted) meanwhile.
pub async fn job_cancelled(pool: &PgPool, job_id: i64) -> sqlx::Result<bool> {
    let status: Option<JobStatus> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await?;
    Ok(status.is_none_or(|s| s == JobStatus::Cancelled))
}

/// Records what happened on one device of a dispatch (`device` is its id and hostname);
/// recording it twice keeps the first.
pub async fn record_device_result(
    pool: &PgPool,
    dispatch_id: i64,
    job_id: i64,
    device: (i64, &str),
    status: JobStatus,
    detail: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO job_device_results (dispatch_id, device_id, job_id, hostname, status, detail)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dispatch_id, device_id) DO NOTHING",
    )
    .bind(dispatch_id)
    .bind(device.0)
    .bind(job_id)
    .bind(device.1)
    .bind(status)
    .bind(Json(detail))
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the dispatch's status from its device results and, when it was the job's last open
/// dispatch, the job's.
pub async fn finish_dispatch(pool: &PgPool, job_id: i64, dispatch_id: i64) -> sqlx::Result<()> {
    let mut tx = crate::db::begin(pool).await?;
    // Serialise the last two dispatches of a job finishing at once.
    sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    let (ok, total): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'success'), count(*)
         FROM job_device_results WHERE dispatch_id = $1",
    )
    .bind(dispatch_id)
    .fetch_one(&mut *tx)
    .await?;
    let status = JobStatus::from_outcomes(ok as usize, total as usize);
    sqlx::query(
        "UPDATE job_dispatches SET status = $2, finished_at = now() WHERE id = $1 AND status = 'running'",
    )
    .bind(dispatch_id)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    log(
        &mut tx,
        job_id,
        if status == JobStatus::Success {
            LogLevel::Info
        } else {
            LogLevel::Warning
        },
        "",
        &format!("dispatch {dispatch_id} finished: {status} ({ok} of {total} devices succeeded)"),
    )
    .await?;

    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_dispatches WHERE job_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .fetch_one(&mut *tx)
    .await?;
    if open == 0 {
        let (ok, failed, cancelled): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'success'),
                    count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status = 'cancelled')
             FROM job_device_results WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let status = JobStatus::from_outcomes(ok as usize, (ok + failed + cancelled) as usize);
        let updated = sqlx::query(
            "UPDATE jobs SET status = $2, finished_at = now(), result_summary = $3
             WHERE id = $1 AND status <> 'cancelled'",
        )
        .bind(job_id)
        .bind(status)
        .bind(Json(summary(ok, failed, cancelled)))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            log(
                &mut tx,
                job_id,
                LogLevel::Info,
                "",
                &format!("job finished: {status}"),
            )
            .await?;
        }
    }
    tx.commit().await
}

/// Marks a dispatch failed after its last attempt failed for infrastructure reasons.
pub async fn give_up(pool: &PgPool, dispatch_id: i64, error: &str) -> sqlx::Result<()> {
    let job_id: Option<i64> = sqlx::query_scalar(
        "UPDATE job_dispatches SET status = 'failed', finished_at = now()
         WHERE id = $1 AND status IN ('queued', 'running') RETURNING job_id",
    )
    .bind(dispatch_id)
    .fetch_optional(pool)
    .await?;
    if let Some(job_id) = job_id {
        let mut conn = pool.acquire().await?;
        log(
            &mut conn,
            job_id,
            LogLevel::Error,
            "",
            &format!(
                "dispatch {dispatch_id} gave up after {} attempts: {error}",
                TASK_MAX_ATTEMPTS
            ),
        )
        .await?;
        sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = now()
             WHERE id = $1 AND status IN ('queued', 'running')
               AND NOT EXISTS (SELECT 1 FROM job_dispatches WHERE job_id = $1 AND status IN ('queued', 'running'))",
        )
        .bind(job_id)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Device outcomes counted into `result_summary`.
pub fn summary(succeeded: i64, failed: i64, cancelled: i64) -> Value {
    json!({"devices": succeeded + failed + cancelled, "succeeded": succeeded, "failed": failed, "cancelled": cancelled})
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

/// How many tasks on `queue` will be taken before task `task_id`: those claimed already and
/// those waiting longer.
pub async fn tasks_ahead(conn: &mut PgConnection, queue: &str, task_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs t, (SELECT run_at, priority FROM apalis.jobs WHERE id = $2) me
         WHERE t.job_type = $1 AND t.status IN ('Pending', 'Queued', 'Running') AND t.id <> $2
           AND (t.status <> 'Pending' OR t.run_at < me.run_at OR (t.run_at = me.run_at AND t.id < $2))",
    )
    .bind(queue)
    .bind(task_id)
    .fetch_one(conn)
    .await
}

/// Cancels job `id`: its pending tasks are withdrawn from their queues, its queued
/// dispatches cancelled, and running ones stop at their next device or command.
pub async fn cancel_job(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM apalis.jobs WHERE status = 'Pending'
           AND id IN (SELECT task_id FROM job_dispatches WHERE job_id = $1 AND status = 'queued')",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE job_dispatches SET status = 'cancelled', finished_at = now()
         WHERE job_id = $1 AND status = 'queued'",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET status = 'cancelled', finished_at = COALESCE(finished_at, now())
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    log(conn, id, LogLevel::Warning, "", "cancelled by a user").await
}

/// Consumers holding tasks for over 30 s whose process has no live heartbeat row: it died
/// before its first heartbeat, its row was removed while it held tasks, or it claimed tasks
/// after it was given up for lost.
pub async fn orphaned_holders(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT lock_by FROM apalis.jobs t
         WHERE status IN ('Queued', 'Running') AND lock_at < now() - interval '30 seconds'
           AND NOT EXISTS (SELECT 1 FROM worker_heartbeats w
                           WHERE starts_with(t.lock_by, w.name || ':') AND w.lost_at IS NULL)",
    )
    .fetch_all(conn)
    .await
}
