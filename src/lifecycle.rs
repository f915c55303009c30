//! The job lifecycle on the queue: queue names, pushing a dispatch's task, moving tasks
//! between queues (failover), taking them back from workers (rescue, hand-back), settling
//! them, pruning them, and the job log those moves write to. Every statement on apalis's
//! tables lives here; the monitor, the workers and the job use cases call in, and this
//! module calls none of them.

use apalis::prelude::{TaskBuilder, TaskId};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};

/// The queue name for a region identifier.
pub fn queue_name(identifier: &str) -> String {
    format!("region_{identifier}")
}

/// Name of the queue for devices without an available region.
pub const DEFAULT_QUEUE: &str = "default";

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
        log(
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
    let live = crate::fleet::live_workers(&mut tx).await?;
    for (task, queue, attempts) in &held {
        let target = if live.get(queue).copied().unwrap_or(0) > 0 {
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
    level: &str,
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
