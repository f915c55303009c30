//! The browser UI: server-rendered askama pages and htmx fragments. Handlers call the same
//! domain functions as the JSON API.

pub mod admin;
pub mod api_docs;
pub mod assets;
pub mod auth;
pub mod credentials;
pub mod dashboard;
pub mod devices;
pub mod events;
pub mod filters;
pub mod flash;
pub mod forms;
pub mod jobs;
pub mod object_form;
pub mod page;
pub mod pager;
pub mod regions;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum_htmx::HX_REQUEST;
use tower_sessions::Session;

use crate::auth::AuthUser;
use crate::credentials::Credential;
use crate::devices::Device;
use crate::error::{AppError, ErrorReport, FieldErrors};
use crate::regions::Region;
use crate::state::AppState;
use object_form::{ObjectForm, get_delete, get_edit, get_new, post_delete, post_edit, post_new};
use page::{ErrorAlertPartial, ErrorPage, Layout, Nav, login_url};

/// Pages and fragments of the UI.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::get_dashboard))
        .route("/login", get(auth::get_login).post(auth::post_login))
        .route("/logout", get(auth::get_logout).post(auth::post_logout))
        .route("/events", get(events::get_events))
        .merge(inventory::<Region>(
            get(regions::get_regions),
            get(regions::get_region),
            get(get_delete::<Region>),
        ))
        .route("/regions/{id}/health", post(regions::post_region_health))
        .merge(inventory::<Device>(
            get(devices::get_devices),
            get(devices::get_device),
            get(get_delete::<Device>),
        ))
        .route("/devices.csv", get(devices::get_devices_csv))
        .route("/devices/bulk-assign", post(devices::post_bulk_assign))
        .route("/devices/bulk-edit", post(devices::post_bulk_edit))
        .route(
            "/devices/{id}/accept-host-key",
            post(devices::post_accept_host_key),
        )
        // A credential has no page of its own, and is deleted from its form without asking.
        .merge(inventory::<Credential>(
            get(credentials::get_credentials),
            MethodRouter::new(),
            MethodRouter::new(),
        ))
        .route("/api/docs", get(api_docs::get_api_docs))
        .merge(administration())
        .route("/jobs", get(jobs::get_jobs).post(jobs::post_jobs))
        .route("/jobs/new", get(jobs::get_new_job).post(jobs::post_new_job))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/events", get(jobs::get_job_events))
        .route("/jobs/{id}/log.txt", get(jobs::get_job_log_text))
        .route("/jobs/{id}/results.json", get(jobs::get_job_results_json))
        .route("/jobs/{id}/cancel", post(jobs::post_cancel_job))
        .route("/jobs/{id}/retry", post(jobs::post_retry_job))
}

/// The pages of customers, users, tokens and the signed-in account. A change made here may
/// alter who a caller is or what they may do, so it empties the authentication cache.
fn administration() -> Router<AppState> {
    Router::new()
        .route(
            "/customers",
            get(admin::get_customers).post(admin::post_customers),
        )
        .route("/customers/new", get(admin::get_customers))
        .route(
            "/customers/{id}",
            get(admin::get_customer).post(admin::post_customer),
        )
        .route("/customers/{id}/delete", post(admin::post_delete_customer))
        .route("/users", get(admin::get_users).post(admin::post_users))
        .route("/users/new", get(admin::get_new_user))
        .route("/users/{id}", get(admin::get_user).post(admin::post_user))
        .route("/users/{id}/password", post(admin::post_user_password))
        .route("/tokens", get(admin::get_tokens).post(admin::post_tokens))
        .route("/tokens/{id}/revoke", post(admin::post_revoke_token))
        .route("/audit", get(admin::get_audit))
        .route("/account", get(admin::get_account))
        .route("/account/password", post(admin::post_account_password))
        .route("/account/sessions", post(admin::post_account_sessions))
        .route_layer(axum::middleware::from_fn(
            crate::auth::middleware::changes_callers,
        ))
}

/// The routes of an inventory kind under `T::LIST`: the list (`list`, and `POST` creates),
/// the new and edit forms, the object (`show`, and `POST` saves) and its deletion
/// (`confirm` asks first, and `POST` deletes). `show` and `confirm` add the `GET`s a kind
/// has; an empty [`MethodRouter`] adds none.
fn inventory<T: ObjectForm>(
    list: MethodRouter<AppState>,
    show: MethodRouter<AppState>,
    confirm: MethodRouter<AppState>,
) -> Router<AppState> {
    let at = |rest: &str| format!("{}{rest}", T::LIST);
    Router::new()
        .route(T::LIST, list.post(post_new::<T>))
        .route(&at("/new"), get(get_new::<T>))
        .route(&at("/{id}"), show.post(post_edit::<T>))
        .route(&at("/{id}/edit"), get(get_edit::<T>))
        .route(&at("/{id}/delete"), confirm.post(post_delete::<T>))
}

/// Middleware: turns an [`AppError`] answered by a UI route into something a browser can
/// show: a redirect to sign in, a full error page, or, for htmx requests, an alert swapped
/// into the flash area. Status and headers (such as `Retry-After`) are kept.
pub async fn render_errors(session: Session, request: Request, next: Next) -> Response {
    let is_htmx = request.headers().contains_key(HX_REQUEST);
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let user = request.extensions().get::<AuthUser>().cloned();
    let response = next.run(request).await;
    let Some(report) = response.extensions().get::<ErrorReport>().cloned() else {
        return response;
    };

    if report.status == StatusCode::UNAUTHORIZED {
        let location = login_url(&target);
        if is_htmx {
            let mut r = StatusCode::NO_CONTENT.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert("hx-redirect", v);
            }
            return r;
        }
        return Redirect::to(&location).into_response();
    }

    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = if is_htmx {
        parts
            .headers
            .insert("hx-retarget", HeaderValue::from_static("#flash"));
        parts
            .headers
            .insert("hx-reswap", HeaderValue::from_static("innerHTML"));
        ErrorAlertPartial {
            message: report.message,
            fields: report.fields,
        }
        .into_response()
    } else {
        let layout = match Layout::for_session(&session, user, Nav::None).await {
            Ok(layout) => layout,
            Err(e) => return e.into_response(),
        };
        ErrorPage {
            layout,
            status: report.status.as_u16(),
            title: report
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            message: report.message,
            fields: report.fields,
        }
        .into_response()
    };
    let (body_parts, body) = body.into_parts();
    if let Some(ct) = body_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    Response::from_parts(parts, body)
}

/// Fallback for unknown paths: JSON under `/api/`, an HTML page elsewhere.
pub async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        return AppError::NotFound.into_response();
    }
    let page = ErrorPage {
        layout: Layout {
            user: None,
            csrf_token: String::new(),
            flashes: Vec::new(),
            nav: Nav::None,
        },
        status: 404,
        title: "Not Found".into(),
        message: "There is nothing at this address. Check the link, or go back to the dashboard."
            .into(),
        fields: FieldErrors::new(),
    };
    (StatusCode::NOT_FOUND, page).into_response()
}
