//! The real `webnet` binary: database creation, migrations, CLI commands and first run.

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use tokio::io::AsyncWriteExt;

use crate::helpers::{
    TestApp, database_url, execute, http_get, scalar, sigterm, start_server, webnet,
};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(url: &str, args: &[&str]) -> Output {
    let out = webnet(url).args(args).output().await.unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A URL on the same server as `pool` but for a database that does not exist yet.
fn fresh_database_url(pool: &PgPool, name: &str) -> String {
    let base = database_url(pool);
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

async fn drop_database(pool: &PgPool, name: &str) {
    execute(
        pool,
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
}

#[sqlx::test]
async fn migrate_creates_a_missing_database_and_is_idempotent(pool: PgPool) {
    let name = format!("webnet_cli_{}", std::process::id());
    drop_database(&pool, &name).await;
    let url = fresh_database_url(&pool, &name);

    let first = run(&url, &["migrate"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(exists);

    let second = run(&url, &["migrate"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout.trim(), "database is up to date");

    let created = PgPool::connect(&url).await.unwrap();
    let applied: i64 = scalar(&created, "SELECT count(*) FROM _sqlx_migrations").await;
    assert_eq!(applied as usize, webnet::db::MIGRATOR.iter().count());
    created.close().await;
    drop_database(&pool, &name).await;
}

#[tokio::test]
async fn an_unreachable_database_gives_one_clear_line() {
    let out = run("postgres://127.0.0.1:1/webnet", &["migrate"]).await;
    assert_eq!(out.code, 1);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].starts_with("error: cannot connect to PostgreSQL at 127.0.0.1:1/webnet"));
    assert!(lines[0].contains("set DATABASE_URL"));
    assert!(!out.stderr.contains("panicked"));
}

#[sqlx::test]
async fn customer_create_is_idempotent(pool: PgPool) {
    let url = database_url(&pool);
    let first = run(&url, &["customer", "create", "Acme Corp"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.starts_with("created customer \"Acme Corp\""));
    let second = run(&url, &["customer", "create", "Acme Corp"]).await;
    assert_eq!(second.code, 0);
    assert!(second.stdout.contains("already exists"));
    let count: i64 = scalar(
        &pool,
        "SELECT count(*) FROM customers WHERE name = 'Acme Corp'",
    )
    .await;
    assert_eq!(count, 1);
}

#[sqlx::test]
async fn user_create_prints_a_generated_password_that_signs_in(pool: PgPool) {
    let url = database_url(&pool);
    let out = run(
        &url,
        &[
            "user",
            "create",
            "alice",
            "--role",
            "operator",
            "--customer",
            "acme",
            "--customer",
            "globex",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let password = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password is printed")
        .to_string();
    assert_eq!(password.len(), 20);

    let memberships: Vec<String> = sqlx::query_scalar(
        "SELECT c.name FROM user_customers uc JOIN customers c ON c.id = uc.customer_id
         JOIN users u ON u.id = uc.user_id WHERE u.username = 'alice' ORDER BY c.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(memberships, ["acme", "globex"]);

    let mut app = TestApp::new(pool).await;
    let response = app.login("alice", &password).await;
    assert_eq!(response.location(), Some("/"));
}

#[sqlx::test]
async fn user_create_reads_the_password_from_stdin(pool: PgPool) {
    let url = database_url(&pool);
    let mut child = webnet(&url)
        .args([
            "user",
            "create",
            "root2",
            "--role",
            "admin",
            "--superuser",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin-secret\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("password:"),
        "no password printed: {stdout}"
    );

    let superuser: bool = scalar(
        &pool,
        "SELECT is_superuser FROM users WHERE username = 'root2'",
    )
    .await;
    assert!(superuser);
    let mut app = TestApp::new(pool).await;
    assert_eq!(
        app.login("root2", "from-stdin-secret").await.location(),
        Some("/")
    );
}

#[sqlx::test]
async fn user_create_refuses_a_taken_username_and_a_bad_role(pool: PgPool) {
    let url = database_url(&pool);
    assert_eq!(
        run(&url, &["user", "create", "bob", "--role", "viewer"])
            .await
            .code,
        0
    );
    let again = run(&url, &["user", "create", "bob", "--role", "viewer"]).await;
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("username: A user with this username already exists."),
        "{}",
        again.stderr
    );
    let bad_role = run(&url, &["user", "create", "carol", "--role", "king"]).await;
    assert_eq!(bad_role.code, 2);
    assert!(
        bad_role.stderr.contains("viewer, operator, admin"),
        "{}",
        bad_role.stderr
    );
}

#[sqlx::test]
async fn token_create_prints_only_a_working_token(pool: PgPool) {
    let url = database_url(&pool);
    run(
        &url,
        &[
            "user",
            "create",
            "bot",
            "--role",
            "operator",
            "--customer",
            "acme",
        ],
    )
    .await;
    let out = run(&url, &["token", "create", "bot", "--name", "ci"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.trim_end();
    assert!(
        !token.contains('\n') && webnet::auth::tokens::looks_like_token(token),
        "{token}"
    );

    let name: String = scalar(&pool, "SELECT name FROM api_tokens").await;
    assert_eq!(name, "ci");
    let mut app = TestApp::new(pool).await;
    let me = app
        .api(axum::http::Method::GET, "/api/v1/me/", Some(token), None)
        .await;
    assert_eq!(me.json()["username"], "bot");

    let missing = run(&url, &["token", "create", "nobody"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no user \"nobody\""));
}

#[sqlx::test]
async fn serve_prints_the_admin_password_once_and_stops_on_sigterm(pool: PgPool) {
    let url = database_url(&pool);
    let (mut child, lines, port) = start_server(&url, &["--no-worker"]).await;
    let password = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("first run prints the password: {lines:?}"))
        .to_string();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("sign in at http://127.0.0.1:{port}/login")))
    );

    let health = http_get(port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let login = http_get(port, "/login").await;
    assert!(login.contains("Sign in to webnet"));

    let mut app = TestApp::new(pool.clone()).await;
    assert_eq!(app.login("admin", &password).await.location(), Some("/"));
    let me = app.get("/").await;
    assert!(me.texts(".who-meta")[0].contains("superuser"));

    // SIGTERM: a graceful stop with exit code 0.
    let status = sigterm(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");

    // Second start: users exist, nothing secret is printed.
    let (mut child, lines, _) = start_server(&url, &["--no-worker"]).await;
    assert!(!lines.iter().any(|l| l.contains("password")), "{lines:?}");
    child.kill().await.unwrap();
}

#[sqlx::test]
async fn seed_demo_fills_a_customer_and_is_idempotent(pool: PgPool) {
    let url = database_url(&pool);
    let out = run(&url, &["seed-demo", "--regions", "3", "--devices", "300"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("now has 3 regions and 300 devices"),
        "{}",
        out.stdout
    );
    let again = run(&url, &["seed-demo", "--regions", "3", "--devices", "300"]).await;
    assert!(again.stdout.contains("now has 3 regions and 300 devices"));

    let (assigned, regions_used, sites, vendors): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(region_id), count(DISTINCT region_id), count(DISTINCT site), count(DISTINCT vendor)
         FROM devices JOIN device_assignments ON device_id = id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (240..=300).contains(&assigned),
        "about 90 % assigned: {assigned}"
    );
    assert_eq!(regions_used, 3);
    assert_eq!(sites, 30);
    assert_eq!(vendors, 3);
    // Every device's site belongs to exactly one region.
    let split_sites: i64 = scalar(
        &pool,
        "SELECT count(*) FROM (SELECT site FROM devices JOIN device_assignments ON device_id = id
                               WHERE region_id IS NOT NULL
                               GROUP BY site HAVING count(DISTINCT region_id) > 1) s",
    )
    .await;
    assert_eq!(split_sites, 0);
}
