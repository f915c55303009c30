//! The browser UI: server-rendered askama pages and htmx fragments. Handlers call the same
//! domain functions as the JSON API.

pub mod api_docs;
pub mod assets;
pub mod auth;
pub mod credentials;
pub mod dashboard;
pub mod devices;
pub mod events;
pub mod flash;
pub mod forms;
pub mod jobs;
pub mod pager;
pub mod regions;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_htmx::HX_REQUEST;
use tower_sessions::Session;

use crate::app::AppState;
use crate::auth::{AuthUser, csrf};
use crate::error::{AppError, AppResult, ErrorReport, FieldErrors};
use flash::Flash;

/// Pages and fragments of the UI.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::get_dashboard))
        .route("/login", get(auth::get_login).post(auth::post_login))
        .route("/logout", get(auth::get_logout).post(auth::post_logout))
        .route("/events", get(events::get_events))
        .route(
            "/regions",
            get(regions::get_regions).post(regions::post_regions),
        )
        .route("/regions/new", get(regions::get_new_region))
        .route(
            "/regions/{id}",
            get(regions::get_region).post(regions::post_region),
        )
        .route("/regions/{id}/edit", get(regions::get_edit_region))
        .route(
            "/regions/{id}/delete",
            get(regions::get_delete_region).post(regions::post_delete_region),
        )
        .route("/regions/{id}/health", post(regions::post_region_health))
        .route(
            "/devices",
            get(devices::get_devices).post(devices::post_devices),
        )
        .route("/devices/new", get(devices::get_new_device))
        .route("/devices/bulk-assign", post(devices::post_bulk_assign))
        .route(
            "/devices/{id}",
            get(devices::get_device).post(devices::post_device),
        )
        .route("/devices/{id}/edit", get(devices::get_edit_device))
        .route(
            "/devices/{id}/accept-host-key",
            post(devices::post_accept_host_key),
        )
        .route(
            "/devices/{id}/delete",
            get(devices::get_delete_device).post(devices::post_delete_device),
        )
        .route(
            "/credentials",
            get(credentials::get_credentials).post(credentials::post_credentials),
        )
        .route("/credentials/new", get(credentials::get_new_credential))
        .route("/credentials/{id}", post(credentials::post_credential))
        .route(
            "/credentials/{id}/edit",
            get(credentials::get_edit_credential),
        )
        .route(
            "/credentials/{id}/delete",
            post(credentials::post_delete_credential),
        )
        .route("/api/docs", get(api_docs::get_api_docs))
        .route("/jobs", get(jobs::get_jobs).post(jobs::post_jobs))
        .route("/jobs/new", get(jobs::get_new_job).post(jobs::post_new_job))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/events", get(jobs::get_job_events))
        .route("/jobs/{id}/cancel", post(jobs::post_cancel_job))
        .route("/jobs/{id}/retry", post(jobs::post_retry_job))
}

/// The navigation section a page belongs to, to highlight it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// No section (sign-in, errors).
    None,
    /// `/`
    Dashboard,
    /// `/regions`
    Regions,
    /// `/devices`
    Devices,
    /// `/jobs`
    Jobs,
    /// `/credentials`
    Credentials,
    /// `/api/docs`
    Api,
}

/// What the base layout needs on every page.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The signed-in user, if any.
    pub user: Option<AuthUser>,
    /// The session's CSRF token, put in forms and htmx headers.
    pub csrf_token: String,
    /// Messages queued by the previous request.
    pub flashes: Vec<Flash>,
    /// Section to highlight.
    pub nav: Nav,
}

impl Layout {
    /// Layout for a request, whether signed in or not.
    pub async fn for_session(
        session: &Session,
        user: Option<AuthUser>,
        nav: Nav,
    ) -> AppResult<Self> {
        Ok(Self {
            user,
            csrf_token: csrf::token(session).await?,
            flashes: flash::take(session).await?,
            nav,
        })
    }

    /// The customers line under the user's name.
    pub fn customers_label(&self) -> String {
        match &self.user {
            Some(u) if u.is_superuser => "all customers".to_string(),
            Some(u) if u.customers.is_empty() => "no customer".to_string(),
            Some(u) => u
                .customers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            None => String::new(),
        }
    }

