//! `/api/v1/jobs/`, the seed's shortcuts (`/commands/run`, `/reachability/run`,
//! `/config/backup`) and `/regions/{id}/jobs/`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Call, ListQuery, area, created};
use crate::auth::{AuthUser, Role};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{ApiJson, Id, Params};
use crate::jobs::{self, DeviceResult, Job, JobStatus, JobType, LogEntry};
use crate::pagination::Paginated;
use crate::params::{JobParams, LogParams, PageParams, Reading};
use crate::regions;
use crate::state::AppState;
use crate::usecases;

pub(super) fn routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let handlers = [
        routes!(list_jobs, create_job),
        routes!(get_job),
        routes!(list_job_logs),
        routes!(download_job_log),
        routes!(list_job_results),
        routes!(cancel_job),
        routes!(retry_job),
        routes!(list_region_jobs),
        routes!(run_commands),
        routes!(run_reachability),
        routes!(run_config_backup),
    ];
    area(router, "jobs", handlers)
}

/// Body of `POST /jobs/`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct CreateJob {
    /// Customer (may be left out when the caller belongs to exactly one).
    customer: Option<i64>,
    /// `run_commands`, `config_backup` or `check_reachability`.
    #[serde(rename = "type")]
    #[schema(value_type = JobType, required = true)]
    job_type: Option<String>,
    /// Which devices: `{"filters": {..}}` or the filters themselves: `site`, `role`, `vendor`,
    /// `hostname` (matched case-insensitively within the customer's enabled devices) and
    /// `device_ids`; or `{"filter": {..}}`, the device list's filter (any of its parameters,
    /// lists for several values), for every enabled device it matches.
    #[schema(value_type = Object, required = true)]
    target_summary: Option<Value>,
    /// For `run_commands`: `commands` (1 to 50 single lines) and `timeout` (seconds per
    /// command, at most 600, default 30). For `config_backup`: `timeout` (at most 600, default
    /// 60). For `check_reachability`: `timeout` (at most 60, default 5).
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
}

/// `{count, results}` of a job's log or results, complete on one page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Listing<T> {
    /// Number of entries.
    count: usize,
    /// The entries.
    results: Vec<T>,
}

impl<T> From<Vec<T>> for Listing<T> {
    fn from(results: Vec<T>) -> Self {
        Self {
            count: results.len(),
            results,
        }
    }
}

/// What the seed's shortcuts answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Accepted {
    /// The new job, to follow at `/api/v1/jobs/{job_id}/`.
    job_id: i64,
    /// Always `queued`.
    status: JobStatus,
}

/// The `201 Created` answer of a new job, read back with its dispatches.
async fn created_job(state: &AppState, user: &AuthUser, id: i64) -> AppResult<Response> {
    let mut conn = state.pool.acquire().await?;
    let job = jobs::get(&mut conn, &user.scope(), id).await?;
    Ok(created(format!("/jobs/{}/", job.id), job))
}

/// Creates a job and routes it to its devices' regions (operator).
///
/// One dispatch goes to each available region of the target devices, plus one to the default
/// queue for devices without an available region. The routing decision is in the job's log.
#[utoipa::path(
    post,
    path = "/jobs/",
    request_body = CreateJob,
    responses((status = 201, description = "The job, queued, with its dispatches.", body = Job)),
)]
async fn create_job(
    Call { state, user }: Call,
    ApiJson(body): ApiJson<CreateJob>,
) -> AppResult<Response> {
    user.require(Role::Operator)?;
    let job_type = match body.job_type.as_deref() {
        Some(t) => {
            JobType::parse(t).map_err(|m| AppError::Validation(FieldErrors::single("type", m)))?
        }
        None => {
            return Err(AppError::Validation(FieldErrors::single(
                "type",
                "This field is required.",
            )));
        }
    };
    let id = usecases::jobs::submit(
        &state.pool,
        &user,
        body.customer,
        job_type,
        body.target_summary.unwrap_or(Value::Null),
        body.payload.unwrap_or(Value::Null),
        "target_summary",
    )
    .await?;
    created_job(&state, &user, id).await
}

/// Lists jobs, newest first.
#[utoipa::path(
    get,
    path = "/jobs/",
    params(PageParams, JobParams),
    responses((status = 200, description = "A page of jobs.", body = Paginated<Job>)),
)]
async fn list_jobs(
    Call { state, user }: Call,
    list: ListQuery<JobParams>,
) -> AppResult<Json<Paginated<Job>>> {
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = jobs::list(&mut conn, &user.scope(), &list.filter, list.page).await?;
    Ok(list.answer(rows, count))
}

