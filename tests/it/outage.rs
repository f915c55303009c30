//! Database restarts under load, with real processes on a private PostgreSQL server that the
//! test stops and starts: no job whose creation was accepted is lost, no worker needs a
//! restart, and while the database is away the API answers 503 promptly.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::process::Child;
use tokio::sync::watch;
use webnet::auth::Role;
use webnet::crypto::SecretBox;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{ApiUser, SECRET_KEY, TestApp, http, start_server, start_worker, wait_health};
use crate::private_pg::PrivatePg;

/// What one job-creation request got.
#[derive(Debug)]
struct Attempt {
    status: u16,
    took: Duration,
    retry_after: Option<String>,
    job: Option<i64>,
}

/// A server on a private PostgreSQL, a customer with two regions and a device in each and
/// one without a region (the default queue), all behind one stand-in router that takes
/// 300 ms per command.
struct Site {
    pg: PrivatePg,
    url: String,
    server: Child,
    port: u16,
    app: TestApp,
    admin: ApiUser,
    devices: Vec<i64>,
    regions: Vec<i64>,
    _router: FakeDevice,
}

async fn site(serve_args: &[&str]) -> Site {
    let pg = PrivatePg::start();
    let url = pg.url("webnet");
    let (server, _, port) = start_server(&url, serve_args).await;
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&url)
        .await
        .unwrap();
    let mut app = TestApp::with_state(pool, SecretBox::from_secret(SECRET_KEY).unwrap()).await;
    let admin = app.api_user("ops", Role::Admin, "acme").await;
    let mut regions = Vec::new();
    for (name, identifier) in [("US East", "us-east-1"), ("US West", "us-west-1")] {
        // Evaluated every 2 s, so that health follows the recovery closely.
        let body =
            json!({"name": name, "identifier": identifier, "health_check_interval_seconds": 2});
        regions.push(app.region_with(&admin, body).await);
    }
    let cred = app.credential(&admin, "netops", "s3cret").await;
    let mut config = FakeDeviceConfig::new("netops", "s3cret").respond("show version", "IOS 15.2");
    config.delay = Duration::from_millis(300);
    let router = FakeDevice::start(config).await;
    let mut devices = Vec::new();
    for (hostname, region) in [
        ("edge-east", Some(regions[0])),
        ("edge-west", Some(regions[1])),
        ("edge-lab", None),
    ] {
        let body = json!({"hostname": hostname, "mgmt_ip": "127.0.0.1", "port": router.addr.port(), "credential": cred, "region": region});
        devices.push(app.device(&admin, body).await);
    }
    Site {
        pg,
        url,
        server,
        port,
        app,
        admin,
        devices,
        regions,
        _router: router,
    }
}

/// Requests that run until told to stop, and what each of them got.
struct Load {
    stop: watch::Sender<bool>,
    attempts: tokio::task::JoinHandle<Vec<Attempt>>,
}

/// Starts a [`load`] and lets it run for 3 s before anything happens to the database.
async fn start_load(site: &Site) -> Load {
    let (stop, stopped) = watch::channel(false);
    let attempts = load(site, stopped);
    tokio::time::sleep(Duration::from_secs(3)).await;
    Load { stop, attempts }
}

/// Lets the load run 3 s more with the database back, stops it, and asserts that nothing
/// it got accepted was lost.
async fn finish_load(site: &mut Site, load: Load) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = load.stop.send(true);
    let attempts = load.attempts.await.unwrap();
    assert_nothing_lost(site, &attempts, Duration::from_secs(60)).await;
}

/// Stops the database for `down`, asserting the prompt 503s `check_after` into it.
async fn stopped_for(site: &Site, check_after: Duration, down: Duration) {
    site.pg.stop();
    tokio::time::sleep(check_after).await;
    assert_prompt_503(site).await;
    tokio::time::sleep(down - check_after).await;
    site.pg.start_again();
}

