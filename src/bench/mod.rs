//! `webnet bench`: seeds a throwaway database and measures the inventory paths in-process
//! (server time: routing, auth, SQL, rendering; no network), then under concurrency.
//! Results are printed as a Markdown table for the README.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use webnet::auth::Role;
use webnet::config::{BenchArgs, Suite};
use webnet::db;

mod failover;
mod jobs;
mod latency;
mod notify;
mod support;

use support::{Client, bench_router, bench_token, login, ms, percentile, rss_mib};

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
        result = jobs::measure_jobs(&pool, &args).await;
    }
    if result.is_ok() && args.suite == Suite::Latency {
        result = latency::measure_latency(&pool, &url, args.jobs.min(1000)).await;
    }
    if result.is_ok() && args.suite == Suite::Notify {
        result = notify::measure_notify(&url).await;
    }
    if result.is_ok() && args.suite == Suite::Failover {
        result = failover::measure_failover(&pool, &url).await;
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

/// Times job creation among every seeded device (no worker runs: the jobs stay queued): one
/// site's devices, and 10,000 devices named by id.
async fn job_creation(
    client: &Client,
    site: &str,
    customer_id: i64,
    pool: &sqlx::PgPool,
    requests: usize,
) -> anyhow::Result<()> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE customer_id = $1 ORDER BY id LIMIT 10000")
            .bind(customer_id)
            .fetch_all(pool)
            .await?;
    let on_site: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM devices WHERE customer_id = $1 AND lower(site) = lower($2)",
    )
    .bind(customer_id)
    .bind(site)
    .fetch_one(pool)
    .await?;
    println!();
    println!("| job creation (`POST /api/v1/commands/run`, {requests} sequential) | p50 | p99 |");
    println!("| --- | --- | --- |");
    let cases = [
        (
            format!("one site ({on_site} devices)"),
            serde_json::json!({"targets": {"site": site}, "commands": ["show version"]}),
        ),
        (
            format!("{} devices by id", ids.len()),
            serde_json::json!({"targets": {"device_ids": ids}, "commands": ["show version"]}),
        ),
    ];
    for (label, body) in cases {
        let times = client
            .time_job_creation(std::iter::repeat_n(body, requests))
            .await?;
        println!(
            "| {label} | {} | {} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    Ok(())
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
        (
            "API device list, search q (hostname part)",
            "/api/v1/devices/?q=edge-0001".into(),
            true,
        ),
        (
            "API device list, search q (address prefix)",
            "/api/v1/devices/?q=10.0.1.".into(),
            true,
        ),
        (
            "API device list, search q matching most devices (count capped)",
            "/api/v1/devices/?q=s0".into(),
            true,
        ),
        (
            "API region page (`/regions/{id}/`)",
            format!("/api/v1/regions/{}/", region_ids[0]),
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

    job_creation(
        &client,
        &site,
        seeded.customer_id,
        pool,
        args.requests.min(50),
    )
    .await?;

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
    audit_overhead(pool, &region_ids).await?;

    println!();
    println!(
        "| throughput ({} concurrent clients, {} s each) | req/s |",
        args.concurrency, args.seconds
    );
    println!("| --- | --- |");
    let client = std::sync::Arc::new(client);
    // The sequential table covers the searches and the deep page; the throughput table keeps
    // to the six everyday paths.
    let everyday = |l: &str| {
        !["page 20", "search q (", "count capped", "region page"]
            .iter()
            .any(|skip| l.contains(skip))
    };
    for (label, path, api) in paths.iter().filter(|(l, ..)| everyday(l)) {
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

/// The cost of auditing a bulk assignment: the same assignment of every device, through the
/// use case (with its audit row) and as the bare statement in a transaction (without),
/// alternated so that a noisy machine weighs on both alike; medians of 5 each.
async fn audit_overhead(pool: &sqlx::PgPool, region_ids: &[i64]) -> anyhow::Result<()> {
    use webnet::auth::{AuthMethod, users};
    use webnet::devices::{BulkTarget, DeviceFilter};
    let mut conn = pool.acquire().await?;
    let id = users::id_for_username(&mut conn, "bench")
        .await?
        .context("the bench user")?;
    let user = users::load_auth_user(&mut conn, id, AuthMethod::Token)
        .await?
        .context("the bench user")?;
    drop(conn);
    let target = BulkTarget::Matching(DeviceFilter::default());
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for region in region_ids.iter().cycle().take(10) {
        let t = Instant::now();
        if with.len() <= without.len() {
            webnet::usecases::inventory::bulk_assign(pool, &user, &target, Some(*region))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            with.push(t.elapsed());
        } else {
            let customer: i64 = sqlx::query_scalar("SELECT customer_id FROM regions WHERE id = $1")
                .bind(region)
                .fetch_one(pool)
                .await?;
            let mut tx = pool.begin().await?;
            webnet::devices::bulk_assign_region(
                &mut tx,
                &user.scope(),
                &target,
                Some((*region, customer)),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            tx.commit().await?;
            without.push(t.elapsed());
        }
    }
    with.sort();
    without.sort();
    let (a, b) = (percentile(&with, 0.5), percentile(&without, 0.5));
    println!(
        "| every device → one region, with its audit row / the bare statement (medians of 5, alternated) | {} / {} ({:+.1} %) |",
        ms(a),
        ms(b),
        (a.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}
