//! Query parameters of the lists, shared by the JSON API and the pages. Handlers deserialize
//! these structs (through [`crate::extract::Params`]) and the OpenAPI document describes the
//! same structs, so the description cannot drift from the parsing.
//!
//! Values arrive as text and are checked here, so that a bad one becomes a field error in the
//! caller's words rather than serde's. The API reads [`Reading::Strict`]: an empty value is an
//! error, because a script that sends `?status=` means something and guessing "no filter"
//! would answer another question. Pages read [`Reading::Forgiving`]: their filter forms send
//! an empty value for "any".

use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::audit::{self, ObjectType};
use crate::devices::{self, DeviceFilter};
use crate::error::{AppResult, FieldErrors};
use crate::jobs::{JobFilter, JobStatus, JobType};
use crate::pagination::PageRequest;
use crate::types::Reachability;

/// How strictly to read a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// An empty value is an error (the API).
    Strict,
    /// An empty value means "not given" (pages and their filter forms).
    Forgiving,
}

impl Reading {
    /// `value`, or `None` when it is empty and that is forgiven; an empty value read strictly
    /// is recorded as an error on `field`.
    fn take<'a>(
        self,
        field: &str,
        value: &'a Option<String>,
        errors: &mut FieldErrors,
    ) -> Option<&'a str> {
        match value.as_deref().map(str::trim) {
            Some("") if self == Reading::Strict => {
                errors.add(field, "Enter a value, or leave the parameter out.");
                None
            }
            Some("") | None => None,
            Some(v) => Some(v),
        }
    }
}

impl Reading {
    /// The values of a repeatable parameter. Pages also split a value at commas, since
    /// their forms have one box per filter (`s01, s02`); an empty value is skipped there
    /// and an error for the API.
    fn take_all<'a>(
        self,
        field: &str,
        values: &'a [String],
        errors: &mut FieldErrors,
    ) -> Vec<&'a str> {
        let mut out = Vec::new();
        for value in values {
            match self {
                Reading::Strict if value.trim().is_empty() => {
                    errors.add(field, "Enter a value, or leave the parameter out.")
                }
                Reading::Strict => out.push(value.trim()),
                Reading::Forgiving => {
                    out.extend(value.split(',').map(str::trim).filter(|v| !v.is_empty()))
                }
            }
        }
        out
    }
}

/// `?page=&page_size=` of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10_000_000)]
    pub page: Option<String>,
    /// Rows per page (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub page_size: Option<String>,
}

impl PageParams {
    /// The page asked for.
    pub fn request(&self, reading: Reading) -> AppResult<PageRequest> {
        let mut errors = FieldErrors::new();
        let page = reading.take("page", &self.page, &mut errors);
        let size = reading.take("page_size", &self.page_size, &mut errors);
        let request = PageRequest::parse(page, size, &mut errors);
        errors.into_result().map(|()| request)
    }
}

/// The device list's filters and sort (also taken by `/regions/{id}/devices/`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceParams {
    /// Region id, or `none` for devices without a region.
    pub region: Option<String>,
    /// Site, exact and case-insensitive; repeat it for any of several (`site=a&site=b`).
    #[serde(default)]
    pub site: Vec<String>,
    /// Role, exact and case-insensitive; repeatable.
    #[serde(default)]
    pub role: Vec<String>,
    /// Vendor, exact and case-insensitive; repeatable.
    #[serde(default)]
    pub vendor: Vec<String>,
    /// Platform, exact and case-insensitive; repeatable.
    #[serde(default)]
    pub platform: Vec<String>,
    /// A tag the devices carry (exact); repeatable, for devices carrying any of them.
    #[serde(default)]
    pub tag: Vec<String>,
    /// Enabled (`true`) or disabled (`false`) devices.
    #[param(value_type = Option<bool>)]
    pub enabled: Option<String>,
    /// The outcome of the devices' last reachability check.
    #[param(value_type = Option<Reachability>)]
    pub reachability: Option<String>,
    /// Credential id, or `none` for devices without one.
    pub credential: Option<String>,
    /// Part of the hostname, the start of the management address, or a network holding it
    /// (`10.0.1.0/24`).
    pub q: Option<String>,
    /// Sort key, `-` prefixed to reverse: hostname (default), mgmt_ip, site, role, vendor,
    /// region, updated_at.
    pub sort: Option<String>,
}

