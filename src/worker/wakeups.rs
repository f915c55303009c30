//! One LISTEN connection per worker process, whatever its number of queues. apalis's own
//! listener (`with_pubsub`) holds a connection per queue, so a worker of 21 queues held 21
//! connections doing nothing; here one task hears every new task (`apalis::job::insert`,
//! whose payload names the queue) and wakes that queue's consumer. Each consumer also polls
//! on an interval, which covers a notification missed while the listener reconnects.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;

/// The channel apalis's insert trigger notifies on.
const CHANNEL: &str = "apalis::job::insert";

/// Wakes the consumers of a worker process when their queue gets a task. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(super) struct Wakeups {
    queues: Arc<Mutex<HashMap<String, broadcast::Sender<()>>>>,
}

/// A stream that yields when its queue may have work.
pub(super) type Wakeup = Pin<Box<dyn Stream<Item = ()> + Send>>;

#[derive(serde::Deserialize)]
struct Inserted {
    job_type: String,
}

impl Wakeups {
    /// Starts the listener on a connection of its own (outside `pool`, whose connections
    /// are released when idle), until `stop`.
    pub(super) fn spawn(pool: &PgPool, stop: watch::Receiver<bool>) -> Self {
        let wakeups = Self::default();
        let own = crate::db::own_connection(pool, None);
        tokio::spawn(wakeups.clone().listen(own, stop));
        wakeups
    }

    fn sender(&self, queue: &str) -> broadcast::Sender<()> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .entry(queue.to_owned())
            .or_insert_with(|| broadcast::channel(16).0)
            .clone()
    }

    /// The wake-ups of `queue`, from now on.
    pub(super) fn subscribe(&self, queue: &str) -> Wakeup {
        // A lagging receiver only missed wake-ups that meant the same thing: wake once.
        Box::pin(BroadcastStream::new(self.sender(queue).subscribe()).map(|_| ()))
    }

    fn wake(&self, queue: Option<&str>) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, sender) in queues.iter() {
            if queue.is_none_or(|q| q == name) {
                // No consumer listening right now is fine: it polls when it starts.
                let _ = sender.send(());
            }
        }
    }

    async fn listen(self, pool: PgPool, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = self.relay(&pool, &mut failures) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            failures += 1;
            // Jittered, so that a fleet reconnecting after an outage does not arrive at once.
            let pause = super::ownership::backoff(failures);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        pool.close().await;
    }

    /// Listens until the connection is lost. Said once per outage, not once per try.
    async fn relay(&self, pool: &PgPool, failures: &mut u32) {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(e) => {
                if *failures == 0 {
                    tracing::warn!(error = %e, "cannot listen for new tasks; polling meanwhile");
                }
                return;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for new tasks; polling meanwhile");
            return;
        }
        if *failures > 0 {
            tracing::info!("listening for new tasks again");
        }
        *failures = 0;
        // Whatever was queued while nobody listened.
        self.wake(None);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match serde_json::from_str::<Inserted>(n.payload()) {
                    Ok(inserted) => self.wake(Some(&inserted.job_type)),
                    Err(_) => self.wake(None),
                },
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        "lost the connection that listens for new tasks; polling meanwhile"
                    );
                    return;
                }
            }
        }
    }
}
