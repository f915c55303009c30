//! Signing in and out, sessions, CSRF and throttling, through the real router.

use std::net::SocketAddr;

use axum::http::{Method, StatusCode};
use sqlx::PgPool;
use webnet::auth::Role;
use webnet::state::WebConfig;

use crate::helpers::{PASSWORD, TestApp, rows_mentioning, scalar};

#[sqlx::test]
async fn anonymous_visitors_of_a_page_are_sent_to_login_with_the_page_as_next(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let response = app.get("/").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
    assert_eq!(response.location(), Some("/login"));

    assert_eq!(app.get("/logout").await.location(), Some("/login"));
}

#[sqlx::test]
async fn an_anonymous_htmx_request_is_told_to_redirect_to_login(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let response = app
        .request(Method::GET, "/", &[("HX-Request", "true")], "")
        .await;
    assert_eq!(response.header("hx-redirect"), Some("/login"));
}

#[sqlx::test]
async fn signing_in_lands_on_the_next_page_with_a_new_session_id(pool: PgPool) {
    let mut app = TestApp::with_alice(pool.clone(), Role::Operator).await;
    app.get("/login?next=/devices%3Fsite%3Dpar").await;
    let anonymous_session = app
        .session_cookie()
        .cloned()
        .expect("login page sets a session");
    let response = app.post_login("alice", PASSWORD, "/devices?site=par").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
    assert_eq!(response.location(), Some("/devices?site=par"));
    let session = app.session_cookie().cloned().unwrap();
    assert_ne!(
        session, anonymous_session,
        "session id must change at sign-in"
    );

    let dashboard = app.get("/").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert_eq!(dashboard.texts("[data-testid=current-user]"), ["alice"]);
    assert!(dashboard.texts(".who-meta")[0].contains("acme"));
    assert_eq!(dashboard.texts(".flash-success"), ["Signed in as alice."]);
    // Flash messages show once.
    assert!(app.get("/").await.texts(".flash-success").is_empty());

    let last_login = "SELECT last_login_at FROM users WHERE username = 'alice'";
    let last_login: Option<time::OffsetDateTime> = scalar(&pool, last_login).await;
    assert!(last_login.is_some());
}

#[sqlx::test]
async fn the_old_session_id_is_worthless_after_sign_in(pool: PgPool) {
    let mut app = TestApp::with_alice(pool, Role::Viewer).await;
    app.get("/login").await;
    let before = app.session_cookie().cloned().unwrap();
    app.login("alice", PASSWORD).await;

    let mut attacker = TestApp::new(app.pool.clone()).await;
    attacker.set_cookie(webnet::state::SESSION_COOKIE, &before);
    assert_eq!(attacker.get("/").await.location(), Some("/login"));
}

#[sqlx::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer(pool: PgPool) {
    let mut app = TestApp::with_alice(pool, Role::Viewer).await;
    let wrong = app.login("alice", "nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.texts("#login-error"),
        ["Invalid username or password."]
    );
    // The username is kept, the password is not echoed back.
    assert_eq!(wrong.attr("#username", "value").as_deref(), Some("alice"));
    assert!(!wrong.body.contains("nope"));

    let unknown = app.login("mallory", "nope").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.texts("#login-error"), wrong.texts("#login-error"));
    assert_eq!(app.get("/").await.location(), Some("/login"));
}

#[sqlx::test]
async fn next_never_redirects_to_another_site(pool: PgPool) {
    let mut app = TestApp::with_alice(pool, Role::Viewer).await;
    app.get("/login").await;
    let phish = app
        .post_login("alice", PASSWORD, "//evil.example/phish")
        .await;
    assert_eq!(phish.location(), Some("/"));

    // An already signed-in visitor of /login is redirected, also only locally.
    let again = app.get("/login?next=https://evil.example/").await;
    assert_eq!(again.location(), Some("/"));
}

#[sqlx::test]
async fn a_form_without_the_csrf_token_is_forbidden(pool: PgPool) {
    let mut app = TestApp::with_alice(pool, Role::Viewer).await;
    app.get("/login").await;
    let response = app
        .post_form_raw("/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(response.body.contains("CSRF token missing or incorrect"));

    let response = app
        .post_form_raw(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);

    app.login("alice", PASSWORD).await;
    app.get("/").await;
    let response = app.post_form_raw("/logout", &[]).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/").await.status, StatusCode::OK, "still signed in");
}

#[sqlx::test]
async fn htmx_requests_send_the_csrf_token_as_a_header(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Viewer).await;
    let page = app.get("/").await;
    let body_headers = page.attr("body", "hx-headers").unwrap();
    let headers: serde_json::Value = serde_json::from_str(&body_headers).unwrap();
    let token = headers["X-CSRF-Token"].as_str().unwrap().to_string();
    assert_eq!(Some(&token), app.csrf.as_ref());

    let htmx = [("HX-Request", "true"), ("X-CSRF-Token", token.as_str())];
    let response = app.request(Method::POST, "/logout", &htmx, "").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get("/").await.location(), Some("/login"));
}

#[sqlx::test]
async fn signing_out_deletes_the_session(pool: PgPool) {
    let mut app = TestApp::signed_in(pool.clone(), Role::Viewer).await;
    app.get("/").await;
    let session = app.session_cookie().cloned().unwrap();

    let confirm = app.get("/logout").await;
    assert_eq!(confirm.status, StatusCode::OK);
    let response = app.post_form("/logout", &[]).await;
    assert_eq!(response.location(), Some("/login?signed_out=1"));
    assert_eq!(
        app.get("/login?signed_out=1").await.texts(".flash-info"),
        ["You have been signed out."]
    );

    let mut replay = TestApp::new(pool).await;
    replay.set_cookie(webnet::state::SESSION_COOKIE, &session);
    assert_eq!(replay.get("/").await.location(), Some("/login"));
}

