//! Connecting to PostgreSQL: creating the database on first use and applying migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{
    ConnectOptions, Connection, Encode, PgConnection, PgPool, Postgres, QueryBuilder, Type,
};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Why the database could not be opened, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The URL does not parse.
    #[error(
        "DATABASE_URL is not a valid PostgreSQL URL ({0}); expected e.g. postgres://user@host:5432/webnet"
    )]
    BadUrl(String),
    /// The server cannot be reached or refuses us.
    #[error(
        "cannot connect to PostgreSQL at {target}: {reason}. Start PostgreSQL, or set DATABASE_URL to a reachable server"
    )]
    Unreachable {
        /// host:port/database
        target: String,
        /// The underlying error, in one line.
        reason: String,
    },
    /// Migrations failed.
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The job queue schema could not be set up.
    #[error("setting up the job queue schema (apalis) failed: {0}")]
    Queue(String),
}

fn describe(opts: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("")
    )
}

fn one_line(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
    .replace('\n', " ")
}

fn is_missing_database(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000"))
}

/// How long a request waits for a pool connection before it is answered 503: while the
/// database is unreachable, clients and load balancers get a prompt answer instead of
/// queueing behind sqlx's connection retries.
pub const REQUEST_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a pool keeps a connection nobody uses.
pub const POOL_IDLE: Duration = Duration::from_secs(10);

/// Opens a pool on `url`, creating the database through the server's maintenance database
/// (`postgres`) when it does not exist yet. `role` names the process in
/// `pg_stat_activity.application_name` (`webnet serve`, `webnet worker`…), so an operator
/// can tell the connections apart.
pub async fn connect(
    url: &str,
    role: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, DbSetupError> {
    let opts = connect_options(url, role)?;

    let unreachable = |e: &sqlx::Error, opts: &PgConnectOptions| DbSetupError::Unreachable {
        target: describe(opts),
        reason: one_line(e),
    };

    match PgConnection::connect_with(&opts).await {
        Ok(conn) => {
            let _ = conn.close().await;
        }
        Err(e) if is_missing_database(&e) => create_database(&opts).await?,
        Err(e) => return Err(unreachable(&e, &opts)),
    }

    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A burst's extra connections go back to PostgreSQL soon after (sqlx keeps them ten
        // minutes by default): hundreds of idle workers must not hold their peak.
        .idle_timeout(POOL_IDLE)
        // Reachability was checked above; connections open when first needed, so that a
        // pool nothing uses (an idle worker's dispatches' pool) holds none.
        .connect_lazy_with(opts))
}

/// The options webnet connects to `url` with: `role` as the `application_name`, statements
/// logged at trace level, and slow ones (over 500 ms) as warnings.
pub fn connect_options(url: &str, role: &str) -> Result<PgConnectOptions, DbSetupError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| DbSetupError::BadUrl(e.to_string()))?
        .application_name(role)
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

// Set once at start-up by a process whose pool goes through a transaction pooler.
static TRANSACTION_POOLED: AtomicBool = AtomicBool::new(false);

/// Records that this process's pool reaches PostgreSQL through a transaction pooler
/// (PgBouncer with `pool_mode = transaction`), which `--listen-database-url` declares. From
/// then on every statement is prepared by name ([`persistent`]).
pub fn set_transaction_pooled() {
    TRANSACTION_POOLED.store(true, Ordering::Relaxed);
}

/// What to give sqlx's `persistent()` for a statement that would rather run unnamed
/// (`named == false`, so that PostgreSQL plans it for its actual values): `named`, except
/// behind a transaction pooler, where it is always true. sqlx parses an unnamed statement and
/// binds it in two protocol rounds; between them the pooler may hand the client to another
/// server connection, where the unnamed statement is missing or is someone else's. Named
/// ones PgBouncer carries across (1.21 and later, with `max_prepared_statements`).
pub fn persistent(named: bool) -> bool {
    named || TRANSACTION_POOLED.load(Ordering::Relaxed)
}

