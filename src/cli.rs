//! What each subcommand does.

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;

use crate::app;
use crate::auth::password::random_password;
use crate::auth::session_store::PgSessionStore;
use crate::auth::users;
use crate::auth::{Role, accounts, throttle, tokens};
use crate::config::{Cli, Command, CustomerCommand, ServeArgs, TokenCommand, UserCommand};
use crate::crypto::SecretBox;
use crate::error::AppError;
use crate::state::{AppState, WebConfig};
use crate::{customers, db};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let urls = DbUrls::of(&cli);
    match cli.command {
        Command::Serve(ref args) => {
            let secrets = secret_box(&cli)?;
            serve(&urls, args.clone(), secrets).await
        }
        Command::Worker(ref args) => {
            let secrets = secret_box(&cli)?;
            run_worker(&urls, args.clone(), secrets).await
        }
        Command::Monitor {
            degraded_after_seconds,
        } => {
            let pool = open(&urls, "webnet monitor", 2).await?;
            let stop = shutdown_signal();
            println!("health monitor started (active when it holds the lock, standby otherwise)");
            let monitor = crate::health::run(
                pool.clone(),
                crate::health::MonitorConfig {
                    degraded_after: Duration::from_secs(degraded_after_seconds),
                    lock_connection: direct_target(&urls, "webnet monitor")?,
                    ..Default::default()
                },
            );
            tokio::select! {
                () = monitor => {}
                () = stop => {}
            }
            pool.close().await;
            Ok(())
        }
        Command::Migrate => {
            let pool = open(&urls, "webnet", 2).await?;
            println!("database is up to date");
            pool.close().await;
            Ok(())
        }
        Command::Customer(CustomerCommand::Create { name }) => {
            let pool = open(&urls, "webnet", 2).await?;
            let mut conn = pool.acquire().await?;
            let (id, created) = customers::ensure(&mut conn, &name)
                .await
                .map_err(user_error)?;
            if created {
                println!("created customer {name:?} (id {id})");
            } else {
                println!("customer {name:?} already exists (id {id})");
            }
            Ok(())
        }
        Command::User(UserCommand::Create {
            username,
            role,
            customers,
            superuser,
            password_stdin,
        }) => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                let password = line.trim_end_matches(['\r', '\n']).to_string();
                if password.is_empty() {
                    bail!("the password on standard input is empty");
                }
                Some(password)
            } else {
                None
            };
            let pool = open(&urls, "webnet", 2).await?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(random_password);
            accounts::create_user(
                &pool,
                &username,
                role,
                superuser,
                &customers,
                password.clone(),
            )
            .await
            .map_err(user_error)?;
            println!("created user {username:?} ({})", role.as_str());
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::SeedDemo {
            regions,
            devices,
            customer,
        } => {
            if !(0..=1000).contains(&regions) || !(0..=10_000_000).contains(&devices) {
                bail!("use --regions 0..=1000 and --devices 0..=10000000");
            }
            let pool = open(&urls, "webnet", 2).await?;
            let mut conn = pool.acquire().await?;
            let started = std::time::Instant::now();
            let seeded = crate::demo::seed(&mut conn, &customer, regions, devices)
                .await
                .map_err(user_error)?;
            println!(
                "customer {customer:?} now has {} regions and {} devices ({:.1} s)",
                seeded.regions,
                seeded.devices,
                started.elapsed().as_secs_f64()
            );
            println!(
                "give a user access with: webnet user create <name> --role admin --customer {customer:?}"
            );
            Ok(())
        }
        // The benchmark is not part of the library: the `webnet` binary runs it itself.
        Command::Bench(_) => bail!("`bench` runs from the webnet binary, not through the library"),
        Command::Token(TokenCommand::Create { username, name }) => {
            let pool = open(&urls, "webnet", 2).await?;
            let mut conn = pool.acquire().await?;
            let user_id = users::id_for_username(&mut conn, &username)
                .await?
                .with_context(|| {
                    format!("no user {username:?}; create one with `webnet user create`")
                })?;
            let token = tokens::create_token(&mut conn, user_id, &name).await?;
            println!("{token}");
            Ok(())
        }
    }
}

/// The credential cipher, from `WEBNET_SECRET_KEY` or the key file.
fn secret_box(cli: &Cli) -> anyhow::Result<SecretBox> {
    let (secrets, from_file) = SecretBox::load(cli.secret_key.as_deref(), &cli.secret_key_file)?;
    if from_file {
        tracing::warn!(
            file = %cli.secret_key_file.display(),
            "WEBNET_SECRET_KEY is not set: using the key in this file. Set WEBNET_SECRET_KEY \
             (the same on every server and worker) in production"
        );
    }
    Ok(secrets)
}

