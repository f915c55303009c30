//! Worker processes: consume regional (and default) queues and run dispatches on devices.
//!
//! Ownership of a running dispatch is what this module guards (see the README's "Health and
//! failover"):
//! - **One liveness signal.** The process heartbeats into `worker_heartbeats`; the health
//!   monitor rescues the tasks of a process whose heartbeat went stale. apalis's own orphan
//!   recovery is switched off: it judges by apalis's heartbeat, which stops at SIGTERM while
//!   a dispatch may run on through its grace period, so it let two workers run one dispatch.
//! - **A lease, kept by the process itself.** When the heartbeat has not been written for
//!   2.5 periods (the monitor gives up at 3), the process stops its running dispatches
//!   before anyone else can be handed them (fencing), and hands their tasks back.
//! - **Consumers come back.** A queue consumer whose poll fails (database restart,
//!   `pg_terminate_backend`, network) is restarted with capped, jittered backoff under a new
//!   apalis name; tasks its predecessor claimed but is not running go back to their queue.
//!   While a consumer is down its queue is left out of the heartbeat, so the monitor never
//!   counts the process as serving a queue it is not polling.
//! - **Dispatches outlive their consumer.** A dispatch runs on a task of its own: a consumer
//!   that breaks does not abort commands half-sent to a device. A dispatch whose consumer is
//!   gone settles its queue task itself when it ends.
//! - **Graceful stop.** SIGTERM stops taking work; the heartbeat goes on (with no queues)
//!   until the last dispatch ends or the grace period runs out. Then the remaining
//!   dispatches are stopped, their SSH sessions closed, and their tasks handed back with a
//!   line in the job log; only then does the process deregister.
//!
//! Each process start gets a unique name, and every apalis consumer of it a name
//! `<process>:<queue>:<n>`, so the monitor finds a process's tasks by prefix.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use futures::FutureExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::execute;
use crate::fleet;
use crate::lifecycle;
use crate::lifecycle::{DEFAULT_QUEUE, DispatchTask};

mod ownership;
mod wakeups;

use ownership::{
    FIRST_BACKOFF, MAX_BACKOFF, Registered, Running, backoff, hand_back, hand_back_within,
    heartbeat, lock,
};
pub use ownership::{WorkerState, unique_name};
use wakeups::Wakeups;

/// How often apalis refreshes its own worker row (only informative: its orphan recovery is
/// off, see the module documentation).
const APALIS_HEARTBEAT: Duration = Duration::from_secs(10);
/// Missed apalis heartbeats before apalis would re-enqueue a consumer's tasks: in effect
/// never (115 days); the health monitor does it by webnet's heartbeat instead.
const APALIS_MISSED_HEARTBEATS: usize = 1_000_000;
/// Poll fallback: NOTIFY can be missed (see FACTS), so look every second anyway.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A consumer that polled this long before failing starts its backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long a restarted consumer must poll without failing before its queue is reported as
/// served again (more than one poll interval).
const PROVEN: Duration = Duration::from_millis(1500);
/// Pause between stopping dispatches and handing their tasks back, so that their SSH
/// sessions have closed before another worker may open new ones to the same devices.
const SESSION_CLOSE: Duration = Duration::from_millis(300);

/// The apalis handler: runs the dispatch on a task of its own and waits for it.
async fn handle_dispatch(
    task: DispatchTask,
    state: Data<Arc<WorkerState>>,
    consumer: WorkerContext,
    task_id: TaskId,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let state: Arc<WorkerState> = (*state).clone();
    let task_id = task_id.to_string();
    let holder = consumer.name().to_string();
    let dispatch_id = task.dispatch_id;
    // apalis has counted this run already: the first is attempt 1.
    let last_attempt = attempt.current() >= lifecycle::TASK_MAX_ATTEMPTS;
    let (done_tx, done_rx) = oneshot::channel();
    let registered = {
        // The lease is checked under the same lock the fence takes, so a dispatch either
        // starts before the fence (and is stopped by it) or sees the lease gone.
        let mut running = lock(&state.running);
        if state.lease_valid() {
            // Registered before the task can end, so its removal cannot come first.
            let guard = Registered {
                state: state.clone(),
                task_id: task_id.clone(),
            };
            let (st, tid, lock_by) = (state.clone(), task_id.clone(), holder.clone());
            let handle = tokio::spawn(async move {
                let _guard = guard;
                // A panic is a failed run (attempts count, then the dispatch gives up), not a
                // stop: handing it back would pass the panic from worker to worker for ever.
                let result = AssertUnwindSafe(run_until_settled(&st, dispatch_id, &lock_by))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(sqlx::Error::Protocol(format!(
                            "the dispatch panicked on worker {}",
                            st.name
                        )))
                    });
                if let Err(result) = done_tx.send(result) {
                    // The consumer that handed us the task is gone (its connection broke):
                    // settle the queue task ourselves.
                    settle_orphan(&st, &tid, &lock_by, dispatch_id, result, last_attempt).await;
                }
            });
            running.insert(
                task_id.clone(),
                Running {
                    abort: handle.abort_handle(),
                },
            );
            true
        } else {
            false
        }
    };
    if !registered {
        // The monitor may already count this process as lost: running anything now could
        // run it twice.
        let reason = format!(
            "worker {} could not write its heartbeat when the dispatch reached it",
            state.name
        );
        hand_back(&state, &holder, Some(&task_id), &reason).await;
        // Hold the slot until the heartbeat may be back: returning at once would let this
        // consumer claim the handed-back task again straight away, in a busy loop that
        // writes a warning per turn for as long as the database stays away.
        tokio::time::sleep(POLL_INTERVAL).await;
        return Ok(());
    }
    match done_rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(dispatch = dispatch_id, attempt = attempt.current(), error = %e, "dispatch failed");
            // On the last attempt, say so on the job instead of leaving it running for ever.
            if last_attempt {
                give_up(&state, dispatch_id, &e.to_string()).await;
            }
            Err(e.to_string().into())
        }
        Err(_) => {
            // Stopped (lease lost, or the grace period ran out): hand the task back before
            // apalis settles it, so that it runs again elsewhere and is never marked done.
            let reason = state.stop_reason();
            hand_back(&state, &holder, Some(&task_id), &reason).await;
            Ok(())
        }
    }
}

