//! webnet behind PgBouncer in transaction mode, as a deployment of hundreds of workers runs
//! it: `serve` and a regional worker send their pools' statements through a real PgBouncer
//! (built from Debian's source package by `tests/pgbouncer/install.sh`), and keep LISTEN,
//! heartbeats and the monitor's lock on direct connections (`--listen-database-url`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;
use webnet::crypto::SecretBox;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{
    SECRET_KEY, TestApp, database_url, http, install, sigterm, start_server, start_worker,
    wait_until,
};
use crate::private_pg::{free_port, is_root};

/// The most server connections PgBouncer opens to the test's database.
const POOL_SIZE: usize = 3;

/// A PgBouncer in transaction mode on a free port of 127.0.0.1, in front of the shared
/// PostgreSQL; stopped and removed when dropped.
struct PgBouncer {
    dir: PathBuf,
    child: std::process::Child,
    port: u16,
}

impl PgBouncer {
    async fn start(upstream_port: u16) -> PgBouncer {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pgbouncer");
        let built = source.join(".build/bin/pgbouncer");
        if !built.exists() {
            install(
                &source,
                "the PgBouncer test builds Debian's PgBouncer source",
            )
            .await;
        }
        let dir = std::env::temp_dir().join(format!("webnet-pgbouncer-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        // Its own copy, so that the `postgres` user (PgBouncer refuses to run as root) can
        // run it wherever the checkout lives.
        let binary = dir.join("pgbouncer");
        std::fs::copy(&built, &binary).unwrap();
        let port = free_port();
        std::fs::write(dir.join("users.txt"), "\"root\" \"\"\n\"postgres\" \"\"\n").unwrap();
        // The settings the deployment guide gives: transaction pooling, protocol-level
        // prepared statements, and sqlx's start-up parameter ignored.
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={upstream_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/users.txt\nadmin_users = root\n\
             pool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\n\
             max_client_conn = 200\nmax_prepared_statements = 200\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        let mut command = if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres", dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success(), "chown PgBouncer's directory");
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(std::process::Stdio::null())
            // It logs to its file too, which failure messages quote.
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("PgBouncer starts");
        let bouncer = PgBouncer { dir, child, port };
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            async || match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!(
                    "PgBouncer is not listening: {e}\n{}",
                    bouncer.log()
                )),
            },
        )
        .await;
        bouncer
    }

    /// A URL for `database` through this PgBouncer.
    fn url(&self, database: &str) -> String {
        format!("postgres://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Rows of a `SHOW` command on PgBouncer's admin console, as `|`-separated fields.
    fn show(&self, what: &str) -> Vec<Vec<String>> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "root",
            ])
            .args(["-X", "-A", "-t", "-F", "|", "-d", "pgbouncer", "-c"])
            .arg(format!("SHOW {what}"))
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "SHOW {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }

    /// The backend pids of PgBouncer's server connections to `database`.
    fn server_pids(&self, database: &str) -> Vec<i32> {
        // SHOW SERVERS: type, user, database, …, remote_pid is the 17th field.
        self.show("SERVERS")
            .iter()
            .filter(|row| row.get(2).map(String::as_str) == Some(database))
            .filter_map(|row| row.get(16)?.parse().ok())
            .collect()
    }

