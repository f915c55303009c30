//! Prometheus metrics, served as text at `/metrics`.

use std::sync::Arc;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Every metric webnet exports, with the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: HistogramFamily,
    auth_lookups: Family<SourceLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("webnet");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by method and route",
            http_duration.clone(),
        );
        let auth_lookups = Family::<SourceLabels, Counter>::default();
        registry.register(
            "auth_lookups",
            "Callers identified by a token or a session, by where they were found (cache, database)",
            auth_lookups.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            auth_lookups,
        }
    }
}

impl Metrics {
    /// Counts a caller identified from the authentication cache or from the database.
    pub fn auth_lookup(&self, cached: bool) {
        let source = if cached { "cache" } else { "database" };
        self.auth_lookups
            .get_or_create(&SourceLabels { source })
            .inc();
    }

    /// The process's metrics, plus `fleet`'s (read from the database at scrape time, so
    /// every server reports the same fleet-wide figures), in the Prometheus text format.
    pub fn encode(&self, fleet: Option<&Registry>) -> String {
        let mut out = String::new();
        match fleet {
            // One exposition, one `# EOF`: the fleet registry adopts this process's families.
            Some(fleet) => {
                prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
                    .and_then(|()| {
                        prometheus_client::encoding::text::encode_registry(&mut out, fleet)
                    })
                    .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut out))
                    .expect("writing to a String cannot fail");
            }
            None => prometheus_client::encoding::text::encode(&mut out, &self.registry)
                .expect("writing to a String cannot fail"),
        }
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    region: String,
    customer: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    r#type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

/// Fleet-wide figures from the database: region health, queues, workers, jobs.
pub async fn fleet(pool: &sqlx::PgPool) -> sqlx::Result<Registry> {
    use prometheus_client::metrics::gauge::Gauge;
    let mut conn = pool.acquire().await?;
    let mut registry = Registry::with_prefix("webnet");

    let health = Family::<RegionLabels, Gauge>::default();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT r.identifier, c.name, r.health_status FROM regions r JOIN customers c ON c.id = r.customer_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (region, customer, status) in rows {
        for s in ["healthy", "degraded", "offline"] {
            health
                .get_or_create(&RegionLabels {
                    region: region.clone(),
                    customer: customer.clone(),
                    status: s.to_string(),
                })
                .set(i64::from(s == status));
        }
    }
    registry.register(
        "region_health",
        "1 for the region's current health status",
        health,
    );

    let stats = crate::fleet::queue_stats(&mut conn).await?;
    let depth = Family::<QueueLabels, Gauge>::default();
    let age = Family::<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let live = Family::<QueueLabels, Gauge>::default();
    for (queue, st) in &stats {
        let l = QueueLabels {
            queue: queue.clone(),
        };
        depth.get_or_create(&l).set(st.depth);
        age.get_or_create(&l).set(st.oldest_age);
        live.get_or_create(&l).set(st.live_workers);
    }
    registry.register("queue_depth", "Tasks waiting in each queue", depth);
    registry.register(
        "queue_oldest_task_age_seconds",
        "Wait of the oldest pending task per queue",
        age,
    );
    registry.register(
        "queue_live_workers",
        "Live worker processes per queue",
        live,
    );

    let jobs = Family::<JobLabels, Gauge>::default();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT type, status, count(*) FROM jobs GROUP BY type, status")
            .fetch_all(&mut *conn)
            .await?;
    for (t, s, n) in rows {
        jobs.get_or_create(&JobLabels {
            r#type: t,
            status: s,
        })
        .set(n);
    }
    registry.register("jobs", "Jobs by type and status (retained history)", jobs);

    let durations =
        Family::<TypeLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 16))
        });
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT type, EXTRACT(EPOCH FROM finished_at - started_at)::float8 FROM jobs
         WHERE finished_at IS NOT NULL AND started_at IS NOT NULL
           AND finished_at > now() - interval '1 day'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (t, secs) in rows {
        durations
            .get_or_create(&TypeLabels { r#type: t })
            .observe(secs);
    }
    registry.register(
        "job_duration_seconds",
        "Run time of jobs finished in the last day, by type",
        durations,
    );

    let (failovers, rescues): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE failed_over_from IS NOT NULL), COALESCE(sum(rescues), 0)::bigint
         FROM job_dispatches",
    )
    .fetch_one(&mut *conn)
    .await?;
    let g = Gauge::<i64>::default();
    g.set(failovers);
    registry.register(
        "dispatch_failovers",
        "Dispatches moved to another queue (retained history)",
        g,
    );
    let g = Gauge::<i64>::default();
    g.set(rescues);
    registry.register(
        "dispatch_rescues",
        "Dispatches re-queued after their worker was lost (retained history)",
        g,
    );
    Ok(registry)
}

/// Middleware: counts every request and times it, labelled by its route pattern (not the
/// raw path, which would explode the label set).
pub async fn track_http(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
