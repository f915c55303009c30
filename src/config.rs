//! Command-line interface and configuration. Every flag can also be set from the environment.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::Role;

/// The webnet command line.
#[derive(Debug, Parser)]
#[command(name = "webnet", version, about = "Multi-region network automation")]
pub struct Cli {
    /// PostgreSQL connection URL; the database is created when it does not exist.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://localhost/webnet",
        hide_env_values = true
    )]
    pub database_url: String,

    /// A direct PostgreSQL URL, for when `--database-url` goes through a transaction pooler
    /// (PgBouncer ≥ 1.21, `pool_mode = transaction`, `max_prepared_statements` > 0). LISTEN
    /// (live updates, worker wake-ups), heartbeats, the health monitor's lock and migrations
    /// then use this one; the pools, everything else. Giving it also makes every statement
    /// a named prepared one, which the pooler carries across server connections.
    #[arg(
        long,
        global = true,
        env = "WEBNET_LISTEN_DATABASE_URL",
        hide_env_values = true
    )]
    pub listen_database_url: Option<String>,

    /// Key that encrypts device credentials at rest (32+ characters, e.g. `openssl rand -hex
    /// 32`). Every server and worker of a deployment needs the same key.
    #[arg(long, global = true, env = "WEBNET_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Where to keep a generated key when `WEBNET_SECRET_KEY` is not set (single-machine use).
    #[arg(
        long,
        global = true,
        env = "WEBNET_SECRET_KEY_FILE",
        default_value = ".webnet/secret.key"
    )]
    pub secret_key_file: std::path::PathBuf,

    /// Log output format.
    #[arg(long, global = true, env = "WEBNET_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web UI, the REST API and the health monitor.
    Serve(ServeArgs),
    /// Run a worker: consume regional queues (and the default queue) and run jobs.
    Worker(WorkerArgs),
    /// Run only the health monitor (`serve` runs one too; one acts at a time).
    Monitor {
        /// A region whose oldest queued task waited longer than this is degraded.
        #[arg(long, env = "WEBNET_DEGRADED_AFTER_SECONDS", default_value_t = 60)]
        degraded_after_seconds: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage customers (tenants).
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Fill the database with realistic demo regions and devices.
    SeedDemo {
        /// Regions to create.
        #[arg(long, default_value_t = 5)]
        regions: i64,
        /// Devices to create.
        #[arg(long, default_value_t = 1000)]
        devices: i64,
        /// Customer that receives them (created when missing).
        #[arg(long, default_value = "demo")]
        customer: String,
    },
    /// Measure the inventory paths on a throwaway database (see README).
    Bench(BenchArgs),
}

/// Options of `webnet serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WEBNET_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Do not run the embedded worker (use separate `webnet worker` processes).
    #[arg(long, env = "WEBNET_NO_WORKER")]
    pub no_worker: bool,

    /// Most connections the request pool opens. The server's whole budget is this, plus one
    /// for live updates (LISTEN), plus one for the embedded worker's wake-ups; idle
    /// connections close after 10 s.
    #[arg(long, env = "WEBNET_DB_MAX_CONNECTIONS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub db_max_connections: u32,

    /// Mark the session cookie `Secure`. Defaults to true unless binding to a loopback
    /// address, where browsers would otherwise drop the cookie on plain http.
    #[arg(long, env = "WEBNET_COOKIE_SECURE")]
    pub cookie_secure: Option<bool>,

    /// Do not run the health monitor (another server runs it; only one acts at a time anyway).
    #[arg(long, env = "WEBNET_NO_MONITOR")]
    pub no_monitor: bool,

    /// A region whose oldest queued task waited longer than this is degraded.
    #[arg(long, env = "WEBNET_DEGRADED_AFTER_SECONDS", default_value_t = 60)]
    pub degraded_after_seconds: u64,

    /// Finished queue tasks, job logs and health events older than this many days are pruned.
    #[arg(long, env = "WEBNET_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,

    /// Sign out browser sessions idle for this many minutes.
    #[arg(long, env = "WEBNET_SESSION_IDLE_MINUTES", default_value_t = 720)]
    pub session_idle_minutes: u32,

    /// A reverse proxy (address or CIDR range) whose `X-Forwarded-For` header is believed, so
    /// that sign-in throttling counts each client's address rather than the proxy's. Repeat
    /// the flag, or separate entries with commas in the environment. Without it the header
    /// is ignored: anyone could write it.
    #[arg(
        long = "trusted-proxy",
        env = "WEBNET_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_proxy
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `10.0.0.0/8`, or a single address such as `10.0.0.5`.
fn parse_proxy(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{raw:?} is not an IP address or CIDR range"))
}

