//! Worker processes: consume regional (and default) queues and run dispatches on devices.
//!
//! Each process start gets a unique identity (apalis recovers a dead worker's tasks only
//! once its heartbeat row goes stale, which never happens if a restart reuses the name).
//! A dispatch's device failures are results, not handler errors: the handler fails only
//! when the database does, and apalis then retries it a few times.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::crypto::SecretBox;
use crate::execute;
use crate::jobs::DispatchTask;
use crate::regions::DEFAULT_QUEUE;

/// How often a worker heartbeats to apalis.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Poll fallback: NOTIFY can be missed (see FACTS), so look every second anyway.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What every dispatch handler of a process shares.
#[derive(Debug)]
pub struct WorkerState {
    /// The pool.
    pub pool: PgPool,
    /// Decrypts device credentials.
    pub secrets: SecretBox,
    /// This process's unique name.
    pub name: String,
    /// Devices of one dispatch handled at once.
    pub device_concurrency: usize,
    /// How often the process tells the health monitor it is alive.
    pub heartbeat: Duration,
    /// Dispatches running now (reported with each heartbeat).
    pub running: AtomicUsize,
}

impl WorkerState {
    /// State with the default device concurrency (16) and heartbeat (2 s).
    pub fn new(pool: PgPool, secrets: SecretBox, name: String) -> Self {
        Self {
            pool,
            secrets,
            name,
            device_concurrency: 16,
            heartbeat: Duration::from_secs(2),
            running: AtomicUsize::new(0),
        }
    }
}

/// Records the process in `worker_heartbeats` and refreshes it every `state.heartbeat`
/// until `stop`; then removes it (a graceful stop is not a lost worker).
async fn heartbeat(
    state: Arc<WorkerState>,
    queues: watch::Receiver<Vec<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let host = hostname();
    let mut tick = tokio::time::interval(state.heartbeat);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let queues = queues.borrow().clone();
        let result = sqlx::query(
            "INSERT INTO worker_heartbeats (name, host, pid, version, queues, heartbeat_ms, running_tasks)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET queues = excluded.queues, running_tasks = excluded.running_tasks,
                 last_seen = now(), heartbeat_ms = excluded.heartbeat_ms",
        )
        .bind(&state.name)
        .bind(&host)
        .bind(std::process::id() as i32)
        .bind(crate::VERSION)
        .bind(&queues)
        .bind(state.heartbeat.as_millis().min(i32::MAX as u128) as i32)
        .bind(state.running.load(Ordering::Relaxed) as i32)
        .execute(&state.pool)
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
    let _ = sqlx::query("DELETE FROM worker_heartbeats WHERE name = $1")
        .bind(&state.name)
        .execute(&state.pool)
        .await;
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

async fn handle_dispatch(
    task: DispatchTask,
    state: Data<Arc<WorkerState>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    state.running.fetch_add(1, Ordering::Relaxed);
    let result = execute::run_dispatch(&state, task.dispatch_id).await;
    state.running.fetch_sub(1, Ordering::Relaxed);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(dispatch = task.dispatch_id, attempt = attempt.current(), error = %e, "dispatch failed");
            // apalis counts attempts from 0; on the last one, say so on the job instead of
            // leaving the dispatch running for ever.
            if attempt.current() + 1 >= crate::jobs::TASK_MAX_ATTEMPTS {
                let _ = execute::give_up(&state, task.dispatch_id, &e.to_string()).await;
            } else {
                // A short pause before apalis retries: the database may be restarting.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e.to_string().into())
        }
    }
}

/// Runs one apalis worker on `queue` until `stop` turns true.
async fn serve_queue(
    state: Arc<WorkerState>,
    queue: String,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) {
    let config = Config::default()
        .queue(&queue)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(3)
        .batch_size(concurrency.max(1));
    let backend = PostgresStorage::<DispatchTask>::new(&state.pool)
        .with_config(config)
        .with_pubsub()
        .poll_with_strategy(Strategy::new().interval(POLL_INTERVAL));
    let worker = WorkerBuilder::new(format!("{}:{queue}", state.name))
        .backend(backend)
        .data(state.clone())
        .concurrency(concurrency.max(1))
        .build(handle_dispatch);
    let signal = async move {
        let _ = stop.wait_for(|s| *s).await;
        Ok::<(), std::io::Error>(())
    };
    tracing::info!(queue = %queue, worker = %state.name, "worker listening");
    if let Err(e) = worker.run_until(signal).await {
        tracing::error!(queue = %queue, error = %e, "worker stopped with an error");
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
/// running dispatches finish (bounded by `grace`; what is left is recovered by apalis).
pub async fn run(
    state: Arc<WorkerState>,
    queues: Queues,
    concurrency: usize,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (queues_tx, queues_rx) = watch::channel(Vec::<String>::new());
    let beating = tokio::spawn(heartbeat(state.clone(), queues_rx, stop_rx.clone()));
    let mut tasks = JoinSet::new();
    let mut serving: BTreeSet<String> = BTreeSet::new();
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        let wanted: Vec<String> = match &queues {
            Queues::Fixed(list) => list.clone(),
            Queues::All => {
                let mut all = vec![DEFAULT_QUEUE.to_string()];
                match region_queues(&state.pool).await {
                    Ok(q) => all.extend(q),
                    Err(e) => tracing::warn!(error = %e, "cannot list region queues"),
                }
                all
            }
        };
        for queue in wanted {
            if serving.insert(queue.clone()) {
                tasks.spawn(serve_queue(
                    state.clone(),
                    queue,
                    concurrency,
                    stop_rx.clone(),
                ));
            }
        }
        let _ = queues_tx.send(serving.iter().cloned().collect());
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
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            "dispatches still running after {grace:?}; leaving them to be recovered by another worker"
        );
        tasks.abort_all();
    }
    let _ = beating.await;
    Ok(())
}

async fn region_queues(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT 'region_' || identifier FROM regions ORDER BY 1")
        .fetch_all(pool)
        .await
}
