//! Region health changes, heard from PostgreSQL and fanned out to the browsers of this
//! server process. A trigger on `regions` NOTIFYs every change, whoever made it, so badges
//! follow changes made by the API, a form, another server or the health monitor alike.

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::broadcast;

use crate::types::HealthStatus;

/// The NOTIFY channel the `regions_health_changed` trigger sends on.
pub const CHANNEL: &str = "webnet_region_health";

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
pub enum HealthMessage {
    /// A region's health changed.
    Change(HealthChange),
    /// The server is stopping: end the streams so graceful shutdown can finish.
    Shutdown,
}

/// Subscribes browsers to health changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthEvents {
    sender: broadcast::Sender<HealthMessage>,
}

impl HealthEvents {
    /// Starts listening on `pool`'s database in a background task.
    pub fn spawn(pool: PgPool) -> Self {
        let (sender, _) = broadcast::channel(1024);
        let events = Self {
            sender: sender.clone(),
        };
        tokio::spawn(listen(pool, sender));
        events
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthMessage> {
        self.sender.subscribe()
    }

    /// Ends every subscriber's stream (at shutdown).
    pub fn close(&self) {
        let _ = self.sender.send(HealthMessage::Shutdown);
    }
}

async fn listen(pool: PgPool, sender: broadcast::Sender<HealthMessage>) {
    // A connection of its own, outside the request pool: LISTEN holds it for good.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let closed = pool.close_event();
    tokio::select! {
        () = relay(&own, &sender) => {}
        () = closed => {}
    }
    own.close().await;
}

async fn relay(pool: &PgPool, sender: &broadcast::Sender<HealthMessage>) {
    loop {
        match PgListener::connect_with(pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for region health changes; retrying");
                } else {
                    // `recv` reconnects by itself after a lost connection.
                    loop {
                        match listener.recv().await {
                            Ok(n) => match serde_json::from_str::<HealthChange>(n.payload()) {
                                Ok(change) => {
                                    // No subscribers is fine.
                                    let _ = sender.send(HealthMessage::Change(change));
                                }
                                Err(e) => tracing::warn!(error = %e, "bad health notification"),
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "health listener failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for region health changes"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
