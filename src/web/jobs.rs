//! Job pages: the list (refreshing while jobs run), the job page with its dispatches,
//! per-device results and a live log tail (SSE), and the form that starts a job.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::filters;
use super::flash::{self, Level};
use super::forms::FormPairs;
use super::page::{Layout, Nav, SignedIn};
use super::pager::{Pager, Paging, list_url};
use crate::auth::Role;
use crate::devices::{self, BulkTarget, DeviceFilter};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Id, Params, QueryPairs};
use crate::jobs::{self, DeviceResult, Job, JobType, LogEntry};
use crate::live::LiveMessage;
use crate::pagination::PageRequest;
use crate::params::{JobParams, Reading};
use crate::regions::{self, Region};

/// `/jobs`
#[derive(Template, WebTemplate)]
#[template(path = "jobs/index.html")]
pub struct JobsPage {
    /// Base layout.
    pub layout: Layout,
    /// The rows.
    pub rows: JobRowsPartial,
    /// Pagination.
    pub pager: Pager,
    /// Regions for the filter.
    pub regions: Vec<Region>,
    /// Active filter: status.
    pub status: String,
    /// Active filter: type.
    pub job_type: String,
    /// Active filter: region id.
    pub region: String,
    /// Active filter: device id.
    pub device: String,
    /// Active filter: user id.
    pub user: String,
    /// Active filter: requested since (a date or time, as given).
    pub since: String,
    /// Active filter: requested until.
    pub until: String,
}