    /// Whether `nav` is the current section.
    pub fn is(&self, nav: Nav) -> bool {
        self.nav == nav
    }
}

/// Extractor for pages that need a signed-in user: the user plus a layout factory.
pub struct SignedIn {
    /// The user.
    pub user: AuthUser,
    /// The session, for flashes and the CSRF token.
    pub session: Session,
}

impl SignedIn {
    /// The layout for a page of section `nav`.
    pub async fn layout(&self, nav: Nav) -> AppResult<Layout> {
        Layout::for_session(&self.session, Some(self.user.clone()), nav).await
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| anyhow::anyhow!("session layer missing: {msg}"))?;
        Ok(Self { user, session })
    }
}

/// The client's address, when the server knows it (not in in-process tests). Behind a
/// trusted reverse proxy (`--trusted-proxy`) it is the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy; otherwise the peer's.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let trusted = parts
            .extensions
            .get::<crate::app::TrustedProxies>()
            .map(|t| t.0.as_slice())
            .unwrap_or_default();
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| client_address(c.0.ip(), &parts.headers, trusted)),
        ))
    }
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy, else the
/// right-most `X-Forwarded-For` hop that is not one (each proxy appends the address it saw,
/// so hops further left were written by whoever the untrusted hop was, and may be forged).
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => continue,
            Ok(ip) => return ip.to_canonical(),
            // A hop we cannot read: stop believing the header here.
            Err(_) => break,
        }
    }
    peer
}

/// Full-page error.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Base layout.
    pub layout: Layout,
    /// HTTP status code.
    pub status: u16,
    /// Status phrase ("Not Found").
    pub title: String,
    /// What went wrong.
    pub message: String,
    /// Field errors, if the error was a validation error.
    pub fields: FieldErrors,
}

/// Error message placed in the page's flash area by htmx.
#[derive(Template, WebTemplate)]
#[template(path = "_error_alert.html")]
pub struct ErrorAlertPartial {
    /// What went wrong.
    pub message: String,
    /// Field errors, if the error was a validation error.
    pub fields: FieldErrors,
}

/// Where to send an anonymous visitor of `uri`.
pub fn login_url(path_and_query: &str) -> String {
    if path_and_query == "/" {
        "/login".to_string()
    } else {
        format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>()
        )
    }
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

/// Only local paths may be redirected to after sign-in, never another site.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_nearest_untrusted_forwarded_hop_behind_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 192.0.2.7, 10.1.1.1".parse().unwrap(),
        );
        // Through two trusted proxies: the hop before them; the forged left-most is ignored.
        assert_eq!(
            client_address(ip("10.0.0.5"), &headers, &trusted),
            ip("192.0.2.7")
        );
        // From an untrusted peer the header means nothing.
        assert_eq!(
            client_address(ip("192.0.2.9"), &headers, &trusted),
            ip("192.0.2.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &headers, &[]),
            ip("10.0.0.5")
        );
        // No header, or one that cannot be read: the proxy itself.
        let empty = axum::http::HeaderMap::new();
        assert_eq!(
            client_address(ip("10.0.0.5"), &empty, &trusted),
            ip("10.0.0.5")
        );
        headers.insert("x-forwarded-for", "junk, 10.1.1.1".parse().unwrap());
        assert_eq!(
            client_address(ip("10.0.0.5"), &headers, &trusted),
            ip("10.0.0.5")
        );
        // IPv4-mapped IPv6 peers (dual-stack sockets) match IPv4 ranges.
        headers.insert("x-forwarded-for", "192.0.2.7".parse().unwrap());
        assert_eq!(
            client_address(ip("::ffff:10.0.0.5"), &headers, &trusted),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn next_only_redirects_to_local_paths() {
        assert_eq!(safe_next(Some("/devices?site=par")), "/devices?site=par");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/");
        assert_eq!(safe_next(Some("/ok\r\nSet-Cookie: x")), "/");
        assert_eq!(safe_next(Some("")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_login_url_keeps_the_page_asked_for() {
        assert_eq!(login_url("/"), "/login");
        assert_eq!(
            login_url("/devices?site=a&b=1"),
            "/login?next=%2Fdevices%3Fsite%3Da%26b%3D1"
        );
    }
}