impl DeviceParams {
    /// The filter and the sort key.
    pub fn filter(&self, reading: Reading) -> AppResult<(DeviceFilter, String)> {
        let mut errors = FieldErrors::new();
        let mut pairs = Vec::new();
        for (key, values) in [
            ("site", &self.site),
            ("role", &self.role),
            ("vendor", &self.vendor),
            ("platform", &self.platform),
            ("tag", &self.tag),
        ] {
            for v in reading.take_all(key, values, &mut errors) {
                pairs.push((key, v.to_string()));
            }
        }
        for (key, value) in [
            ("region", &self.region),
            ("enabled", &self.enabled),
            ("reachability", &self.reachability),
            ("credential", &self.credential),
            ("q", &self.q),
        ] {
            if let Some(v) = reading.take(key, value, &mut errors) {
                pairs.push((key, v.to_string()));
            }
        }
        let filter = DeviceFilter::from_pairs(pairs, &mut errors);
        let sort = reading
            .take("sort", &self.sort, &mut errors)
            .unwrap_or("hostname");
        if !devices::SORTS.contains(&sort.trim_start_matches('-')) {
            errors.add(
                "sort",
                format!(
                    "Sort by one of: {} (prefix - to reverse).",
                    devices::SORTS.join(", ")
                ),
            );
        }
        errors.into_result().map(|()| (filter, sort.to_string()))
    }
}

/// The job lists' filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>)]
    pub status: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<JobType>)]
    pub job_type: Option<String>,
    /// Only jobs with a dispatch to this region.
    #[param(value_type = Option<i64>)]
    pub region: Option<String>,
    /// Only jobs that target this device (id).
    #[param(value_type = Option<i64>)]
    pub device: Option<String>,
    /// Only jobs asked for by this user (id).
    #[param(value_type = Option<i64>)]
    pub user: Option<String>,
    /// Only jobs requested at or after this time: a date (`2026-12-06`, its start in UTC) or
    /// an RFC 3339 time.
    pub since: Option<String>,
    /// Only jobs requested before this time: a date (the end of that day, UTC) or an RFC 3339
    /// time.
    pub until: Option<String>,
}

/// `since`/`until` of the job lists: a date (UTC; `end_of_day` gives the next midnight) or
/// an RFC 3339 time.
fn parse_when(raw: &str, end_of_day: bool) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(raw, &format)
        .map_err(|_| "Enter a date (2026-12-06) or an RFC 3339 time.".to_string())?;
    let day = if end_of_day {
        day.next_day().ok_or("Enter an earlier date.")?
    } else {
        day
    };
    Ok(day.midnight().assume_utc())
}

impl JobParams {
    /// The filter.
    pub fn filter(&self, reading: Reading) -> AppResult<JobFilter> {
        let mut errors = FieldErrors::new();
        let mut filter = JobFilter::default();
        if let Some(s) = reading.take("status", &self.status, &mut errors) {
            filter.status = errors.check("status", JobStatus::parse(s));
        }
        if let Some(t) = reading.take("type", &self.job_type, &mut errors) {
            filter.job_type = errors.check("type", JobType::parse(t));
        }
        if let Some(r) = reading.take("region", &self.region, &mut errors) {
            filter.region = errors.check("region", parse_id(r, "a region id"));
        }
        if let Some(d) = reading.take("device", &self.device, &mut errors) {
            filter.device = errors.check("device", parse_id(d, "a device id"));
        }
        if let Some(u) = reading.take("user", &self.user, &mut errors) {
            filter.user = errors.check("user", parse_id(u, "a user id"));
        }
        if let Some(t) = reading.take("since", &self.since, &mut errors) {
            filter.since = errors.check("since", parse_when(t, false));
        }
        if let Some(t) = reading.take("until", &self.until, &mut errors) {
            filter.until = errors.check("until", parse_when(t, true));
        }
        errors.into_result().map(|()| filter)
    }