/// Settles the queue task of a dispatch whose consumer went away while it ran, and gives
/// the dispatch up when that was its last attempt; retried while the database is away.
async fn settle_orphan(
    state: &WorkerState,
    task_id: &str,
    lock_by: &str,
    dispatch_id: i64,
    result: sqlx::Result<()>,
    last_attempt: bool,
) {
    let ok = result.is_ok();
    if let Err(e) = &result {
        tracing::error!(dispatch = dispatch_id, error = %e, "dispatch failed");
        if last_attempt {
            give_up(state, dispatch_id, &e.to_string()).await;
        }
    }
    let mut pause = FIRST_BACKOFF;
    loop {
        match lifecycle::settle_task(&state.pool, task_id, lock_by, ok).await {
            Err(e) if crate::db::is_unavailable(&e) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                tracing::warn!(task = %task_id, error = %e, "could not settle a task whose consumer is gone; the consumer's next start re-queues it");
                return;
            }
            Ok(()) => return,
        }
    }
}

/// Marks a dispatch failed after its last attempt, retrying while the database is away.
async fn give_up(state: &WorkerState, dispatch_id: i64, error: &str) {
    let mut pause = FIRST_BACKOFF;
    loop {
        match lifecycle::give_up(&state.pool, dispatch_id, error).await {
            Err(e) if crate::db::is_unavailable(&e) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                tracing::error!(dispatch = dispatch_id, error = %e, "could not mark the dispatch failed");
                return;
            }
            Ok(()) => return,
        }
    }
}

