//! What every API handler module shares: the caller, route registration from a handler's
//! OpenAPI description, `201 Created`, `204 No Content`, paging and strict query strings.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Params, RequestUrl};
use crate::pagination::{PageRequest, Paginated, Total};
use crate::params::{AuditParams, DeviceParams, JobParams, PageParams, Reading, UserParams};
use crate::state::AppState;

/// What every API handler works with: the application's state and the signed-in caller
/// (refused with 401 when there is none).
pub(crate) struct Call {
    /// The application's state.
    pub state: AppState,
    /// Who is calling.
    pub user: AuthUser,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            state: state.clone(),
            user: AuthUser::from_request_parts(parts, state).await?,
        })
    }
}

/// Header of a list answer whose `count` stopped at a cap (a text search over many devices).
pub const COUNT_CAPPED: &str = "x-count-capped";

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

/// Registers handlers at their documented path, and also with the trailing slash added or
/// removed (Django REST framework's paths end in one, the seed's shortcuts do not), so both
/// spellings work. The other spelling is left out of the description: it is the same operation.
pub(crate) fn route(
    router: OpenApiRouter<AppState>,
    handlers: UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let (_, paths, method_router) = &handlers;
    let other_spellings: Vec<String> = paths
        .paths
        .keys()
        .map(|p| match p.strip_suffix('/') {
            Some(bare) => bare.to_string(),
            None => format!("{p}/"),
        })
        .collect();
    let method_router = method_router.clone();
    let router = router.routes(handlers);
    other_spellings
        .iter()
        .fold(router, |r, path| r.route(path, method_router.clone()))
}

/// Registers the handlers of one area of the API (see [`route`]), filing each operation under
/// `tag` in the OpenAPI document unless its `#[utoipa::path]` names a tag of its own.
pub(crate) fn area(
    router: OpenApiRouter<AppState>,
    tag: &str,
    handlers: impl IntoIterator<Item = UtoipaMethodRouter<AppState>>,
) -> OpenApiRouter<AppState> {
    handlers.into_iter().fold(router, |router, mut handlers| {
        for item in handlers.1.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation.tags.get_or_insert_with(|| vec![tag.to_string()]);
            }
        }
        route(router, handlers)
    })
}

/// A 201 answer with the new object and its `Location` (`path` under `/api/v1`).
pub(crate) fn created<T: serde::Serialize>(path: String, body: T) -> axum::response::Response {
    let location = format!("{PREFIX}{path}");
    (
        axum::http::StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// The errors an API handler met while reading its body before validation: none, since
/// [`crate::extract::ApiJson`] already refused what serde could not read.
pub(crate) fn no_errors() -> FieldErrors {
    FieldErrors::new()
}

/// Every row on one page: a list the API does not paginate, in the paginated envelope.
pub(crate) fn one_page<T>(rows: Vec<T>) -> Json<Paginated<T>> {
    Json(Paginated {
        count: rows.len() as i64,
        next: None,
        previous: None,
        results: rows,
    })
}

/// The 204 answer of a deletion, and its description in the OpenAPI document.
#[derive(Debug, utoipa::IntoResponses)]
#[response(status = 204, description = "Deleted.")]
pub(crate) struct Deleted;

impl IntoResponse for Deleted {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// The filters of a paginated list (see [`crate::params`]), read strictly as the API reads.
pub(crate) trait Filters: DeserializeOwned + Send {
    /// What the filters read as.
    type Filter: Send;

    /// The filters, or the field errors of their values.
    fn read(self) -> AppResult<Self::Filter>;
}

/// A list that takes no filters beyond the page.
#[derive(Debug, Deserialize)]
pub(crate) struct NoFilters {}

impl Filters for NoFilters {
    type Filter = ();

    fn read(self) -> AppResult<()> {
        Ok(())
    }
}

impl Filters for DeviceParams {
    /// The filter and the sort order.
    type Filter = (crate::devices::DeviceFilter, String);

    fn read(self) -> AppResult<Self::Filter> {
        self.filter(Reading::Strict)
    }
}

impl Filters for JobParams {
    type Filter = crate::jobs::JobFilter;

    fn read(self) -> AppResult<Self::Filter> {
        self.filter(Reading::Strict)
    }
}

impl Filters for AuditParams {
    type Filter = crate::audit::Filter;

    fn read(self) -> AppResult<Self::Filter> {
        self.filter(Reading::Strict)
    }
}

impl Filters for UserParams {
    /// The search, if any.
    type Filter = Option<String>;

    fn read(self) -> AppResult<Self::Filter> {
        Ok(self.search().map(str::to_owned))
    }
}

/// The query of a paginated list: `?page=&page_size=` and the list's filters `F`, both read
/// strictly (the page first), and the request's URL, which the links to the neighbouring
/// pages are built from.
pub(crate) struct ListQuery<F: Filters = NoFilters> {
    /// The page asked for.
    pub page: PageRequest,
    /// The filters.
    pub filter: F::Filter,
    url: String,
}

impl<F: Filters> ListQuery<F> {
    /// The answer: `rows`, one page of `count` rows in all, with its links.
    pub(crate) fn answer<T>(&self, rows: Vec<T>, count: i64) -> Json<Paginated<T>> {
        Json(Paginated::new(rows, count, self.page, &self.url))
    }

    /// The answer for a list whose count may be capped: when it is, `count` is the cap,
    /// `next` follows every full page, and the [`COUNT_CAPPED`] header says so.
    pub(crate) fn answer_total<T: serde::Serialize>(&self, rows: Vec<T>, total: Total) -> Response {
        let body = Json(Paginated::of(rows, total, self.page, &self.url));
        if total.capped {
            ([(COUNT_CAPPED, "true")], body).into_response()
        } else {
            body.into_response()
        }
    }
}

impl<S: Send + Sync, F: Filters> FromRequestParts<S> for ListQuery<F> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Params(page) = Params::<PageParams>::from_request_parts(parts, state).await?;
        let Params(filters) = Params::<F>::from_request_parts(parts, state).await?;
        let Ok(RequestUrl(url)) = RequestUrl::from_request_parts(parts, state).await;
        Ok(Self {
            page: page.request(Reading::Strict)?,
            filter: filters.read()?,
            url,
        })
    }
}