/// `webnet worker`.
async fn run_worker(
    urls: &DbUrls,
    args: crate::config::WorkerArgs,
    secrets: SecretBox,
) -> anyhow::Result<()> {
    if args.regions.is_empty() && !args.default_queue {
        bail!("give at least one --region <identifier>, or --default-queue");
    }
    // Installed before the first line is printed, so that a SIGTERM at any moment stops
    // the worker gracefully, the patient waits for PostgreSQL and the schema included.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal = shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut queues = Vec::new();
    for region in &args.regions {
        let identifier = crate::types::identifier(region)
            .map_err(|m| anyhow::anyhow!("--region {region:?}: {m}"))?;
        queues.push(crate::lifecycle::queue_name(&identifier));
    }
    if args.default_queue {
        queues.push(crate::lifecycle::DEFAULT_QUEUE.to_string());
    }
    // The budget is the whole process's: its own connection (LISTEN and heartbeat) and the
    // queues' one, besides the dispatches' pool opened here.
    // A worker waits for PostgreSQL and for the schema, and never migrates: hundreds
    // starting at once must neither exit nor queue on the migration lock.
    let direct = direct_target(urls, "webnet worker")?;
    if direct.is_some() {
        db::set_transaction_pooled();
    }
    let ready = async {
        let pool = db::connect_patiently(
            &urls.pool,
            "webnet worker",
            args.db_max_connections.saturating_sub(2).max(1),
            db::REQUEST_ACQUIRE_TIMEOUT,
        )
        .await?;
        // The queues' connection, which stays open, also serves the start-up checks: the
        // dispatches' pool opens none until a dispatch runs.
        let queue_pool = db::own_connection(&db::same_as(&pool), None);
        db::wait_for_schema(&queue_pool).await?;
        anyhow::Ok((pool, queue_pool))
    };
    let (pool, queue_pool) = tokio::select! {
        ready = ready => ready?,
        () = stopped() => {
            tracing::info!("stopped while waiting for the database");
            return Ok(());
        }
    };
    for region in &args.regions {
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM regions WHERE identifier = $1)")
                .bind(region)
                .fetch_one(&queue_pool)
                .await?;
        if !known {
            tracing::warn!(region = %region, "no region has this identifier yet; its queue stays empty until one does");
        }
    }
    let state = std::sync::Arc::new({
        let mut s = crate::worker::WorkerState::new(
            pool.clone(),
            secrets,
            crate::worker::unique_name(args.name.as_deref()),
        );
        s.device_concurrency = args.device_concurrency;
        s.heartbeat = Duration::from_secs(args.heartbeat_seconds.clamp(1, 60));
        let s = s.with_queue_pool(queue_pool.clone());
        match direct {
            Some(direct) => s.with_listen_connection(direct),
            None => s,
        }
    });
    println!("worker {} consuming {}", state.name, queues.join(", "));
    crate::worker::run(
        state,
        crate::worker::Queues::Fixed(queues),
        args.concurrency,
        stopped(),
        Duration::from_secs(args.grace_seconds),
    )
    .await?;
    queue_pool.close().await;
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Where a process connects: its pools' URL (`--database-url`) and, when that goes through a
/// transaction pooler, PostgreSQL's own (`--listen-database-url`).
struct DbUrls {
    pool: String,
    direct: Option<String>,
}

impl DbUrls {
    fn of(cli: &Cli) -> Self {
        Self {
            pool: cli.database_url.clone(),
            direct: cli.listen_database_url.clone(),
        }
    }
}

