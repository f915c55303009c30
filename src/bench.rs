//! `webnet bench`: seeds a throwaway database and measures the inventory paths in-process
//! (server time: routing, auth, SQL, rendering; no network), then under concurrency.
//! Results are printed as a Markdown table for the README.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tower::ServiceExt;

use crate::app::{AppState, WebConfig, router};
use crate::auth::{Role, tokens};
use crate::crypto::SecretBox;
use crate::db;

/// Options of `webnet bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Devices to seed.
    #[arg(long, default_value_t = 100_000)]
    pub devices: i64,
    /// Regions to seed.
    #[arg(long, default_value_t = 50)]
    pub regions: i64,
    /// Sequential requests per measured path.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Concurrent clients in the throughput phase.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds of the throughput phase, per path.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Keep the benchmark database afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Which measurements: inventory (regions, devices), jobs (creation, enqueue→start
    /// latency, worker throughput), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub suite: Suite,
    /// Devices of the jobs suite's customer (all answering on a local TCP port).
    #[arg(long, default_value_t = 10_000)]
    pub job_devices: i64,
    /// Single-device jobs for the latency and throughput measurements.
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
}

/// Benchmark suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Regions and devices.
    Inventory,
    /// Job creation and execution.
    Jobs,
    /// Both.
    All,
}

struct Client {
    router: Router,
    token: String,
    cookie: String,
}