#[sqlx::test]
async fn sessions_live_in_postgres_not_in_the_process(pool: PgPool) {
    let app = TestApp::signed_in(pool.clone(), Role::Viewer).await;
    let session = app.session_cookie().cloned().unwrap();

    let stored: i64 = scalar(
        &pool,
        "SELECT count(*) FROM sessions WHERE data ? 'user_id'",
    )
    .await;
    assert_eq!(stored, 1);

    // A second server process (a new router) honours the same cookie.
    let mut other = TestApp::new(pool).await;
    other.set_cookie(webnet::state::SESSION_COOKIE, &session);
    assert_eq!(other.get("/").await.status, StatusCode::OK);
}

#[sqlx::test]
async fn the_session_cookie_is_http_only_lax_and_secure_when_configured(pool: PgPool) {
    let mut app = TestApp::with_config(
        pool.clone(),
        WebConfig {
            secure_cookies: true,
            ..WebConfig::default()
        },
    )
    .await;
    let response = app.get("/login").await;
    let cookie = response.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");

    let mut plain = TestApp::with_config(
        pool,
        WebConfig {
            secure_cookies: false,
            ..WebConfig::default()
        },
    )
    .await;
    let cookie = plain
        .get("/login")
        .await
        .header("set-cookie")
        .unwrap()
        .to_string();
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[sqlx::test]
async fn repeated_failures_for_one_username_are_throttled(pool: PgPool) {
    let mut app = TestApp::with_alice(pool, Role::Viewer).await;
    for _ in 0..webnet::auth::throttle::MAX_FAILURES_PER_USERNAME {
        assert_eq!(
            app.login("alice", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused until the window ends.
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    assert!(response.body.contains("Too many failed attempts"));
    // The username is matched case-insensitively.
    assert_eq!(
        app.login("ALICE", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test]
async fn a_success_clears_the_failures_of_that_username(pool: PgPool) {
    let mut app = TestApp::with_alice(pool, Role::Viewer).await;
    for _ in 0..webnet::auth::throttle::MAX_FAILURES_PER_USERNAME - 1 {
        app.login("alice", "guess").await;
    }
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    app.post_form("/logout", &[]).await;
    for _ in 0..webnet::auth::throttle::MAX_FAILURES_PER_USERNAME - 1 {
        assert_eq!(
            app.login("alice", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[sqlx::test]
async fn failures_from_one_address_are_throttled_across_usernames(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    app.peer = Some(SocketAddr::from(([192, 0, 2, 7], 40000)));
    for i in 0..webnet::auth::throttle::MAX_FAILURES_PER_ADDRESS {
        let response = app.login(&format!("user{i}"), "guess").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    }
    let response = app.login("someone-else", "guess").await;
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);

    // Another address is unaffected.
    app.peer = Some(SocketAddr::from(([192, 0, 2, 8], 40000)));
    assert_eq!(
        app.login("someone-else", "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// A failed sign-in through the form, as forwarded by a proxy for `client`.
async fn failed_login_from(app: &mut TestApp, client: &str, username: &str) -> StatusCode {
    app.get("/login").await;
    let token = app.csrf.clone().unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("username", username),
            ("password", "guess"),
            ("csrf_token", &token),
        ])
        .finish();
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-forwarded-for", client),
    ];
    app.request(Method::POST, "/login", &headers, &body)
        .await
        .status
}

#[sqlx::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance(pool: PgPool) {
    let mut proxied = TestApp::with_config(
        pool.clone(),
        WebConfig {
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            ..WebConfig::default()
        },
    )
    .await;
    proxied.peer = Some(SocketAddr::from(([127, 0, 0, 1], 40000)));
    for i in 0..webnet::auth::throttle::MAX_FAILURES_PER_ADDRESS {
        // Different usernames each time do not help: the address is counted.
        assert_eq!(
            failed_login_from(&mut proxied, "192.0.2.7", &format!("user{i}")).await,
            StatusCode::UNAUTHORIZED,
            "attempt {i}"
        );
    }
    assert_eq!(
        failed_login_from(&mut proxied, "192.0.2.7", "someone").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not locked out with it…
    assert_eq!(
        failed_login_from(&mut proxied, "192.0.2.8", "someone").await,
        StatusCode::UNAUTHORIZED
    );

    // …while without --trusted-proxy the header is anyone's to write and changes nothing:
    // the peer 192.0.2.7 is still the one throttled.
    let mut direct = TestApp::new(pool).await;
    direct.peer = Some(SocketAddr::from(([192, 0, 2, 7], 40000)));
    assert_eq!(
        failed_login_from(&mut direct, "203.0.113.1", "someone-else").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test]
async fn passwords_are_stored_only_as_argon2id_hashes(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.create_user("alice", Role::Viewer, &["acme"]).await;
    let hash = "SELECT password_hash FROM users WHERE username = 'alice'";
    let hash: String = scalar(&pool, hash).await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    assert_eq!(rows_mentioning(&pool, "users", PASSWORD).await, 0);
}

#[sqlx::test]
async fn user_supplied_text_is_escaped_in_pages(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let response = app.login("<script>alert(1)</script>", "x").await;
    assert!(!response.body.contains("<script>alert(1)</script>"));
    // Escaped in the markup, yet the browser sees exactly what was typed.
    assert_eq!(
        response.attr("#username", "value").as_deref(),
        Some("<script>alert(1)</script>")
    );
}
