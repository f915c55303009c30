//! The UI in a real headless Chromium (Playwright), against the real `webnet serve`:
//! sign in, bulk-assign every device of a filter across pages, watch a badge change live
//! (`tests/browser/ui.test.mjs`); and a newcomer's path on a fresh installation, from the
//! first-run password to a finished job, users, tokens and the audit trail
//! (`tests/browser/newcomer.test.mjs`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use tokio::process::{Child, Command};
use webnet::auth::Role;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{database_url, first_run_password, install, start_server};

const PASSWORD: &str = "browser-test-password";

/// `tests/browser`, with Chromium and playwright-core installed when they are missing (as
/// CI does).
async fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists()
        || !dir.join("node_modules/axe-core/axe.min.js").exists()
        || !Path::new("/usr/bin/chromium").exists()
    {
        install(&dir, "the browser test needs Chromium (apt) and node").await;
    }
    dir
}

/// Runs `node --test <script>` in `dir` with `env`, then stops `server`; asserts that the
/// scenario passed and returns what it printed.
async fn run_scenario(
    dir: &Path,
    script: &str,
    env: &[(&str, String)],
    mut server: Child,
) -> String {
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", script])
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    server.kill().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    stdout
}

#[sqlx::test]
async fn the_ui_works_in_a_real_browser(pool: PgPool) {
    let dir = browser_dir().await;

    let user = webnet::auth::accounts::create_user(
        &pool,
        "browser-admin",
        Role::Admin,
        false,
        &["acme".to_string()],
        PASSWORD.to_string(),
    )
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let token = webnet::auth::tokens::create_token(&mut conn, user, "browser")
        .await
        .unwrap();
    drop(conn);

    // Two stand-in routers for the job step: real SSH servers on 127.0.0.1.
    let mut routers = Vec::new();
    for name in ["edge-a", "edge-b"] {
        routers.push(
            FakeDevice::start(FakeDeviceConfig::new("netops", "s3cret").respond(
                "show version",
                format!("Cisco IOS Software, Version 15.2 ({name})"),
            ))
            .await,
        );
    }
    // And one that answers after half a minute: a job on it stays running meanwhile.
    let mut slow = FakeDeviceConfig::new("netops", "s3cret").respond("show tech-support", "…");
    slow.delay = Duration::from_secs(30);
    routers.push(FakeDevice::start(slow).await);
    let ssh_ports = routers
        .iter()
        .map(|r| r.addr.port().to_string())
        .collect::<Vec<_>>()
        .join(",");

    let (server, _, port) = start_server(&database_url(&pool), &[]).await;
    let env = [
        ("WEBNET_URL", format!("http://127.0.0.1:{port}")),
        ("WEBNET_USERNAME", "browser-admin".to_string()),
        ("WEBNET_PASSWORD", PASSWORD.to_string()),
        ("WEBNET_TOKEN", token),
        ("WEBNET_SSH_PORTS", ssh_ports),
    ];
    let stdout = run_scenario(&dir, "ui.test.mjs", &env, server).await;
    assert!(stdout.contains("SSE badge latency"), "{stdout}");
}

/// On a fresh database and with nobody created beforehand, a stranger signs in with the
/// password the server printed, sets up a customer, a credential, a region and a device
/// through the forms, runs a job and sees it succeed, then creates an operator whose token
/// they revoke, and finds all of it in the audit trail. Also refreshes the README's
/// screenshots of the users, tokens and audit pages.
#[sqlx::test]
async fn a_newcomer_reaches_a_finished_job_and_administers_users_in_the_browser(pool: PgPool) {
    let dir = browser_dir().await;
    let device = FakeDevice::start(FakeDeviceConfig::new("netops", "s3cret").respond(
        "show version",
        "Cisco IOS Software, Version 15.2 (newcomer)",
    ))
    .await;

    // The default `webnet serve`: it runs the jobs itself (embedded worker).
    let (server, printed, port) = start_server(&database_url(&pool), &[]).await;
    let password = first_run_password(&printed, port);
    let env = [
        ("WEBNET_URL", format!("http://127.0.0.1:{port}")),
        ("WEBNET_FIRST_PASSWORD", password),
        ("WEBNET_SSH_PORT", device.addr.port().to_string()),
    ];
    let stdout = run_scenario(&dir, "newcomer.test.mjs", &env, server).await;
    assert!(
        stdout.contains("newcomer path: job succeeded in"),
        "{stdout}"
    );
}
