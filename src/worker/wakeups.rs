//! One connection per worker process of its own, whatever its number of queues: it listens
//! for new tasks and writes the heartbeats. apalis's own listener (`with_pubsub`) holds a
//! connection per queue, so a worker of 21 queues held 21 connections doing nothing; here one
//! task listens to the channel of each queue the process serves (`lifecycle::queue_channel`,
//! notified when a dispatch is queued) and wakes that queue's consumer. A process hears only
//! its own queues' tasks: with one channel for every queue (apalis's), each new task woke every
//! worker of the fleet. Each consumer also polls on an interval, which covers a notification
//! missed while the listener reconnects.
//!
//! The heartbeat goes through the same connection, between notifications: a connection of
//! the pool could be stuck behind apalis's work (or inside a transaction a cancelled `BEGIN`
//! left open, transact-rs/sqlx#4393), and a third connection per idle worker would cost a
//! fleet of hundreds of workers hundreds of PostgreSQL backends doing nothing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use futures::{Stream, StreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::BroadcastStream;

/// The first pause before reconnecting, doubled per failure up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// The longest pause before reconnecting (±50 % jitter): what a database back from an
/// outage waits for the heartbeats at most, so that regions turn healthy within seconds
/// (the scale test saw 13 s with 5 s), while 200 workers still arrive spread out.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Wakes the consumers of a worker process when their queue gets a task, and writes its
/// heartbeats, on the process's own connection. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Wakeups {
    /// The wake-ups of each queue's consumers, by the queue's channel.
    queues: Arc<Mutex<HashMap<String, broadcast::Sender<()>>>>,
    /// Told when a queue is added, for the listener to LISTEN to its channel.
    added: Arc<Notify>,
    beats: mpsc::Sender<BeatRequest>,
}

/// A heartbeat for the connection's task to write, and where to say how it went.
#[derive(Debug)]
struct BeatRequest {
    name: String,
    host: String,
    queues: Vec<String>,
    heartbeat: Duration,
    running_tasks: usize,
    done: oneshot::Sender<sqlx::Result<()>>,
}

impl BeatRequest {
    fn record(&self) -> crate::fleet::Beat<'_> {
        crate::fleet::Beat {
            name: &self.name,
            host: &self.host,
            version: crate::VERSION,
            queues: &self.queues,
            heartbeat: self.heartbeat,
            running_tasks: self.running_tasks,
        }
    }
}

/// A stream that yields when its queue may have work.
pub(super) type Wakeup = Pin<Box<dyn Stream<Item = ()> + Send>>;

impl Wakeups {
    /// Starts the listener on a connection of its own to `target` (outside the pools, whose
    /// connections are released when idle), until `stop`; `beat_timeout` bounds a
    /// heartbeat's statement, beyond which the connection counts as lost.
    pub(super) fn spawn(
        target: &sqlx::postgres::PgConnectOptions,
        beat_timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let (beats, requests) = mpsc::channel(4);
        let wakeups = Self {
            queues: Arc::default(),
            added: Arc::default(),
            beats,
        };
        let own = crate::db::own_connection(target, None);
        tokio::spawn(wakeups.clone().listen(own, requests, beat_timeout, stop));
        wakeups
    }

    /// Writes `beat` through the process's own connection; an error when that connection is
    /// down (it is being re-established meanwhile).
    pub(super) async fn beat(&self, beat: &crate::fleet::Beat<'_>) -> sqlx::Result<()> {
        let (done, outcome) = oneshot::channel();
        let request = BeatRequest {
            name: beat.name.to_owned(),
            host: beat.host.to_owned(),
            queues: beat.queues.to_vec(),
            heartbeat: beat.heartbeat,
            running_tasks: beat.running_tasks,
            done,
        };
        self.beats
            .send(request)
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        outcome.await.unwrap_or(Err(sqlx::Error::PoolClosed))
    }

    fn sender(&self, queue: &str) -> broadcast::Sender<()> {
        let channel = crate::lifecycle::queue_channel(queue);
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = queues.get(&channel) {
            return sender.clone();
        }
        let sender = broadcast::channel(16).0;
        queues.insert(channel, sender.clone());
        self.added.notify_one();
        sender
    }

