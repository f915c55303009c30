//! One owner per running dispatch, with real worker processes: a graceful stop finishes its
//! dispatch and nobody else runs it; a grace period that runs out hands the dispatch over
//! once, in the job log; a worker whose database connections are killed carries on; a
//! consumer that cannot poll is not counted as serving its queue; a worker given up for lost
//! and back again is rescued again when it really dies.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tokio::process::Child;

use crate::failover::{Lab, lab, run_show_version};
use crate::helpers::{
    beating_worker, execute, row_for, scalar, send_sigterm, start_server, start_worker, wait_job,
    wait_until,
};

/// Waits until the job's only dispatch is running and returns its worker.
async fn running_on(lab: &mut Lab, job: i64) -> String {
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || {
            let j = lab.app.job(&lab.admin, job).await;
            let d = &j["dispatches"][0];
            match d["worker"].as_str() {
                Some(worker) if d["status"] == "running" => Ok(worker.to_string()),
                _ => Err(format!("dispatch not running: {j}")),
            }
        },
    )
    .await
}

/// `show version` on the lab's device, with time for a slow device.
async fn show_run(lab: &mut Lab) -> i64 {
    let slow = json!({"targets": {"device_ids": [lab.device]}, "commands": ["show version"], "timeout": 120});
    lab.app
        .start_job(&lab.admin, "/api/v1/commands/run", slow)
        .await
}

/// A server (for the monitor), a worker "first" with `grace` that ran a job's dispatch until
/// it got SIGTERM and stopped, and a second worker on the same queue, started once the first
/// was on the job.
struct Handover {
    server: Child,
    first_name: String,
    second: Child,
    second_name: String,
    job: i64,
    /// How long the first worker took to stop after SIGTERM.
    stopped_after: Duration,
}

impl Handover {
    /// Kills the server and the second worker (the first has stopped by then).
    fn stop_the_others(&mut self) {
        for child in [&mut self.second, &mut self.server] {
            child.start_kill().unwrap();
        }
    }
}

/// A lab whose device takes `command` to answer, and in it a [`Handover`]: the first worker,
/// given `grace`, must stop with exit code 0 within `stops_within` of its SIGTERM.
async fn handover(
    pool: PgPool,
    command: Duration,
    grace: &str,
    stops_within: Duration,
) -> (Lab, Handover) {
    let mut lab = lab(pool, command).await;
    let (server, _, _) = start_server(&lab.url, &["--no-worker"]).await;
    let first_args = [
        "--region",
        "us-east-1",
        "--name",
        "first",
        "--grace-seconds",
        grace,
    ];
    let (mut first, first_name) = start_worker(&lab.url, &first_args).await;
    let job = show_run(&mut lab).await;
    assert_eq!(running_on(&mut lab, job).await, first_name);
    let (second, second_name) =
        start_worker(&lab.url, &["--region", "us-east-1", "--name", "second"]).await;
    let stopping = Instant::now();
    send_sigterm(&first).await;
    let exit = tokio::time::timeout(stops_within, first.wait())
        .await
        .unwrap_or_else(|_| panic!("the first worker did not stop within {stops_within:?}"))
        .unwrap();
    assert!(exit.success(), "the first worker exits 0: {exit:?}");
    let h = Handover {
        server,
        first_name,
        second,
        second_name,
        job,
        stopped_after: stopping.elapsed(),
    };
    (lab, h)
}

#[sqlx::test]
async fn a_graceful_stop_within_the_grace_period_runs_the_dispatch_exactly_once(pool: PgPool) {
    // A 20 s command, a 30 s grace period, another worker on the queue, the monitor running:
    // apalis's own orphan recovery used to hand the dispatch to the other worker after 15 s.
    // The worker stops once its dispatch is done, well within 45 s.
    let (mut lab, mut h) =
        handover(pool, Duration::from_secs(20), "30", Duration::from_secs(45)).await;
    let job = h.job;
    let done = wait_job(&mut lab.app, &lab.admin, job, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["dispatches"][0]["worker"], h.first_name.as_str());
    assert_eq!(lab.router.sessions_total(), 1, "the device saw one session");
    assert_eq!(lab.router.commands_seen(), ["show version"]);
    let log = lab.app.log_messages(&lab.admin, job).await;
    assert!(
        !log.iter().any(|l| l.contains("re-queued")),
        "nobody took the dispatch over: {log:?}"
    );
    h.stop_the_others();
}

#[sqlx::test]
async fn a_grace_period_that_runs_out_hands_the_dispatch_over_once_and_says_so(pool: PgPool) {
    // A 10 s command: a worker that waited for it instead of handing it over would stop
    // well after its 2 s grace period.
    let (mut lab, mut h) =
        handover(pool, Duration::from_secs(10), "2", Duration::from_secs(15)).await;
    assert!(
        h.stopped_after < Duration::from_secs(8),
        "stopped at the end of its grace period, not after the command"
    );

    let done = wait_job(&mut lab.app, &lab.admin, h.job, Duration::from_secs(40)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["dispatches"][0]["worker"], h.second_name.as_str());
    assert_eq!(lab.router.sessions_total(), 2, "one session per owner");
    assert_eq!(
        lab.router.sessions_at_once(),
        1,
        "the device never saw two sessions at the same time"
    );
    let log = lab.app.log_messages(&lab.admin, h.job).await;
    let handed: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("stopped before the dispatch finished"))
        .collect();
    assert_eq!(handed.len(), 1, "{log:?}");
    assert!(
        handed[0].contains(&format!("worker {}", h.first_name))
            && handed[0].contains("re-queued on region_us-east-1"),
        "{handed:?}"
    );
    h.stop_the_others();
}