async fn create_database(opts: &PgConnectOptions) -> Result<(), DbSetupError> {
    let name = opts.get_database().unwrap_or("webnet").to_string();
    let admin = opts.clone().database("postgres");
    let mut conn =
        PgConnection::connect_with(&admin)
            .await
            .map_err(|e| DbSetupError::Unreachable {
                target: describe(&admin),
                reason: one_line(&e),
            })?;
    // Identifiers cannot be bound as parameters; quote it the way PostgreSQL does.
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut conn)
        .await
    {
        Ok(_) => tracing::info!(database = %name, "created database"),
        // Another process created it between our two connections.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
        Err(e) => {
            return Err(DbSetupError::Unreachable {
                target: describe(opts),
                reason: format!("could not create the database: {}", one_line(&e)),
            });
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// Connects like [`connect`], but waits for the database instead of failing: a worker that
/// starts while PostgreSQL is down, restarting or full (`too many connections`) tries again
/// with jittered, growing pauses (up to 10 s), saying so once, so that a fleet started
/// together does not retry in step.
pub async fn connect_patiently(
    url: &str,
    role: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, DbSetupError> {
    let mut failures = 0u32;
    loop {
        match connect(url, role, max_connections, acquire_timeout).await {
            Ok(pool) => {
                if failures > 0 {
                    tracing::info!("connected to PostgreSQL");
                }
                return Ok(pool);
            }
            Err(DbSetupError::Unreachable { target, reason }) => {
                if failures == 0 {
                    tracing::warn!(%target, %reason, "cannot connect to PostgreSQL yet; waiting for it");
                }
                failures += 1;
                tokio::time::sleep(jittered_pause(failures)).await;
            }
            Err(other) => return Err(other),
        }
    }
}

/// Waits until every migration this build knows (webnet's and apalis's queue schema) has
/// been applied by `webnet migrate` or `webnet serve`; workers never apply them, so that
/// hundreds of them starting together do not queue on the migration lock. Says once what
/// it waits for.
pub async fn wait_for_schema(pool: &PgPool) -> Result<(), DbSetupError> {
    let ours: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let queue: Vec<i64> = apalis_postgres::PostgresStorage::migrations()
        .iter()
        .map(|m| m.version)
        .collect();
    let wanted = ours.len() + queue.len();
    let mut failures = 0u32;
    loop {
        // apalis records its migrations in its own schema.
        let applied: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT (SELECT count(DISTINCT version) FROM _sqlx_migrations
                     WHERE success AND version = ANY($1))
                  + (SELECT count(DISTINCT version) FROM apalis._sqlx_migrations
                     WHERE success AND version = ANY($2))",
        )
        .bind(&ours)
        .bind(&queue)
        .fetch_one(pool)
        .await;
        let missing = match applied {
            Ok(n) if n as usize >= wanted => {
                if failures > 0 {
                    tracing::info!("the database schema is up to date");
                }
                return Ok(());
            }
            Ok(n) => format!("{n} of {wanted} migrations applied"),
            // No table yet: nothing was ever migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
                "the database has no schema yet".to_string()
            }
            Err(e) if is_unavailable(&e) => one_line(&e),
            Err(e) => {
                return Err(DbSetupError::Migrate(sqlx::migrate::MigrateError::Execute(
                    e,
                )));
            }
        };
        if failures == 0 {
            tracing::warn!(
                %missing,
                "waiting for the database schema: run `webnet migrate`, or start `webnet serve`"
            );
        }
        failures += 1;
        tokio::time::sleep(jittered_pause(failures)).await;
    }
}

/// The pause after the `failures`-th failure in a row: `first` doubled per failure up to
/// `max`, ±50 %, so that processes that failed together (a database restart) do not retry
/// in step.
pub fn jittered_backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let base = first
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    base.mul_f64(rand::Rng::random_range(&mut rand::rng(), 0.5..1.5))
}

/// 250 ms doubled per failure up to 10 s, ±50 %.
fn jittered_pause(failures: u32) -> Duration {
    jittered_backoff(
        failures,
        Duration::from_millis(250),
        Duration::from_secs(10),
    )
}

/// A pool of one connection to `target`, opened when first used: for what must not wait
/// behind the pool's work, or holds its connection for good (LISTEN, an advisory lock, the
/// heartbeat). `acquire_timeout` bounds the wait for it (sqlx's default otherwise). `target`
/// is a pool's own options ([`same_as`]) or, behind a transaction pooler, the direct
/// connection's (`--listen-database-url`): LISTEN and session locks need a connection of
/// their own on the server.
pub fn own_connection(target: &PgConnectOptions, acquire_timeout: Option<Duration>) -> PgPool {
    let mut options = PgPoolOptions::new().max_connections(1);
    if let Some(timeout) = acquire_timeout {
        options = options.acquire_timeout(timeout);
    }
    options.connect_lazy_with(target.clone())
}

/// `pool`'s connect options: where [`own_connection`] goes when there is no pooler between
/// webnet and PostgreSQL.
pub fn same_as(pool: &PgPool) -> PgConnectOptions {
    (*pool.connect_options()).clone()
}