    /// How many transactions PgBouncer has carried to `database`.
    fn transactions(&self, database: &str) -> u64 {
        // SHOW STATS: database, total_server_assignment_count, total_xact_count, …
        self.show("STATS")
            .iter()
            .find(|row| row.first().map(String::as_str) == Some(database))
            .and_then(|row| row.get(2)?.parse().ok())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes SIGTERM on to PgBouncer, which exits at once.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `(pid, application_name)` of the direct (unpooled) connections to the test's database:
/// every backend that is not one of PgBouncer's server connections, but this test's own.
async fn direct_connections(pool: &PgPool, pooled: &[i32]) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, application_name FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND application_name LIKE 'webnet %' AND NOT (pid = ANY($1))
         ORDER BY application_name, pid",
    )
    .bind(pooled)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_server_and_a_worker_behind_pgbouncer_run_jobs_and_searches_and_listen_directly(
    pool: PgPool,
) {
    webnet::db::migrate(&pool).await.unwrap();
    let direct = database_url(&pool);
    let database = pool.connect_options().get_database().unwrap().to_string();
    let bouncer = PgBouncer::start(pool.connect_options().get_port()).await;
    let bounced = bouncer.url(&database);

    let (mut server, _, port) =
        start_server(&bounced, &["--no-worker", "--listen-database-url", &direct]).await;
    let (mut worker, _) = start_worker(
        &bounced,
        &[
            "--region",
            "us-east-1",
            "--name",
            "bounced",
            "--listen-database-url",
            &direct,
        ],
    )
    .await;

    let app = TestApp::with_state(pool.clone(), SecretBox::from_secret(SECRET_KEY).unwrap()).await;
    let admin = app.api_user("ops", Role::Admin, "acme").await;
    let token = Some(admin.token.as_str());
    // Everything from here on goes to the server process, and through PgBouncer.
    let post = async |path: &str, body: serde_json::Value| {
        let reply = http(port, "POST", path, token, Some(&body)).await.unwrap();
        assert!(
            reply.status == 201 || reply.status == 202,
            "{path}: {} {}",
            reply.status,
            reply.body
        );
        serde_json::from_str::<serde_json::Value>(&reply.body).unwrap()
    };
    let region = post(
        "/api/v1/regions/",
        json!({"name": "US East", "identifier": "us-east-1"}),
    )
    .await["id"]
        .clone();
    let credential = post(
        "/api/v1/credentials/",
        json!({"name": "netops", "username": "netops", "password": "s3cret"}),
    )
    .await["id"]
        .clone();
    let router = FakeDevice::start(
        FakeDeviceConfig::new("netops", "s3cret").respond("show version", "IOS (bounced)"),
    )
    .await;
    let mut devices = Vec::new();
    for i in 0..5 {
        let body = json!({"hostname": format!("edge-{i}"), "mgmt_ip": "127.0.0.1",
            "port": router.addr.port(), "credential": credential, "region": region});
        devices.push(post("/api/v1/devices/", body).await["id"].clone());
    }

    let job = post(
        "/api/v1/commands/run",
        json!({"targets": {"device_ids": devices}, "commands": ["show version"]}),
    )
    .await["job_id"]
        .as_i64()
        .unwrap();
    let finished = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let path = format!("/api/v1/jobs/{job}/");
            let reply = http(port, "GET", &path, token, None).await.unwrap();
            let job: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            match job["status"].as_str() {
                Some("queued" | "running") => Err(format!("job still {}", job["status"])),
                _ => Ok(job),
            }
        },
    )
    .await;
    assert_eq!(finished["status"], "success", "{finished}");
    assert_eq!(finished["dispatches"][0]["queue"], "region_us-east-1");
    assert_eq!(
        router.commands_seen().len(),
        5,
        "each device ran the command"
    );
    let results = http(
        port,
        "GET",
        &format!("/api/v1/jobs/{job}/results/"),
        token,
        None,
    )
    .await
    .unwrap();
    assert_eq!(results.status, 200, "{}", results.body);
    assert!(results.body.contains("IOS (bounced)"), "{}", results.body);

    // Searches (whose statements webnet would rather leave unnamed) and plain lists, many at
    // once, so that PgBouncer hands each client several server connections in turn.
    let searches = (0..24).map(|i| async move {
        let path = match i % 3 {
            0 => "/api/v1/devices/?q=edge",
            1 => "/api/v1/devices/?q=127.0.0.1",
            _ => "/api/v1/devices/",
        };
        let reply = http(port, "GET", path, token, None).await.unwrap();
        (path, reply.status, reply.body)
    });
    for (path, status, body) in futures::future::join_all(searches).await {
        assert_eq!(status, 200, "{path}: {body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["count"], 5, "{path}: {body}");
    }

    // PgBouncer carried the pools' work on at most its pool size of server connections…
    assert!(
        bouncer.transactions(&database) > 20,
        "PgBouncer carried {} transactions",
        bouncer.transactions(&database)
    );
    let pooled = bouncer.server_pids(&database);
    assert!(
        !pooled.is_empty() && pooled.len() <= POOL_SIZE,
        "server connections: {pooled:?}"
    );
    // …and LISTEN, heartbeats and the monitor's lock went straight to PostgreSQL: the
    // worker's one connection, the server's live-updates listener and its monitor's lock.
    let direct_now = direct_connections(&pool, &pooled).await;
    let count = |role: &str| direct_now.iter().filter(|(_, r)| r == role).count();
    assert_eq!(count("webnet worker"), 1, "{direct_now:?}");
    assert!((1..=2).contains(&count("webnet serve")), "{direct_now:?}");
    // The worker's heartbeat (on its direct connection) keeps its region healthy.
    let region = http(
        port,
        "GET",
        &format!("/api/v1/regions/{region}/"),
        token,
        None,
    )
    .await
    .unwrap();
    assert!(
        region.body.contains("\"health_status\":\"healthy\""),
        "{}",
        region.body
    );

    for child in [&mut worker, &mut server] {
        assert!(sigterm(child, Duration::from_secs(15)).await.success());
    }
    assert!(
        !bouncer.log().contains("prepared statement"),
        "PgBouncer saw prepared-statement errors:\n{}",
        bouncer.log()
    );
}
