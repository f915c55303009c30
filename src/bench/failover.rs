//! `bench --suite failover`: how long a region takes to fail over when its workers die.

use std::time::{Duration, Instant};

use anyhow::bail;

use webnet::crypto::SecretBox;
use webnet::lifecycle::JobStatus;

use super::support::{reachability_job, spawn_worker, wait_status};

/// Time to offline, time until jobs stranded on the dead region finish, time to failback
/// and time to rescue a job from a killed worker, with real worker processes (SIGKILL) and
/// the monitor in-process, at health check intervals of 2, 5 and 10 s.
pub(super) async fn measure_failover(pool: &sqlx::PgPool, url: &str) -> anyhow::Result<()> {
    let key = hex::encode(rand::random::<[u8; 32]>());
    let start_regional = async |identifier: &str| {
        spawn_worker(
            url,
            &key,
            &["--region", identifier, "--name", "bench-regional"],
        )
        .await
    };
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
                    &reachability_job(customer_id, device, timeout),
                    None,
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

        let mut regional = start_regional(&identifier).await?;
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
        let mut regional = start_regional(&identifier).await?;
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