    /// The wake-ups of `queue`, from now on.
    pub(super) fn subscribe(&self, queue: &str) -> Wakeup {
        // A lagging receiver only missed wake-ups that meant the same thing: wake once.
        Box::pin(BroadcastStream::new(self.sender(queue).subscribe()).map(|_| ()))
    }

    /// Wakes the consumers of the queue announced on `channel`, or of every queue.
    fn wake(&self, channel: Option<&str>) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, sender) in queues.iter() {
            if channel.is_none_or(|c| c == name) {
                // No consumer listening right now is fine: it polls when it starts.
                let _ = sender.send(());
            }
        }
    }

    /// The channels of the queues served so far.
    fn channels(&self) -> Vec<String> {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.keys().cloned().collect()
    }

    async fn listen(
        self,
        pool: PgPool,
        mut beats: mpsc::Receiver<BeatRequest>,
        beat_timeout: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = self.relay(&pool, &mut beats, beat_timeout, &mut failures) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            failures += 1;
            // Jittered, so that a fleet reconnecting after an outage does not arrive at once.
            let pause = tokio::time::sleep(crate::db::jittered_backoff(
                failures,
                RECONNECT_FIRST,
                RECONNECT_MAX,
            ));
            tokio::pin!(pause);
            let stopped = loop {
                tokio::select! {
                    () = &mut pause => break false,
                    Some(request) = beats.recv() => {
                        // Said at once: the heartbeat retries on its own schedule.
                        let _ = request.done.send(Err(sqlx::Error::PoolTimedOut));
                    }
                    _ = stop.wait_for(|s| *s) => break true,
                }
            };
            if stopped {
                break;
            }
        }
        pool.close().await;
    }

    /// Listens, and writes the heartbeats asked for, until the connection is lost. Said once
    /// per outage, not once per try.
    async fn relay(
        &self,
        pool: &PgPool,
        beats: &mut mpsc::Receiver<BeatRequest>,
        beat_timeout: Duration,
        failures: &mut u32,
    ) {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(listener) => listener,
            Err(e) => {
                if *failures == 0 {
                    tracing::warn!(error = %e, "cannot listen for new tasks; polling meanwhile");
                }
                return;
            }
        };
        let mut listening = self.channels();
        if let Err(e) = listener
            .listen_all(listening.iter().map(String::as_str))
            .await
        {
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
            // `try_recv` may be cancelled: sqlx keeps a partly read message for the next call,
            // and notifications that arrive during a heartbeat wait in the listener's buffer.
            tokio::select! {
                Some(request) = beats.recv() => {
                    let written =
                        tokio::time::timeout(beat_timeout, crate::fleet::beat(&mut listener, &request.record()))
                            .await;
                    let lost = !matches!(written, Ok(Ok(())));
                    let _ = request
                        .done
                        .send(written.unwrap_or(Err(sqlx::Error::PoolTimedOut)));
                    if lost {
                        // Start afresh: a statement cut off by the timeout leaves the connection
                        // in an unknown state, and a failed one most likely means it is gone.
                        tracing::warn!("a heartbeat failed on the worker's own connection; reconnecting");
                        return;
                    }
                }
                () = self.added.notified() => {
                    let new: Vec<String> = self
                        .channels()
                        .into_iter()
                        .filter(|c| !listening.contains(c))
                        .collect();
                    if let Err(e) = listener.listen_all(new.iter().map(String::as_str)).await {
                        tracing::warn!(error = %e, "cannot LISTEN for a new queue's tasks; reconnecting");
                        return;
                    }
                    listening.extend(new);
                    // Whatever that queue got before its channel was heard.
                    self.wake(None);
                }
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => self.wake(Some(n.channel())),
                    Ok(None) | Err(_) => {
                        tracing::warn!(
                            "lost the connection that listens for new tasks; polling meanwhile"
                        );
                        return;
                    }
                },
            }
        }
    }
}
