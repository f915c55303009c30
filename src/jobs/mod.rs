//! Jobs: what to run on which devices, routed to regional queues, and what happened.
//!
//! Creating a job records it, its dispatches (one per queue, see [`crate::routing`]), one
//! apalis task per dispatch and its audit row, all in one statement: a failure leaves
//! neither a job without tasks nor a task without a job.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::audit::Change;
use crate::auth::{AuthUser, Scope};
use crate::db::push_condition;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::lifecycle::{LogLevel, new_task_id};
use crate::pagination::PageRequest;
use crate::routing;

pub use crate::lifecycle::{JobStatus, JobType};

mod targets;

pub use targets::{MAX_TARGET_DEVICES, Targets, match_devices, validate_payload};

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Customer.
    #[serde(rename = "customer")]
    pub customer_id: i64,
    /// Type.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub job_type: JobType,
    /// Status.
    pub status: JobStatus,
    /// Who asked.
    #[serde(rename = "user")]
    pub user_id: Option<i64>,
    /// Region of the highest-priority dispatch.
    #[serde(rename = "region")]
    pub region_id: Option<i64>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// First dispatch started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// Last dispatch finished.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Targets as given: `{"filters": {..}}` or flat filters (`site`, `role`, `vendor`,
    /// `hostname`, `device_ids`), or `{"filter": {..}}`, the device list's filter (any of
    /// its parameters; lists for several values).
    #[schema(value_type = Object)]
    pub target_summary: Json<Value>,
    /// Validated payload: `commands` and `timeout` for `run_commands`, `timeout` otherwise.
    #[schema(value_type = Object)]
    pub payload: Json<Value>,
    /// Counts of device outcomes: `devices`, `succeeded`, `failed`, `cancelled`.
    #[schema(value_type = Object)]
    pub result_summary: Json<Value>,
    /// The job this one retries.
    pub retry_of: Option<i64>,
    /// Where it was sent.
    #[sqlx(skip)]
    pub dispatches: Vec<DispatchView>,
    /// Username of `user` (UI).
    #[serde(skip)]
    pub username: Option<String>,
    /// Name of `region` (UI).
    #[serde(skip)]
    pub region_name: Option<String>,
}

/// One dispatch as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
#[schema(as = Dispatch)]
pub struct DispatchView {
    /// Id.
    pub id: i64,
    /// Region, or null for the default queue.
    #[serde(rename = "region")]
    pub region_id: Option<i64>,
    /// Queue: `region_<identifier>`, or `default`.
    pub queue: String,
    /// Devices.
    pub device_ids: Vec<i64>,
    /// Status.
    pub status: JobStatus,
    /// Worker that ran it.
    pub worker: Option<String>,
    /// Why these devices went to this queue.
    pub reason: String,
    /// The queue it was moved away from, if it failed over.
    pub failed_over_from: Option<String>,
    /// Started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// Finished.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Why a queued dispatch is still waiting ("3 tasks ahead", "no live worker on …").
    #[sqlx(skip)]
    pub waiting: Option<String>,
    /// Region name (UI).
    #[serde(skip)]
    pub region_name: Option<String>,
    /// The apalis task carrying it.
    #[serde(skip)]
    pub task_id: String,
}

/// A job log line.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct LogEntry {
    /// Id (for tailing).
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    /// debug, info, warning, error.
    pub level: String,
    /// Device hostname, or empty for job-level lines.
    pub host: String,
    /// Text.
    pub message: String,
}

/// A validated request to run a job.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Customer.
    pub customer_id: i64,
    /// Requesting user.
    pub user_id: Option<i64>,
    /// Type.
    pub job_type: JobType,
    /// Targets as given (stored as the job's `target_summary`).
    pub target_summary: Value,
    /// Parsed targets.
    pub targets: Targets,
    /// Validated payload.
    pub payload: Value,
    /// The job this retries.
    pub retry_of: Option<i64>,
}

