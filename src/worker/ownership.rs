//! What a process owns and how it keeps it: the dispatches it runs now, its heartbeat and
//! the lease that heartbeat keeps, and handing tasks back to their queue.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::wakeups::Wakeups;
use crate::crypto::SecretBox;
use crate::execute;
use crate::fleet;
use crate::lifecycle;

/// First pause before restarting a failed consumer; it doubles up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between consumer restarts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a failing heartbeat is retried: a short outage must not cost the lease.
const HEARTBEAT_RETRY: Duration = Duration::from_millis(250);
/// `base` doubled per failure, capped, with ±50 % jitter so that workers do not return in
/// step after a database restart.
pub(super) fn backoff(failures: u32) -> Duration {
    crate::db::jittered_backoff(failures, FIRST_BACKOFF, MAX_BACKOFF)
}

/// What every dispatch handler of a process shares.
#[derive(Debug)]
pub struct WorkerState {
    /// What running a dispatch needs (pools, secrets, name, device concurrency); reachable
    /// through `Deref`.
    runner: execute::Runner,
    /// How often the process tells the health monitor it is alive.
    pub heartbeat: Duration,
    /// The pool apalis's consumers poll, claim and acknowledge on: `pool` unless
    /// [`WorkerState::with_queue_pool`] gave one of its own.
    pub(super) queue_pool: PgPool,
    /// Where the process's own connection (LISTEN and heartbeats) goes: the pool's database
    /// unless [`WorkerState::with_listen_connection`] says otherwise.
    pub(super) listen: sqlx::postgres::PgConnectOptions,
    /// Dispatches running now, by queue task id.
    pub(super) running: Mutex<HashMap<String, Running>>,
    /// When the last heartbeat that reached the database was sent.
    pub(super) last_beat: Mutex<Option<Instant>>,
    /// Why running dispatches were stopped, for the job log of their hand-back.
    stop_reason: Mutex<Option<String>>,
}

#[derive(Debug)]
pub(super) struct Running {
    pub(super) abort: AbortHandle,
}

impl WorkerState {
    /// State with the default device concurrency (16) and heartbeat (2 s).
    pub fn new(pool: PgPool, secrets: SecretBox, name: String) -> Self {
        Self {
            queue_pool: pool.clone(),
            listen: crate::db::same_as(&pool),
            runner: execute::Runner {
                claims: pool.clone(),
                pool,
                secrets,
                name,
                device_concurrency: 16,
            },
            heartbeat: Duration::from_secs(2),
            running: Mutex::new(HashMap::new()),
            last_beat: Mutex::new(None),
            stop_reason: Mutex::new(None),
        }
    }

    /// Has apalis's consumers use `queue_pool` rather than the dispatches' pool. A regional
    /// worker gives them one connection: their polls, claims and acknowledgements are short
    /// and never overlap it, and the dispatches' pool then lets all its connections go while
    /// the worker is idle, which keeps an idle worker at two connections (this one and its
    /// own, see `wakeups`) whatever its number of queues.
    #[must_use]
    pub fn with_queue_pool(mut self, queue_pool: PgPool) -> Self {
        self.runner.claims = queue_pool.clone();
        self.queue_pool = queue_pool;
        self
    }

    /// Has the process's own connection (LISTEN and heartbeats) go to `listen`: PostgreSQL
    /// itself, where the pools go through a transaction pooler (`--listen-database-url`).
    #[must_use]
    pub fn with_listen_connection(mut self, listen: sqlx::postgres::PgConnectOptions) -> Self {
        self.listen = listen;
        self
    }

    /// Dispatches running now.
    pub fn running_count(&self) -> usize {
        lock(&self.running).len()
    }

    fn running_tasks(&self) -> Vec<String> {
        lock(&self.running).keys().cloned().collect()
    }

    /// How long after the last written heartbeat the process stops its dispatches: half a
    /// period before the monitor would consider it lost (three periods, by the database's
    /// clock, from a heartbeat that was sent before this process's clock was read).
    fn lease(&self) -> Duration {
        self.heartbeat * 5 / 2
    }

    /// Stops every running dispatch (their futures are dropped, closing SSH sessions), and
    /// returns how many there were.
    pub(super) fn stop_all(&self, reason: String) -> usize {
        *lock(&self.stop_reason) = Some(reason);
        let running = lock(&self.running);
        for r in running.values() {
            r.abort.abort();
        }
        running.len()
    }

    /// Whether the process may run dispatches: its last heartbeat was written within the
    /// lease (or it has not written one yet, so nobody can have given it up).
    pub(super) fn lease_valid(&self) -> bool {
        lock(&self.last_beat).is_none_or(|at| at.elapsed() <= self.lease())
    }

    pub(super) fn stop_reason(&self) -> String {
        lock(&self.stop_reason)
            .clone()
            .unwrap_or_else(|| "its worker stopped it".to_string())
    }
}

impl std::ops::Deref for WorkerState {
    type Target = execute::Runner;

    fn deref(&self) -> &execute::Runner {
        &self.runner
    }
}

impl std::ops::DerefMut for WorkerState {
    fn deref_mut(&mut self) -> &mut execute::Runner {
        &mut self.runner
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a dispatch from the running set however its task ends (finished or aborted).
pub(super) struct Registered {
    pub(super) state: Arc<WorkerState>,
    pub(super) task_id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.state.running).remove(&self.task_id);
    }
}

