//! Askama filters for the templates: `{{ t|ago }}`, `{{ t|iso }}`, `{{ t|clock }}`,
//! `{{ n|thousands }}`. A page module brings them into its templates' scope with
//! `use super::filters;`.

use askama::Values;
use time::OffsetDateTime;

use super::forms;

/// A timestamp, or a reference to one, however deep (template loops hand out `&&T`).
pub trait Timestamp {
    /// The timestamp.
    fn timestamp(&self) -> &OffsetDateTime;
}

impl Timestamp for OffsetDateTime {
    fn timestamp(&self) -> &OffsetDateTime {
        self
    }
}

impl<T: Timestamp + ?Sized> Timestamp for &T {
    fn timestamp(&self) -> &OffsetDateTime {
        (**self).timestamp()
    }
}

/// A count, or a reference to one.
pub trait Count {
    /// The count.
    fn count(&self) -> &i64;
}

impl Count for i64 {
    fn count(&self) -> &i64 {
        self
    }
}

impl<T: Count + ?Sized> Count for &T {
    fn count(&self) -> &i64 {
        (**self).count()
    }
}

/// A timestamp relative to now: "12 s ago", "3 min ago", "5 h ago", or the date.
#[askama::filter_fn]
pub fn ago(t: impl Timestamp, _: &dyn Values) -> askama::Result<String> {
    Ok(forms::ago(t.timestamp()))
}

/// A timestamp as RFC 3339 (for `<time datetime>`), UTC, to the second.
#[askama::filter_fn]
pub fn iso(t: impl Timestamp, _: &dyn Values) -> askama::Result<String> {
    Ok(forms::iso(t.timestamp()))
}

/// The time of day, to the millisecond, UTC (log lines).
#[askama::filter_fn]
pub fn clock(t: impl Timestamp, _: &dyn Values) -> askama::Result<String> {
    Ok(forms::clock(t.timestamp()))
}

/// `1234567` → `1,234,567`.
#[askama::filter_fn]
pub fn thousands(n: impl Count, _: &dyn Values) -> askama::Result<String> {
    Ok(forms::thousands(n.count()))
}