/// Records a job, routes it, enqueues its dispatches and writes its audit row (`audited`:
/// who made it and the change, where `{id}` stands for the new job's id; none for the
/// benchmarks' jobs, which no one made), in one statement.
pub async fn create(
    conn: &mut PgConnection,
    new: &NewJob,
    audited: Option<(&AuthUser, &Change)>,
) -> AppResult<i64> {
    let (devices, default_served) = match_devices(conn, new.customer_id, &new.targets).await?;
    if devices.is_empty() {
        return Err(AppError::Validation(FieldErrors::single(
            "target_summary",
            "No enabled device matches these targets.",
        )));
    }
    let plan = routing::plan(&devices, default_served);
    // The routing decision goes to the log: a summary, then a line per dispatch.
    let summary = format!(
        "{} job for {} device{}, routed to {} queue{}",
        new.job_type,
        devices.len(),
        if devices.len() == 1 { "" } else { "s" },
        plan.dispatches.len(),
        if plan.dispatches.len() == 1 { "" } else { "s" }
    );
    // The device lists travel as one array, each dispatch taking its slice.
    let task_ids: Vec<String> = plan.dispatches.iter().map(|_| new_task_id()).collect();
    let region_ids: Vec<Option<i64>> = plan.dispatches.iter().map(|d| d.region_id).collect();
    let queues: Vec<&str> = plan.dispatches.iter().map(|d| d.queue.as_str()).collect();
    let reasons: Vec<&str> = plan.dispatches.iter().map(|d| d.reason.as_str()).collect();
    let devices: Vec<i64> = plan
        .dispatches
        .iter()
        .flat_map(|d| d.device_ids.iter().copied())
        .collect();
    let (mut firsts, mut lasts, mut next) = (Vec::new(), Vec::new(), 1_i32);
    for d in &plan.dispatches {
        firsts.push(next);
        next += d.device_ids.len() as i32;
        lasts.push(next - 1);
    }
    // The job, its dispatches, their queue tasks, its log and its audit row in one
    // statement: one round trip, and all or nothing without a transaction around it.
    // The triggers leave this statement's notifications to `lifecycle::announce`, after the
    // commit (`quiet`, evaluated by the final SELECT, before the triggers fire at its end).
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("WITH quiet AS (SELECT ");
    qb.push(crate::lifecycle::NOTIFY_AFTER_COMMIT);
    qb.push(
        " AS quiet),
         job AS (
           INSERT INTO jobs (customer_id, type, user_id, region_id, target_summary, payload,
                             retry_of)
           VALUES (",
    );
    qb.push_bind(new.customer_id)
        .push(", ")
        .push_bind(new.job_type)
        .push(", ")
        .push_bind(new.user_id)
        .push(", ")
        .push_bind(plan.region_id)
        .push(", ")
        .push_bind(Json(new.target_summary.clone()))
        .push(", ")
        .push_bind(Json(new.payload.clone()))
        .push(", ")
        .push_bind(new.retry_of)
        .push(
            ") RETURNING id),
         planned AS (
           SELECT * FROM unnest(",
        )
        .push_bind(region_ids)
        .push("::bigint[], ")
        .push_bind(queues.clone())
        .push("::text[], ")
        .push_bind(task_ids)
        .push("::text[], ")
        .push_bind(reasons)
        .push("::text[], ")
        .push_bind(firsts)
        .push("::int[], ")
        .push_bind(lasts)
        .push(
            "::int[])
                    WITH ORDINALITY AS p(region_id, queue, task_id, reason, first, last, n)),
         dispatch AS (
           INSERT INTO job_dispatches (job_id, region_id, queue, device_ids, task_id,
                                       routing_reason)
           SELECT job.id, p.region_id, p.queue, (",
        )
        .push_bind(devices)
        .push(
            "::bigint[])[p.first:p.last], p.task_id, p.reason
           FROM job, planned p ORDER BY p.n
           RETURNING id, task_id, queue),
         logged AS (
           INSERT INTO job_logs (job_id, level, host, message)
           SELECT job.id, ",
        )
        .push_bind(LogLevel::Info)
        .push(", '', line.message FROM job, (SELECT 0::bigint AS n, ")
        .push_bind(summary)
        .push(
            "::text AS message
                      UNION ALL
                      SELECT p.n, format('dispatch %s → %s: %s', d.id, d.queue, p.reason)
                      FROM dispatch d JOIN planned p ON p.task_id = d.task_id) line
           ORDER BY line.n), ",
        )
        .push(crate::lifecycle::enqueue_dispatches_cte());
    if let Some((actor, change)) = audited {
        qb.push(", ");
        crate::audit::push_record_cte(&mut qb, actor, change, ("job", "job.id"));
    }
    qb.push(" SELECT id FROM job, quiet");
    // Prepared like any statement: its text depends only on which binds there are.
    let job_id: i64 = qb.build_query_scalar().fetch_one(&mut *conn).await?;
    crate::lifecycle::announce(conn, job_id, &queues).await;
    Ok(job_id)
}

const JOB_SELECT: &str = "SELECT j.id, j.customer_id, j.type, j.status, j.user_id, j.region_id,
        j.requested_at, j.started_at, j.finished_at, j.target_summary, j.payload,
        j.result_summary, j.retry_of, u.username, r.name AS region_name
    FROM jobs j LEFT JOIN users u ON u.id = j.user_id LEFT JOIN regions r ON r.id = j.region_id";

#[derive(FromRow)]
struct JobRow {
    #[sqlx(flatten)]
    job: Job,
}

/// One job in scope, with its dispatches; 404 otherwise.
pub async fn get(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Job> {
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{JOB_SELECT} WHERE j.id = $1 AND ($2::bigint[] IS NULL OR j.customer_id = ANY($2))"
    )))
    .bind(id)
    .bind(scope.ids())
    .fetch_optional(&mut *conn)
    .await?;
    let mut job = row.ok_or(AppError::NotFound)?.job;
    job.dispatches = dispatches(conn, &[job.id], true)
        .await?
        .remove(&job.id)
        .unwrap_or_default();
    Ok(job)
}

/// The dispatches of some jobs; with `explain`, queued ones say why they wait (a few
/// queries per queued dispatch, so only for a single job's page, not for lists).
async fn dispatches(
    conn: &mut PgConnection,
    job_ids: &[i64],
    explain: bool,
) -> AppResult<BTreeMap<i64, Vec<DispatchView>>> {
    #[derive(FromRow)]
    struct Row {
        job_id: i64,
        #[sqlx(flatten)]
        view: DispatchView,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.job_id, d.id, d.region_id, d.queue, d.device_ids, d.status, d.worker,
                d.routing_reason AS reason, d.failed_over_from, d.started_at, d.finished_at,
                r.name AS region_name, d.task_id
         FROM job_dispatches d LEFT JOIN regions r ON r.id = d.region_id
         WHERE d.job_id = ANY($1)
         ORDER BY d.job_id, d.id",
    )
    .bind(job_ids)
    .fetch_all(&mut *conn)
    .await?;
    let waiting = explain && rows.iter().any(|r| r.view.status == JobStatus::Queued);
    let live = if waiting {
        crate::fleet::live_workers(&mut *conn).await?
    } else {
        Default::default()
    };
    let mut out: BTreeMap<i64, Vec<DispatchView>> = BTreeMap::new();
    for mut row in rows {
        if waiting && row.view.status == JobStatus::Queued {
            row.view.waiting = Some(explain_wait(&mut *conn, &row.view, &live).await?);
        }
        out.entry(row.job_id).or_default().push(row.view);
    }
    Ok(out)
}

/// Why a queued dispatch waits: no worker serves its queue, or tasks ahead of it.
async fn explain_wait(
    conn: &mut PgConnection,
    dispatch: &DispatchView,
    live: &std::collections::HashMap<String, i64>,
) -> sqlx::Result<String> {
    if live.get(&dispatch.queue).copied().unwrap_or(0) == 0 {
        return Ok(if dispatch.queue == crate::lifecycle::DEFAULT_QUEUE {
            "no live worker on the default queue; start one with `webnet worker --default-queue`"
                .to_string()
        } else {
            format!(
                "no live worker on {}; moves to the default queue as soon as the health monitor marks its region offline (a few seconds)",
                dispatch.queue
            )
        });
    }
    let ahead = crate::lifecycle::tasks_ahead(conn, &dispatch.queue, &dispatch.task_id).await?;
    Ok(match ahead {
        0 => format!(
            "next on {}; a worker picks it up within a second",
            dispatch.queue
        ),
        1 => format!("1 task ahead on {}", dispatch.queue),
        n => format!("{n} tasks ahead on {}", dispatch.queue),
    })
}

/// Filters of the job list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Status.
    pub status: Option<JobStatus>,
    /// Type.
    pub job_type: Option<JobType>,
    /// Region (the job's region).
    pub region: Option<i64>,
    /// A device among its targets.
    pub device: Option<i64>,
    /// Who asked.
    pub user: Option<i64>,
    /// Requested at or after.
    pub since: Option<OffsetDateTime>,
    /// Requested before.
    pub until: Option<OffsetDateTime>,
}

