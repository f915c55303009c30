//! Region health reaches browsers over SSE, whoever changed it, scoped by customer.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;
use webnet::app::router;
use webnet::auth::Role;
use webnet::crypto::SecretBox;
use webnet::state::{AppState, WebConfig};

use crate::helpers::{PASSWORD, TestApp};

/// Reads SSE frames from `body` until one contains `needle`, or gives up after `wait`.
async fn read_until(body: &mut Body, needle: &str, wait: Duration) -> Option<String> {
    let mut seen = String::new();
    tokio::time::timeout(wait, async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains(needle) {
                    return;
                }
            }
        }
    })
    .await
    .ok()
    .map(|()| seen)
}

#[sqlx::test]
async fn a_health_change_is_pushed_to_that_customers_browsers_only(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let id = app.region(&admin, "US East", "us-east-1").await;
    app.create_user("alice", Role::Viewer, &["acme"]).await;
    app.create_user("mallory", Role::Admin, &["globex"]).await;

    // Two browsers on a separate server process (another router, same database).
    let server = router(
        AppState::new(pool.clone(), SecretBox::random()),
        &WebConfig::default(),
    );
    let mut alice = TestApp::new(pool.clone()).await;
    alice.login("alice", PASSWORD).await;
    let mut mallory = TestApp::new(pool.clone()).await;
    let r = mallory.login("mallory", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let open = |cookie: String| {
        let server = server.clone();
        async move {
            let response = server
                .oneshot(
                    Request::get("/events")
                        .header(
                            header::COOKIE,
                            format!("{}={cookie}", webnet::state::SESSION_COOKIE),
                        )
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], "text/event-stream");
            response.into_body()
        }
    };
    let mut alice_stream = open(alice.session_cookie().unwrap().clone()).await;
    let mut mallory_stream = open(mallory.session_cookie().unwrap().clone()).await;
    // Let the listener subscribe before the change.
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.post_json(
        &admin,
        &format!("/api/v1/regions/{id}/update_health/"),
        json!({"health_status": "degraded", "message": "queue <slow>"}),
    )
    .await;

    let event = read_until(&mut alice_stream, "degraded", Duration::from_secs(5))
        .await
        .expect("alice's browser hears the change");
    assert!(
        event.contains(&format!("event: region-health-{id}")),
        "{event}"
    );
    assert!(event.contains("badge-degraded"));
    assert!(
        event.contains("queue &#60;slow&#62;") || event.contains("queue &lt;slow&gt;"),
        "{event}"
    );
    assert!(
        read_until(
            &mut mallory_stream,
            "region-health",
            Duration::from_millis(700)
        )
        .await
        .is_none(),
        "another customer's browser hears nothing"
    );
}

#[sqlx::test]
async fn a_change_made_with_plain_sql_reaches_the_badges_too(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let id = app.region(&admin, "US East", "us-east-1").await;
    app.create_user("alice", Role::Viewer, &["acme"]).await;
    let mut alice = TestApp::new(pool.clone()).await;
    alice.login("alice", PASSWORD).await;
    let server = router(
        AppState::new(pool.clone(), SecretBox::random()),
        &WebConfig::default(),
    );
    let mut stream = server
        .oneshot(
            Request::get("/events")
                .header(
                    header::COOKIE,
                    format!(
                        "{}={}",
                        webnet::state::SESSION_COOKIE,
                        alice.session_cookie().unwrap()
                    ),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .into_body();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("UPDATE regions SET health_status = 'offline' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let event = read_until(&mut stream, "offline", Duration::from_secs(5)).await;
    assert!(event.is_some_and(|e| e.contains("badge-offline")));
}

#[sqlx::test]
async fn the_event_stream_needs_a_signed_in_user(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    assert_eq!(
        app.get("/events").await.location(),
        Some("/login?next=%2Fevents")
    );
}
