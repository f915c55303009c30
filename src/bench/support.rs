//! What the suites share: an in-process client, percentiles, memory, users and tokens,
//! signing in, spawning workers and waiting for jobs and regions.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use webnet::app::router;
use webnet::auth::{Role, tokens};
use webnet::crypto::SecretBox;
use webnet::lifecycle::JobStatus;
use webnet::state::{AppState, WebConfig};

pub(super) struct Client {
    pub(super) router: Router,
    pub(super) token: String,
    pub(super) cookie: String,
}

impl Client {
    pub(super) async fn call(&self, request: Request<Body>) -> anyhow::Result<(StatusCode, usize)> {
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes.len()))
    }

    pub(super) fn api(&self, path: &str) -> Request<Body> {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .expect("valid request")
    }

    pub(super) fn page(&self, path: &str) -> Request<Body> {
        Request::get(path)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .expect("valid request")
    }

    /// `POST path` with `body`, as the API client.
    pub(super) fn post(&self, path: &str, body: &serde_json::Value) -> Request<Body> {
        Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("valid request")
    }

    /// `POST /api/v1/commands/run` with `body`, as the API client.
    pub(super) fn run_commands(&self, body: &serde_json::Value) -> Request<Body> {
        self.post("/api/v1/commands/run", body)
    }

    /// Creates one job per body, one after the other; the times, sorted.
    pub(super) async fn time_job_creation(
        &self,
        bodies: impl IntoIterator<Item = serde_json::Value>,
    ) -> anyhow::Result<Vec<Duration>> {
        self.time_requests("/api/v1/commands/run", bodies).await
    }

    /// Posts each body to a job-creating `path`, one after the other; the times, sorted.
    pub(super) async fn time_requests(
        &self,
        path: &str,
        bodies: impl IntoIterator<Item = serde_json::Value>,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut times = Vec::new();
        for body in bodies {
            let t = Instant::now();
            let (status, _) = self.call(self.post(path, &body)).await?;
            if status != StatusCode::ACCEPTED {
                anyhow::bail!("job creation answered {status}");
            }
            times.push(t.elapsed());
        }
        times.sort();
        Ok(times)
    }
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// "p50 / p99" of sorted times, in milliseconds.
pub(super) fn p50_p99(sorted: &[Duration]) -> String {
    format!(
        "{} / {}",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99))
    )
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub(super) fn rss_mib() -> (f64, f64) {
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
/// The whole application router, as `serve` builds it, for in-process requests.
pub(super) fn bench_router(pool: &sqlx::PgPool) -> axum::Router {
    router(
        AppState::new(pool.clone(), SecretBox::random()),
        &WebConfig::default(),
    )
}

/// A user named `name` (and a customer of that name) with `role`, and an API token for them.
pub(super) async fn bench_token(
    pool: &sqlx::PgPool,
    name: &str,
    role: Role,
) -> anyhow::Result<String> {
    let customers = [name.to_string()];
    let password = "bench-password".to_string();
    let user = webnet::auth::accounts::create_user(pool, name, role, false, &customers, password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = pool.acquire().await?;
    Ok(tokens::create_token(&mut conn, user, "bench").await?)
}

/// Signs in through the real form and returns the session cookie.
pub(super) async fn login(router: &Router) -> anyhow::Result<String> {
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

pub(super) async fn wait_all_finished(pool: &sqlx::PgPool, limit: Duration) -> anyhow::Result<()> {
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
pub(super) async fn spawn_worker(
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

pub(super) async fn region_status(
    pool: &sqlx::PgPool,
    id: i64,
) -> anyhow::Result<(String, String)> {
    Ok(
        sqlx::query_as("SELECT health_status, health_message FROM regions WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

pub(super) async fn wait_status(
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

/// A reachability job on one device, as the job API would record it.
pub(super) fn reachability_job(
    customer_id: i64,
    device: i64,
    timeout: u64,
) -> webnet::jobs::NewJob {
    webnet::jobs::NewJob {
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
    }
}

/// A local port that accepts connections and drops them: the stand-in for every device.
pub(super) async fn stand_in_port() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    Ok(port)
}

/// A customer of its own for a suite, with `n` regions `<prefix>-1`… named `<name> 1`…
pub(super) async fn bench_customer(
    conn: &mut sqlx::PgConnection,
    customer: &str,
    (prefix, name, n): (&str, &str, i32),
) -> anyhow::Result<i64> {
    let (customer_id, _) = webnet::customers::ensure(conn, customer)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sqlx::query(
        "INSERT INTO regions (customer_id, identifier, name, priority)
         SELECT $1, $2 || '-' || i, $3 || ' ' || i, 100 + i FROM generate_series(1, $4) AS i
         ON CONFLICT DO NOTHING",
    )
    .bind(customer_id)
    .bind(prefix)
    .bind(name)
    .bind(n)
    .execute(conn)
    .await?;
    Ok(customer_id)
}

/// For every started dispatch of a customer's jobs, the time from the creating transaction's
/// start (`requested_at`) to the worker's claim (`started_at`); sorted.
pub(super) async fn start_latencies(
    pool: &sqlx::PgPool,
    customer_id: i64,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies: Vec<Duration> = sqlx::query_scalar::<_, f64>(
        "SELECT EXTRACT(EPOCH FROM (d.started_at - j.requested_at))::float8
         FROM job_dispatches d JOIN jobs j ON j.id = d.job_id
         WHERE j.customer_id = $1 AND d.started_at IS NOT NULL",
    )
    .bind(customer_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|s| Duration::from_secs_f64(s.max(0.0)))
    .collect();
    latencies.sort();
    Ok(latencies)
}