/// Jobs in scope, newest first, with their dispatches.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &JobFilter,
    page: PageRequest,
) -> AppResult<(Vec<Job>, i64)> {
    let push_where = |qb: &mut QueryBuilder<Postgres>| {
        qb.push(" WHERE true");
        if let Some(ids) = scope.ids() {
            qb.push(" AND j.customer_id = ANY(")
                .push_bind(ids.to_vec())
                .push(")");
        }
        push_condition(qb, "j.status = ", filter.status);
        push_condition(qb, "j.type = ", filter.job_type);
        push_condition(qb, "j.region_id = ", filter.region);
        push_condition(qb, "j.user_id = ", filter.user);
        push_condition(qb, "j.requested_at >= ", filter.since);
        push_condition(qb, "j.requested_at < ", filter.until);
        if let Some(device) = filter.device {
            qb.push(" AND EXISTS (SELECT 1 FROM job_dispatches fd WHERE fd.job_id = j.id AND ")
                .push_bind(device)
                .push(" = ANY(fd.device_ids))");
        }
    };
    let mut count_qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT count(*) FROM jobs j");
    push_where(&mut count_qb);
    let count: i64 = count_qb.build_query_scalar().fetch_one(&mut *conn).await?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(JOB_SELECT);
    push_where(&mut qb);
    qb.push(" ORDER BY j.requested_at DESC, j.id DESC");
    page.push_limit(&mut qb);
    let rows: Vec<JobRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let mut jobs: Vec<Job> = rows.into_iter().map(|r| r.job).collect();
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let mut by_job = dispatches(conn, &ids, false).await?;
    for job in &mut jobs {
        job.dispatches = by_job.remove(&job.id).unwrap_or_default();
    }
    Ok((jobs, count))
}