/// Lists the jobs that had a dispatch to a region, newest first.
#[utoipa::path(
    get,
    path = "/regions/{id}/jobs/",
    tag = "regions",
    params(("id" = i64, Path, description = "Region id."), PageParams, JobParams),
    responses((status = 200, description = "A page of the region's jobs.", body = Paginated<Job>)),
)]
async fn list_region_jobs(
    Call { state, user }: Call,
    Id(id): Id,
    mut list: ListQuery<JobParams>,
) -> AppResult<Json<Paginated<Job>>> {
    let mut conn = state.pool.acquire().await?;
    regions::get(&mut conn, &user.scope(), id).await?;
    list.filter.region = Some(id);
    let (rows, count) = jobs::list(&mut conn, &user.scope(), &list.filter, list.page).await?;
    Ok(list.answer(rows, count))
}

/// Shows one job with its dispatches: where it was sent, why, and which worker ran it.
#[utoipa::path(
    get,
    path = "/jobs/{id}/",
    params(("id" = i64, Path, description = "Job id.")),
    responses((status = 200, description = "The job.", body = Job)),
)]
async fn get_job(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<Job>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(jobs::get(&mut conn, &user.scope(), id).await?))
}

/// A job's log, oldest first.
///
/// At most 1000 entries: the routing decision, failovers, and each device's progress.
#[utoipa::path(
    get,
    path = "/jobs/{id}/logs/",
    params(("id" = i64, Path, description = "Job id."), LogParams),
    responses((status = 200, description = "Log entries.", body = Listing<LogEntry>)),
)]
async fn list_job_logs(
    Call { state, user }: Call,
    Id(id): Id,
    Params(params): Params<LogParams>,
) -> AppResult<Json<Listing<LogEntry>>> {
    let after = params.after(Reading::Strict)?;
    let mut conn = state.pool.acquire().await?;
    jobs::get(&mut conn, &user.scope(), id).await?;
    Ok(Json(jobs::logs(&mut conn, id, after, 1000).await?.into()))
}

/// The whole log as plain text, for reading or saving.
///
/// One entry per line: date, time and zone (UTC), level, host, message; command output
/// follows indented. Sent as an attachment named `job-<id>-log.txt`.
#[utoipa::path(
    get,
    path = "/jobs/{id}/logs/download/",
    params(("id" = i64, Path, description = "Job id.")),
    responses((status = 200, description = "The log.", content_type = "text/plain", body = String)),
)]
async fn download_job_log(Call { state, user }: Call, Id(id): Id) -> AppResult<Response> {
    let mut conn = state.pool.acquire().await?;
    jobs::get(&mut conn, &user.scope(), id).await?;
    let text = jobs::log_text(&mut conn, id).await?;
    Ok(crate::extract::attachment(
        "text/plain; charset=utf-8",
        &format!("job-{id}-log.txt"),
        text,
    ))
}

/// Each device's outcome.
///
/// A status and type-specific detail: outputs, latency, snapshot id, or error.
#[utoipa::path(
    get,
    path = "/jobs/{id}/results/",
    params(("id" = i64, Path, description = "Job id.")),
    responses((status = 200, description = "Per-device results.", body = Listing<DeviceResult>)),
)]
async fn list_job_results(
    Call { state, user }: Call,
    Id(id): Id,
) -> AppResult<Json<Listing<DeviceResult>>> {
    let mut conn = state.pool.acquire().await?;
    jobs::get(&mut conn, &user.scope(), id).await?;
    Ok(Json(jobs::results(&mut conn, id).await?.into()))
}

/// Cancels a job (operator).
///
/// Queued dispatches are withdrawn; running ones stop before their next command. A finished
/// job is left as it is.
#[utoipa::path(
    post,
    path = "/jobs/{id}/cancel/",
    params(("id" = i64, Path, description = "Job id.")),
    responses(
        (status = 200, description = "The job after cancelling.", body = Job),
        (status = 400, description = "The job has already finished (see `errors.status`).", body = super::openapi::ValidationErrors),
    ),
)]
async fn cancel_job(Call { state, user }: Call, Id(id): Id) -> AppResult<Json<Job>> {
    Ok(Json(usecases::jobs::cancel(&state.pool, &user, id).await?))
}

