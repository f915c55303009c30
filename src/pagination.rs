//! `?page=&page_size=` and the `{count, next, previous, results}` envelope.

use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder, SqlSafeStr};

use crate::error::{AppError, AppResult, FieldErrors};

/// Default rows per page.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i64 = 1000;
/// Largest page number accepted (keeps offsets far from overflowing).
pub const MAX_PAGE: i64 = 10_000_000;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: i64,
    /// Rows per page.
    pub page_size: i64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl PageRequest {
    /// Parses the raw query values, recording problems in `errors`.
    pub fn parse(page: Option<&str>, page_size: Option<&str>, errors: &mut FieldErrors) -> Self {
        let defaults = Self::default();
        Self {
            page: within(page, "page", "a page number", MAX_PAGE, errors).unwrap_or(defaults.page),
            page_size: within(page_size, "page_size", "a page size", MAX_PAGE_SIZE, errors)
                .unwrap_or(defaults.page_size),
        }
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }

    /// Appends ` LIMIT … OFFSET …` for this page to a query being built.
    pub fn push_limit(&self, qb: &mut QueryBuilder<Postgres>) {
        qb.push(" LIMIT ")
            .push_bind(self.page_size)
            .push(" OFFSET ")
            .push_bind(self.offset());
    }

    /// Number of pages for `count` rows (at least 1).
    pub fn pages(&self, count: i64) -> i64 {
        ((count + self.page_size - 1) / self.page_size).max(1)
    }
}

/// A whole number from 1 to `max` given as `field`, if any; an empty value is none.
fn within(
    raw: Option<&str>,
    field: &str,
    what: &str,
    max: i64,
    errors: &mut FieldErrors,
) -> Option<i64> {
    let raw = raw.filter(|s| !s.is_empty())?;
    match raw.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            errors.add(field, format!("Enter {what} between 1 and {max}."));
            None
        }
    }
}

/// How many rows a list has: exactly `count`, or, when `capped`, at least `count` (counting
/// stopped there because counting every match would cost more than the page itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    /// The rows counted.
    pub count: i64,
    /// Whether counting stopped at `count`.
    pub capped: bool,
}

impl Total {
    /// An exact count.
    pub fn exact(count: i64) -> Self {
        Self {
            count,
            capped: false,
        }
    }

    /// Whether a page after `req` may exist, given that `shown` rows are on it.
    pub fn has_next(&self, req: PageRequest, shown: usize) -> bool {
        req.page.saturating_mul(req.page_size) < self.count
            || (self.capped && shown as i64 == req.page_size)
    }
}

/// A page of results in the API's envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    /// Rows matching, over all pages.
    pub count: i64,
    /// URL of the next page, if any.
    pub next: Option<String>,
    /// URL of the previous page, if any.
    pub previous: Option<String>,
    /// This page's rows.
    pub results: Vec<T>,
}

impl<T> Paginated<T> {
    /// Wraps `results`, building `next`/`previous` from `base_url` (the request URL) by
    /// replacing its `page` parameter.
    pub fn new(results: Vec<T>, count: i64, req: PageRequest, base_url: &str) -> Self {
        Self::of(results, Total::exact(count), req, base_url)
    }

    /// Like [`Paginated::new`], for a total that may be capped: `count` is then the cap, and
    /// `next` follows every full page.
    pub fn of(results: Vec<T>, total: Total, req: PageRequest, base_url: &str) -> Self {
        let link = |page: i64| with_page(base_url, page);
        let last = if total.capped {
            req.page
        } else {
            req.pages(total.count)
        };
        Self {
            count: total.count,
            next: total
                .has_next(req, results.len())
                .then(|| link(req.page + 1)),
            previous: (req.page > 1).then(|| link((req.page - 1).min(last))),
            results,
        }
    }
}

/// A page of rows in a customer scope and how many rows there are in all, for the simple lists
/// whose only condition is the scope. `rows` takes the customer ids (`NULL` for every
/// customer) as `$1` and the page as `LIMIT $2 OFFSET $3`; the total counts the rows of
/// `table` whose `tenant` column (the customer id) is in scope.
pub async fn scoped_page<T>(
    conn: &mut PgConnection,
    (table, tenant): (&'static str, &'static str),
    rows: impl SqlSafeStr,
    customer_ids: Option<&[i64]>,
    page: PageRequest,
) -> AppResult<(Vec<T>, i64)>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let count =
        format!("SELECT count(*) FROM {table} WHERE ($1::bigint[] IS NULL OR {tenant} = ANY($1))");
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
        .bind(customer_ids)
        .fetch_one(&mut *conn)
        .await?;
    let rows = sqlx::query_as(rows)
        .bind(customer_ids)
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(conn)
        .await?;
    Ok((rows, total))
}

/// The row with this id in a customer scope, else [`AppError::NotFound`]: another customer's
/// object does not exist for the caller. `sql` takes the id as `$1` and the customer ids
/// (`NULL` for every customer) as `$2`.
pub async fn scoped_one<T>(
    conn: &mut PgConnection,
    sql: impl SqlSafeStr,
    id: i64,
    customer_ids: Option<&[i64]>,
) -> AppResult<T>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .bind(id)
        .bind(customer_ids)
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::NotFound)
}

/// `url` with its `page` query parameter set to `page`.
pub fn with_page(url: &str, page: i64) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "page" {
            ser.append_pair(&k, &v);
        }
    }
    ser.append_pair("page", &page.to_string());
    format!("{path}?{}", ser.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_page_parameters_are_field_errors() {
        let mut errors = FieldErrors::new();
        PageRequest::parse(Some("0"), Some("5000"), &mut errors);
        assert_eq!(errors.get("page").len(), 1);
        assert_eq!(errors.get("page_size").len(), 1);
        let mut errors = FieldErrors::new();
        let req = PageRequest::parse(Some("3"), Some("10"), &mut errors);
        assert!(errors.is_empty());
        assert_eq!((req.offset(), req.pages(21)), (20, 3));
    }

    #[test]
    fn links_keep_the_filters_and_replace_the_page() {
        let p = Paginated::new(
            vec![1],
            120,
            PageRequest {
                page: 2,
                page_size: 50,
            },
            "http://h/api/v1/devices/?site=par&page=2&page_size=50",
        );
        assert_eq!(
            p.next.as_deref(),
            Some("http://h/api/v1/devices/?site=par&page_size=50&page=3")
        );
        assert_eq!(
            p.previous.as_deref(),
            Some("http://h/api/v1/devices/?site=par&page_size=50&page=1")
        );
        let last = Paginated::new(
            vec![1],
            120,
            PageRequest {
                page: 3,
                page_size: 50,
            },
            "/x",
        );
        assert_eq!(last.next, None);
    }
}
