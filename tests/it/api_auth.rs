//! Bearer tokens and sessions on the JSON API.

use axum::http::{Method, StatusCode};
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{TestApp, row_for, rows_mentioning, scalar_for};

#[sqlx::test]
async fn the_api_without_credentials_answers_401_in_json(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let response = app.api(Method::GET, "/api/v1/me/", None, None).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        response.json()["detail"],
        "Authentication credentials were not provided or are invalid."
    );
}

#[sqlx::test]
async fn malformed_and_unknown_tokens_are_401(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let unknown = format!("wn_{}", "x".repeat(40));
    for header in [
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-token",
        &format!("Bearer {unknown}"),
    ] {
        let response = app
            .request(Method::GET, "/api/v1/me/", &[("authorization", header)], "")
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{header}");
        assert!(response.json()["detail"].is_string());
    }
}

#[sqlx::test]
async fn a_valid_token_identifies_its_user_and_customers(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    let id = app
        .create_user("ops-bot", Role::Operator, &["acme", "globex"])
        .await;
    let token = app.token_for(id).await;

    let response = app
        .api(Method::GET, "/api/v1/me/", Some(&token), None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let me = response.json();
    assert_eq!(me["username"], "ops-bot");
    assert_eq!(me["role"], "operator");
    assert_eq!(me["is_superuser"], false);
    assert_eq!(me["id"], id);
    assert_eq!(me["is_active"], true);
    // Customers are ids, in the order of their names.
    let acme = app.customer_id("acme").await;
    let globex = app.customer_id("globex").await;
    assert_eq!(me["customers"], serde_json::json!([acme, globex]));

    let last_used: Option<time::OffsetDateTime> = scalar_for(
        &pool,
        "SELECT last_used_at FROM api_tokens WHERE user_id = $1",
        id,
    )
    .await;
    assert!(last_used.is_some());
}

#[sqlx::test]
async fn tokens_are_stored_as_sha256_hashes_only(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let id = app.create_user("ops-bot", Role::Operator, &["acme"]).await;
    let token = app.token_for(id).await;
    let (prefix, hash): (String, String) = row_for(
        &pool,
        "SELECT prefix, token_hash FROM api_tokens WHERE user_id = $1",
        id,
    )
    .await;
    assert_eq!(hash, webnet::auth::tokens::hash_token(&token));
    assert_eq!(hash.len(), 64);
    assert!(token.starts_with(&prefix) && prefix.len() < 12);
    assert_eq!(rows_mentioning(&pool, "api_tokens", &token[3..]).await, 0);
}

#[sqlx::test]
async fn the_browser_session_works_on_the_api_and_needs_csrf_for_unsafe_methods(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Admin).await;
    app.get("/").await;

    let me = app.api(Method::GET, "/api/v1/me/", None, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "alice");

    // An unsafe method authenticated only by the cookie is refused before routing...
    let response = app
        .api(
            Method::POST,
            "/api/v1/me/",
            None,
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(response.json()["detail"].as_str().unwrap().contains("CSRF"));
    // ...and passes the check with the token header (this route then answers 405).
    let token = app.csrf.clone().unwrap();
    let response = app
        .request(Method::POST, "/api/v1/me/", &[("x-csrf-token", &token)], "")
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[sqlx::test]
async fn bearer_requests_need_no_csrf_token(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let id = app.create_user("ops-bot", Role::Operator, &["acme"]).await;
    let token = app.token_for(id).await;
    let response = app
        .api(
            Method::POST,
            "/api/v1/me/",
            Some(&token),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
}
