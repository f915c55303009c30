//! Running one dispatch on its devices: reachability checks over TCP, commands and
//! configuration backups over SSH, with per-device results and a job log.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};

use crate::credentials;
use crate::crypto::SecretBox;
use crate::jobs::{JobStatus, JobType};
use crate::lifecycle::{self, Claimed, LogLevel};
use crate::ssh::{SshError, SshSession, SshTarget};

/// Output kept per command; the rest is discarded and the truncation stated.
const MAX_OUTPUT: usize = 64 * 1024;
/// Output copied into one log line.
const MAX_LOG_OUTPUT: usize = 8 * 1024;

/// Runs a database step again while the database is briefly away (a killed connection, a
/// restart shorter than the worker's lease). Steps in the middle of a device's work are
/// idempotent, and redoing one is better than signing in to the device again; an outage
/// that outlasts the lease ends with the worker stopping the whole dispatch.
///
/// A macro rather than a function taking a closure: the step is an expression built afresh
/// for each try, which borrows freely (async closures are not yet `Send` enough here).
macro_rules! persist {
    ($step:expr) => {{
        let mut pause = Duration::from_millis(100);
        loop {
            match $step.await {
                Err(e) if crate::db::is_unavailable(&e) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        }
    }};
}

/// What running a dispatch needs from the worker process that runs it.
#[derive(Debug)]
pub struct Runner {
    /// The dispatches' pool.
    pub pool: PgPool,
    /// Where a dispatch is claimed (marked running, its start time taken): the queues' own
    /// connection, which stays open. The dispatches' pool lets its connections go after 10 s
    /// unused, and opening one costs a PostgreSQL backend's start (tens of milliseconds on a
    /// busy server): a worker that runs a job every few seconds would otherwise pay it
    /// before every claim, while the task it holds waits.
    pub claims: PgPool,
    /// Decrypts device credentials.
    pub secrets: SecretBox,
    /// The worker process's unique name, recorded on the dispatches it runs.
    pub name: String,
    /// Devices of one dispatch handled at once.
    pub device_concurrency: usize,
}

#[derive(Debug, Clone, FromRow)]
struct Target {
    id: i64,
    hostname: String,
    mgmt_ip: IpAddr,
    port: i32,
    vendor: String,
    platform: String,
    credential_id: Option<i64>,
    ssh_host_key: Option<String>,
}

/// What happened on one device.
struct Outcome {
    ok: bool,
    detail: Value,
}

/// Runs dispatch `dispatch_id` for the apalis consumer `lock_by`. Errors are database
/// errors only (the task is retried).
///
/// The dispatch is claimed only while `lock_by` still holds its queue task: a task handed
/// back or rescued from this worker (its lease ran out, its grace period ended) belongs to
/// whoever claims it next, and this worker must not run it too.
pub async fn run_dispatch(state: &Runner, dispatch_id: i64, lock_by: &str) -> sqlx::Result<()> {
    let pool = &state.pool;
    let claim = lifecycle::claim_dispatch(&state.claims, dispatch_id, &state.name, lock_by);
    let Some(claimed) = claim.await? else {
        return Ok(());
    };
    log(
        state,
        claimed.job_id,
        LogLevel::Info,
        "",
        &format!(
            "dispatch {dispatch_id}: worker {} started on {} device{}",
            state.name,
            claimed.device_ids.len(),
            if claimed.device_ids.len() == 1 {
                ""
            } else {
                "s"
            }
        ),
    )
    .await?;

    // A re-run after a crash skips devices that already have a result.
    let targets: Vec<Target> = sqlx::query_as(
        "SELECT d.id, d.hostname, d.mgmt_ip, d.port, d.vendor, d.platform, d.credential_id,
                d.ssh_host_key
         FROM devices d
         WHERE d.id = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM job_device_results r
                           WHERE r.dispatch_id = $2 AND r.device_id = d.id)
         ORDER BY d.hostname",
    )
    .bind(&claimed.device_ids)
    .bind(dispatch_id)
    .fetch_all(pool)
    .await?;

    let results = futures::stream::iter(targets)
        .map(|target| run_device(state, &claimed, dispatch_id, target))
        .buffer_unordered(state.device_concurrency.max(1))
        .collect::<Vec<sqlx::Result<()>>>()
        .await;
    for r in results {
        r?;
    }
    lifecycle::finish_dispatch(pool, claimed.job_id, dispatch_id).await
}

