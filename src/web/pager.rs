//! Pagination controls for HTML tables, and the page a list is asked for.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::AppError;
use crate::extract::Params;
use crate::pagination::{PageRequest, Total, with_page};
use crate::params::{PageParams, Reading};

/// The page of a list a browser asks for (`?page=&page_size=`), read forgivingly.
#[derive(Debug, Clone)]
pub struct Paging {
    /// The page to show.
    pub page: PageRequest,
    /// `page_size` as given, for links that keep it.
    pub size: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Params(params) = Params::<PageParams>::from_request_parts(parts, state).await?;
        Ok(Self {
            page: params.request(Reading::Forgiving)?,
            size: params.page_size,
        })
    }
}

/// What `_pagination.html` needs.
#[derive(Debug, Clone)]
pub struct Pager {
    /// Current page (1-based).
    pub page: i64,
    /// Number of pages.
    pub pages: i64,
    /// Rows over all pages.
    pub count: i64,
    /// Whether counting stopped at `count` (shown as "10,000+").
    pub capped: bool,
    /// First row shown (1-based), 0 when empty.
    pub first: i64,
    /// Last row shown.
    pub last: i64,
    /// Link to the previous page.
    pub prev: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
}

impl Pager {
    /// Controls for `count` rows shown `req.page_size` at a time; links keep `url`'s other
    /// query parameters (filters, sort).
    pub fn new(req: PageRequest, count: i64, url: &str, shown: usize) -> Self {
        Self::of(req, Total::exact(count), url, shown)
    }

    /// Like [`Pager::new`], for a total that may be capped ("10,000+"): every full page then
    /// has a next one.
    pub fn of(req: PageRequest, total: Total, url: &str, shown: usize) -> Self {
        let pages = if total.capped {
            req.page.max(req.pages(total.count))
        } else {
            req.pages(total.count)
        };
        let first = if shown == 0 { 0 } else { req.offset() + 1 };
        Self {
            page: req.page,
            pages,
            count: total.count,
            capped: total.capped,
            first,
            last: req.offset() + shown as i64,
            prev: (req.page > 1).then(|| with_page(url, (req.page - 1).min(pages))),
            next: total
                .has_next(req, shown)
                .then(|| with_page(url, req.page + 1)),
        }
    }
}

/// `path` with `pairs` as its query string, or bare when there are none: a list's own URL,
/// to which the pager adds `page`.
pub fn list_url<K, V>(path: &str, pairs: impl IntoIterator<Item = (K, V)>) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}
