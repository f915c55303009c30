//! The UI in a real headless Chromium (Playwright), against the real `webnet serve`:
//! sign in, bulk-assign every device of a filter across pages, watch a badge change live.
//! The scenario itself is `tests/browser/ui.test.mjs`.

use std::path::Path;
use std::process::Stdio;

use sqlx::PgPool;
use tokio::process::Command;
use webnet::auth::Role;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::helpers::{database_url, install, start_server};

const PASSWORD: &str = "browser-test-password";

/// Installs Chromium and playwright-core when they are missing (as CI does).
async fn ensure_browser(dir: &Path) {
    if dir.join("node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists()
    {
        return;
    }
    install(dir, "the browser test needs Chromium (apt) and node").await;
}

#[sqlx::test]
async fn the_ui_works_in_a_real_browser(pool: PgPool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    ensure_browser(&dir).await;

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
    let ssh_ports = routers
        .iter()
        .map(|r| r.addr.port().to_string())
        .collect::<Vec<_>>()
        .join(",");

    let (mut server, _, port) = start_server(&database_url(&pool), &[]).await;
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", "ui.test.mjs"])
        .current_dir(&dir)
        .env("WEBNET_URL", format!("http://127.0.0.1:{port}"))
        .env("WEBNET_USERNAME", "browser-admin")
        .env("WEBNET_PASSWORD", PASSWORD)
        .env("WEBNET_TOKEN", &token)
        .env("WEBNET_SSH_PORTS", &ssh_ports)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    server.kill().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("SSE badge latency"), "{stdout}");
    println!("{stdout}");
}