/// Runs a job again (operator).
///
/// A new job with the same targets and payload, routed afresh.
#[utoipa::path(
    post,
    path = "/jobs/{id}/retry/",
    params(("id" = i64, Path, description = "Job id.")),
    responses(
        (status = 201, description = "The new job.", body = Job),
        (status = 400, description = "The job's targets no longer match an enabled device.", body = super::openapi::ValidationErrors),
    ),
)]
async fn retry_job(Call { state, user }: Call, Id(id): Id) -> AppResult<Response> {
    let new_id = usecases::jobs::retry(&state.pool, &user, id).await?;
    created_job(&state, &user, new_id).await
}

/// Body of the seed's shortcuts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Shortcut {
    /// Customer (may be left out when the caller belongs to exactly one).
    customer: Option<i64>,
    /// Which devices: `{"filters": {..}}` or the filters themselves (`site`, `role`, `vendor`,
    /// `hostname`, `device_ids`), or `{"filter": {..}}`, the device list's filter.
    #[schema(value_type = Object, required = true)]
    targets: Option<Value>,
    /// Command lines to run, in order (`/commands/run` only, where they are required).
    #[schema(value_type = Option<Vec<String>>)]
    commands: Option<Value>,
    /// Seconds per command or per device.
    #[schema(value_type = Option<i64>)]
    timeout: Option<Value>,
}

async fn shortcut(
    state: AppState,
    user: AuthUser,
    job_type: JobType,
    body: Shortcut,
) -> AppResult<Response> {
    let mut payload = serde_json::Map::new();
    if let Some(c) = body.commands {
        if job_type != JobType::RunCommands {
            // Commands sent here would be silently dropped: say so instead.
            return Err(AppError::Validation(FieldErrors::single(
                "commands",
                "Only /commands/run takes commands.",
            )));
        }
        payload.insert("commands".into(), c);
    }
    if let Some(t) = body.timeout {
        payload.insert("timeout".into(), t);
    }
    let id = usecases::jobs::submit(
        &state.pool,
        &user,
        body.customer,
        job_type,
        body.targets.unwrap_or(Value::Null),
        Value::Object(payload),
        "targets",
    )
    .await
    .map_err(|e| match e {
        // The shortcuts take `commands` and `timeout` at the top level.
        AppError::Validation(f) => {
            let mut renamed = FieldErrors::new();
            for (k, v) in f.0 {
                let k = k.strip_prefix("payload.").map(str::to_owned).unwrap_or(k);
                for m in v {
                    renamed.add(k.clone(), m);
                }
            }
            AppError::Validation(renamed)
        }
        other => other,
    })?;
    Ok((
        StatusCode::ACCEPTED,
        // A new job is always queued; no need to read it back.
        Json(Accepted {
            job_id: id,
            status: JobStatus::Queued,
        }),
    )
        .into_response())
}

/// A seed shortcut: `POST $path` submits a job of `$job_type` with the [`Shortcut`] body (see
/// [`shortcut`]). Its doc comment describes the operation.
macro_rules! shortcut_handler {
    ($(#[doc = $doc:literal])* $name:ident, $path:literal, $job_type:expr) => {
        $(#[doc = $doc])*
        #[utoipa::path(
            post,
            path = $path,
            request_body = Shortcut,
            responses((status = 202, description = "The job was queued.", body = Accepted)),
        )]
        async fn $name(
            Call { state, user }: Call,
            ApiJson(body): ApiJson<Shortcut>,
        ) -> AppResult<Response> {
            shortcut(state, user, $job_type, body).await
        }
    };
}

shortcut_handler! {
    /// Runs commands over SSH on the target devices (operator).
    ///
    /// The seed's shortcut for a `run_commands` job.
    run_commands, "/commands/run", JobType::RunCommands
}

shortcut_handler! {
    /// Checks that the target devices' management ports answer (operator).
    ///
    /// The seed's shortcut for a `check_reachability` job.
    run_reachability, "/reachability/run", JobType::CheckReachability
}

shortcut_handler! {
    /// Backs up the target devices' running configuration (operator).
    ///
    /// The seed's shortcut for a `config_backup` job. A snapshot is kept only when the
    /// configuration changed.
    run_config_backup, "/config/backup", JobType::ConfigBackup
}
