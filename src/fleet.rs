//! Worker processes and queues as the database sees them: heartbeats, live workers per
//! queue, queue depth and the age of the oldest waiting task. Read by the health monitor,
//! the job pages, the region pages and the metrics; written by the workers' heartbeats.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{FromRow, PgConnection, PgPool};

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
    let depths = crate::lifecycle::queue_depths(conn).await?;
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
pub async fn beat<'e>(conn: impl sqlx::PgExecutor<'e>, beat: &Beat<'_>) -> sqlx::Result<()> {
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
    .execute(conn)
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