impl ServeArgs {
    /// Whether the session cookie carries the `Secure` attribute.
    pub fn secure_cookies(&self) -> bool {
        self.cookie_secure
            .unwrap_or_else(|| !self.bind.ip().is_loopback())
    }
}

/// Options of `webnet worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Region identifier whose queue (`region_<identifier>`) to consume; repeat for several.
    #[arg(
        long = "region",
        value_name = "IDENTIFIER",
        env = "WEBNET_WORKER_REGIONS",
        value_delimiter = ','
    )]
    pub regions: Vec<String>,

    /// Also consume the default queue (devices without an available region).
    #[arg(long, env = "WEBNET_WORKER_DEFAULT_QUEUE")]
    pub default_queue: bool,

    /// Name shown on dispatches; a unique suffix is added for every process start.
    #[arg(long, env = "WEBNET_WORKER_NAME")]
    pub name: Option<String>,

    /// Dispatches run at once, per queue.
    #[arg(long, env = "WEBNET_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Devices of one dispatch worked on at once.
    #[arg(long, env = "WEBNET_WORKER_DEVICE_CONCURRENCY", default_value_t = 16)]
    pub device_concurrency: usize,

    /// Seconds between heartbeats; the worker counts as lost after three missed ones.
    #[arg(long, env = "WEBNET_WORKER_HEARTBEAT_SECONDS", default_value_t = 2)]
    pub heartbeat_seconds: u64,

    /// On SIGTERM, how long running dispatches may take to finish; those still running then
    /// are stopped and handed back to their queue (the job log says so).
    #[arg(long, env = "WEBNET_WORKER_GRACE_SECONDS", default_value_t = 30)]
    pub grace_seconds: u64,

    /// Most connections the worker opens, whatever its number of queues: one of its own
    /// listens for new tasks and writes the heartbeat, one serves the queues (polls, claims,
    /// acknowledgements), the rest run dispatches and close after 10 s unused. An idle worker
    /// holds two.
    #[arg(long, env = "WEBNET_DB_MAX_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(3..=1000))]
    pub db_max_connections: u32,
}

/// `webnet customer …`
#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer; does nothing when it already exists.
    Create {
        /// The customer's name.
        name: String,
    },
}

/// `webnet user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Prints a generated password unless `--password-stdin` is given.
    Create {
        /// Sign-in name.
        username: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Customer the user belongs to (created when missing); repeat for several.
        #[arg(long = "customer")]
        customers: Vec<String>,
        /// Sees and manages every customer.
        #[arg(long)]
        superuser: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `webnet token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new API token for a user, alone, on stdout. Only its hash is stored.
    Create {
        /// Owner of the token.
        username: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

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
    /// Which measurements: inventory (regions, devices), jobs (creation, enqueue→start
    /// latency, worker throughput), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub suite: Suite,
    /// Devices of the jobs suite's customer (all answering on a local TCP port).
    #[arg(long, default_value_t = 10_000)]
    pub job_devices: i64,
    /// Single-device jobs for the latency and throughput measurements.
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
}

/// Benchmark suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Regions and devices.
    Inventory,
    /// Job creation and execution.
    Jobs,
    /// Health and failover with real worker processes (not part of `all`: it takes about
    /// a minute per interval).
    Failover,
    /// Enqueue→start across processes: one real worker process per region (not part of
    /// `all`).
    Latency,
    /// What idle LISTEN connections cost each notification (not part of `all`).
    Notify,
    /// Inventory and jobs.
    All,
}
