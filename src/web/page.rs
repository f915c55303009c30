//! What every page shares: the base layout, the signed-in user, the navigation, the error
//! page, and the client address and redirect rules of sign-in.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sqlx::PgPool;
use tower_sessions::Session;

use super::flash::{self, Flash};
use crate::auth::{AuthUser, csrf};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::regions::Region;
use crate::state::AppState;
use crate::types::HealthStatus;

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
    /// `/customers`
    Customers,
    /// `/users`
    Users,
    /// `/tokens`
    Tokens,
    /// `/audit`
    Audit,
    /// `/account`
    Account,
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

    /// Whether the user manages users (admins and superusers), for the navigation.
    pub fn manages_users(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| u.require(crate::auth::Role::Admin).is_ok())
    }

    /// Whether the user is a superuser, for the navigation.
    pub fn is_superuser(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_superuser)
    }

    /// Whether `nav` is the current section.
    pub fn is(&self, nav: Nav) -> bool {
        self.nav == nav
    }
}

/// Extractor for pages that need a signed-in user: the user, the session, and the shared
/// state, so that a handler and the helpers that build its page take one argument.
pub struct SignedIn {
    /// The user.
    pub user: AuthUser,
    /// The session, for flashes and the CSRF token.
    pub session: Session,
    /// What every handler shares (the pool, the secrets, live events).
    pub state: AppState,
}

impl SignedIn {
    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

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
        Ok(Self {
            user,
            session,
            state: state.clone(),
        })
    }
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
    use crate::extract::client_address;

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

/// A live health badge: colour plus the status word, swapped by SSE when it changes.
#[derive(Template, WebTemplate, Debug, Clone)]
#[template(path = "regions/_health_badge.html")]
pub struct HealthBadgePartial {
    /// Region id (names the SSE event).
    pub id: i64,
    /// Region identifier (`data-region-health`).
    pub identifier: String,
    /// Status.
    pub status: HealthStatus,
    /// Shown as a tooltip.
    pub message: String,
    /// Says "no workers yet" instead of the status ([`Region::awaits_workers`]).
    pub awaiting: bool,
}

/// The badge of a region.
pub fn badge(region: &Region) -> HealthBadgePartial {
    HealthBadgePartial {
        id: region.id,
        identifier: region.identifier.clone(),
        status: region.health_status,
        message: region.health_message.clone(),
        awaiting: region.awaits_workers(),
    }
}
