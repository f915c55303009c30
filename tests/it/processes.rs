//! Real processes, as deployed: `webnet serve --no-worker`, one `webnet worker` per region
//! and one on the default queue, sharing only PostgreSQL; stand-in routers are real SSH
//! servers on 127.0.0.1.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;
use webnet::crypto::SecretBox;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{
    SECRET_KEY, TestApp, database_url, dispatches, http_get, sigterm, spawn_reading, start_server,
    start_worker, wait_job, webnet,
};

#[sqlx::test]
async fn regional_workers_in_separate_processes_run_their_regions_dispatches(pool: PgPool) {
    webnet::db::migrate(&pool).await.unwrap();
    let url = database_url(&pool);
    let (mut server, _, port) = start_server(&url, &["--no-worker"]).await;
    let (mut east, east_name) =
        start_worker(&url, &["--region", "us-east-1", "--name", "east"]).await;
    let (mut west, west_name) =
        start_worker(&url, &["--region", "eu-west-1", "--name", "west"]).await;
    let (mut fallback, fallback_name) =
        start_worker(&url, &["--default-queue", "--name", "fallback"]).await;
    assert!(
        east_name.starts_with("east-") && east_name != "east",
        "unique per start: {east_name}"
    );

    let mut app =
        TestApp::with_state(pool.clone(), SecretBox::from_secret(SECRET_KEY).unwrap()).await;
    let admin = app.api_user("ops", Role::Admin, "acme").await;
    let us = app.region(&admin, "US East", "us-east-1").await;
    let eu = app.region(&admin, "EU West", "eu-west-1").await;
    let cred = app.credential(&admin, "netops", "s3cret").await;
    let mut routers = Vec::new();
    let mut ids = Vec::new();
    for (name, region) in [
        ("edge-us", Some(us)),
        ("edge-eu", Some(eu)),
        ("edge-lab", None),
    ] {
        let router = FakeDevice::start(
            FakeDeviceConfig::new("netops", "s3cret")
                .respond("show version", format!("IOS ({name})")),
        )
        .await;
        let body = json!({"hostname": name, "mgmt_ip": "127.0.0.1", "port": router.addr.port(), "credential": cred, "region": region});
        ids.push(app.device(&admin, body).await);
        routers.push(router);
    }

    let everywhere = json!({"targets": {"device_ids": ids}, "commands": ["show version"]});
    let id = app
        .start_job(&admin, "/api/v1/commands/run", everywhere)
        .await;
    let job = wait_job(&mut app, &admin, id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(
        dispatches(&job),
        [
            ("region_eu-west-1".to_string(), west_name.clone()),
            ("region_us-east-1".to_string(), east_name.clone()),
            ("default".to_string(), fallback_name.clone()),
        ]
    );
    let text = app.job_log(&admin, id).await;
    for name in ["edge-us", "edge-eu", "edge-lab"] {
        assert!(text.contains(&format!("IOS ({name})")), "{text}");
    }
    for router in &routers {
        assert_eq!(router.commands_seen(), ["show version"]);
    }

    // The server process serves while workers run elsewhere.
    let health = http_get(port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"));

    for child in [&mut east, &mut west, &mut fallback, &mut server] {
        let exit = sigterm(child, Duration::from_secs(15)).await;
        assert!(exit.success(), "graceful exit 0");
    }
}

#[tokio::test]
async fn a_worker_needs_a_queue_to_serve() {
    let out = webnet("postgres://127.0.0.1:1/x")
        .arg("worker")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give at least one --region"), "{stderr}");
    let out = webnet("postgres://127.0.0.1:1/x")
        .args(["worker", "--region", "US East"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--region \"US East\""));
}

/// The most connections `webnet worker` processes hold on the test's database over
/// `window`, sampled every 100 ms.
async fn most_worker_connections(pool: &PgPool, window: Duration) -> i64 {
    let mut most = 0;
    let until = std::time::Instant::now() + window;
    while std::time::Instant::now() < until {
        let now: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'webnet worker'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        most = most.max(now);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    most
}

#[sqlx::test]
async fn an_idle_worker_of_twenty_one_queues_holds_two_connections_and_a_busy_one_its_budget(
    pool: PgPool,
) {
    webnet::db::migrate(&pool).await.unwrap();
    let url = database_url(&pool);
    // apalis's listener held a connection per queue: 21 queues needed 21 and more.
    let regions: Vec<String> = (1..21).map(|i| format!("r{i}")).collect();
    let mut args = vec![
        "--default-queue",
        "--name",
        "busy",
        "--db-max-connections",
        "4",
    ];
    for region in &regions {
        args.extend(["--region", region.as_str()]);
    }
    let (mut worker, name) = start_worker(&url, &args).await;
    // From its start-up on, while its 21 consumers poll every second and it beats every 2 s:
    // its own connection (LISTEN and heartbeat) and the queues' one, nothing else.
    let most = most_worker_connections(&pool, Duration::from_secs(6)).await;
    assert_eq!(
        most, 2,
        "an idle worker of 21 queues held {most} connections"
    );
    let serving: Vec<String> =
        sqlx::query_scalar("SELECT unnest(queues) FROM worker_heartbeats WHERE name = $1")
            .bind(&name)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(serving.len(), 21, "{serving:?}");

    // Busy: forty reachability checks queued at once (on a closed port, so each ends fast
    // and records its outcome through the dispatches' pool); the budget still holds.
    let customer: i64 =
        sqlx::query_scalar("INSERT INTO customers (name) VALUES ('acme') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for i in 0..40 {
        let device: i64 = sqlx::query_scalar(
            "INSERT INTO devices (customer_id, hostname, mgmt_ip, port) VALUES ($1, $2, '127.0.0.1', 9) RETURNING id",
        )
        .bind(customer)
        .bind(format!("d{i}"))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let new = webnet::jobs::NewJob {
            customer_id: customer,
            user_id: None,
            job_type: webnet::jobs::JobType::CheckReachability,
            target_summary: serde_json::json!({"device_ids": [device]}),
            targets: webnet::jobs::Targets::parse(
                &serde_json::json!({"device_ids": [device]}),
                "t",
            )
            .unwrap(),
            payload: serde_json::json!({}),
            retry_of: None,
        };
        webnet::jobs::create(&mut conn, &new, None).await.unwrap();
    }
    drop(conn);
    let most = most_worker_connections(&pool, Duration::from_secs(4)).await;
    assert!(
        most <= 4,
        "a busy worker with --db-max-connections 4 held {most}"
    );
    assert!(
        sigterm(&mut worker, Duration::from_secs(20))
            .await
            .success()
    );
}

#[sqlx::test]
async fn a_sigterm_while_a_worker_waits_for_the_schema_stops_it_cleanly(pool: PgPool) {
    // No queue schema yet: the worker waits for it (see the next test), and must still
    // answer SIGTERM with a clean exit, not die of the signal.
    let mut command = webnet(&database_url(&pool));
    command.args(["worker", "--region", "r1", "--name", "waiting"]);
    let (mut worker, _lines) = spawn_reading(command, std::process::Stdio::null());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(worker.try_wait().unwrap().is_none(), "it waits");
    let status = sigterm(&mut worker, Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[sqlx::test]
async fn a_worker_started_before_the_schema_waits_for_it_and_never_migrates(pool: PgPool) {
    // The test's database has webnet's tables but not the queue schema: as if `webnet
    // migrate` had not run since the last upgrade.
    let url = database_url(&pool);
    let mut command = webnet(&url);
    command.args(["worker", "--region", "r1", "--name", "early"]);
    let (mut worker, mut lines) = spawn_reading(command, std::process::Stdio::null());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queue_schema: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'apalis')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!queue_schema, "a worker must not apply migrations");
    assert!(
        worker.try_wait().unwrap().is_none(),
        "it waits rather than exits"
    );

    webnet::db::migrate(&pool).await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the worker starts once the schema is there")
        .unwrap()
        .expect("the worker printed its name");
    assert!(line.starts_with("worker early-"), "{line}");
    assert!(
        sigterm(&mut worker, Duration::from_secs(20))
            .await
            .success()
    );
}
