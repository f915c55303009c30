//! Health from heartbeats and failover, with real processes: `serve --no-worker` (which runs
//! the health monitor), a regional worker, a default-queue worker, SSH stand-ins.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::process::Child;
use webnet::auth::Role;
use webnet::crypto::SecretBox;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{
    ApiUser, SECRET_KEY, TestApp, beating_worker, database_url, health, kill9, scalar, sigterm,
    start_server, wait_health, wait_job, wait_until,
};

const INTERVAL: u64 = 3;

/// One region "US East" (`us-east-1`), one device in it behind a stand-in router, an
/// admin; the database migrated for real processes at `url`.
pub(crate) struct Lab {
    pub(crate) app: TestApp,
    pub(crate) admin: ApiUser,
    pub(crate) region: i64,
    pub(crate) device: i64,
    pub(crate) router: FakeDevice,
    pub(crate) url: String,
}

pub(crate) async fn lab(pool: PgPool, delay: Duration) -> Lab {
    let url = database_url(&pool);
    let mut app =
        TestApp::with_state(pool.clone(), SecretBox::from_secret(SECRET_KEY).unwrap()).await;
    let admin = app.api_user("ops", Role::Admin, "acme").await;
    let east = json!({"name": "US East", "identifier": "us-east-1", "health_check_interval_seconds": INTERVAL});
    let region = app.region_with(&admin, east).await;
    let cred = app.credential(&admin, "netops", "s3cret").await;
    let mut config = FakeDeviceConfig::new("netops", "s3cret").respond("show version", "IOS 15.2");
    config.delay = delay;
    let router = FakeDevice::start(config).await;
    let edge = json!({"hostname": "edge-1", "mgmt_ip": "127.0.0.1", "port": router.addr.port(), "credential": cred, "region": region});
    let device = app.device(&admin, edge).await;
    Lab {
        app,
        admin,
        region,
        device,
        router,
        url,
    }
}

impl Lab {
    /// Polls until the region has `status`; returns how long it took.
    pub(crate) async fn wait_health(&mut self, status: &str, limit: Duration) -> Duration {
        wait_health(&mut self.app, &self.admin, self.region, status, limit).await
    }
}

pub(crate) async fn run_show_version(lab: &mut Lab) -> i64 {
    lab.app
        .run_commands(&lab.admin, lab.device, &["show version"])
        .await
}

/// The region's worker ("east") and a default-queue worker ("fallback"), both beating
/// every second, each with the name it runs under.
async fn east_and_fallback(lab: &Lab) -> ((Child, String), (Child, String)) {
    let east = beating_worker(&lab.url, "east", &["--region", "us-east-1"]).await;
    let fallback = beating_worker(&lab.url, "fallback", &["--default-queue"]).await;
    (east, fallback)
}

#[sqlx::test]
async fn a_dead_region_fails_over_to_the_default_queue_and_comes_back(pool: PgPool) {
    let mut lab = lab(pool.clone(), Duration::ZERO).await;
    let (mut server, _, _) = start_server(&lab.url, &["--no-worker"]).await;
    let ((mut regional, _), (mut fallback, fallback_name)) = east_and_fallback(&lab).await;

    // Healthy while its worker lives, as evaluated by the monitor.
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || match health(&mut lab.app, &lab.admin, lab.region).await {
            (status, message) if status == "healthy" && message.contains("live worker") => Ok(()),
            (status, message) => Err(format!("not evaluated: {status} {message}")),
        },
    )
    .await;

    kill9(&mut regional).await;
    // Ten jobs right after the kill: routed to the region, which still looks healthy.
    let mut stranded = Vec::new();
    for _ in 0..10 {
        stranded.push(run_show_version(&mut lab).await);
    }
    let took = lab
        .wait_health("offline", Duration::from_secs(2 * INTERVAL))
        .await;
    println!("offline {took:?} after SIGKILL");
    for id in &stranded {
        let job = wait_job(&mut lab.app, &lab.admin, *id, Duration::from_secs(20)).await;
        assert_eq!(job["status"], "success", "{job}");
        let d = &job["dispatches"][0];
        assert_eq!(d["worker"], fallback_name.as_str());
        assert_eq!(d["queue"], "default");
        assert_eq!(d["failed_over_from"], "region_us-east-1");
    }
    let log = lab.app.job_log(&lab.admin, stranded[0]).await;
    assert!(
        log.contains("moved from region_us-east-1 to the default queue"),
        "{log}"
    );

    // While offline, new jobs go straight to the default queue.
    let id = run_show_version(&mut lab).await;
    let job = wait_job(&mut lab.app, &lab.admin, id, Duration::from_secs(20)).await;
    assert_eq!(job["dispatches"][0]["queue"], "default");
    assert_eq!(job["dispatches"][0]["failed_over_from"], Value::Null);
    assert_eq!(job["region"], Value::Null);

    // A new regional worker brings the region back, and jobs route to it again.
    let (mut again, again_name) =
        beating_worker(&lab.url, "east", &["--region", "us-east-1"]).await;
    lab.wait_health("healthy", Duration::from_secs(2 * INTERVAL + 2))
        .await;
    let id = run_show_version(&mut lab).await;
    let job = wait_job(&mut lab.app, &lab.admin, id, Duration::from_secs(20)).await;
    assert_eq!(job["dispatches"][0]["queue"], "region_us-east-1");
    assert_eq!(job["dispatches"][0]["worker"], again_name.as_str());
    assert_eq!(job["status"], "success");

    // The history says what happened.
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT from_status, to_status FROM region_health_events WHERE region_id = $1 ORDER BY id",
    )
    .bind(lab.region)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        events.contains(&("healthy".into(), "offline".into())),
        "{events:?}"
    );
    assert!(
        events.contains(&("offline".into(), "healthy".into())),
        "{events:?}"
    );
    assert_eq!(lab.router.commands_seen().len(), 12);
    for child in [&mut again, &mut fallback, &mut server] {
        kill9(child).await;
    }
}