#[sqlx::test]
async fn a_worker_whose_connections_are_killed_finishes_its_dispatch_and_takes_new_work(
    pool: PgPool,
) {
    let mut lab = lab(pool.clone(), Duration::from_secs(2)).await;
    let (mut worker, name) =
        start_worker(&lab.url, &["--region", "us-east-1", "--name", "killed"]).await;
    let job = show_run(&mut lab).await;
    assert_eq!(running_on(&mut lab, job).await, name);

    let killed: i64 = scalar(
        &pool,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'webnet worker'",
    )
    .await;
    assert!(killed > 0, "the worker had connections to kill");

    // The dispatch runs on, although the consumer that handed it over is gone.
    let done = wait_job(&mut lab.app, &lab.admin, job, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(lab.router.sessions_total(), 1, "run once, not restarted");
    // And the worker takes new work without a restart.
    let next = run_show_version(&mut lab).await;
    let done = wait_job(&mut lab.app, &lab.admin, next, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["dispatches"][0]["worker"], name.as_str());
    assert!(worker.try_wait().unwrap().is_none(), "still running");
    // Nothing is left claimed on the queue.
    let stuck: i64 = scalar(
        &pool,
        "SELECT count(*) FROM apalis.jobs WHERE status IN ('Queued', 'Running')",
    )
    .await;
    assert_eq!(stuck, 0);
    worker.start_kill().unwrap();
}

/// Renames apalis's fetch function, which makes every consumer's poll fail (or work again).
async fn rename_get_jobs(pool: &PgPool, from: &str, to: &str) {
    let sql = format!("ALTER FUNCTION apalis.{from}(text, text, integer) RENAME TO {to}");
    execute(pool, sql).await;
}

#[sqlx::test]
async fn a_queue_whose_consumer_cannot_poll_is_not_reported_as_served(pool: PgPool) {
    let mut lab = lab(pool.clone(), Duration::ZERO).await;
    let (mut server, _, _) = start_server(&lab.url, &["--no-worker"]).await;
    let (mut worker, name) = beating_worker(&lab.url, "blind", &["--region", "us-east-1"]).await;
    lab.wait_health("healthy", Duration::from_secs(15)).await;

    // Polling fails while the heartbeat still works.
    rename_get_jobs(&pool, "get_jobs", "get_jobs_off").await;
    lab.wait_health("offline", Duration::from_secs(10)).await;
    let (fresh, queues): (bool, Vec<String>) = sqlx::query_as(
        "SELECT last_seen > now() - interval '3 seconds', queues FROM worker_heartbeats WHERE name = $1",
    )
    .bind(&name)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(fresh, "the process itself is alive and heartbeating");
    assert!(queues.is_empty(), "but serves no queue: {queues:?}");

    rename_get_jobs(&pool, "get_jobs_off", "get_jobs").await;
    lab.wait_health("healthy", Duration::from_secs(30)).await;
    let job = run_show_version(&mut lab).await;
    let done = wait_job(&mut lab.app, &lab.admin, job, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["dispatches"][0]["worker"], name.as_str());
    for child in [&mut worker, &mut server] {
        child.start_kill().unwrap();
    }
}

#[sqlx::test]
async fn a_worker_back_from_lost_is_rescued_again_when_it_really_dies(pool: PgPool) {
    let mut lab = lab(pool.clone(), Duration::ZERO).await;
    let queues = vec!["region_us-east-1".to_string()];
    let beat = webnet::fleet::Beat {
        name: "w-1-abc",
        host: "test",
        version: "0",
        queues: &queues,
        heartbeat: Duration::from_secs(1),
        running_tasks: 0,
    };
    let lost_at = || async {
        sqlx::query_scalar::<_, Option<time::OffsetDateTime>>(
            "SELECT lost_at FROM worker_heartbeats WHERE name = 'w-1-abc'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let go_stale = || async {
        sqlx::query("UPDATE worker_heartbeats SET last_seen = now() - interval '10 seconds'")
            .execute(&pool)
            .await
            .unwrap();
    };
    let mut conn = pool.acquire().await.unwrap();

    webnet::fleet::beat(&pool, &beat).await.unwrap();
    go_stale().await;
    webnet::health::rescue(&mut conn).await.unwrap();
    assert!(lost_at().await.is_some(), "given up for lost");

    webnet::fleet::beat(&pool, &beat).await.unwrap();
    assert!(lost_at().await.is_none(), "live again after a heartbeat");

    // It claims a job's task, then dies for real.
    let (job, dispatch, task) = held_job(&mut lab, "w-1-abc:region_us-east-1:1").await;
    go_stale().await;
    let default_queue = vec!["default".to_string()];
    let fallback = webnet::fleet::Beat {
        name: "fallback-1-abc",
        queues: &default_queue,
        ..beat
    };
    webnet::fleet::beat(&pool, &fallback).await.unwrap();
    let rescued = webnet::health::rescue(&mut conn).await.unwrap();
    assert_eq!(rescued, 1, "its task is taken from it");
    assert!(lost_at().await.is_some());

    // The dispatch goes out again under a new task, on the default queue (no live worker
    // serves its region's; one serves the default queue), and the old task is over for good.
    let (queue, new_task, status): (String, String, String) = row_for(
        &pool,
        "SELECT d.queue, d.task_id, t.status FROM job_dispatches d
         JOIN apalis.jobs t ON t.id = d.task_id WHERE d.id = $1",
        dispatch,
    )
    .await;
    assert_eq!((queue.as_str(), status.as_str()), ("default", "Pending"));
    assert_ne!(new_task, task);
    let old: String = sqlx::query_scalar("SELECT status FROM apalis.jobs WHERE id = $1")
        .bind(&task)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(old, "Killed");
    let log = lab.app.log_messages(&lab.admin, job).await;
    assert!(
        log.iter()
            .any(|l| l
                == &format!("worker w-1-abc was lost; dispatch {dispatch} re-queued on default")),
        "{log:?}"
    );
}

#[sqlx::test]
async fn without_a_default_queue_worker_rescued_work_waits_on_its_region_and_comes_back_from_default(
    pool: PgPool,
) {
    let mut lab = lab(pool.clone(), Duration::ZERO).await;
    let queues = vec!["region_us-east-1".to_string()];
    let beat = webnet::fleet::Beat {
        name: "w-2-abc",
        host: "test",
        version: "0",
        queues: &queues,
        heartbeat: Duration::from_secs(1),
        running_tasks: 0,
    };
    webnet::fleet::beat(&pool, &beat).await.unwrap();
    let (job, dispatch, _) = held_job(&mut lab, "w-2-abc:region_us-east-1:1").await;
    sqlx::query("UPDATE worker_heartbeats SET last_seen = now() - interval '10 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(webnet::health::rescue(&mut conn).await.unwrap(), 1);
    // Nothing serves the default queue: moving the dispatch there would strand it.
    let queue_of = || async {
        row_for::<(String, String)>(
            &pool,
            "SELECT d.queue, t.job_type FROM job_dispatches d JOIN apalis.jobs t ON t.id = d.task_id
             WHERE d.id = $1",
            dispatch,
        )
        .await
    };
    assert_eq!(
        queue_of().await,
        ("region_us-east-1".into(), "region_us-east-1".into())
    );

    // Moved to the default queue while a default worker lived, which then went away: once the
    // region has a live worker again, the monitor sends it back.
    sqlx::query("UPDATE apalis.jobs SET job_type = 'default' WHERE id = (SELECT task_id FROM job_dispatches WHERE id = $1)")
        .bind(dispatch)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE job_dispatches SET queue = 'default', failed_over_from = 'region_us-east-1' WHERE id = $1",
    )
    .bind(dispatch)
    .execute(&pool)
    .await
    .unwrap();
    let config = webnet::health::MonitorConfig::default();
    webnet::health::pass(&mut conn, &config, &mut Default::default())
        .await
        .unwrap();
    assert_eq!(
        queue_of().await,
        ("default".into(), "default".into()),
        "no live worker on the region yet"
    );
    let back = webnet::fleet::Beat {
        name: "w-3-abc",
        ..beat
    };
    webnet::fleet::beat(&pool, &back).await.unwrap();
    webnet::health::pass(&mut conn, &config, &mut Default::default())
        .await
        .unwrap();
    assert_eq!(
        queue_of().await,
        ("region_us-east-1".into(), "region_us-east-1".into())
    );
    let log = lab.app.log_messages(&lab.admin, job).await;
    assert!(
        log.iter().any(|l| l.contains(&format!(
            "dispatch {dispatch} moved back from the default queue to region_us-east-1"
        ))),
        "{log:?}"
    );
}

/// A new job whose one task apalis consumer `consumer` (of region_us-east-1) holds as
/// running, as a worker that then dies would: the job, its dispatch and the task.
async fn held_job(lab: &mut Lab, consumer: &str) -> (i64, i64, String) {
    let job = run_show_version(lab).await;
    let pool = &lab.app.pool;
    let (dispatch, task): (i64, String) = row_for(
        pool,
        "SELECT id, task_id FROM job_dispatches WHERE job_id = $1",
        job,
    )
    .await;
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ($1, 'region_us-east-1', 'PgStorage', '', now())",
    )
    .bind(consumer)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Running', lock_by = $2, lock_at = now() WHERE id = $1",
    )
    .bind(&task)
    .bind(consumer)
    .execute(pool)
    .await
    .unwrap();
    (job, dispatch, task)
}
