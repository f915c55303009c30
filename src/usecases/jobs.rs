//! Job use cases, the one way in for the API and the pages alike: the role check,
//! visibility (another customer's job is "not found"), validation and the transaction.

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::in_transaction;
use crate::audit::{self, Action, Change, ObjectType};
use crate::auth::{AuthUser, Role};
use crate::customers;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::jobs::{self, Job, JobType, NewJob, Targets};

/// The audit row of `action` on job `id` (of `job_type`, of `customer_id`); `{id}` stands for
/// the id of a job the change creates.
fn change(
    action: Action,
    (id, job_type, customer_id): (Option<i64>, JobType, i64),
    changes: Value,
) -> Change {
    Change {
        object_type: ObjectType::Job,
        object_id: id,
        object_repr: format!(
            "#{} ({})",
            id.map_or("{id}".to_string(), |id| id.to_string()),
            job_type.label()
        ),
        action,
        customer_ids: vec![customer_id],
        changes,
    }
}

/// Validates and creates a job for `user` (an operator) in `customer` (the caller's only
/// one when `None`), in one transaction. `targets_field` names the targets in field errors
/// (`target_summary`, or `targets` for the seed's shortcuts).
pub async fn submit(
    pool: &PgPool,
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
    // No transaction: the reads need none, and the job is written by one statement.
    let mut conn = pool.acquire().await?;
    let customer = match customer {
        None if user.customers.len() != 1 => customer_of_devices(&mut conn, user, &targets).await?,
        given => given,
    };
    let customer_id = customers::for_new_object(&mut conn, user, customer).await?;
    let new = NewJob {
        customer_id,
        user_id: Some(user.id),
        job_type,
        target_summary,
        targets,
        payload,
        retry_of: None,
    };
    let changes = json!({"type": job_type, "targets": audited_targets(&new.target_summary)});
    let change = change(Action::Submit, (None, job_type, customer_id), changes);
    jobs::create(&mut conn, &new, Some((user, &change)))
        .await
        .map_err(|e| rename_targets(e, targets_field))
}

/// The customer of the devices a job names by id, when they all have the same one: a
/// superuser (or a member of several customers) who picked devices need not name it.
async fn customer_of_devices(
    tx: &mut PgConnection,
    user: &AuthUser,
    targets: &Targets,
) -> AppResult<Option<i64>> {
    let Some(ids) = &targets.device_ids else {
        return Ok(None);
    };
    let customers: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT customer_id FROM devices
         WHERE id = ANY($1) AND ($2::bigint[] IS NULL OR customer_id = ANY($2))",
    )
    .bind(ids)
    .bind(user.scope().ids())
    .fetch_all(&mut *tx)
    .await?;
    Ok(match customers.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

/// A job's targets for its audit row: as given, but a long list of device ids as its
/// length (the job itself keeps the list).
fn audited_targets(targets: &Value) -> Value {
    let mut targets = targets.clone();
    for pointer in ["/device_ids", "/filters/device_ids"] {
        if let Some(ids) = targets.pointer_mut(pointer)
            && let Some(n) = ids.as_array().map(Vec::len).filter(|n| *n > 20)
        {
            *ids = json!(format!("{n} devices"));
        }
    }
    targets
}

/// Field errors of the job's targets under the name the caller used for them.
fn rename_targets(e: AppError, targets_field: &str) -> AppError {
    match e {
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
    }
}

/// Runs job `id` again as a new job that records `retry_of`: same customer, type, targets
/// and payload (operator). The targets are resolved anew, so devices added since are
/// included.
pub async fn retry(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<i64> {
    let mut conn = pool.acquire().await?;
    let old = jobs::get(&mut conn, &user.scope(), id).await?;
    user.require(Role::Operator)?;
    let targets =
        Targets::parse(&old.target_summary.0, "target_summary").map_err(AppError::Validation)?;
    let job = (None, old.job_type, old.customer_id);
    let change = change(Action::Retry, job, json!({"retry_of": old.id}));
    jobs::create(
        &mut conn,
        &NewJob {
            customer_id: old.customer_id,
            user_id: Some(user.id),
            job_type: old.job_type,
            target_summary: old.target_summary.0.clone(),
            targets,
            payload: old.payload.0.clone(),
            retry_of: Some(old.id),
        },
        Some((user, &change)),
    )
    .await
}

/// Cancels a job that has not finished (operator): queued dispatches never run, running
/// ones stop at their next command.
pub async fn cancel(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Job> {
    in_transaction(pool, async |tx| {
        let before = jobs::get(tx, &user.scope(), id).await?;
        user.require(Role::Operator)?;
        let job = jobs::cancel(tx, &user.scope(), id).await?;
        let changes = json!({"status": [before.status, job.status]});
        let job_of = (Some(id), job.job_type, job.customer_id);
        audit::record(tx, user, &change(Action::Cancel, job_of, changes)).await?;
        Ok(job)
    })
    .await
}
