//! Reading submitted forms and formatting values for pages.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use tower_sessions::Session;

use crate::error::{AppError, AppResult, FieldErrors};

/// A urlencoded form as decoded pairs (repeated keys kept, e.g. `device_ids`). Never
/// rejects a well-sized body, so handlers decide what a bad field means.
#[derive(Debug, Default, Clone)]
pub struct FormPairs(pub Vec<(String, String)>);

impl FormPairs {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        crate::extract::first(&self.0, key)
    }

    /// The first value of `key`, owned.
    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }

    /// The first value of `key` as typed, or "" (to show a form again).
    pub fn text(&self, key: &str) -> String {
        self.string(key).unwrap_or_default()
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A checkbox: present and not "false"/"0"/"off".
    pub fn checked(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| !matches!(v, "" | "false" | "0" | "off"))
    }

    /// A whole number field; empty means absent.
    pub fn integer(&self, key: &str, errors: &mut FieldErrors) -> Option<i64> {
        let raw = self.get(key)?.trim();
        if raw.is_empty() {
            return None;
        }
        raw.parse()
            .map_err(|_| errors.add(key, "Enter a whole number."))
            .ok()
    }

    /// An optional id from a select: empty means "none".
    pub fn optional_id(&self, key: &str, errors: &mut FieldErrors) -> Option<Option<i64>> {
        let raw = self.get(key)?.trim();
        if raw.is_empty() {
            return Some(None);
        }
        match raw.parse() {
            Ok(id) => Some(Some(id)),
            Err(_) => {
                errors.add(key, "Choose an option from the list.");
                None
            }
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for FormPairs {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| AppError::BadRequest("The form could not be read (too large?).".into()))?;
        Ok(Self(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// Headers of a page that shows a secret once (a new token, a generated password): no cache
/// keeps it, so the back button cannot show it again.
pub const NO_STORE: [(axum::http::HeaderName, &str); 1] =
    [(axum::http::header::CACHE_CONTROL, "no-store")];

/// Answers a form submission from what its use case returned: on success a flash message
/// and a redirect (`done` gives both), so that reloading the next page does not post again;
/// on validation errors the form again (`again`), with its errors, as a 400. Other errors
/// are the error page's.
pub async fn answer<T, P: IntoResponse>(
    session: &Session,
    result: AppResult<T>,
    done: impl FnOnce(&T) -> (String, String),
    again: impl AsyncFnOnce(FieldErrors) -> AppResult<P>,
) -> AppResult<Response> {
    match result {
        Ok(value) => {
            let (message, to) = done(&value);
            super::flash::push(session, super::flash::Level::Success, message).await?;
            Ok(Redirect::to(&to).into_response())
        }
        Err(AppError::Validation(errors)) => {
            Ok((StatusCode::BAD_REQUEST, again(errors).await?).into_response())
        }
        Err(e) => Err(e),
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: &i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if *n < 0 { format!("-{out}") } else { out }
}

/// A timestamp as RFC 3339 (for `<time datetime>`), UTC, to the second.
pub fn iso(t: &OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(*t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A log line's time (see [`crate::jobs::log_stamp`]).
pub fn clock(t: &OffsetDateTime) -> String {
    crate::jobs::log_stamp(*t)
}

/// A timestamp relative to now: "12 s ago", "3 min ago", "5 h ago", or the date.
pub fn ago(t: &OffsetDateTime) -> String {
    let secs = (OffsetDateTime::now_utc() - *t).whole_seconds();
    match secs {
        i64::MIN..=-1 => "just now".into(),
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => t.date().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(&0), "0");
        assert_eq!(thousands(&999), "999");
        assert_eq!(thousands(&1234), "1,234");
        assert_eq!(thousands(&1234567), "1,234,567");
        assert_eq!(thousands(&-1000), "-1,000");
    }

    #[test]
    fn log_times_show_the_date_and_time_in_utc_with_the_zone() {
        let t = time::macros::datetime!(2026-11-28 00:24:20.123 +01:00);
        assert_eq!(clock(&t), "2026-11-27 23:24:20.123 UTC");
    }

    #[test]
    fn checkboxes_and_numbers_parse_leniently() {
        let f = FormPairs(vec![
            ("enabled".into(), "on".into()),
            ("priority".into(), "x".into()),
            ("port".into(), " 22 ".into()),
            ("region".into(), "".into()),
        ]);
        let mut e = FieldErrors::new();
        assert!(f.checked("enabled") && !f.checked("missing"));
        assert_eq!(f.integer("priority", &mut e), None);
        assert_eq!(f.integer("port", &mut e), Some(22));
        assert_eq!(f.optional_id("region", &mut e), Some(None));
        assert_eq!(e.get("priority").len(), 1);
    }
}