/// Appends a line to the job's log (see `persist!`).
async fn log(
    state: &Runner,
    job_id: i64,
    level: LogLevel,
    host: &str,
    message: &str,
) -> sqlx::Result<()> {
    persist!(async {
        let mut conn = state.pool.acquire().await?;
        lifecycle::log(&mut conn, job_id, level, host, message).await
    })
}

async fn job_cancelled(pool: &PgPool, job_id: i64) -> sqlx::Result<bool> {
    persist!(lifecycle::job_cancelled(pool, job_id))
}

async fn run_device(
    state: &Runner,
    claimed: &Claimed,
    dispatch_id: i64,
    target: Target,
) -> sqlx::Result<()> {
    let pool = &state.pool;
    let job_id = claimed.job_id;
    let outcome = if job_cancelled(pool, job_id).await? {
        None
    } else {
        Some(match claimed.job_type {
            JobType::CheckReachability => reachability(state, claimed, &target).await?,
            JobType::RunCommands => run_commands(state, claimed, &target).await?,
            JobType::ConfigBackup => config_backup(state, claimed, &target).await?,
        })
    };
    let (status, detail) = match outcome {
        Some(o) if o.ok => (JobStatus::Success, o.detail),
        Some(o) => (JobStatus::Failed, o.detail),
        None => (
            JobStatus::Cancelled,
            json!({"error": "job cancelled before this device started"}),
        ),
    };
    persist!(lifecycle::record_device_result(
        pool,
        dispatch_id,
        job_id,
        (target.id, &target.hostname),
        status,
        &detail,
    ))
}

fn timeout_of(claimed: &Claimed, default: u64) -> Duration {
    Duration::from_secs(
        claimed
            .payload
            .0
            .get("timeout")
            .and_then(Value::as_u64)
            .unwrap_or(default),
    )
}

async fn reachability(state: &Runner, claimed: &Claimed, target: &Target) -> sqlx::Result<Outcome> {
    let addr = SocketAddr::new(target.mgmt_ip, target.port as u16);
    let started = Instant::now();
    let result =
        tokio::time::timeout(timeout_of(claimed, 5), tokio::net::TcpStream::connect(addr)).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (ok, message) = match result {
        Ok(Ok(_stream)) => (true, format!("reachable on {addr} in {latency_ms:.1} ms")),
        Ok(Err(e)) => (false, format!("unreachable on {addr}: {e}")),
        Err(_) => (
            false,
            format!(
                "unreachable on {addr}: no answer within {:?}",
                timeout_of(claimed, 5)
            ),
        ),
    };
    persist!(
        sqlx::query(
            "UPDATE devices SET reachability_status = $2, last_reachability_check = now() WHERE id = $1",
        )
        .bind(target.id)
        .bind(if ok { "reachable" } else { "unreachable" })
        .execute(&state.pool)
    )?;
    log(
        state,
        claimed.job_id,
        LogLevel::of(ok),
        &target.hostname,
        &message,
    )
    .await?;
    Ok(Outcome {
        ok,
        detail: json!({"reachable": ok, "latency_ms": ok.then_some((latency_ms * 10.0).round() / 10.0), "message": message}),
    })
}

