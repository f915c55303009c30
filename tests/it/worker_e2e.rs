//! Workers running real dispatches: TCP reachability, SSH commands and backups against
//! stand-in devices (real SSH servers on 127.0.0.1), fan-out to regional workers,
//! trust-on-first-use host keys, cancellation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::watch;
use webnet::auth::Role;
use webnet::crypto::SecretBox;
use webnet::worker::{Queues, WorkerState};

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{ApiUser, TestApp, dispatches, scalar_for, wait_job};

/// An in-process worker on `queues`, stopped when the returned sender is dropped or set.
fn start_worker(
    pool: &PgPool,
    secrets: &SecretBox,
    name: &str,
    queues: &[&str],
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = watch::channel(false);
    let state = Arc::new({
        let mut s = WorkerState::new(pool.clone(), secrets.clone(), name.to_string());
        s.device_concurrency = 8;
        s
    });
    let queues = Queues::Fixed(queues.iter().map(|q| q.to_string()).collect());
    let handle = tokio::spawn(async move {
        webnet::worker::run(
            state,
            queues,
            4,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    });
    (tx, handle)
}

struct Setup {
    app: TestApp,
    admin: ApiUser,
    secrets: SecretBox,
}

async fn setup(pool: PgPool) -> Setup {
    let secrets = SecretBox::random();
    let app = TestApp::with_state(pool, secrets.clone()).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    Setup {
        app,
        admin,
        secrets,
    }
}

async fn results(app: &mut TestApp, user: &ApiUser, id: i64) -> Vec<Value> {
    app.list(user, &format!("/api/v1/jobs/{id}/results/")).await
}

/// The job's log, a line `[host] message` per entry.
async fn log_text(app: &mut TestApp, user: &ApiUser, id: i64) -> String {
    let lines = app.list(user, &format!("/api/v1/jobs/{id}/logs/")).await;
    lines
        .iter()
        .map(|l| {
            format!(
                "[{}] {}",
                l["host"].as_str().unwrap(),
                l["message"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[sqlx::test]
async fn a_job_across_two_regions_runs_on_each_regions_worker(pool: PgPool) {
    let mut s = setup(pool.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = listener.local_addr().unwrap().port();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let east = s.app.region(&s.admin, "US East", "us-east-1").await;
    let west = s.app.region(&s.admin, "US West", "us-west-2").await;
    let mut device = async |hostname, port, region| {
        let body =
            json!({"hostname": hostname, "mgmt_ip": "127.0.0.1", "port": port, "region": region});
        s.app.device(&s.admin, body).await
    };
    let e1 = device("e1", open_port, east).await;
    let w1 = device("w1", closed_port, west).await;
    let (stop_east, h1) = start_worker(&pool, &s.secrets, "east-worker", &["region_us-east-1"]);
    let (stop_west, h2) = start_worker(&pool, &s.secrets, "west-worker", &["region_us-west-2"]);

    let check = json!({"type": "check_reachability", "target_summary": {"device_ids": [e1, w1]}, "payload": {"timeout": 2}});
    let id = s.app.create_id(&s.admin, "/api/v1/jobs/", check).await;
    let job = wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "partial", "{job}");
    let mut workers = dispatches(&job);
    workers.sort();
    let ran_on = |queue: &str, worker: &str| (queue.to_string(), worker.to_string());
    assert_eq!(
        workers,
        [
            ran_on("region_us-east-1", "east-worker"),
            ran_on("region_us-west-2", "west-worker")
        ]
    );
    assert_eq!(
        job["result_summary"],
        json!({"devices": 2, "succeeded": 1, "failed": 1, "cancelled": 0})
    );
    let r = results(&mut s.app, &s.admin, id).await;
    let e1_result = r.iter().find(|r| r["hostname"] == "e1").unwrap();
    assert_eq!(e1_result["status"], "success");
    assert!(e1_result["detail"]["latency_ms"].as_f64().is_some());
    let d = s
        .app
        .get_json(&s.admin, &format!("/api/v1/devices/{w1}/"))
        .await
        .json();
    assert_eq!(d["reachability_status"], "unreachable");
    assert!(d["last_reachability_check"].is_string());
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    stop_east.send(true).unwrap();
    stop_west.send(true).unwrap();
    h1.await.unwrap();
    h2.await.unwrap();
    drop(listener);
}

async fn ssh_device(s: &mut Setup, device: &FakeDevice, hostname: &str) -> i64 {
    let cred = s.app.credential(&s.admin, "netops", "s3cret").await;
    let body = json!({"hostname": hostname, "mgmt_ip": "127.0.0.1", "port": device.addr.port(), "credential": cred, "vendor": "cisco", "platform": "ios"});
    s.app.device(&s.admin, body).await
}

/// A stand-in router answering `show version`, registered as device "r1".
async fn router_r1(s: &mut Setup) -> (FakeDevice, i64) {
    let fake = FakeDevice::start(
        FakeDeviceConfig::new("netops", "s3cret")
            .respond("show version", "Cisco IOS Software, Version 15.2"),
    )
    .await;
    let device = ssh_device(s, &fake, "r1").await;
    (fake, device)
}

#[sqlx::test]
async fn commands_run_over_ssh_and_the_host_key_is_trusted_on_first_use(pool: PgPool) {
    let mut s = setup(pool.clone()).await;
    let (fake, device) = router_r1(&mut s).await;
    let (stop, handle) = start_worker(&pool, &s.secrets, "default-worker", &["default"]);

    let by_name =
        json!({"targets": {"hostname": "R1"}, "commands": ["show version", "show nonsense"]});
    let id = s
        .app
        .start_job(&s.admin, "/api/v1/commands/run", by_name)
        .await;
    let job = wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await;
    // The second command is unknown to the device (exit status 1): the device failed.
    assert_eq!(job["status"], "failed", "{job}");
    let log = log_text(&mut s.app, &s.admin, id).await;
    assert!(
        log.contains("[r1] $ show version\nCisco IOS Software, Version 15.2"),
        "{log}"
    );
    assert!(log.contains("trusting host key SHA256:"), "{log}");
    assert_eq!(fake.commands_seen(), ["show version", "show nonsense"]);
    assert_eq!(
        host_key(&pool, device).await,
        Some(fake.host_key_fingerprint.clone())
    );

    let ok = s
        .app
        .run_commands(&s.admin, device, &["show version"])
        .await;
    let job = wait_job(&mut s.app, &s.admin, ok, Duration::from_secs(20)).await;
    assert_eq!(
        job["status"],
        "success",
        "{}",
        log_text(&mut s.app, &s.admin, ok).await
    );
    let res = results(&mut s.app, &s.admin, ok).await;
    assert_eq!(
        res[0]["detail"]["commands"][0]["output"],
        "Cisco IOS Software, Version 15.2"
    );
    stop.send(true).unwrap();
    handle.await.unwrap();
}

#[sqlx::test]
async fn a_changed_host_key_fails_the_device_until_an_admin_accepts_it(pool: PgPool) {
    let mut s = setup(pool.clone()).await;
    let first =
        FakeDevice::start(FakeDeviceConfig::new("netops", "s3cret").respond("show clock", "12:00"))
            .await;
    let device = ssh_device(&mut s, &first, "r1").await;
    let (stop, handle) = start_worker(&pool, &s.secrets, "w", &["default"]);
    let id = run_show_clock(&mut s, device).await;
    assert_eq!(
        wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await["status"],
        "success"
    );

    // Same address, new host key (a replaced router, or a man in the middle).
    let port = first.addr.port();
    first.stop().await;
    let second = FakeDevice::start_on(
        port,
        FakeDeviceConfig::new("netops", "s3cret").respond("show clock", "12:01"),
        None,
    )
    .await;
    assert_ne!(
        second.host_key_fingerprint,
        host_key(&pool, device)
            .await
            .expect("the first key was trusted")
    );
    let id = run_show_clock(&mut s, device).await;
    let job = wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed");
    let log = log_text(&mut s.app, &s.admin, id).await;
    assert!(log.contains("host key changed"), "{log}");
    assert!(
        second.commands_seen().is_empty(),
        "no command was sent to the impostor"
    );

    let r = s
        .app
        .post_json(
            &s.admin,
            &format!("/api/v1/devices/{device}/accept_host_key/"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.json()["ssh_host_key"],
        second.host_key_fingerprint.as_str()
    );
    let id = run_show_clock(&mut s, device).await;
    assert_eq!(
        wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await["status"],
        "success"
    );
    assert_eq!(second.commands_seen(), ["show clock"]);
    stop.send(true).unwrap();
    handle.await.unwrap();
}

async fn run_show_clock(s: &mut Setup, device: i64) -> i64 {
    s.app.run_commands(&s.admin, device, &["show clock"]).await
}

/// The host key webnet trusts for the device, if any yet.
async fn host_key(pool: &PgPool, device: i64) -> Option<String> {
    scalar_for(
        pool,
        "SELECT ssh_host_key FROM devices WHERE id = $1",
        device,
    )
    .await
}

#[sqlx::test]
async fn backups_store_a_snapshot_only_when_the_configuration_changed(pool: PgPool) {
    let mut s = setup(pool.clone()).await;
    let fake = FakeDevice::start(FakeDeviceConfig::new("netops", "s3cret").respond(
        "show running-config",
        "hostname r1\ninterface Gi0/1\n shutdown",
    ))
    .await;
    let device = ssh_device(&mut s, &fake, "r1").await;
    let (stop, handle) = start_worker(&pool, &s.secrets, "w", &["default"]);
    for _ in 0..2 {
        let targets = json!({"targets": {"device_ids": [device]}});
        let id = s
            .app
            .start_job(&s.admin, "/api/v1/config/backup", targets)
            .await;
        assert_eq!(
            wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await["status"],
            "success"
        );
    }
    let snapshots = s
        .app
        .get_json(&s.admin, &format!("/api/v1/devices/{device}/snapshots/"))
        .await
        .json();
    assert_eq!(
        snapshots["count"], 1,
        "unchanged configuration, one snapshot"
    );
    let snap = &snapshots["results"][0];
    assert_eq!(
        snap["config_text"],
        "hostname r1\ninterface Gi0/1\n shutdown"
    );
    let one = s
        .app
        .get_json(
            &s.admin,
            &format!("/api/v1/devices/{device}/snapshots/{}/", snap["id"]),
        )
        .await;
    assert_eq!(one.json()["config_hash"], snap["config_hash"]);
    assert_eq!(
        fake.commands_seen(),
        ["show running-config", "show running-config"]
    );
    stop.send(true).unwrap();
    handle.await.unwrap();
}

#[sqlx::test]
async fn cancelling_a_running_job_stops_it_at_the_next_command(pool: PgPool) {
    let mut s = setup(pool.clone()).await;
    let mut config = FakeDeviceConfig::new("netops", "s3cret")
        .respond("one", "1")
        .respond("two", "2")
        .respond("three", "3");
    config.delay = Duration::from_millis(700);
    let fake = FakeDevice::start(config).await;
    let device = ssh_device(&mut s, &fake, "slow").await;
    let (stop, handle) = start_worker(&pool, &s.secrets, "w", &["default"]);
    let id = s
        .app
        .run_commands(&s.admin, device, &["one", "two", "three"])
        .await;
    // Wait until the first command is running, then cancel.
    for _ in 0..100 {
        if !fake.commands_seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s
        .app
        .post_json(&s.admin, &format!("/api/v1/jobs/{id}/cancel/"), json!({}))
        .await;
    assert_eq!(r.json()["status"], "cancelled");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let job = s.app.job(&s.admin, id).await;
    assert_eq!(job["status"], "cancelled");
    assert!(fake.commands_seen().len() < 3, "{:?}", fake.commands_seen());
    let log = log_text(&mut s.app, &s.admin, id).await;
    assert!(log.contains("remaining commands skipped"), "{log}");
    stop.send(true).unwrap();
    handle.await.unwrap();
}

#[sqlx::test]
async fn a_finished_jobs_page_shows_its_request_each_devices_output_and_downloads_and_the_device_lists_it(
    pool: PgPool,
) {
    let mut s = setup(pool.clone()).await;
    let (_router, device) = router_r1(&mut s).await;
    let (stop, handle) = start_worker(&pool, &s.secrets, "default-worker", &["default"]);
    let body = json!({"targets": {"hostname": "r1"}, "commands": ["show version", "show nonsense"], "timeout": 7});
    let id = s
        .app
        .start_job(&s.admin, "/api/v1/commands/run", body)
        .await;
    let job = wait_job(&mut s.app, &s.admin, id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "{job}");

    s.app.create_user("alice", Role::Viewer, &["acme"]).await;
    let r = s.app.login("alice", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, axum::http::StatusCode::SEE_OTHER, "{}", r.body);
    let page = s.app.get(&format!("/jobs/{id}")).await;
    assert_eq!(
        page.texts("[data-testid=job-commands]"),
        ["show version\nshow nonsense"]
    );
    assert!(
        page.texts("[data-testid=job-request] dd")
            .iter()
            .any(|t| t == "7 s per device")
    );
    assert!(
        page.texts("[data-testid=job-request] dd")
            .iter()
            .any(|t| t.contains("hostname: r1"))
    );
    let output = page.texts("[data-testid=device-output] pre");
    assert_eq!(output[0], "Cisco IOS Software, Version 15.2");
    assert_eq!(output.len(), 2, "both commands' output: {output:?}");

    let log = s.app.get(&format!("/jobs/{id}/log.txt")).await;
    assert_eq!(
        log.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        log.header("content-disposition")
            .is_some_and(|d| d.contains(&format!("job-{id}-log.txt"))),
        "{:?}",
        log.header("content-disposition")
    );
    assert!(
        log.body
            .contains(" UTC info    r1: $ show version\n    Cisco IOS Software"),
        "{}",
        log.body
    );
    let results = s.app.get(&format!("/jobs/{id}/results.json")).await;
    let results = results.json();
    assert_eq!(results["count"], 1);
    assert_eq!(
        results["results"][0]["detail"]["commands"][0]["output"],
        "Cisco IOS Software, Version 15.2"
    );
    let api_log = s
        .app
        .get_json(&s.admin, &format!("/api/v1/jobs/{id}/logs/download/"))
        .await;
    assert_eq!(api_log.body, log.body);

    let device_page = s.app.get(&format!("/devices/{device}")).await;
    let history = device_page.texts("[data-testid=device-history] tbody td");
    assert_eq!(history[0], format!("#{id}"));
    assert_eq!(history[2], "failed");
    stop.send(true).unwrap();
    handle.await.unwrap();
}