/// Log lines of a job after `after_id`, oldest first, at most `limit`.
pub async fn logs(
    conn: &mut PgConnection,
    job_id: i64,
    after_id: i64,
    limit: i64,
) -> AppResult<Vec<LogEntry>> {
    Ok(sqlx::query_as(
        "SELECT id, ts, level, host, message FROM job_logs
         WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(job_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// When a log line happened, as every log shows it (the page and the downloaded text): the
/// date and the time to the millisecond, in UTC and saying so, so that a line read the next
/// day, or by a colleague elsewhere, still says when.
pub fn log_stamp(t: OffsetDateTime) -> String {
    let stamp = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3] UTC"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&stamp)
        .unwrap_or_default()
}

/// A job's whole log as plain text (`Download log`): one entry per line, stamped with the
/// date, time and zone, its level and host; the further lines of a message (command output)
/// follow indented.
pub async fn log_text(conn: &mut PgConnection, job_id: i64) -> AppResult<String> {
    use std::fmt::Write;
    const PAGE: i64 = 1000;
    let mut text = String::new();
    let mut after = 0;
    loop {
        let page = logs(conn, job_id, after, PAGE).await?;
        for e in &page {
            let ts = log_stamp(e.ts);
            let host = if e.host.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.host)
            };
            let mut lines = e.message.lines();
            let _ = writeln!(
                text,
                "{ts} {:<7} {host}{}",
                e.level,
                lines.next().unwrap_or("")
            );
            for line in lines {
                let _ = writeln!(text, "    {line}");
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.id,
            _ => return Ok(text),
        }
    }
}

/// Log lines of a job after `after_id`, and also those written in the last `lookback`,
/// oldest first, at most `limit`. Ids come from a sequence but writers commit in their own
/// order: a line can become visible after a line with a higher id was already read, and a
/// reader that only asks for ids above the last one it saw would skip it. Live readers ask
/// with a lookback and drop the ids they have sent already.
pub async fn logs_with_lookback(
    conn: &mut PgConnection,
    job_id: i64,
    after_id: i64,
    lookback: std::time::Duration,
    limit: i64,
) -> AppResult<Vec<LogEntry>> {
    Ok(sqlx::query_as(
        "SELECT id, ts, level, host, message FROM job_logs
         WHERE job_id = $1 AND (id > $2 OR ts > now() - make_interval(secs => $3))
         ORDER BY id LIMIT $4",
    )
    .bind(job_id)
    .bind(after_id)
    .bind(lookback.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Per-device outcomes of a job.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct DeviceResult {
    /// Device id.
    pub device_id: i64,
    /// Hostname at the time.
    pub hostname: String,
    /// success, failed, cancelled.
    pub status: String,
    /// Type-specific detail (latency, outputs, snapshot id, error).
    #[schema(value_type = Object)]
    pub detail: Json<Value>,
    /// Dispatch that ran it.
    pub dispatch_id: i64,
}

/// A job as a device's history shows it.
#[derive(Debug, Clone, FromRow)]
pub struct DeviceJob {
    /// The job.
    pub job_id: i64,
    /// Its type.
    pub job_type: JobType,
    /// When it was asked for.
    pub requested_at: OffsetDateTime,
    /// Who asked.
    pub username: Option<String>,
    /// What it did on this device: success, failed, cancelled.
    pub status: String,
    /// When it finished on this device.
    pub finished_at: OffsetDateTime,
}

/// The last `limit` jobs that ran on a device, newest first. The caller has checked that
/// the device is visible; its jobs belong to the same customer.
pub async fn device_history(
    conn: &mut PgConnection,
    device_id: i64,
    limit: i64,
) -> AppResult<Vec<DeviceJob>> {
    Ok(sqlx::query_as(
        "SELECT r.job_id, j.type AS job_type, j.requested_at, u.username, r.status, r.finished_at
         FROM job_device_results r
         JOIN jobs j ON j.id = r.job_id
         LEFT JOIN users u ON u.id = j.user_id
         WHERE r.device_id = $1
         ORDER BY r.job_id DESC, r.finished_at DESC
         LIMIT $2",
    )
    .bind(device_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The per-device outcomes of a job.
pub async fn results(conn: &mut PgConnection, job_id: i64) -> AppResult<Vec<DeviceResult>> {
    Ok(sqlx::query_as(
        "SELECT device_id, hostname, status, detail, dispatch_id FROM job_device_results
         WHERE job_id = $1 ORDER BY hostname",
    )
    .bind(job_id)
    .fetch_all(conn)
    .await?)
}

/// Cancels a job: pending tasks are withdrawn from their queues, queued dispatches are
/// cancelled, and running ones stop at their next device or command.
pub async fn cancel(conn: &mut PgConnection, scope: &Scope, id: i64) -> AppResult<Job> {
    let job = get(conn, scope, id).await?;
    if job.status.is_finished() {
        return Err(AppError::Validation(FieldErrors::single(
            "status",
            format!("The job is already {}.", job.status),
        )));
    }
    crate::lifecycle::cancel_job(conn, id).await?;
    get(conn, scope, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_status_follows_device_outcomes() {
        assert_eq!(JobStatus::from_outcomes(3, 3), JobStatus::Success);
        assert_eq!(JobStatus::from_outcomes(1, 3), JobStatus::Partial);
        assert_eq!(JobStatus::from_outcomes(0, 3), JobStatus::Failed);
        assert!(JobStatus::Cancelled.is_finished() && !JobStatus::Running.is_finished());
    }

    #[test]
    fn job_types_round_trip() {
        for t in JobType::ALL {
            assert_eq!(JobType::parse(t.as_str()), Ok(t));
        }
        assert!(JobType::parse("reboot").is_err());
    }
}