/// Signs in to a device, applying trust on first use to its host key.
async fn open_session(
    state: &Runner,
    claimed: &Claimed,
    target: &Target,
) -> sqlx::Result<Result<SshSession, String>> {
    let Some(credential_id) = target.credential_id else {
        return Ok(Err(
            "the device has no credential; give it one on its edit page".to_string(),
        ));
    };
    let mut conn = state.pool.acquire().await?;
    let secrets = match credentials::secrets(&mut conn, &state.secrets, credential_id).await {
        Ok(s) => s,
        Err(crate::error::AppError::Database(e)) => return Err(e),
        // The database went away while the credential was read: the dispatch resumes
        // when it is back (see `worker::run_until_settled`).
        Err(crate::error::AppError::Unavailable(_)) => return Err(sqlx::Error::PoolTimedOut),
        Err(e) => return Ok(Err(format!("cannot use the device's credential: {e}"))),
    };
    drop(conn);
    let ssh_target = SshTarget {
        host: target.mgmt_ip,
        port: target.port as u16,
        username: secrets.username.clone(),
        password: secrets.password.clone(),
        known_host_key: target.ssh_host_key.clone(),
        connect_timeout: timeout_of(claimed, 30).min(Duration::from_secs(30)),
        legacy_algorithms: false,
    };
    match SshSession::connect(&ssh_target).await {
        Ok(session) => {
            if target.ssh_host_key.is_none() {
                persist!(
                    sqlx::query(
                        "UPDATE devices SET ssh_host_key = $2, ssh_host_key_presented = NULL
                         WHERE id = $1 AND ssh_host_key IS NULL",
                    )
                    .bind(target.id)
                    .bind(session.host_key())
                    .execute(&state.pool)
                )?;
                log(
                    state,
                    claimed.job_id,
                    LogLevel::Info,
                    &target.hostname,
                    &format!("trusting host key {} on first use", session.host_key()),
                )
                .await?;
            }
            Ok(Ok(session))
        }
        Err(SshError::HostKeyChanged {
            expected,
            presented,
        }) => {
            persist!(
                sqlx::query("UPDATE devices SET ssh_host_key_presented = $2 WHERE id = $1")
                    .bind(target.id)
                    .bind(&presented)
                    .execute(&state.pool)
            )?;
            Ok(Err(format!(
                "host key changed: expected {expected}, the device presented {presented}. \
                 If the change is expected (new hardware, reinstall), an admin accepts the new \
                 key on the device page or with POST /api/v1/devices/{}/accept_host_key/",
                target.id
            )))
        }
        Err(e) => Ok(Err(e.to_string())),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… ({} more bytes not shown)", &s[..end], s.len() - end)
}

async fn run_commands(state: &Runner, claimed: &Claimed, target: &Target) -> sqlx::Result<Outcome> {
    let job_id = claimed.job_id;
    let commands: Vec<String> = claimed
        .payload
        .0
        .get("commands")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let timeout = timeout_of(claimed, 30);
    let mut session = match open_session(state, claimed, target).await? {
        Ok(s) => s,
        Err(message) => return fail(state, job_id, target, message).await,
    };
    let mut outputs = Vec::new();
    let mut all_ok = true;
    for command in &commands {
        if job_cancelled(&state.pool, job_id).await? {
            log(
                state,
                job_id,
                LogLevel::Warning,
                &target.hostname,
                "job cancelled: remaining commands skipped",
            )
            .await?;
            all_ok = false;
            break;
        }
        let result = session.run(command, timeout, MAX_OUTPUT).await;
        match result {
            Ok(out) => {
                let ok = out.via_shell || out.exit_status == Some(0);
                all_ok &= ok;
                let mut text = clip(&out.output, MAX_LOG_OUTPUT);
                if out.truncated {
                    text.push_str(&format!("\n… (output truncated at {MAX_OUTPUT} bytes)"));
                }
                log(
                    state,
                    job_id,
                    LogLevel::of(ok),
                    &target.hostname,
                    &format!("$ {command}\n{text}"),
                )
                .await?;
                outputs.push(json!({"command": command, "output": out.output, "exit_status": out.exit_status, "truncated": out.truncated, "via_shell": out.via_shell}));
            }
            Err(e) => {
                all_ok = false;
                log(
                    state,
                    job_id,
                    LogLevel::Error,
                    &target.hostname,
                    &format!("$ {command}\n{e}"),
                )
                .await?;
                outputs.push(json!({"command": command, "error": e.to_string()}));
                // A timed-out session was disconnected; later commands cannot run.
                if matches!(
                    e,
                    SshError::Timeout(_) | SshError::Connect(_) | SshError::Protocol(_)
                ) {
                    break;
                }
            }
        }
    }
    session.close().await;
    Ok(Outcome {
        ok: all_ok,
        detail: json!({"commands": outputs}),
    })
}

async fn fail(
    state: &Runner,
    job_id: i64,
    target: &Target,
    message: String,
) -> sqlx::Result<Outcome> {
    log(state, job_id, LogLevel::Error, &target.hostname, &message).await?;
    Ok(Outcome {
        ok: false,
        detail: json!({"error": message}),
    })
}

/// The command that prints a device's configuration, by platform then vendor.
pub fn show_config_command(vendor: &str, platform: &str) -> &'static str {
    match (
        platform.to_lowercase().as_str(),
        vendor.to_lowercase().as_str(),
    ) {
        ("junos", _) | (_, "juniper") => "show configuration",
        ("routeros", _) | (_, "mikrotik") => "/export",
        ("panos", _) | (_, "paloalto") => "show config running",
        ("fortios", _) | (_, "fortinet") => "show full-configuration",
        ("vyos", _) | (_, "vyos") => "show configuration commands",
        _ => "show running-config",
    }
}