/// Creates a job on every device every 100 ms through the real socket until `stop`.
fn load(site: &Site, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<Vec<Attempt>> {
    let (port, token) = (site.port, site.admin.token.clone());
    let body = json!({"targets": {"device_ids": site.devices}, "commands": ["show version"]});
    tokio::spawn(async move {
        let mut attempts = Vec::new();
        while !*stop.borrow() {
            let started = Instant::now();
            let reply = http(
                port,
                "POST",
                "/api/v1/commands/run",
                Some(&token),
                Some(&body),
            )
            .await
            .expect("the server keeps answering");
            let job = (reply.status == 202).then(|| {
                serde_json::from_str::<serde_json::Value>(&reply.body).unwrap()["job_id"]
                    .as_i64()
                    .unwrap()
            });
            attempts.push(Attempt {
                status: reply.status,
                took: started.elapsed(),
                retry_after: reply.header("retry-after").map(str::to_owned),
                job,
            });
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
        }
        attempts
    })
}

/// While the database is stopped: the API and the readiness probe answer 503 within 2 s.
async fn assert_prompt_503(site: &Site) {
    for path in ["/readyz", "/api/v1/regions/"] {
        let started = Instant::now();
        let reply = http(site.port, "GET", path, Some(&site.admin.token), None)
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(reply.status, 503, "{path} during the outage: {reply:?}");
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
        assert!(reply.header("retry-after").is_some(), "{reply:?}");
    }
}

/// Every accepted job ends, successfully, within `limit`; every refusal was a prompt 503.
async fn assert_nothing_lost(site: &mut Site, attempts: &[Attempt], limit: Duration) {
    let accepted: Vec<i64> = attempts.iter().filter_map(|a| a.job).collect();
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 202).collect();
    assert!(accepted.len() > 20, "load ran: {} accepted", accepted.len());
    assert!(!refused.is_empty(), "some requests met the outage");
    for a in &refused {
        assert_eq!(a.status, 503, "refused with 503, never 500: {a:?}");
        assert!(a.took < Duration::from_secs(2), "refused promptly: {a:?}");
        assert!(a.retry_after.is_some(), "says when to retry: {a:?}");
    }
    let started = Instant::now();
    for id in accepted {
        let job = loop {
            let job = site.app.job(&site.admin, id).await;
            if !["queued", "running", "scheduled"].contains(&job["status"].as_str().unwrap()) {
                break job;
            }
            if started.elapsed() > limit {
                let tasks: Vec<(String, String, String, Option<String>, i32)> = sqlx::query_as(
                    "SELECT t.id, t.job_type, t.status, t.lock_by, t.attempts FROM apalis.jobs t
                     JOIN job_dispatches d ON d.task_id = t.id WHERE d.job_id = $1",
                )
                .bind(id)
                .fetch_all(&site.app.pool)
                .await
                .unwrap();
                let log = site.app.job_log(&site.admin, id).await;
                panic!(
                    "job {id} still {} {limit:?} after the database returned: {job}\ntasks: {tasks:?}\nlog: {log}",
                    job["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(job["status"], "success", "{job}");
    }
    let slowest = refused.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "outage: {} jobs accepted, {} requests refused with 503 (slowest refusal {slowest:?}); \
         all accepted jobs succeeded {:?} after the database returned",
        attempts.len() - refused.len(),
        refused.len(),
        started.elapsed()
    );
}

fn assert_running(children: &mut [&mut Child]) {
    for child in children {
        assert!(
            child.try_wait().unwrap().is_none(),
            "process still running, no restart needed"
        );
    }
}

async fn wait_healthy(site: &mut Site, limit: Duration) {
    for region in site.regions.clone() {
        wait_health(&mut site.app, &site.admin, region, "healthy", limit).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regional_workers_survive_database_restarts_of_5_and_60_seconds_under_load() {
    let mut site = site(&["--no-worker"]).await;
    let mut workers = Vec::new();
    for name in ["one", "two"] {
        let (child, _) = start_worker(
            &site.url,
            &[
                "--region",
                "us-east-1",
                "--region",
                "us-west-1",
                "--default-queue",
                "--name",
                name,
            ],
        )
        .await;
        workers.push(child);
    }
    wait_healthy(&mut site, Duration::from_secs(15)).await;

    let load = start_load(&site).await;
    site.pg.outage(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stopped_for(&site, Duration::from_secs(3), Duration::from_secs(60)).await;
    finish_load(&mut site, load).await;

    wait_healthy(&mut site, Duration::from_secs(15)).await;
    let [one, two] = &mut workers[..] else {
        unreachable!()
    };
    assert_running(&mut [one, two, &mut site.server]);
    let log = site.pg.log();
    assert!(log.contains("shutting down"), "the server really restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_embedded_in_serve_survives_a_database_restart_under_load() {
    let mut site = site(&[]).await;
    wait_healthy(&mut site, Duration::from_secs(15)).await;

    let load = start_load(&site).await;
    stopped_for(&site, Duration::from_secs(2), Duration::from_secs(5)).await;
    finish_load(&mut site, load).await;
    assert_running(&mut [&mut site.server]);
}
