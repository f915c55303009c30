//! Region health reaches browsers over SSE, whoever changed it, scoped by customer.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{ApiUser, PASSWORD, TestApp, another_server, open_stream};

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

/// An admin's API token and a region "US East" of customer "acme", whose viewer "alice"
/// is signed in on a browser of her own.
async fn region_and_alice(pool: &PgPool) -> (TestApp, ApiUser, i64, TestApp) {
    let (app, admin, id) = TestApp::with_region(pool.clone()).await;
    let alice = TestApp::signed_in(pool.clone(), Role::Viewer).await;
    (app, admin, id, alice)
}

#[sqlx::test]
async fn a_health_change_is_pushed_to_that_customers_browsers_only(pool: PgPool) {
    let (mut app, admin, id, alice) = region_and_alice(&pool).await;
    app.create_user("mallory", Role::Admin, &["globex"]).await;

    // Two browsers on a separate server process (another router, same database).
    let server = another_server(&pool);
    let mut mallory = TestApp::new(pool.clone()).await;
    let r = mallory.login("mallory", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut alice_stream = open_stream(&server, &alice, "/events").await;
    let mut mallory_stream = open_stream(&server, &mallory, "/events").await;
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
    let (_, _, id, alice) = region_and_alice(&pool).await;
    let mut stream = open_stream(&another_server(&pool), &alice, "/events").await;
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