    /// The filter's values as given (empty ones left out), to keep them in links.
    pub fn to_pairs(&self) -> Vec<(&'static str, &str)> {
        given([
            ("status", &self.status),
            ("type", &self.job_type),
            ("region", &self.region),
            ("device", &self.device),
            ("user", &self.user),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }
}

/// `?after=` of a job's log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only entries with a larger id (to tail the log).
    #[param(value_type = Option<i64>)]
    pub after: Option<String>,
}

impl LogParams {
    /// The id to read after (0: from the start).
    pub fn after(&self, reading: Reading) -> AppResult<i64> {
        let mut errors = FieldErrors::new();
        let after = match reading.take("after", &self.after, &mut errors) {
            Some(a) => a
                .parse::<i64>()
                .map_err(|_| errors.add("after", "Enter a log entry id."))
                .unwrap_or(0),
            None => 0,
        };
        errors.into_result().map(|()| after)
    }
}

/// The user list's search.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserParams {
    /// Part of the username, case-insensitive.
    pub q: Option<String>,
}

impl UserParams {
    /// The search, if any.
    pub fn search(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }
}

/// Whose tokens to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenParams {
    /// A user the caller manages (admins); the caller by default.
    #[param(value_type = Option<i64>)]
    pub user: Option<String>,
}

impl TokenParams {
    /// The user asked for, if any.
    pub fn user(&self, reading: Reading) -> AppResult<Option<i64>> {
        let mut errors = FieldErrors::new();
        let user = reading.take("user", &self.user, &mut errors).and_then(|u| {
            u.parse()
                .map_err(|_| errors.add("user", "Enter a user id."))
                .ok()
        });
        errors.into_result().map(|()| user)
    }
}

/// The audit trail's filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Username of whoever made the change.
    pub actor: Option<String>,
    /// `customer`, `user`, `token`, `region`, `device`, `credential` or `job`.
    #[param(value_type = Option<ObjectType>)]
    pub object_type: Option<String>,
    /// One object's id (with `object_type`).
    #[param(value_type = Option<i64>)]
    pub object_id: Option<String>,
    /// From this time on (RFC 3339, or a date `2026-11-29`).
    pub since: Option<String>,
    /// Before this time (RFC 3339, or a date: the start of that day).
    pub until: Option<String>,
}

impl AuditParams {
    /// The filter's values as given (empty ones left out), to keep them in links.
    pub fn to_pairs(&self) -> Vec<(&'static str, &str)> {
        given([
            ("actor", &self.actor),
            ("object_type", &self.object_type),
            ("object_id", &self.object_id),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }

    /// The filter.
    pub fn filter(&self, reading: Reading) -> AppResult<audit::Filter> {
        let mut errors = FieldErrors::new();
        let mut filter = audit::Filter {
            actor: reading
                .take("actor", &self.actor, &mut errors)
                .map(str::to_string),
            ..Default::default()
        };
        if let Some(t) = reading.take("object_type", &self.object_type, &mut errors) {
            filter.object_type = errors.check("object_type", ObjectType::parse(t));
        }
        if let Some(id) = reading.take("object_id", &self.object_id, &mut errors) {
            filter.object_id = errors.check("object_id", parse_id(id, "an object id"));
        }
        for (field, value, slot) in [
            ("since", &self.since, &mut filter.since),
            ("until", &self.until, &mut filter.until),
        ] {
            if let Some(raw) = reading.take(field, value, &mut errors) {
                *slot = parse_time(raw)
                    .map_err(|()| {
                        errors.add(field, "Enter a date (2026-11-29) or an RFC 3339 time.")
                    })
                    .ok();
            }
        }
        errors.into_result().map(|()| filter)
    }
}

/// An RFC 3339 time, or a date (its midnight, UTC).
fn parse_time(raw: &str) -> Result<OffsetDateTime, ()> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw, &format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| ())
}

/// The parameters that were given a value, in order.
fn given<'a, const N: usize>(
    pairs: [(&'static str, &'a Option<String>); N],
) -> Vec<(&'static str, &'a str)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect()
}

/// An id given in a query string.
fn parse_id(raw: &str, what: &str) -> Result<i64, String> {
    raw.parse().map_err(|_| format!("Enter {what}."))
}