impl JobsPage {
    /// Some filter is set.
    pub fn filtered(&self) -> bool {
        [
            &self.status,
            &self.job_type,
            &self.region,
            &self.device,
            &self.user,
            &self.since,
            &self.until,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }
}

/// The job table's body; re-fetched every few seconds while a job on it runs.
#[derive(Template, WebTemplate)]
#[template(path = "jobs/_rows.html")]
pub struct JobRowsPartial {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// URL this partial refreshes from, when something is still running.
    pub refresh_url: Option<String>,
}

/// `/jobs/{id}`
#[derive(Template, WebTemplate)]
#[template(path = "jobs/show.html")]
pub struct JobPage {
    /// Base layout.
    pub layout: Layout,
    /// The job and what changes live.
    pub live: JobLivePartial,
    /// Log lines so far.
    pub logs: LogLinesPartial,
    /// Id of the last log line shown (the SSE stream continues after it).
    pub last_log_id: i64,
}

/// One command a device ran, as the job page shows it.
pub struct CommandOutput {
    /// The command.
    pub command: String,
    /// Its output, or the error that stopped it.
    pub text: String,
    /// It failed (an error, or a non-zero exit status).
    pub failed: bool,
}

impl JobPage {
    /// The commands asked for (run_commands).
    pub fn commands(&self) -> Vec<String> {
        self.live.job.payload.0["commands"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The timeout asked for, in seconds.
    pub fn timeout(&self) -> Option<i64> {
        self.live.job.payload.0["timeout"].as_i64()
    }

    /// The targets as given: each filter and its values, in words.
    pub fn targets(&self) -> Vec<(String, String)> {
        let given = &self.live.job.target_summary.0;
        let filters = given.get("filters").unwrap_or(given);
        let Some(map) = filters.as_object() else {
            return Vec::new();
        };
        // A device-list filter shows as its own filters ("site (filter)": "par, lon").
        let every = Value::from("none (every enabled device)");
        let entries = map.iter().flat_map(|(k, v)| match (k.as_str(), v) {
            ("filter", Value::Object(inner)) if !inner.is_empty() => inner
                .iter()
                .map(|(k, v)| (format!("{k} (filter)"), v))
                .collect::<Vec<_>>(),
            ("filter", _) => vec![("filter".to_string(), &every)],
            _ => vec![(k.clone(), v)],
        });
        entries
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = match v {
                    Value::Array(items) => {
                        let shown: Vec<String> = items.iter().take(20).map(plain).collect();
                        let more = items.len().saturating_sub(20);
                        if more > 0 {
                            format!("{} … and {more} more", shown.join(", "))
                        } else {
                            shown.join(", ")
                        }
                    }
                    other => plain(other),
                };
                (k.replace('_', " "), text)
            })
            .collect()
    }
}

/// A JSON value as text, strings without their quotes.
fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

impl JobLivePartial {
    /// What each command printed on a device (run_commands), for its expandable row.
    pub fn outputs(&self, result: &DeviceResult) -> Vec<CommandOutput> {
        let Some(commands) = result.detail.0["commands"].as_array() else {
            return Vec::new();
        };
        commands
            .iter()
            .map(|c| {
                let error = c["error"].as_str();
                let status = c["exit_status"].as_i64();
                CommandOutput {
                    command: plain(&c["command"]),
                    text: error
                        .or(c["output"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                    failed: error.is_some() || status.is_some_and(|s| s != 0),
                }
            })
            .collect()
    }
}

/// Status, dispatches, per-device results and the actions that fit the status: swapped as
/// the job progresses.
#[derive(Template, WebTemplate)]
#[template(path = "jobs/_live.html")]
pub struct JobLivePartial {
    /// The job.
    pub job: Job,
    /// Per-device results.
    pub results: Vec<DeviceResult>,
    /// May cancel and retry.
    pub can_run: bool,
    /// For the action forms.
    pub csrf_token: String,
}

/// Log lines, appended to the log as they come.
#[derive(Template, WebTemplate)]
#[template(path = "jobs/_log_lines.html")]
pub struct LogLinesPartial {
    /// The lines.
    pub lines: Vec<LogEntry>,
}

/// `/jobs/new`
#[derive(Template, WebTemplate)]
#[template(path = "jobs/new.html")]
pub struct NewJobPage {
    /// Base layout.
    pub layout: Layout,
    /// Devices the job will run on.
    pub targets: JobTargets,
    /// Chosen type.
    pub job_type: String,
    /// Commands, one per line.
    pub commands: String,
    /// Timeout in seconds, as typed.
    pub timeout: String,
    /// Inline errors.
    pub errors: FieldErrors,
}

impl NewJobPage {
    /// The job types, for the select.
    pub fn types(&self) -> [JobType; 3] {
        JobType::ALL
    }
}

/// `GET /jobs` (the table body alone for htmx refreshes).
pub async fn get_jobs(
    signed_in: SignedIn,
    headers: axum::http::HeaderMap,
    Paging { page, .. }: Paging,
    Params(params): Params<JobParams>,
    query: QueryPairs,
) -> AppResult<Response> {
    let htmx = headers.contains_key(axum_htmx::HX_REQUEST);
    let filter = params.filter(Reading::Forgiving)?;
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    let (list, count) = jobs::list(&mut conn, &scope, &filter, page).await?;
    let base = list_url("/jobs", params.to_pairs());
    let running = list.iter().any(|j| !j.status.is_finished());
    let shown = list.len();
    let rows = JobRowsPartial {
        jobs: list,
        refresh_url: running.then(|| crate::pagination::with_page(&base, page.page)),
    };
    if htmx && query.get("rows").is_some() {
        return Ok(rows.into_response());
    }
    Ok(JobsPage {
        layout: signed_in.layout(Nav::Jobs).await?,
        rows,
        pager: Pager::new(page, count, &base, shown),
        regions: regions::all(&mut conn, &scope, regions::Counts::Without).await?,
        status: params.status.unwrap_or_default(),
        job_type: params.job_type.unwrap_or_default(),
        region: params.region.unwrap_or_default(),
        device: params.device.unwrap_or_default(),
        user: params.user.unwrap_or_default(),
        since: params.since.unwrap_or_default(),
        until: params.until.unwrap_or_default(),
    }
    .into_response())
}

async fn live_partial(signed_in: &SignedIn, id: i64) -> AppResult<JobLivePartial> {
    let mut conn = signed_in.pool().acquire().await?;
    let job = jobs::get(&mut conn, &signed_in.user.scope(), id).await?;
    let results = jobs::results(&mut conn, id).await?;
    Ok(JobLivePartial {
        job,
        results,
        can_run: signed_in.user.require(Role::Operator).is_ok(),
        csrf_token: crate::auth::csrf::token(&signed_in.session).await?,
    })
}

/// `GET /jobs/{id}`
pub async fn get_job(signed_in: SignedIn, Id(id): Id) -> AppResult<JobPage> {
    let live = live_partial(&signed_in, id).await?;
    let mut conn = signed_in.pool().acquire().await?;
    let lines = jobs::logs(&mut conn, id, 0, 5000).await?;
    Ok(JobPage {
        layout: signed_in.layout(Nav::Jobs).await?,
        last_log_id: lines.last().map_or(0, |l| l.id),
        logs: LogLinesPartial { lines },
        live,
    })
}

/// `GET /jobs/{id}/log.txt`: the whole log as a text file.
pub async fn get_job_log_text(signed_in: SignedIn, Id(id): Id) -> AppResult<Response> {
    let mut conn = signed_in.pool().acquire().await?;
    jobs::get(&mut conn, &signed_in.user.scope(), id).await?;
    let text = jobs::log_text(&mut conn, id).await?;
    Ok(crate::extract::attachment(
        "text/plain; charset=utf-8",
        &format!("job-{id}-log.txt"),
        text,
    ))
}

/// `GET /jobs/{id}/results.json`: each device's outcome, as the API gives it.
pub async fn get_job_results_json(signed_in: SignedIn, Id(id): Id) -> AppResult<Response> {
    let mut conn = signed_in.pool().acquire().await?;
    jobs::get(&mut conn, &signed_in.user.scope(), id).await?;
    let results = jobs::results(&mut conn, id).await?;
    let body = json!({"count": results.len(), "results": results});
    Ok(crate::extract::attachment(
        "application/json",
        &format!("job-{id}-results.json"),
        serde_json::to_string_pretty(&body).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

/// How far back a live job log looks for lines committed out of order.
const LOG_LOOKBACK: Duration = Duration::from_secs(5);

/// `GET /jobs/{id}/events?after=N`: new log lines (`log`, each event's id the last line's
/// id, so a reconnecting browser resumes with `Last-Event-ID` instead of repeating lines)
/// and the refreshed status, dispatches and results (`job`) as the job progresses. Ends
/// with the server.
pub async fn get_job_events(
    signed_in: SignedIn,
    Id(id): Id,
    query: QueryPairs,
    headers: axum::http::HeaderMap,
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let mut conn = signed_in.pool().acquire().await?;
    jobs::get(&mut conn, &signed_in.user.scope(), id).await?;
    drop(conn);
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("after"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    // Subscribe first, then catch up once: whatever happened between rendering the page
    // and this connection (the job may even have finished) is sent straight away.
    let messages = BroadcastStream::new(signed_in.state.live.subscribe())
        .filter_map(Result::ok)
        .take_while(|m| !matches!(m, LiveMessage::Shutdown))
        .filter(move |m| matches!(m, LiveMessage::JobLog(l) if l.job_id == id))
        .map(|_| ());
    let messages = tokio_stream::once(()).chain(messages);
    let stream = futures::StreamExt::flatten(futures::stream::unfold(
        (Box::pin(messages), after, None::<HashSet<i64>>, signed_in),
        move |(mut messages, cursor, sent, signed_in)| async move {
            messages.next().await?;
            let mut conn = signed_in.pool().acquire().await.ok()?;
            // A line committed late, below the cursor, still gets through; what was sent
            // already is not sent twice.
            let recent = jobs::logs_with_lookback(&mut conn, id, cursor, LOG_LOOKBACK, 1000)
                .await
                .ok()?;
            drop(conn);
            let seen: HashSet<i64> = recent.iter().map(|l| l.id).collect();
            // At first, the page already shows everything up to the cursor.
            let lines: Vec<_> = recent
                .into_iter()
                .filter(|l| match &sent {
                    Some(sent) => !sent.contains(&l.id),
                    None => l.id > cursor,
                })
                .collect();
            // Ids returned now are all that a later lookback can return again.
            let sent = Some(seen);
            let next_cursor = lines.last().map_or(cursor, |l| l.id.max(cursor));
            let mut events = Vec::new();
            if !lines.is_empty()
                && let Ok(html) = (LogLinesPartial { lines }).render()
            {
                events.push(Ok(Event::default()
                    .event("log")
                    .id(next_cursor.to_string())
                    .data(html)));
            }
            if let Ok(live) = live_partial(&signed_in, id).await
                && let Ok(html) = live.render()
            {
                events.push(Ok(Event::default().event("job").data(html)));
            }
            Some((
                futures::stream::iter(events),
                (messages, next_cursor, sent, signed_in),
            ))
        },
    ));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Reads `device_ids` (repeated or comma-separated) from a query or form.
fn ids_from(values: Vec<&str>) -> Vec<i64> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// The devices a new job will run on: checked ones, or every enabled device of a filter.
#[derive(Debug, Default)]
pub struct JobTargets {
    /// The ids of checked devices (empty for a filter).
    pub device_ids: Vec<i64>,
    /// Their hostnames, or the first ones a filter matches.
    pub hostnames: Vec<String>,
    /// How many devices the job will run on.
    pub count: i64,
    /// Whether `count` is a lower bound (a text search stops counting).
    pub capped: bool,
    /// The device list's filter, when the job is on "all matching" devices: carried on as
    /// `filter_<name>` fields and sent as the job's target, never as a list of ids.
    pub filter: Option<Vec<(&'static str, String)>>,
}

/// How many hostnames the page shows of a filter's devices.
const SAMPLE: i64 = 10;

/// Resolves which devices a new job targets: checked ids, or every enabled device a
/// device-list filter (or a region) matches, however many.
async fn resolve_devices(signed_in: &SignedIn, selection: &BulkTarget) -> AppResult<JobTargets> {
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    match selection {
        BulkTarget::Ids(ids) if ids.is_empty() => Ok(JobTargets::default()),
        BulkTarget::Ids(ids) => {
            let rows = devices::hostnames(&mut conn, &scope, ids).await?;
            let (device_ids, hostnames): (Vec<i64>, Vec<String>) = rows.into_iter().unzip();
            Ok(JobTargets {
                count: device_ids.len() as i64,
                device_ids,
                hostnames,
                ..Default::default()
            })
        }
        BulkTarget::Matching(filter) => {
            // Jobs run on enabled devices only: count those.
            let mut enabled = filter.clone();
            enabled.enabled.get_or_insert(true);
            let page = PageRequest {
                page: 1,
                page_size: SAMPLE,
            };
            let (rows, total) =
                devices::list(&mut conn, &scope, &enabled, "hostname", page).await?;
            Ok(JobTargets {
                device_ids: Vec::new(),
                hostnames: rows.into_iter().map(|d| d.hostname).collect(),
                count: total.count,
                capped: total.capped,
                filter: Some(filter.to_pairs()),
            })
        }
    }
}

async fn new_job_page(signed_in: &SignedIn, selection: &BulkTarget) -> AppResult<Response> {
    signed_in.user.require(Role::Operator)?;
    let targets = resolve_devices(signed_in, selection).await?;
    Ok(NewJobPage {
        layout: signed_in.layout(Nav::Jobs).await?,
        targets,
        job_type: "run_commands".into(),
        commands: "show version".into(),
        timeout: String::new(),
        errors: FieldErrors::new(),
    }
    .into_response())
}

/// `GET /jobs/new?device_ids=1,2` or `?region=ID`
pub async fn get_new_job(signed_in: SignedIn, query: QueryPairs) -> AppResult<Response> {
    let selection = match query.get("region") {
        Some(r) => {
            let mut errors = FieldErrors::new();
            let filter = DeviceFilter::from_pairs([("region", r.to_string())], &mut errors);
            errors.into_result()?;
            BulkTarget::Matching(filter)
        }
        None => BulkTarget::Ids(ids_from(
            query
                .0
                .iter()
                .filter(|(k, _)| k == "device_ids")
                .map(|(_, v)| v.as_str())
                .collect(),
        )),
    };
    new_job_page(&signed_in, &selection).await
}

/// `POST /jobs/new`: from the device list's bulk bar (checked rows, or all matching the
/// filter). With nothing chosen, back to the list, filter kept, saying so.
pub async fn post_new_job(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    signed_in.user.require(Role::Operator)?;
    match super::devices::bulk_target(&form) {
        Ok(selection) => new_job_page(&signed_in, &selection).await,
        Err(errors) => {
            let back = super::devices::back_to_list(&form);
            super::devices::refuse_to_list(&signed_in, errors, &back).await
        }
    }
}

/// `POST /jobs`: starts the job and shows its page.
pub async fn post_jobs(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    signed_in.user.require(Role::Operator)?;
    let mut errors = FieldErrors::new();
    let selection = if form.checked("all_matching") {
        BulkTarget::Matching(super::devices::list_filter(&form, &mut errors))
    } else {
        BulkTarget::Ids(ids_from(form.all("device_ids")))
    };
    let type_raw = form.get("type").unwrap_or("");
    let commands: Vec<String> = form
        .get("commands")
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let job_type = JobType::parse(type_raw)
        .map_err(|m| errors.add("type", m))
        .ok();
    let mut payload = serde_json::Map::new();
    if job_type == Some(JobType::RunCommands) {
        payload.insert("commands".into(), json!(commands));
    }
    if let Some(t) = form.integer("timeout", &mut errors) {
        payload.insert("timeout".into(), json!(t));
    }
    let target_summary = match &selection {
        BulkTarget::Ids(ids) if ids.is_empty() => {
            errors.add(
                "device_ids",
                "Choose devices first, from the device list or a region.",
            );
            Value::Null
        }
        BulkTarget::Ids(ids) => json!({"device_ids": ids}),
        BulkTarget::Matching(filter) => json!({"filter": filter.to_json()}),
    };
    let result = match (job_type, errors.is_empty()) {
        (Some(job_type), true) => {
            crate::usecases::jobs::submit(
                signed_in.pool(),
                &signed_in.user,
                None,
                job_type,
                target_summary,
                Value::Object(payload),
                "target_summary",
            )
            .await
        }
        _ => Err(AppError::Validation(errors)),
    };
    match result {
        Ok(id) => {
            let mut conn = signed_in.pool().acquire().await?;
            let job = jobs::get(&mut conn, &signed_in.user.scope(), id).await?;
            let n = filters::job_device_count(&job);
            flash::push(
                &signed_in.session,
                Level::Success,
                format!(
                    "Job {id} started on {n} device{}.",
                    if n == 1 { "" } else { "s" }
                ),
            )
            .await?;
            Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
        }
        Err(AppError::Validation(errors)) => {
            let targets = resolve_devices(&signed_in, &selection).await?;
            Ok((
                StatusCode::BAD_REQUEST,
                NewJobPage {
                    layout: signed_in.layout(Nav::Jobs).await?,
                    targets,
                    job_type: type_raw.to_string(),
                    commands: form.get("commands").unwrap_or("").to_string(),
                    timeout: form.get("timeout").unwrap_or("").to_string(),
                    errors,
                },
            )
                .into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /jobs/{id}/cancel`
pub async fn post_cancel_job(signed_in: SignedIn, Id(id): Id) -> AppResult<Redirect> {
    match crate::usecases::jobs::cancel(signed_in.pool(), &signed_in.user, id).await {
        Ok(_) => {
            flash::push(
                &signed_in.session,
                Level::Success,
                format!("Job {id} cancelled."),
            )
            .await?;
        }
        Err(AppError::Validation(e)) => {
            flash::push(
                &signed_in.session,
                Level::Error,
                e.first("status").unwrap_or("Cannot cancel.").to_string(),
            )
            .await?;
        }
        Err(e) => return Err(e),
    }
    Ok(Redirect::to(&format!("/jobs/{id}")))
}

/// `POST /jobs/{id}/retry`: the same job again, as a new job.
pub async fn post_retry_job(signed_in: SignedIn, Id(id): Id) -> AppResult<Redirect> {
    let job = crate::usecases::jobs::retry(signed_in.pool(), &signed_in.user, id).await?;
    flash::push(
        &signed_in.session,
        Level::Success,
        format!("Job {id} started again as job {job}."),
    )
    .await?;
    Ok(Redirect::to(&format!("/jobs/{job}")))
}
