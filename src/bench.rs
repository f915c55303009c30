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
    let result = measure(&pool, &args).await;
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