async fn config_backup(
    state: &Runner,
    claimed: &Claimed,
    target: &Target,
) -> sqlx::Result<Outcome> {
    let job_id = claimed.job_id;
    let command = show_config_command(&target.vendor, &target.platform);
    let mut session = match open_session(state, claimed, target).await? {
        Ok(s) => s,
        Err(message) => return fail(state, job_id, target, message).await,
    };
    let result = session
        .run(command, timeout_of(claimed, 60), 16 * 1024 * 1024)
        .await;
    session.close().await;
    let out = match result {
        Ok(out) if out.via_shell || out.exit_status == Some(0) => out,
        Ok(out) => {
            return fail(
                state,
                job_id,
                target,
                format!(
                    "`{command}` failed (exit status {:?}): {}",
                    out.exit_status,
                    clip(&out.output, 2000)
                ),
            )
            .await;
        }
        Err(e) => return fail(state, job_id, target, format!("`{command}`: {e}")).await,
    };
    let hash = hex::encode(Sha256::digest(out.output.as_bytes()));
    let previous: Option<String> = persist!(
        sqlx::query_scalar(
            "SELECT config_hash FROM config_snapshots WHERE device_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(target.id)
        .fetch_optional(&state.pool)
    )?;
    if previous.as_deref() == Some(hash.as_str()) {
        log(
            state,
            job_id,
            LogLevel::Info,
            &target.hostname,
            "configuration unchanged since the last snapshot",
        )
        .await?;
        return Ok(Outcome {
            ok: true,
            detail: json!({"changed": false, "config_hash": hash, "bytes": out.output.len()}),
        });
    }
    let inserted = persist!(
        sqlx::query_scalar(
            "INSERT INTO config_snapshots (device_id, job_id, config_hash, config_text)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(target.id)
        .bind(job_id)
        .bind(&hash)
        .bind(&out.output)
        .fetch_one(&state.pool)
    );
    let snapshot_id: i64 = match inserted {
        Ok(id) => id,
        // Deleted while the job ran: nothing to keep the snapshot for, and no reason to
        // fail the whole dispatch (and retry it) over one device.
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("config_snapshots_device_id_fkey") =>
        {
            return fail(
                state,
                job_id,
                target,
                "the device was deleted while the job ran; its configuration was not kept".into(),
            )
            .await;
        }
        Err(e) => return Err(e),
    };
    log(
        state,
        job_id,
        LogLevel::Info,
        &target.hostname,
        &format!(
            "configuration saved as snapshot {snapshot_id} ({} bytes)",
            out.output.len()
        ),
    )
    .await?;
    Ok(Outcome {
        ok: true,
        detail: json!({"changed": true, "snapshot_id": snapshot_id, "config_hash": hash, "bytes": out.output.len()}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vendor_gets_its_show_configuration_command() {
        assert_eq!(show_config_command("cisco", "ios"), "show running-config");
        assert_eq!(show_config_command("arista", "eos"), "show running-config");
        assert_eq!(show_config_command("Juniper", ""), "show configuration");
        assert_eq!(show_config_command("", "junos"), "show configuration");
        assert_eq!(show_config_command("mikrotik", ""), "/export");
    }

    #[test]
    fn long_output_is_clipped_on_a_character_boundary() {
        let s = "é".repeat(10);
        let c = clip(&s, 5);
        assert!(c.starts_with("éé") && c.contains("more bytes not shown"));
        assert_eq!(clip("short", 10), "short");
    }
}