#[sqlx::test]
async fn a_job_on_a_killed_worker_runs_again_elsewhere_and_finishes(pool: PgPool) {
    let mut lab = lab(pool.clone(), Duration::from_secs(2)).await;
    let (mut server, _, _) = start_server(&lab.url, &["--no-worker"]).await;
    let ((mut regional, regional_name), (mut fallback, fallback_name)) =
        east_and_fallback(&lab).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = run_show_version(&mut lab).await;
    // Kill the regional worker in the middle of the command.
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            if lab.router.commands_seen().is_empty() {
                Err("the command never started".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    kill9(&mut regional).await;
    let job = wait_job(&mut lab.app, &lab.admin, id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["dispatches"][0]["worker"], fallback_name.as_str());
    let log = lab.app.job_log(&lab.admin, id).await;
    assert!(
        log.contains(&format!("worker {regional_name} was lost")),
        "{log}"
    );
    assert_eq!(
        lab.router.commands_seen(),
        ["show version", "show version"],
        "ran again elsewhere"
    );
    for child in [&mut fallback, &mut server] {
        kill9(child).await;
    }
}

async fn monitors_holding_the_lock(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(webnet::health::LOCK_KEY)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn two_monitors_never_act_at_once_and_a_standby_takes_over(pool: PgPool) {
    webnet::db::migrate(&pool).await.unwrap();
    let url = database_url(&pool);
    let (mut first, _, _) = start_server(&url, &["--no-worker"]).await;
    let (mut second, _, _) = start_server(&url, &["--no-worker"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..10 {
        assert_eq!(monitors_holding_the_lock(&pool).await, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill9(&mut first).await;
    let started = Instant::now();
    loop {
        // The first server's lock goes with its connection; the standby takes it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = monitors_holding_the_lock(&pool).await;
        assert!(n <= 1);
        if n == 1 && started.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no monitor took over"
        );
    }
    kill9(&mut second).await;
}

#[sqlx::test]
async fn the_monitor_also_runs_on_its_own(pool: PgPool) {
    webnet::db::migrate(&pool).await.unwrap();
    let url = database_url(&pool);
    let mut monitor = crate::helpers::webnet(&url)
        .arg("monitor")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || match monitors_holding_the_lock(&pool).await {
            0 => Err("the monitor never took the lock".to_string()),
            _ => Ok(()),
        },
    )
    .await;
    let status = sigterm(&mut monitor, Duration::from_secs(10)).await;
    assert!(status.success());
}

#[sqlx::test]
async fn a_manual_status_set_during_a_monitor_pass_is_not_overwritten(pool: PgPool) {
    use webnet::auth::Scope;
    use webnet::types::HealthStatus;

    let (mut app, admin, region) = TestApp::with_region(pool.clone()).await;
    // Due for evaluation, and without a worker: the monitor would make it offline.
    sqlx::query(
        "UPDATE regions SET health_status = 'healthy',
                last_health_check = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(region)
    .execute(&pool)
    .await
    .unwrap();

    // An operator's change, not committed yet, holds the row…
    let mut manual = pool.begin().await.unwrap();
    webnet::regions::set_health(
        &mut manual,
        &Scope::all(),
        region,
        HealthStatus::Degraded,
        "maintenance",
    )
    .await
    .unwrap();
    // …while a monitor pass reads the old state and waits for the row.
    let monitor = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let config = webnet::health::MonitorConfig::default();
            webnet::health::pass(&mut conn, &config, &mut Default::default())
                .await
                .unwrap();
        }
    });
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || match scalar::<i64>(&pool, waiting).await {
            0 => Err("the monitor never reached the locked row".to_string()),
            _ => Ok(()),
        },
    )
    .await;
    manual.commit().await.unwrap();
    monitor.await.unwrap();

    let (status, message) = health(&mut app, &admin, region).await;
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("degraded", "maintenance"),
        "the monitor overwrote a manual status from a stale read"
    );
}
