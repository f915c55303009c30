//! `/api/v1/jobs/`, the seed's shortcuts (`/commands/run`, `/reachability/run`,
//! `/config/backup`) and `/regions/{id}/jobs/`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, Id, QueryPairs, RequestUrl};
use super::{page_request, route};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::jobs::{self, Job, JobFilter, JobStatus, JobType, NewJob, Targets};
use crate::pagination::Paginated;
use crate::{customers, regions};

pub(super) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = route(router, "/jobs/", get(list_jobs).post(create_job));
    let router = route(router, "/jobs/{id}/", get(get_job));
    let router = route(router, "/jobs/{id}/logs/", get(list_job_logs));
    let router = route(router, "/jobs/{id}/results/", get(list_job_results));
    let router = route(router, "/jobs/{id}/cancel/", post(cancel_job));
    let router = route(router, "/jobs/{id}/retry/", post(retry_job));
    let router = route(router, "/regions/{id}/jobs/", get(list_region_jobs));
    let router = route(router, "/commands/run", post(run_commands));
    let router = route(router, "/reachability/run", post(run_reachability));
    route(router, "/config/backup", post(run_config_backup))
}

/// Body of `POST /jobs/`.
#[derive(Debug, Deserialize)]
struct CreateJob {
    customer: Option<i64>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    target_summary: Option<Value>,
    payload: Option<Value>,
}

/// Validates and creates a job for `user` in one transaction; shared with the UI.
pub(crate) async fn submit(
    state: &AppState,
    user: &AuthUser,
    customer: Option<i64>,
    job_type: JobType,
    target_summary: Value,
    payload: Value,
    targets_field: &str,
) -> AppResult<i64> {
    user.require(Role::Operator)?;
    let mut errors = FieldErrors::new();
    let targets = Targets::parse(&target_summary, targets_field)
        .map_err(|e| errors.extend(e))
        .ok();
    let payload = jobs::validate_payload(job_type, &payload)
        .map_err(|e| errors.extend(e))
        .ok();
    errors.into_result()?;
    let (Some(targets), Some(payload)) = (targets, payload) else {
        return Err(AppError::BadRequest("Invalid job.".into()));
    };
    let mut tx = state.pool.begin().await?;
    let customer_id = customers::for_new_object(&mut tx, user, customer).await?;
    let id = jobs::create(
        &mut tx,
        &NewJob {
            customer_id,
            user_id: Some(user.id),
            job_type,
            target_summary,
            targets,
            payload,
            retry_of: None,
        },
    )
    .await
    .map_err(|e| match e {
        // The shortcuts call the field `targets`.
        AppError::Validation(f) if targets_field != "target_summary" => {
            let mut renamed = FieldErrors::new();
            for (k, v) in f.0 {
                let k = if k == "target_summary" {
                    targets_field.to_string()
                } else {
                    k
                };
                for m in v {
                    renamed.add(k.clone(), m);
                }
            }
            AppError::Validation(renamed)
        }
        other => other,
    })?;
    tx.commit().await?;
    Ok(id)
}

