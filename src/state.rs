//! What every request handler shares, and the settings of the HTTP layer.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::auth::cache::AuthCache;
use crate::crypto::SecretBox;
use crate::db::Availability;
use crate::live::LiveEvents;
use crate::metrics::Metrics;

/// Shared by every request handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The one connection pool of the process.
    pub pool: PgPool,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Encrypts and decrypts device credentials.
    pub secrets: SecretBox,
    /// Region health changes, for live badges.
    pub live: LiveEvents,
    /// Whether the database answered lately (the readiness probe's fast path).
    pub availability: Availability,
    /// Callers authenticated lately, emptied by the live listener on every change to them.
    pub auth_cache: AuthCache,
}

impl AppState {
    /// State around an open pool; starts listening for region health changes and for the
    /// changes that invalidate cached callers.
    pub fn new(pool: PgPool, secrets: SecretBox) -> Self {
        let listen = crate::db::same_as(&pool);
        Self::with_listen_connection(pool, listen, secrets)
    }

    /// Like [`AppState::new`], with live updates listening on a connection to `listen`
    /// (`--listen-database-url`: PostgreSQL itself, where `pool` goes through a pooler).
    pub fn with_listen_connection(
        pool: PgPool,
        listen: sqlx::postgres::PgConnectOptions,
        secrets: SecretBox,
    ) -> Self {
        let auth_cache = AuthCache::default();
        Self {
            live: LiveEvents::spawn(pool.clone(), listen, auth_cache.clone()),
            pool,
            metrics: Arc::new(Metrics::default()),
            secrets,
            availability: Availability::default(),
            auth_cache,
        }
    }
}

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Whether the session cookie is marked `Secure`.
    pub secure_cookies: bool,
    /// Idle time after which a browser session ends.
    pub session_idle: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see [`crate::extract::ClientAddr`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            session_idle: Duration::from_secs(12 * 3600),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The trusted proxies, as a request extension for [`crate::extract::ClientAddr`].
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<ipnet::IpNet>>);

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "webnet_session";
