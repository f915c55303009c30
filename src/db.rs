//! Connecting to PostgreSQL: creating the database on first use and applying migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

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

/// Opens a pool on `url`, creating the database through the server's maintenance database
/// (`postgres`) when it does not exist yet.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbSetupError> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| DbSetupError::BadUrl(e.to_string()))?
        .application_name("webnet")
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));

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

    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts.clone())
        .await
        .map_err(|e| unreachable(&e, &opts))
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

/// Applies pending migrations (webnet's, then apalis's queue schema); applying them twice
/// is a no-op.
pub async fn migrate(pool: &PgPool) -> Result<(), DbSetupError> {
    MIGRATOR.run(pool).await?;
    apalis_postgres::PostgresStorage::setup(pool)
        .await
        .map_err(|e| DbSetupError::Queue(e.to_string()))?;
    Ok(())
}