/// Connects (creating the database if needed) and applies pending migrations. `role` is the
/// connections' `application_name`. Behind a transaction pooler (`--listen-database-url`),
/// the migrations run on the direct connection: sqlx holds a session lock while it applies
/// them, which a pooler would not keep on one server connection.
async fn open(urls: &DbUrls, role: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let timeout = db::REQUEST_ACQUIRE_TIMEOUT;
    if let Some(direct) = urls.direct.as_deref() {
        db::set_transaction_pooled();
        let direct = db::connect(direct, role, 1, timeout).await?;
        db::migrate(&direct).await?;
        direct.close().await;
        return Ok(db::connect(&urls.pool, role, max_connections, timeout).await?);
    }
    let pool = db::connect(&urls.pool, role, max_connections, timeout).await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

/// The direct connection's options (`--listen-database-url`), for LISTEN, heartbeats and
/// the monitor's lock; `None` when the pools reach PostgreSQL directly, and those
/// connections go where the pool goes.
fn direct_target(urls: &DbUrls, role: &str) -> anyhow::Result<Option<PgConnectOptions>> {
    Ok(urls
        .direct
        .as_deref()
        .map(|url| db::connect_options(url, role))
        .transpose()?)
}

/// Turns a validation error into a message for the terminal.
fn user_error(err: AppError) -> anyhow::Error {
    match err {
        AppError::Validation(fields) => anyhow::anyhow!(
            "{}",
            fields
                .0
                .iter()
                .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

/// On a database without users, creates the superuser `admin` and returns its password.
async fn bootstrap_admin(pool: &PgPool) -> anyhow::Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    if users::count(&mut conn).await? > 0 {
        return Ok(None);
    }
    drop(conn);
    let password = random_password();
    match accounts::create_user(pool, "admin", Role::Admin, true, &[], password.clone()).await {
        Ok(_) => Ok(Some(password)),
        // Another server process bootstrapped at the same moment.
        Err(AppError::Validation(_)) => Ok(None),
        Err(e) => Err(user_error(e)),
    }
}

/// `webnet serve`.
async fn serve(urls: &DbUrls, args: ServeArgs, secrets: SecretBox) -> anyhow::Result<()> {
    let pool = open(urls, "webnet serve", args.db_max_connections).await?;
    let direct = direct_target(urls, "webnet serve")?;
    let first_password = bootstrap_admin(&pool).await?;

    let listener = TcpListener::bind(args.bind).await.with_context(|| {
        format!(
            "cannot listen on {}; pick another address with --bind or WEBNET_BIND",
            args.bind
        )
    })?;
    // From here on (the banner is next) a SIGTERM stops the server gracefully.
    let signal = shutdown_signal();
    let addr = listener.local_addr()?;
    let config = WebConfig {
        secure_cookies: args.secure_cookies(),
        session_idle: Duration::from_secs(u64::from(args.session_idle_minutes) * 60),
        trusted_proxies: args.trusted_proxies.clone(),
    };
    let listen = direct.clone().unwrap_or_else(|| db::same_as(&pool));
    let mut state = AppState::with_listen_connection(pool.clone(), listen.clone(), secrets.clone());
    state.availability = db::Availability::watch(pool.clone());
    let live = state.live.clone();
    let router = app::router(state, &config);
    let maintenance = tokio::spawn(maintenance(
        pool.clone(),
        Duration::from_secs(u64::from(args.retention_days) * 86_400),
    ));
    let monitor = (!args.no_monitor).then(|| {
        tokio::spawn(crate::health::run(
            pool.clone(),
            crate::health::MonitorConfig {
                degraded_after: Duration::from_secs(args.degraded_after_seconds),
                lock_connection: direct.clone(),
                ..Default::default()
            },
        ))
    });

    let url = base_url(addr);
    println!("webnet is listening on {url}/");
    if let Some(password) = first_password {
        println!();
        println!("First run: sign in at {url}/login");
        println!("  username: admin");
        println!("  password: {password}");
        println!(
            "This password is shown only once. Change it, and add colleagues, in the browser \
             (your account page, and Users)."
        );
    }
    // One signal stops both the HTTP server and the embedded worker.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let worker = if args.no_worker {
        tracing::info!("running without the embedded worker");
        None
    } else {
        let state = std::sync::Arc::new(
            crate::worker::WorkerState::new(
                pool.clone(),
                secrets,
                crate::worker::unique_name(Some("embedded")),
            )
            .with_listen_connection(listen),
        );
        Some(tokio::spawn(crate::worker::run(
            state,
            crate::worker::Queues::All,
            4,
            stopped(stop_rx.clone()),
            Duration::from_secs(30),
        )))
    };

    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stopped(stop_rx).await;
        // Live streams never end by themselves; end them so in-flight requests drain.
        live.close();
    })
    .await
    .context("HTTP server failed")?;
    if let Some(worker) = worker {
        let _ = worker.await;
    }

    maintenance.abort();
    if let Some(monitor) = monitor {
        monitor.abort();
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn base_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}", addr.port())
}

/// Every few minutes: deletes expired sessions, stale sign-in counters, and history older
/// than the retention age.
async fn maintenance(pool: PgPool, retention: Duration) {
    use tower_sessions::session_store::ExpiredDeletion;
    let store = PgSessionStore::new(pool.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "deleting expired sessions failed");
        }
        match pool.acquire().await {
            Ok(mut conn) => {
                if let Err(e) = throttle::prune(&mut conn).await {
                    tracing::warn!(error = %e, "pruning sign-in counters failed");
                }
                if let Err(e) = crate::health::prune_history(&mut conn, retention).await {
                    tracing::warn!(error = %e, "pruning job logs and health events failed");
                }
                if let Err(e) = crate::lifecycle::prune_finished_tasks(&mut conn, retention).await {
                    tracing::warn!(error = %e, "pruning finished queue tasks failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "maintenance: database unavailable"),
        }
    }
}

/// Resolves when `signal` is received; never when its handler could not be installed.
#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not when the
/// future is first awaited: a signal that arrives while the process is still starting up
/// (after it printed its banner, say) must stop it gracefully, not kill it outright.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut terminate, mut interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            tokio::select! {
                () = received(terminate.as_mut()) => {},
                () = received(interrupt.as_mut()) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
