//! Live updates for browsers: region health changes and new job log lines, heard from
//! PostgreSQL (LISTEN) and fanned out to the SSE streams of this server process. Triggers
//! NOTIFY every change, whoever made it, so pages follow changes made by the API, a form,
//! another server, a worker or the health monitor alike. The same connection hears changes
//! to callers, and empties the authentication cache on each (see [`crate::auth::cache`]).

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio::sync::broadcast;

use crate::auth::cache::{AUTH_CHANNEL, AuthCache};
use crate::types::HealthStatus;

/// The NOTIFY channel the `regions_health_changed` trigger sends on.
pub const HEALTH_CHANNEL: &str = "webnet_region_health";
/// The NOTIFY channel the `job_logs_inserted` trigger sends on.
pub const JOB_LOG_CHANNEL: &str = "webnet_job_log";

/// A new line in a job's log.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct JobLogAdded {
    /// The job.
    pub job_id: i64,
    /// The log entry's id.
    pub id: i64,
}

/// One region's new health.
#[derive(Debug, Clone, Deserialize)]
pub struct HealthChange {
    /// Region id.
    pub id: i64,
    /// Its customer, to send it only to that customer's browsers.
    pub customer_id: i64,
    /// Region identifier.
    pub identifier: String,
    /// New status.
    pub health_status: HealthStatus,
    /// Why.
    pub health_message: String,
}

/// What subscribers receive.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    /// A region's health changed.
    Health(HealthChange),
    /// A job's log grew.
    JobLog(JobLogAdded),
    /// The server is stopping: end the streams so graceful shutdown can finish.
    Shutdown,
}

/// Subscribes browsers to live updates. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveEvents {
    sender: broadcast::Sender<LiveMessage>,
}

impl LiveEvents {
    /// Starts listening on a connection of its own to `target` (see
    /// [`crate::db::own_connection`]) in a background task, until `pool` closes, emptying
    /// `auth_cache` on every change to callers and serving from it only while listening.
    pub fn spawn(pool: PgPool, target: PgConnectOptions, auth_cache: AuthCache) -> Self {
        let (sender, _) = broadcast::channel(1024);
        let events = Self {
            sender: sender.clone(),
        };
        tokio::spawn(listen(pool, target, sender, auth_cache));
        events
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.sender.subscribe()
    }

    /// Ends every subscriber's stream (at shutdown).
    pub fn close(&self) {
        let _ = self.sender.send(LiveMessage::Shutdown);
    }
}

async fn listen(
    pool: PgPool,
    target: PgConnectOptions,
    sender: broadcast::Sender<LiveMessage>,
    auth_cache: AuthCache,
) {
    // A connection of its own, outside the request pool: LISTEN holds it for good.
    let own = crate::db::own_connection(&target, None);
    let closed = pool.close_event();
    tokio::select! {
        () = relay(&own, &sender, &auth_cache) => {}
        () = closed => {}
    }
    auth_cache.set_live(false);
    own.close().await;
}

async fn relay(pool: &PgPool, sender: &broadcast::Sender<LiveMessage>, auth_cache: &AuthCache) {
    // Said once per outage, not once per try (the availability watch reports the outage).
    let mut failing = false;
    loop {
        match PgListener::connect_with(pool).await {
            Ok(mut listener) => {
                let channels = [HEALTH_CHANNEL, JOB_LOG_CHANNEL, AUTH_CHANNEL];
                if let Err(e) = listener.listen_all(channels).await {
                    tracing::warn!(error = %e, "cannot LISTEN for live updates; retrying");
                } else {
                    failing = false;
                    auth_cache.set_live(true);
                    // `try_recv`, not `recv`: `recv` reconnects by itself and would hide the
                    // gap, in which an invalidation may have been missed. A lost connection
                    // ends this listener; the cache is off until the next one listens.
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) if n.channel() == AUTH_CHANNEL => auth_cache.clear(),
                            Ok(Some(n)) => {
                                let message = if n.channel() == JOB_LOG_CHANNEL {
                                    serde_json::from_str(n.payload()).map(LiveMessage::JobLog)
                                } else {
                                    serde_json::from_str(n.payload()).map(LiveMessage::Health)
                                };
                                match message {
                                    // No subscribers is fine.
                                    Ok(m) => {
                                        let _ = sender.send(m);
                                    }
                                    Err(e) => tracing::warn!(error = %e, "bad notification"),
                                }
                            }
                            Ok(None) => {
                                tracing::warn!(
                                    "live update listener lost its connection; reconnecting"
                                );
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "live update listener failed; reconnecting");
                                break;
                            }
                        }
                    }
                    auth_cache.set_live(false);
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot listen for live updates; retrying");
            }
            Err(e) => tracing::debug!(error = %e, "cannot listen for live updates"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