async fn create_job(
    State(state): State<AppState>,
    user: AuthUser,
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
    let id = submit(
        &state,
        &user,
        body.customer,
        job_type,
        body.target_summary.unwrap_or(Value::Null),
        body.payload.unwrap_or(Value::Null),
        "target_summary",
    )
    .await?;
    let mut conn = state.pool.acquire().await?;
    let job = jobs::get(&mut conn, &user.scope(), id).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

fn job_filter(query: &QueryPairs) -> AppResult<JobFilter> {
    let mut errors = FieldErrors::new();
    let mut filter = JobFilter::default();
    if let Some(s) = query.get("status").filter(|s| !s.is_empty()) {
        filter.status = JobStatus::parse(s)
            .map_err(|m| errors.add("status", m))
            .ok();
    }
    if let Some(t) = query.get("type").filter(|s| !s.is_empty()) {
        filter.job_type = JobType::parse(t).map_err(|m| errors.add("type", m)).ok();
    }
    if let Some(r) = query.get("region").filter(|s| !s.is_empty()) {
        filter.region = r
            .parse()
            .map_err(|_| errors.add("region", "Enter a region id."))
            .ok();
    }
    errors.into_result()?;
    Ok(filter)
}

async fn list_jobs(
    State(state): State<AppState>,
    user: AuthUser,
    query: QueryPairs,
    RequestUrl(url): RequestUrl,
) -> AppResult<Json<Paginated<Job>>> {
    let page = page_request(&query)?;
    let filter = job_filter(&query)?;
    let mut conn = state.pool.acquire().await?;
    let (rows, count) = jobs::list(&mut conn, &user.scope(), &filter, page).await?;
    Ok(Json(Paginated::new(rows, count, page, &url)))
}

async fn list_region_jobs(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    query: QueryPairs,
    RequestUrl(url): RequestUrl,
) -> AppResult<Json<Paginated<Job>>> {
    let page = page_request(&query)?;
    let mut filter = job_filter(&query)?;
    let mut conn = state.pool.acquire().await?;
    regions::get(&mut conn, &user.scope(), id).await?;
    filter.region = Some(id);
    let (rows, count) = jobs::list(&mut conn, &user.scope(), &filter, page).await?;
    Ok(Json(Paginated::new(rows, count, page, &url)))
}

async fn get_job(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<Job>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(jobs::get(&mut conn, &user.scope(), id).await?))
}

async fn list_job_logs(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
    query: QueryPairs,
) -> AppResult<Json<Value>> {
    let after = match query.get("after") {
        Some(a) => a.parse::<i64>().map_err(|_| {
            AppError::Validation(FieldErrors::single("after", "Enter a log entry id."))
        })?,
        None => 0,
    };
    let mut conn = state.pool.acquire().await?;
    jobs::get(&mut conn, &user.scope(), id).await?;
    let entries = jobs::logs(&mut conn, id, after, 1000).await?;
    Ok(Json(json!({"count": entries.len(), "results": entries})))
}

async fn list_job_results(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    jobs::get(&mut conn, &user.scope(), id).await?;
    let results = jobs::results(&mut conn, id).await?;
    Ok(Json(json!({"count": results.len(), "results": results})))
}

async fn cancel_job(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Json<Job>> {
    let mut tx = state.pool.begin().await?;
    jobs::get(&mut tx, &user.scope(), id).await?;
    user.require(Role::Operator)?;
    let job = jobs::cancel(&mut tx, &user.scope(), id).await?;
    tx.commit().await?;
    Ok(Json(job))
}

async fn retry_job(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> AppResult<Response> {
    let mut tx = state.pool.begin().await?;
    let old = jobs::get(&mut tx, &user.scope(), id).await?;
    user.require(Role::Operator)?;
    let targets =
        Targets::parse(&old.target_summary.0, "target_summary").map_err(AppError::Validation)?;
    let new_id = jobs::create(
        &mut tx,
        &NewJob {
            customer_id: old.customer_id,
            user_id: Some(user.id),
            job_type: old.job_type,
            target_summary: old.target_summary.0.clone(),
            targets,
            payload: old.payload.0.clone(),
            retry_of: Some(old.id),
        },
    )
    .await?;
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    let job = jobs::get(&mut conn, &user.scope(), new_id).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

/// Body of the seed's shortcuts.
#[derive(Debug, Deserialize)]
struct Shortcut {
    customer: Option<i64>,
    targets: Option<Value>,
    commands: Option<Value>,
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
        payload.insert("commands".into(), c);
    }
    if let Some(t) = body.timeout {
        payload.insert("timeout".into(), t);
    }
    let id = submit(
        &state,
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
        Json(json!({"job_id": id, "status": JobStatus::Queued})),
    )
        .into_response())
}

async fn run_commands(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<Shortcut>,
) -> AppResult<Response> {
    shortcut(state, user, JobType::RunCommands, body).await
}

async fn run_reachability(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<Shortcut>,
) -> AppResult<Response> {
    shortcut(state, user, JobType::CheckReachability, body).await
}

async fn run_config_backup(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<Shortcut>,
) -> AppResult<Response> {
    shortcut(state, user, JobType::ConfigBackup, body).await
}
