//! Askama filters for the templates: times (`t|ago`, `t|iso`, `t|clock`), counts
//! (`n|thousands`), job statuses and durations, device results and region badges. A page
//! module brings them into its templates' scope with `use super::filters;`.

use askama::Values;
use time::OffsetDateTime;

use serde_json::Value;

use super::forms;
use super::page::{self, HealthBadgePartial};
use crate::error::FieldErrors;
use crate::jobs::{DeviceResult, Job, JobStatus};
use crate::regions::Region;

/// Declares a trait for "a `$ty`, or a reference to one, however deep": template loops
/// hand filters `&&T`, and a filter should not care.
macro_rules! by_ref {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        pub trait $name {
            /// The value behind the references.
            fn value(&self) -> &$ty;
        }

        impl $name for $ty {
            fn value(&self) -> &$ty {
                self
            }
        }

        impl<T: $name + ?Sized> $name for &T {
            fn value(&self) -> &$ty {
                (**self).value()
            }
        }
    };
}

by_ref!(
    /// A form's errors.
    AErrors,
    FieldErrors
);
by_ref!(
    /// A timestamp.
    Timestamp,
    OffsetDateTime
);
by_ref!(
    /// A count.
    Count,
    i64
);
by_ref!(
    /// A job.
    AJob,
    Job
);
by_ref!(
    /// A job's status.
    AStatus,
    JobStatus
);
by_ref!(
    /// A device's result in a job.
    AResult,
    DeviceResult
);
by_ref!(
    /// A region.
    ARegion,
    Region
);

/// Declares filters that take one value (through its `by_ref!` trait) and format it with a
/// plain function.
macro_rules! filters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $tr:ident) -> $ret:ty = $f:path;)*) => {
        $(
            $(#[$doc])*
            #[askama::filter_fn]
            pub fn $name($arg: impl $tr, _: &dyn Values) -> askama::Result<$ret> {
                Ok($f($arg.value()))
            }
        )*
    };
}

filters! {
    /// A timestamp relative to now: "12 s ago", "3 min ago", "5 h ago", or the date.
    ago(t: Timestamp) -> String = forms::ago;
    /// A timestamp as RFC 3339 (for `<time datetime>`), UTC, to the second.
    iso(t: Timestamp) -> String = forms::iso;
    /// The time of day, to the millisecond, UTC (log lines).
    clock(t: Timestamp) -> String = forms::clock;
    /// `1234567` → `1,234,567`.
    thousands(n: Count) -> String = forms::thousands;
    /// The badge class of a job or dispatch status.
    status_class(status: AStatus) -> &'static str = job_status_class;
    /// How many devices a job targets.
    device_count(job: AJob) -> usize = job_device_count;
    /// How long a job ran, or has been running ("4.2 s", "1 min 3 s so far"); empty before it
    /// started.
    duration(job: AJob) -> String = job_duration;
    /// A device result in one line.
    result_summary(result: AResult) -> String = one_line_result;
    /// A region's live health badge (render with `|safe`: it is a template).
    badge(region: ARegion) -> HealthBadgePartial = page::badge;
    /// Every error of a form as `(field, label, message)`, for the summary at its top, so
    /// that no error is hidden, even one on a field the form does not show.
    summary(errors: AErrors) -> Vec<(String, String, String)> = error_summary;
}

/// `(field, label, message)` for each error; the label is the field's name in words.
fn error_summary(errors: &FieldErrors) -> Vec<(String, String, String)> {
    errors
        .0
        .iter()
        .flat_map(|(field, messages)| {
            let words = field.replace(['_', '.'], " ");
            let mut label = words.trim().to_string();
            if let Some(first) = label.get(..1) {
                label = first.to_uppercase() + &label[1..];
            }
            messages
                .iter()
                .map(move |m| (field.clone(), label.clone(), m.clone()))
        })
        .collect()
}

/// A job status badge's CSS class.
fn job_status_class(status: &JobStatus) -> &'static str {
    match status {
        JobStatus::Success => "badge-healthy",
        JobStatus::Partial => "badge-degraded",
        JobStatus::Failed => "badge-offline",
        JobStatus::Running => "badge-running",
        JobStatus::Queued | JobStatus::Scheduled | JobStatus::Cancelled => "badge-neutral",
    }
}

/// How long a job took or has been running.
fn job_duration(job: &Job) -> String {
    match (job.started_at, job.finished_at) {
        (Some(s), Some(f)) => format_duration(f - s),
        (Some(s), None) => format!(
            "{} so far",
            format_duration(time::OffsetDateTime::now_utc() - s)
        ),
        _ => String::new(),
    }
}

fn format_duration(d: time::Duration) -> String {
    let ms = d.whole_milliseconds();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The number of devices of a job, over its dispatches.
pub fn job_device_count(job: &Job) -> usize {
    job.dispatches.iter().map(|d| d.device_ids.len()).sum()
}

/// A result's one-line summary.
fn one_line_result(result: &DeviceResult) -> String {
    let d = &result.detail.0;
    if let Some(e) = d.get("error").and_then(Value::as_str) {
        return e.to_string();
    }
    if let Some(m) = d.get("message").and_then(Value::as_str) {
        return m.to_string();
    }
    if let Some(cmds) = d.get("commands").and_then(Value::as_array) {
        return format!(
            "{} command{}",
            cmds.len(),
            if cmds.len() == 1 { "" } else { "s" }
        );
    }
    if d.get("changed").and_then(Value::as_bool) == Some(false) {
        return "configuration unchanged".into();
    }
    if let Some(id) = d.get("snapshot_id") {
        return format!("snapshot {id} saved");
    }
    String::new()
}
