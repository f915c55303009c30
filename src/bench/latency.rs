//! `--suite latency`: enqueue→start across processes. The API runs in this process; one real
//! `webnet worker` process per region runs the jobs, as in a deployment.

use std::time::Duration;

use webnet::auth::Role;

use super::support::{
    Client, bench_customer, bench_router, bench_token, p50_p99, spawn_worker, stand_in_port,
    start_latencies, wait_all_finished,
};

/// Regions, each served by a worker process of its own.
const REGIONS: usize = 3;

/// Creates single-device reachability jobs one at a time through the API, each waited for,
/// and reports the time from the creating transaction's start (`requested_at`) to the
/// worker's claim of the dispatch (`started_at`).
pub(super) async fn measure_latency(
    pool: &sqlx::PgPool,
    url: &str,
    jobs: usize,
) -> anyhow::Result<()> {
    let port = stand_in_port().await?;
    let mut conn = pool.acquire().await?;
    let regions = ("lat", "Latency", REGIONS as i32);
    let customer_id = bench_customer(&mut conn, "bench-latency", regions).await?;
    let devices: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO devices (customer_id, hostname, mgmt_ip, port)
         SELECT $1, 'lat-dev-' || i, '127.0.0.1', $2 FROM generate_series(1, $3) AS i
         RETURNING id",
    )
    .bind(customer_id)
    .bind(i32::from(port))
    .bind(jobs as i64)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE device_assignments a SET region_id = r.id FROM regions r
         WHERE a.customer_id = $1 AND r.customer_id = $1
           AND r.identifier = 'lat-' || (1 + a.device_id % $2)",
    )
    .bind(customer_id)
    .bind(REGIONS as i64)
    .execute(&mut *conn)
    .await?;
    drop(conn);

    let key = hex::encode(rand::random::<[u8; 32]>());
    let mut workers = Vec::new();
    for i in 1..=REGIONS {
        let (region, name) = (format!("lat-{i}"), format!("bench-lat-{i}"));
        workers.push(spawn_worker(url, &key, &["--region", &region, "--name", &name]).await?);
    }
    let client = Client {
        router: bench_router(pool),
        token: bench_token(pool, "bench-latency", Role::Operator).await?,
        cookie: String::new(),
    };
    // The workers print their first line before their consumers listen: let them settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for device in &devices {
        let body = serde_json::json!({"targets": {"device_ids": [device]}, "timeout": 2});
        client
            .time_requests("/api/v1/reachability/run", [body])
            .await?;
        wait_all_finished(pool, Duration::from_secs(10)).await?;
    }
    let latencies = start_latencies(pool, customer_id).await?;
    println!();
    println!(
        "| enqueue → start across processes ({REGIONS} regions, one `webnet worker` each) | value |"
    );
    println!("| --- | --- |");
    println!(
        "| {} single-device jobs created through the API one at a time, p50 / p99 | {} |",
        latencies.len(),
        p50_p99(&latencies)
    );
    for mut worker in workers {
        worker.kill().await?;
    }
    Ok(())
}