/// Begins a transaction on a connection of `pool`, on a task of its own so that it cannot be
/// cancelled halfway. sqlx 0.9 counts the transaction only once PostgreSQL has answered the
/// `BEGIN` (transact-rs/sqlx#4393): a request dropped in between (its client went away)
/// would leave the connection inside a transaction nothing ends, and the pool would hand it
/// to the next borrower, whose statements then hold their locks for good. Run to its end,
/// the `BEGIN` gives a transaction whose drop rolls it back, as every other drop does.
pub async fn begin(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, Postgres>> {
    let pool = pool.clone();
    // The task fails only if it panicked or the runtime is shutting down.
    tokio::spawn(async move { pool.begin().await })
        .await
        .unwrap_or(Err(sqlx::Error::WorkerCrashed))
}

/// Applies pending migrations (webnet's, then apalis's queue schema); applying them twice
/// is a no-op.
pub async fn migrate(pool: &PgPool) -> Result<(), DbSetupError> {
    MIGRATOR.run(pool).await?;
    apalis_postgres::PostgresStorage::setup(pool)
        .await
        .map_err(|e| DbSetupError::Queue(e.to_string()))?;
    // apalis notifies one channel for every new task, which no worker listens to any more
    // (each queue has a channel of its own, see `lifecycle::queue_channel`); the NOTIFY still
    // made every job's commit wait for the database-wide notification lock (see migration
    // 20261206000001). Dropped after apalis's migrations, each time, so that a migration of
    // a later apalis that creates it again does not bring it back.
    // Looked up first: dropping takes the table's exclusive lock even when there is nothing
    // to drop, and workers poll that table every second.
    sqlx::query(
        "DO $$ BEGIN
           IF EXISTS (SELECT 1 FROM pg_trigger
                      WHERE tgname = 'notify_workers' AND tgrelid = 'apalis.jobs'::regclass) THEN
             DROP TRIGGER notify_workers ON apalis.jobs;
           END IF;
         END $$",
    )
    .execute(pool)
    .await
    .map_err(|e| DbSetupError::Queue(e.to_string()))?;
    Ok(())
}

/// Whether `err` means the database cannot be reached or is going away (connection refused
/// or reset, pool timeout, server shutting down or starting up), as opposed to a fault of
/// the statement. Such errors are transient: wait and try again.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01–57P03: admin/crash shutdown, cannot
            // connect now (starting up or shutting down); 53300: too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether the database answered lately, kept by [`Availability::watch`] and read by the
/// readiness probe. The watch logs one line when the database becomes unreachable and one
/// when it is back, however many requests failed in between.
#[derive(Debug, Clone, Default)]
pub struct Availability {
    down: Arc<AtomicBool>,
}

impl Availability {
    /// How often the watch looks, and how long one look may take.
    pub const PERIOD: Duration = Duration::from_secs(1);

    /// Whether the last look failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Starts watching `pool` in the background (for the life of the process).
    pub fn watch(pool: PgPool) -> Self {
        let availability = Self::default();
        let flag = availability.clone();
        tokio::spawn(async move {
            let mut since: Option<Instant> = None;
            let mut tick = tokio::time::interval(Self::PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                let result =
                    tokio::time::timeout(Self::PERIOD, sqlx::query("SELECT 1").execute(&pool))
                        .await;
                match (result, since) {
                    (Ok(Ok(_)), Some(start)) => {
                        flag.down.store(false, Ordering::Relaxed);
                        since = None;
                        tracing::info!(
                            outage_seconds = format!("{:.1}", start.elapsed().as_secs_f64()),
                            "database reachable again"
                        );
                    }
                    (Ok(Ok(_)), None) => {}
                    (failed, None) => {
                        flag.down.store(true, Ordering::Relaxed);
                        since = Some(Instant::now());
                        let reason = match failed {
                            Ok(Err(e)) => one_line(&e),
                            _ => format!("no answer within {:?}", Self::PERIOD),
                        };
                        tracing::error!(
                            reason = %reason,
                            "database unreachable; requests that need it answer 503 until it returns"
                        );
                    }
                    (_, Some(_)) => {}
                }
            }
        });
        availability
    }
}

/// Appends ` AND <condition><value>` to a query being built when a filter's value is given:
/// `push_condition(qb, "j.status = ", filter.status)`.
pub fn push_condition<'t, T>(qb: &mut QueryBuilder<Postgres>, condition: &str, value: Option<T>)
where
    T: Encode<'t, Postgres> + Type<Postgres>,
{
    if let Some(value) = value {
        qb.push(" AND ").push(condition).push_bind(value);
    }
}
