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

use webnet::app::router;
use webnet::auth::{Role, tokens};
use webnet::config::{BenchArgs, Suite};
use webnet::crypto::SecretBox;
use webnet::db;
use webnet::lifecycle::JobStatus;
use webnet::state::{AppState, WebConfig};

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
    let pool = db::connect(&url, "webnet bench", 16, std::time::Duration::from_secs(5)).await?;
    db::migrate(&pool).await?;
    let mut result = Ok(());
    if matches!(args.suite, Suite::Inventory | Suite::All) {
        result = measure(&pool, &args).await;
    }
    if result.is_ok() && matches!(args.suite, Suite::Jobs | Suite::All) {
        result = measure_jobs(&pool, &args).await;
    }
    if result.is_ok() && args.suite == Suite::Failover {
        result = measure_failover(&pool, &url).await;
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

/// The whole application router, as `serve` builds it, for in-process requests.
fn bench_router(pool: &sqlx::PgPool) -> axum::Router {
    router(
        AppState::new(pool.clone(), SecretBox::random()),
        &WebConfig::default(),
    )
}

/// A user named `name` (and a customer of that name) with `role`, and an API token for them.
async fn bench_token(pool: &sqlx::PgPool, name: &str, role: Role) -> anyhow::Result<String> {
    let customers = [name.to_string()];
    let password = "bench-password".to_string();
    let user = webnet::auth::accounts::create_user(pool, name, role, false, &customers, password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = pool.acquire().await?;
    Ok(tokens::create_token(&mut conn, user, "bench").await?)
}

async fn measure(pool: &sqlx::PgPool, args: &BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    let seeded = webnet::demo::seed(&mut conn, "bench", args.regions, args.devices).await?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    let token = bench_token(pool, "bench", Role::Admin).await?;
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

    let router = bench_router(pool);
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
    let (customer_id, _) = webnet::customers::ensure(&mut conn, "bench-jobs")
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
    webnet::demo::analyze(&mut conn).await?;
    let token = bench_token(pool, "bench-jobs", Role::Operator).await?;
    let device_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE customer_id = $1 ORDER BY id LIMIT $2")
            .bind(customer_id)
            .bind(args.jobs as i64)
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);

    let router = bench_router(pool);
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
        let mut s = webnet::worker::WorkerState::new(
            pool.clone(),
            SecretBox::random(),
            webnet::worker::unique_name(Some("bench")),
        );
        s.device_concurrency = 16;
        s
    });
    // Only this customer's queues: after the inventory suite the database also holds its 50
    // regions, and a worker on each would take more connections than the pool has.
    let queues = (1..=5)
        .map(|i| webnet::lifecycle::queue_name(&format!("jobs-{i}")))
        .chain([webnet::lifecycle::DEFAULT_QUEUE.to_string()])
        .collect();
    let worker = tokio::spawn(webnet::worker::run(
        state,
        webnet::worker::Queues::Fixed(queues),
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
        webnet::jobs::create(
            &mut tx,
            &webnet::jobs::NewJob {
                customer_id,
                user_id: None,
                job_type: webnet::jobs::JobType::CheckReachability,
                target_summary: serde_json::json!({"device_ids": [device]}),
                targets: webnet::jobs::Targets {
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
        sqlx::query_as("SELECT count(*) FILTER (WHERE status = $1), count(*) FROM jobs")
            .bind(JobStatus::Success)
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
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = ANY($1)")
            .bind(JobStatus::open_words())
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

/// Spawns `webnet worker <args>` (this very binary) and waits for its first line.
async fn spawn_worker(
    url: &str,
    key: &str,
    args: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("worker")
        .args(args)
        .env("DATABASE_URL", url)
        .env("WEBNET_SECRET_KEY", key)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("worker did not start")??;
    Ok(child)
}

async fn region_status(pool: &sqlx::PgPool, id: i64) -> anyhow::Result<(String, String)> {
    Ok(
        sqlx::query_as("SELECT health_status, health_message FROM regions WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

async fn wait_status(
    pool: &sqlx::PgPool,
    id: i64,
    want: &str,
    need_live: bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let (status, message) = region_status(pool, id).await?;
        if status == want && (!need_live || message.contains("live worker")) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("region still {status} ({message}) after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Time to offline, time until jobs stranded on the dead region finish, time to failback
/// and time to rescue a job from a killed worker, with real worker processes (SIGKILL) and
/// the monitor in-process, at health check intervals of 2, 5 and 10 s.
async fn measure_failover(pool: &sqlx::PgPool, url: &str) -> anyhow::Result<()> {
    let key = hex::encode(rand::random::<[u8; 32]>());
    let secrets = SecretBox::from_secret(&key)?;
    // A port that answers at once, and one whose accept queue is full, so connecting to it
    // hangs until the job's timeout (a long-running dispatch to kill a worker in).
    let fast = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fast_port = fast.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((s, _)) = fast.accept().await {
            drop(s);
        }
    });
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let slow = socket.listen(1)?;
    let slow_port = slow.local_addr()?.port();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(("127.0.0.1", slow_port)),
        )
        .await
        {
            fillers.push(s);
        }
    }

    let mut conn = pool.acquire().await?;
    let (customer_id, _) = webnet::customers::ensure(&mut conn, "bench-failover")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(conn);
    let monitor = tokio::spawn(webnet::health::run(
        pool.clone(),
        webnet::health::MonitorConfig::default(),
    ));
    let default_worker =
        spawn_worker(url, &key, &["--default-queue", "--name", "bench-default"]).await?;

    println!();
    println!(
        "| health check interval | time to offline after SIGKILL | 10 stranded jobs finished | failback to healthy | job rescued from a killed worker |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for interval in [2i32, 5, 10] {
        let identifier = format!("fo-{interval}");
        let mut conn = pool.acquire().await?;
        let region: i64 = sqlx::query_scalar(
            "INSERT INTO regions (customer_id, identifier, name, health_check_interval_seconds)
             VALUES ($1, $2, $2, $3) RETURNING id",
        )
        .bind(customer_id)
        .bind(&identifier)
        .bind(interval)
        .fetch_one(&mut *conn)
        .await?;
        let device = |host: String, port: u16| {
            let pool = pool.clone();
            async move {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO devices (customer_id, hostname, mgmt_ip, port) VALUES ($1, $2, '127.0.0.1', $3) RETURNING id",
                )
                .bind(customer_id)
                .bind(host)
                .bind(i32::from(port))
                .fetch_one(&pool)
                .await?;
                sqlx::query("UPDATE device_assignments SET region_id = $2 WHERE device_id = $1")
                    .bind(id)
                    .bind(region)
                    .execute(&pool)
                    .await?;
                anyhow::Ok(id)
            }
        };
        let fast_device = device(format!("fast-{interval}"), fast_port).await?;
        let slow_device = device(format!("slow-{interval}"), slow_port).await?;
        drop(conn);

        let submit = |device: i64, timeout: u64| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await?;
                let id = webnet::jobs::create(
                    &mut tx,
                    &webnet::jobs::NewJob {
                        customer_id,
                        user_id: None,
                        job_type: webnet::jobs::JobType::CheckReachability,
                        target_summary: serde_json::json!({"device_ids": [device]}),
                        targets: webnet::jobs::Targets {
                            device_ids: Some(vec![device]),
                            ..Default::default()
                        },
                        payload: serde_json::json!({"timeout": timeout}),
                        retry_of: None,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                tx.commit().await?;
                anyhow::Ok(id)
            }
        };
        let wait_jobs = |ids: Vec<i64>| {
            let pool = pool.clone();
            async move {
                let started = Instant::now();
                loop {
                    let open: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = ANY($2)",
                    )
                    .bind(&ids)
                    .bind(JobStatus::open_words())
                    .fetch_one(&pool)
                    .await?;
                    if open == 0 {
                        return anyhow::Ok(started.elapsed());
                    }
                    if started.elapsed() > Duration::from_secs(120) {
                        bail!("{open} jobs still open");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };

        let mut regional = spawn_worker(
            url,
            &key,
            &["--region", &identifier, "--name", "bench-regional"],
        )
        .await?;
        wait_status(pool, region, "healthy", true).await?;

        regional.start_kill()?;
        regional.wait().await?;
        let killed = Instant::now();
        let mut stranded = Vec::new();
        for _ in 0..10 {
            stranded.push(submit(fast_device, 2).await?);
        }
        wait_status(pool, region, "offline", false).await?;
        let to_offline = killed.elapsed();
        wait_jobs(stranded).await?;
        let stranded_done = killed.elapsed();

        let restarted = Instant::now();
        let mut regional = spawn_worker(
            url,
            &key,
            &["--region", &identifier, "--name", "bench-regional"],
        )
        .await?;
        wait_status(pool, region, "healthy", true).await?;
        let failback = restarted.elapsed();

        let job = submit(slow_device, 3).await?;
        let started = Instant::now();
        loop {
            let running: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM job_dispatches WHERE job_id = $1 AND status = $2)",
            )
            .bind(job)
            .bind(JobStatus::Running)
            .fetch_one(pool)
            .await?;
            if running {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the slow job never started");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        regional.start_kill()?;
        regional.wait().await?;
        let killed = Instant::now();
        wait_jobs(vec![job]).await?;
        let rescue = killed.elapsed();
        println!(
            "| {interval} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s (includes its 3 s re-run) |",
            to_offline.as_secs_f64(),
            stranded_done.as_secs_f64(),
            failback.as_secs_f64(),
            rescue.as_secs_f64()
        );
    }
    drop(default_worker);
    monitor.abort();
    drop(fillers);
    drop(slow);
    let _ = secrets;
    Ok(())
}