impl Client {
    async fn call(&self, request: Request<Body>) -> anyhow::Result<(StatusCode, usize)> {
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes.len()))
    }

    fn api(&self, path: &str) -> Request<Body> {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .expect("valid request")
    }

    fn page(&self, path: &str) -> Request<Body> {
        Request::get(path)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .expect("valid request")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs the benchmark against a new database next to `database_url`'s.
pub async fn run(database_url: &str, args: BenchArgs) -> anyhow::Result<()> {
    let base: PgConnectOptions = database_url.parse().context("DATABASE_URL")?;
    let name = format!("webnet_bench_{}", std::process::id());
    let url = base.clone().database(&name).to_url_lossy().to_string();
    println!(
        "# webnet bench: {} devices, {} regions, database {name}",
        args.devices, args.regions
    );
    let pool = db::connect(&url, 16).await?;
    db::migrate(&pool).await?;
    let mut result = Ok(());
    if args.suite != Suite::Jobs {
        result = measure(&pool, &args).await;
    }
    if result.is_ok() && args.suite != Suite::Inventory {
        result = measure_jobs(&pool, &args).await;
    }
    pool.close().await;
    if !args.keep {
        let mut admin = PgConnection::connect_with(&base.clone().database("postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    result
}

async fn measure(pool: &sqlx::PgPool, args: &BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    let seeded = crate::demo::seed(&mut conn, "bench", args.regions, args.devices).await?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    let user = crate::cli::create_user(
        pool,
        "bench",
        Role::Admin,
        false,
        &["bench".into()],
        "bench-password".into(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = tokens::create_token(&mut conn, user, "bench").await?;
    let site: String =
        sqlx::query_scalar("SELECT site FROM devices WHERE customer_id = $1 LIMIT 1")
            .bind(seeded.customer_id)
            .fetch_one(&mut *conn)
            .await?;
    let region_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM regions WHERE customer_id = $1 ORDER BY id LIMIT 2")
            .bind(seeded.customer_id)
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);

    let router = router(
        AppState::new(pool.clone(), SecretBox::random()),
        &WebConfig::default(),
    );
    let cookie = login(&router).await?;
    let client = Client {
        router,
        token,
        cookie,
    };

    let paths: Vec<(&str, String, bool)> = vec![
        (
            "API region list (50 regions)",
            "/api/v1/regions/".into(),
            true,
        ),
        (
            "API device list, first page of 50",
            "/api/v1/devices/".into(),
            true,
        ),
        (
            "API device list, filtered by site",
            format!("/api/v1/devices/?site={site}"),
            true,
        ),
        (
            "API device list, search q + region",
            format!("/api/v1/devices/?q=edge-00&region={}", region_ids[0]),
            true,
        ),
        ("UI region list page", "/regions".into(), false),
        (
            "UI device list page, filtered by site",
            format!("/devices?site={site}"),
            false,
        ),
        (
            "UI device list page 20, sorted by region",
            "/devices?sort=region&page=20".into(),
            false,
        ),
    ];

    println!();
    println!(
        "| request ({} sequential) | p50 | p99 | bytes |",
        args.requests
    );
    println!("| --- | --- | --- | --- |");
    for (label, path, api) in &paths {
        let mut times = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for i in 0..args.requests + 10 {
            let request = if *api {
                client.api(path)
            } else {
                client.page(path)
            };
            let t = Instant::now();
            let (status, len) = client.call(request).await?;
            let elapsed = t.elapsed();
            if status != StatusCode::OK {
                bail!("{path} answered {status}");
            }
            // The first few warm the statement cache and the pool.
            if i >= 10 {
                times.push(elapsed);
            }
            bytes = len;
        }
        times.sort();
        println!(
            "| {label} | {} | {} | {bytes} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }

    println!();
    println!("| bulk assignment | time |");
    println!("| --- | --- |");
    for (i, region) in region_ids.iter().cycle().take(4).enumerate() {
        let body = serde_json::json!({"filters": {}, "region": region}).to_string();
        let request = Request::post("/api/v1/devices/bulk_assign_region/")
            .header(header::AUTHORIZATION, format!("Bearer {}", client.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))?;
        let t = Instant::now();
        let (status, _) = client.call(request).await?;
        if status != StatusCode::OK {
            bail!("bulk assignment answered {status}");
        }
        println!(
            "| all {} devices → one region (run {}) | {} |",
            seeded.devices,
            i + 1,
            ms(t.elapsed())
        );
    }

    println!();
    println!(
        "| throughput ({} concurrent clients, {} s each) | req/s |",
        args.concurrency, args.seconds
    );
    println!("| --- | --- |");
    let client = std::sync::Arc::new(client);
    for (label, path, api) in paths.iter().filter(|(l, ..)| !l.contains("page 20")) {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let client = client.clone();
            let path = path.clone();
            let api = *api;
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let request = if api {
                        client.api(&path)
                    } else {
                        client.page(&path)
                    };
                    if client
                        .call(request)
                        .await
                        .is_ok_and(|(s, _)| s == StatusCode::OK)
                    {
                        n += 1;
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await?;
        }
        println!("| {label} | {:.0} |", total as f64 / args.seconds as f64);
    }
    let (rss, peak) = rss_mib();
    println!();
    println!("process memory: {rss:.0} MiB resident now, {peak:.0} MiB peak (includes seeding)");
    Ok(())
}

/// Signs in through the real form and returns the session cookie.
async fn login(router: &Router) -> anyhow::Result<String> {
    let response = router
        .clone()
        .oneshot(Request::get("/login").body(Body::empty())?)
        .await?;
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_string();
    let html =
        String::from_utf8_lossy(&response.into_body().collect().await?.to_bytes()).into_owned();
    let token = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("no CSRF token")?
        .to_string();
    let body = format!("username=bench&password=bench-password&csrf_token={token}");
    let response = router
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::COOKIE, &cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))?,
        )
        .await?;
    if response.status() != StatusCode::SEE_OTHER {
        bail!("bench login failed: {}", response.status());
    }
    Ok(response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map_or(cookie, str::to_string))
}

/// Job creation through the API, enqueue→start latency and worker throughput, against a
/// customer whose devices all answer on a local TCP port (reachability checks are real
/// TCP connects on loopback).
async fn measure_jobs(pool: &sqlx::PgPool, args: &BenchArgs) -> anyhow::Result<()> {
    use std::sync::Arc;

    // A port that accepts and drops connections: the stand-in for every device.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });

    let mut conn = pool.acquire().await?;
    let (customer_id, _) = crate::customers::ensure(&mut conn, "bench-jobs")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sqlx::query(
        "INSERT INTO regions (customer_id, identifier, name, priority)
         SELECT $1, 'jobs-' || i, 'Jobs ' || i, 100 + i FROM generate_series(1, 5) AS i
         ON CONFLICT DO NOTHING",
    )
    .bind(customer_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO devices (customer_id, hostname, mgmt_ip, port, site, vendor)
         SELECT $1, 'job-dev-' || i, '127.0.0.1', $2, 'js' || (i % 500), 'cisco'
         FROM generate_series(1, $3) AS i ON CONFLICT DO NOTHING",
    )
    .bind(customer_id)
    .bind(i32::from(port))
    .bind(args.job_devices)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE device_assignments a SET region_id = r.id
         FROM devices d, regions r
         WHERE a.device_id = d.id AND d.customer_id = $1 AND r.customer_id = $1
           AND r.identifier = 'jobs-' || (1 + substring(d.site FROM 3)::int % 5)",
    )
    .bind(customer_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("VACUUM (ANALYZE) devices, device_assignments")
        .execute(&mut *conn)
        .await?;
    let user = crate::cli::create_user(
        pool,
        "bench-jobs",
        Role::Operator,
        false,
        &["bench-jobs".into()],
        "bench-password".into(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = tokens::create_token(&mut conn, user, "bench").await?;
    let device_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE customer_id = $1 ORDER BY id LIMIT $2")
            .bind(customer_id)
            .bind(args.jobs as i64)
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);

    let router = router(
        AppState::new(pool.clone(), SecretBox::random()),
        &WebConfig::default(),
    );
    let client = Arc::new(Client {
        router,
        token,
        cookie: String::new(),
    });
    let post = |client: &Client, body: serde_json::Value| {
        Request::post("/api/v1/commands/run")
            .header(header::AUTHORIZATION, format!("Bearer {}", client.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("valid request")
    };

    // 1. Creating jobs through the API (route + enqueue), no worker running.
    println!();
    println!(
        "| job creation, `POST /api/v1/commands/run` on one site (20 of {} devices, 5 regions) | value |",
        args.job_devices
    );
    println!("| --- | --- |");
    let mut times = Vec::new();
    for i in 0..200 {
        let body = serde_json::json!({"targets": {"site": format!("js{}", i % 500)}, "commands": ["show version"]});
        let t = Instant::now();
        let (status, _) = client.call(post(&client, body)).await?;
        if status != StatusCode::ACCEPTED {
            bail!("job creation answered {status}");
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "| sequential p50 / p99 | {} / {} |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.concurrency {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let body = serde_json::json!({"targets": {"site": format!("js{}", (n as usize * 7 + c) % 500)}, "commands": ["show version"]});
                let request = Request::post("/api/v1/commands/run")
                    .header(header::AUTHORIZATION, format!("Bearer {}", client.token))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .expect("valid request");
                if client.call(request).await.is_ok_and(|(s, _)| s == StatusCode::ACCEPTED) {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    println!(
        "| {} concurrent clients | {:.0} jobs/s |",
        args.concurrency,
        total as f64 / args.seconds as f64
    );
    // Those jobs are not the subject of what follows.
    sqlx::query("DELETE FROM apalis.jobs").execute(pool).await?;
    sqlx::query("DELETE FROM jobs").execute(pool).await?;

    // 2 and 3. A worker on every queue, then single-device reachability jobs.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new({
        let mut s = crate::worker::WorkerState::new(
            pool.clone(),
            SecretBox::random(),
            crate::worker::unique_name(Some("bench")),
        );
        s.device_concurrency = 16;
        s
    });
    let worker = tokio::spawn(crate::worker::run(
        state,
        crate::worker::Queues::All,
        args.concurrency,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
        Duration::from_secs(10),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let reach = |device: i64| {
        Request::post("/api/v1/reachability/run")
            .header(header::AUTHORIZATION, format!("Bearer {}", client.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({"targets": {"device_ids": [device]}, "timeout": 2}).to_string(),
            ))
            .expect("valid request")
    };
    // Latency: one job at a time, each waited for, so queues are empty when it lands.
    let latency_jobs = args.jobs.min(device_ids.len());
    for device in device_ids.iter().take(latency_jobs) {
        client.call(reach(*device)).await?;
        wait_all_finished(pool, Duration::from_secs(10)).await?;
    }
    let mut latencies: Vec<Duration> = sqlx::query_scalar::<_, f64>(
        "SELECT EXTRACT(EPOCH FROM (d.started_at - j.requested_at))::float8
         FROM job_dispatches d JOIN jobs j ON j.id = d.job_id WHERE d.started_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|s| Duration::from_secs_f64(s.max(0.0)))
    .collect();
    latencies.sort();
    println!();
    println!(
        "| worker ({} concurrent dispatches per queue, LISTEN/NOTIFY + 1 s poll) | value |",
        args.concurrency
    );
    println!("| --- | --- |");
    println!(
        "| enqueue → start latency over {} single-device jobs, p50 / p99 | {} / {} |",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );

    // Throughput: all jobs enqueued in one transaction, timed from its commit until the
    // last one finished, so only the workers are measured.
    sqlx::query("DELETE FROM jobs").execute(pool).await?;
    let mut tx = pool.begin().await?;
    for device in &device_ids {
        crate::jobs::create(
            &mut tx,
            &crate::jobs::NewJob {
                customer_id,
                user_id: None,
                job_type: crate::jobs::JobType::CheckReachability,
                target_summary: serde_json::json!({"device_ids": [device]}),
                targets: crate::jobs::Targets {
                    device_ids: Some(vec![*device]),
                    ..Default::default()
                },
                payload: serde_json::json!({"timeout": 2}),
                retry_of: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    tx.commit().await?;
    let started = Instant::now();
    wait_all_finished(pool, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();
    let (ok, total): (i64, i64) =
        sqlx::query_as("SELECT count(*) FILTER (WHERE status = 'success'), count(*) FROM jobs")
            .fetch_one(pool)
            .await?;
    println!(
        "| {total} reachability jobs enqueued at once, 5 regional queues + default: all finished in | {:.2} s ({:.0} jobs/s; {ok}/{total} succeeded) |",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
    );
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let (rss, peak) = rss_mib();
    println!();
    println!("process memory after the jobs suite: {rss:.0} MiB resident, {peak:.0} MiB peak");
    Ok(())
}

async fn wait_all_finished(pool: &sqlx::PgPool, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running', 'scheduled')",
        )
        .fetch_one(pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{open} jobs still open after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
