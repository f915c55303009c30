//! `bench --suite jobs`: job creation and execution through the API and real workers.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::support::{
    Client, bench_customer, bench_router, bench_token, ms, p50_p99, percentile, reachability_job,
    rss_mib, stand_in_port, start_latencies, wait_all_finished,
};
use webnet::auth::Role;
use webnet::config::BenchArgs;
use webnet::crypto::SecretBox;
use webnet::lifecycle::JobStatus;

/// Job creation through the API, enqueue→start latency and worker throughput, against a
/// customer whose devices all answer on a local TCP port (reachability checks are real
/// TCP connects on loopback).
pub(super) async fn measure_jobs(pool: &sqlx::PgPool, args: &BenchArgs) -> anyhow::Result<()> {
    use std::sync::Arc;

    let port = stand_in_port().await?;

    let mut conn = pool.acquire().await?;
    let customer_id = bench_customer(&mut conn, "bench-jobs", ("jobs", "Jobs", 5)).await?;
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
    // 1. Creating jobs through the API (route + enqueue), no worker running.
    println!();
    println!(
        "| job creation, `POST /api/v1/commands/run` on one site (20 of {} devices, 5 regions) | value |",
        args.job_devices
    );
    println!("| --- | --- |");
    let bodies = (0..200).map(|i| {
        serde_json::json!({"targets": {"site": format!("js{}", i % 500)}, "commands": ["show version"]})
    });
    let times = client.time_job_creation(bodies).await?;
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
                if client.call(client.run_commands(&body)).await.is_ok_and(|(s, _)| s == StatusCode::ACCEPTED) {
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
    let latencies = start_latencies(pool, customer_id).await?;
    println!();
    println!(
        "| worker ({} concurrent dispatches per queue, LISTEN/NOTIFY + 1 s poll) | value |",
        args.concurrency
    );
    println!("| --- | --- |");
    println!(
        "| enqueue → start latency over {} single-device jobs, p50 / p99 | {} |",
        latencies.len(),
        p50_p99(&latencies)
    );

    // Throughput: all jobs enqueued in one transaction, timed from its commit until the
    // last one finished, so only the workers are measured.
    sqlx::query("DELETE FROM jobs").execute(pool).await?;
    let mut tx = pool.begin().await?;
    for device in &device_ids {
        webnet::jobs::create(&mut tx, &reachability_job(customer_id, *device, 2), None)
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