/// Runs a dispatch, waiting out database outages: the run is resumable (devices with a
/// result are skipped), and the lease stops it if the outage outlasts the heartbeat.
async fn run_until_settled(
    state: &WorkerState,
    dispatch_id: i64,
    lock_by: &str,
) -> sqlx::Result<()> {
    let mut pause = FIRST_BACKOFF;
    let mut waited = false;
    loop {
        match execute::run_dispatch(state, dispatch_id, lock_by).await {
            Err(e) if crate::db::is_unavailable(&e) => {
                if !std::mem::replace(&mut waited, true) {
                    tracing::warn!(dispatch = dispatch_id, error = %e, "database unreachable during a dispatch; resuming it when it is back");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Consumes `queue` until `stop` turns true, restarting the apalis consumer whenever it
/// fails. The queue is in `serving` only while a consumer is running.
async fn consume(
    state: Arc<WorkerState>,
    wakeups: Wakeups,
    queue: String,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
    serving: watch::Sender<BTreeSet<String>>,
) {
    let mut incarnation = 0u32;
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        incarnation += 1;
        let holder = format!("{}:{queue}:{incarnation}", state.name);
        if incarnation > 1 {
            // What the broken consumers of this queue claimed and this process is not
            // running goes back to the queue, for the next consumer (or another worker).
            let earlier = format!("{}:{queue}:", state.name);
            hand_back(
                &state,
                &earlier,
                None,
                &format!(
                    "worker {}'s consumer of {queue} lost its database connection",
                    state.name
                ),
            )
            .await;
        }
        let config = Config::default()
            .queue(&queue)
            .heartbeat_interval(APALIS_HEARTBEAT)
            .missed_heartbeats(APALIS_MISSED_HEARTBEATS)
            .batch_size(concurrency.max(1));
        let backend = PostgresStorage::<DispatchTask>::new(&state.queue_pool)
            .with_config(config)
            .poll_with_stream(wakeups.subscribe(&queue))
            .poll_with_strategy(Strategy::new().interval(POLL_INTERVAL));
        let worker = WorkerBuilder::new(holder)
            .backend(backend)
            .data(state.clone())
            .concurrency(concurrency.max(1))
            .build(handle_dispatch);
        let mut signal_rx = stop.clone();
        let signal = async move {
            let _ = signal_rx.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        };
        let started = Instant::now();
        let run = worker.run_until(signal);
        tokio::pin!(run);
        let result = if failures == 0 {
            serving.send_modify(|s| {
                s.insert(queue.clone());
            });
            tracing::info!(queue = %queue, worker = %state.name, "worker listening");
            run.await
        } else {
            // A restarted consumer counts as serving only once it has polled for a while:
            // one that fails at its first poll must not make the queue flap in and out of
            // the heartbeat.
            tokio::select! {
                result = &mut run => result,
                () = tokio::time::sleep(PROVEN) => {
                    serving.send_modify(|s| {
                        s.insert(queue.clone());
                    });
                    tracing::info!(queue = %queue, attempts = failures + 1, "consumer polling again");
                    run.await
                }
            }
        };
        serving.send_modify(|s| {
            s.remove(&queue);
        });
        if *stop.borrow() {
            if let Err(e) = result {
                tracing::warn!(queue = %queue, error = %e, "consumer stopped with an error");
            }
            return;
        }
        if started.elapsed() > HEALTHY_RUN {
            failures = 0;
        }
        failures += 1;
        let pause = backoff(failures);
        let error = match result {
            Ok(()) => "it stopped by itself".to_string(),
            Err(e) => e.to_string(),
        };
        if failures == 1 {
            tracing::warn!(queue = %queue, error = %error, "consumer stopped; restarting it with backoff (the queue is not reported as served meanwhile)");
        } else {
            tracing::debug!(queue = %queue, error = %error, retry_in = ?pause, "consumer failed again");
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Which queues a worker serves.
#[derive(Debug, Clone)]
pub enum Queues {
    /// These fixed queues.
    Fixed(Vec<String>),
    /// The default queue and every region's queue, including regions created later
    /// (the worker embedded in `webnet serve`).
    All,
}

/// Runs workers for `queues` until `shutdown` resolves, then stops taking work and lets
/// running dispatches finish within `grace`; those still running then are stopped and
/// handed back to their queues (see the module documentation).
pub async fn run(
    state: Arc<WorkerState>,
    queues: Queues,
    concurrency: usize,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (beat_stop_tx, beat_stop_rx) = watch::channel(false);
    let (serving_tx, serving_rx) = watch::channel(BTreeSet::<String>::new());
    // The lease starts with the process: a worker whose first heartbeats fail stops its
    // dispatches like any other (its held tasks are found by the monitor after 30 s).
    *lock(&state.last_beat) = Some(Instant::now());
    // The process's own connection lasts as long as its heartbeat, through the drain.
    let wakeups = Wakeups::spawn(&state.listen, state.heartbeat, beat_stop_rx.clone());
    let beating = tokio::spawn(heartbeat(
        state.clone(),
        serving_rx,
        wakeups.clone(),
        beat_stop_rx,
    ));
    let mut consumers = JoinSet::new();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        let wanted: Vec<String> = match &queues {
            Queues::Fixed(list) => list.clone(),
            Queues::All => {
                let mut all = vec![DEFAULT_QUEUE.to_string()];
                match crate::regions::all_queues(&state.pool).await {
                    Ok(q) => all.extend(q),
                    Err(e) => tracing::debug!(error = %e, "cannot list region queues"),
                }
                all
            }
        };
        for queue in wanted {
            if started.insert(queue.clone()) {
                consumers.spawn(consume(
                    state.clone(),
                    wakeups.clone(),
                    queue,
                    concurrency,
                    stop_rx.clone(),
                    serving_tx.clone(),
                ));
            }
        }
        if matches!(queues, Queues::Fixed(_)) {
            shutdown.as_mut().await;
            break;
        }
        tokio::select! {
            () = shutdown.as_mut() => break,
            _ = refresh.tick() => {}
        }
    }
    tracing::info!(worker = %state.name, "stopping: no new work; finishing running dispatches");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while consumers.join_next().await.is_some() {}
        while state.running_count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    let mut handed_back = true;
    if !drained {
        let reason = format!(
            "worker {} stopped before the dispatch finished (its grace period of {grace:?} ran out)",
            state.name
        );
        let stopped = state.stop_all(reason.clone());
        tracing::warn!(
            dispatches = stopped,
            "dispatches still running after {grace:?}: stopped them and handing them back to their queues"
        );
        tokio::time::sleep(SESSION_CLOSE).await;
        // Their handlers hand them back; whatever is left (consumers mid-restart, tasks
        // claimed but not started) goes back here.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while consumers.join_next().await.is_some() {}
        })
        .await;
        consumers.abort_all();
        let everything = format!("{}:", state.name);
        handed_back = hand_back_within(&state, everything, reason, Duration::from_secs(10)).await;
    }
    let _ = beat_stop_tx.send(true);
    let _ = beating.await;
    if !handed_back {
        // Leave the heartbeat to go stale: the monitor then re-queues what this process held.
        tracing::warn!(
            "could not hand tasks back (database unreachable); the health monitor re-queues them once this worker's heartbeat is stale"
        );
    } else if let Err(e) = fleet::deregister(&state.pool, &state.name).await {
        tracing::warn!(error = %e, "could not remove this worker's heartbeat; the monitor will notice it is gone");
    }
    Ok(())
}