/// Records the process in `worker_heartbeats` and refreshes it every `state.heartbeat`
/// (at once when the served queues change) until `stop`. A heartbeat that
/// fails is retried every 250 ms; when none has been written for the lease, running
/// dispatches are stopped (the monitor is about to rescue them).
pub(super) async fn heartbeat(
    state: Arc<WorkerState>,
    mut queues: watch::Receiver<BTreeSet<String>>,
    wakeups: Wakeups,
    mut stop: watch::Receiver<bool>,
) {
    let host = hostname();
    let mut failing_since: Option<Instant> = None;
    let mut fenced = false;
    loop {
        let serving: Vec<String> = queues.borrow_and_update().iter().cloned().collect();
        let sent = Instant::now();
        let record = fleet::Beat {
            name: &state.name,
            host: &host,
            version: crate::VERSION,
            queues: &serving,
            heartbeat: state.heartbeat,
            running_tasks: state.running_count(),
        };
        // On the process's own connection (see `wakeups`): never behind apalis's work.
        let beat = wakeups.beat(&record);
        // Bounded by what is left of the lease, so that the lease is checked in time.
        let budget = lock(&state.last_beat)
            .map_or(state.heartbeat, |at| {
                state.lease().saturating_sub(at.elapsed())
            })
            .clamp(Duration::from_millis(100), state.heartbeat);
        match tokio::time::timeout(budget, beat).await {
            Ok(Ok(())) => {
                *lock(&state.last_beat) = Some(sent);
                if let Some(since) = failing_since.take() {
                    tracing::info!(
                        after_seconds = format!("{:.1}", since.elapsed().as_secs_f64()),
                        "heartbeat restored"
                    );
                }
                if std::mem::replace(&mut fenced, false) {
                    // What the fence stopped goes back now, whether or not the monitor got
                    // there first (a heartbeat back before three periods stops it from doing
                    // so), and whether or not the stopped dispatches' consumers still exist.
                    let everything = format!("{}:", state.name);
                    let reason = state.stop_reason();
                    hand_back_within(&state, everything, reason, state.heartbeat).await;
                }
            }
            // Stopping: the process's own connection closes with the heartbeat.
            _ if *stop.borrow() => break,
            failed => {
                if failing_since.is_none() {
                    failing_since = Some(sent);
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {:?}", state.heartbeat),
                    };
                    tracing::warn!(
                        error = %error,
                        "heartbeat failed; running dispatches stop if it keeps failing for {:?}",
                        state.lease()
                    );
                }
            }
        }
        let last = *lock(&state.last_beat);
        if !fenced && last.is_some_and(|at| at.elapsed() > state.lease()) {
            fenced = true;
            let reason = format!(
                "worker {} lost contact with the database for over {:?}",
                state.name,
                state.lease()
            );
            let stopped = state.stop_all(reason);
            if stopped > 0 {
                tracing::warn!(
                    dispatches = stopped,
                    "no heartbeat written within the lease: stopped running dispatches so that no \
                     other worker runs them at the same time; they are re-queued when the database is back"
                );
            }
        }
        let pause = if failing_since.is_some() {
            HEARTBEAT_RETRY
        } else {
            state.heartbeat
        };
        // Wake up when the lease runs out, too: the fence must not wait for a slow attempt.
        let lease_end = match (*lock(&state.last_beat), fenced) {
            (Some(at), false) => at + state.lease() + Duration::from_millis(1),
            _ => Instant::now() + pause,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = tokio::time::sleep_until(lease_end.into()) => {}
            _ = queues.changed() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A unique name for this process start: `<base>-<pid>-<random>`.
pub fn unique_name(base: Option<&str>) -> String {
    let host = base.map(str::to_owned).unwrap_or_else(hostname);
    let suffix = ulid::Ulid::generate().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &suffix[suffix.len() - 6..]
    )
}

/// [`hand_back`] on a task of its own, waited for at most `limit`; true when it finished.
/// Past the limit it goes on in the background instead of being dropped: a transaction
/// cancelled at its `BEGIN` or `COMMIT` would go back to the pool in a state sqlx does not
/// know about.
pub(super) async fn hand_back_within(
    state: &Arc<WorkerState>,
    holder: String,
    why: String,
    limit: Duration,
) -> bool {
    let state = state.clone();
    let task = tokio::spawn(async move { hand_back(&state, &holder, None, &why).await });
    matches!(tokio::time::timeout(limit, task).await, Ok(Ok(())))
}

/// Re-queues tasks held by `holder` (one, or all it holds) that this process is not
/// running, retrying while the database is unreachable.
pub(super) async fn hand_back(state: &WorkerState, holder: &str, only: Option<&str>, why: &str) {
    let mut pause = FIRST_BACKOFF;
    loop {
        let running = state.running_tasks();
        let result = async {
            let mut conn = state.pool.acquire().await?;
            let live = fleet::live_workers(&mut conn).await?;
            lifecycle::requeue_held(&mut conn, holder, only, &running, &live, why).await
        }
        .await;
        match result {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!(tasks = n, holder = %holder, reason = %why, "handed tasks back to their queue");
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "handing tasks back failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}
