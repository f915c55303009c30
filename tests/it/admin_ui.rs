//! The administration pages: users, tokens, the audit trail, the account page.

use axum::http::{Method, StatusCode};
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{PASSWORD, TestApp, scalar};

/// A browser signed in as "alice", an admin of "acme", and the id of "acme".
async fn admin_of_acme(pool: PgPool) -> (TestApp, i64) {
    let app = TestApp::signed_in(pool, Role::Admin).await;
    let acme: i64 = sqlx::query_scalar("SELECT id FROM customers WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    (app, acme)
}

#[sqlx::test]
async fn an_admin_adds_a_colleague_who_can_then_sign_in(pool: PgPool) {
    let (mut app, acme) = admin_of_acme(pool.clone()).await;
    app.get("/users/new").await;
    let acme = acme.to_string();
    let r = app
        .post_form(
            "/users",
            &[
                ("username", "bob"),
                ("role", "operator"),
                ("customers", &acme),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = app.get("/users?q=bo").await;
    assert_eq!(list.texts("tbody td:first-child"), ["bob"]);

    let mut bob = TestApp::new(pool).await;
    let signed_in = bob.login("bob", "a long enough password").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let jobs = bob.get("/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK);
    // An operator manages nobody: the page is refused and the navigation hides it.
    assert_eq!(bob.get("/users").await.status, StatusCode::FORBIDDEN);
    assert!(!jobs.body.contains("href=\"/users\""));
}

#[sqlx::test]
async fn a_new_token_is_shown_once_works_and_is_refused_once_revoked(pool: PgPool) {
    let (mut app, _) = admin_of_acme(pool).await;
    app.get("/tokens").await;
    let made = app.post_form("/tokens", &[("name", "ci")]).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let token = made.attr("[data-new-token]", "data-new-token").unwrap();
    assert!(token.starts_with("wn_"));
    let me = app
        .api(Method::GET, "/api/v1/me/", Some(&token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);

    let again = app.get("/tokens").await;
    assert!(again.texts("[data-new-token]").is_empty());
    assert!(
        !again.body.contains(&token),
        "the secret is shown only once"
    );
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'ci'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let r = app.post_form(&format!("/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let me = app
        .api(Method::GET, "/api/v1/me/", Some(&token), None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn the_audit_page_lists_changes_with_their_actor_and_filters_them(pool: PgPool) {
    let (mut app, _) = admin_of_acme(pool).await;
    app.get("/regions/new").await;
    let r = app
        .post_form("/regions", &[("name", "Lab"), ("identifier", "lab")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    app.get("/tokens").await;
    app.post_form("/tokens", &[("name", "ci")]).await;

    let audit = app.get("/audit").await;
    let actions: Vec<String> = audit
        .html()
        .select(&scraper::Selector::parse("tr[data-action]").unwrap())
        .map(|row| {
            let v = row.value();
            format!(
                "{} {}",
                v.attr("data-action").unwrap(),
                v.attr("data-object-type").unwrap()
            )
        })
        .collect();
    assert_eq!(actions, ["create token", "create region"]);
    assert_eq!(audit.texts("[data-testid=actor]")[1], "alice");

    let regions = app.get("/audit?object_type=region").await;
    assert_eq!(regions.texts("tr[data-action]").len(), 1);
    let nobody = app.get("/audit?actor=nobody").await;
    assert!(!nobody.empty_state("audit").is_empty());
}

#[sqlx::test]
async fn changing_ones_password_needs_the_current_one(pool: PgPool) {
    let (mut app, _) = admin_of_acme(pool).await;
    app.get("/account").await;
    let new = "a brand new password";
    for (current, status) in [
        ("not it", StatusCode::BAD_REQUEST),
        (PASSWORD, StatusCode::SEE_OTHER),
    ] {
        let fields = [
            ("current_password", current),
            ("password", new),
            ("password_confirm", new),
        ];
        let r = app.post_form("/account/password", &fields).await;
        assert_eq!(r.status, status, "{}", r.body);
    }
    let mut later = TestApp::new(app.pool.clone()).await;
    let old = later.login("alice", PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let fresh = later.login("alice", "a brand new password").await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn signing_out_elsewhere_ends_the_other_sessions_only(pool: PgPool) {
    let (mut here, _) = admin_of_acme(pool.clone()).await;
    let mut there = TestApp::new(pool).await;
    there.login("alice", PASSWORD).await;
    assert_eq!(there.get("/").await.status, StatusCode::OK);
    here.get("/account").await;
    let r = here.post_form("/account/sessions", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(here.get("/").await.status, StatusCode::OK);
    let gone = there.get("/").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(gone.location().unwrap().starts_with("/login"));
}

#[sqlx::test]
async fn deactivating_a_user_in_the_browser_signs_them_out(pool: PgPool) {
    let (mut admin, acme) = admin_of_acme(pool.clone()).await;
    let bob = admin.create_user("bob", Role::Viewer, &["acme"]).await;
    let mut browser = TestApp::new(pool).await;
    browser.login("bob", PASSWORD).await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK);

    admin.get(&format!("/users/{bob}")).await;
    let acme = acme.to_string();
    // The "active" box unchecked.
    let r = admin
        .post_form(
            &format!("/users/{bob}"),
            &[("role", "viewer"), ("customers", &acme)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let gone = browser.get("/").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    let again = browser.login("bob", PASSWORD).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn a_superuser_of_no_customer_runs_a_job_on_the_devices_they_checked(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.superuser("root").await;
    let acme = app.api_user("a", Role::Admin, "acme").await;
    let device = app
        .device(
            &acme,
            serde_json::json!({"hostname": "edge-1", "mgmt_ip": "10.0.0.1"}),
        )
        .await;
    app.login("root", PASSWORD).await;
    app.get(&format!("/jobs/new?device_ids={device}")).await;
    let device = device.to_string();
    let r = app
        .post_form(
            "/jobs",
            &[
                ("device_ids", &device),
                ("type", "check_reachability"),
                ("timeout", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let owner: String = scalar(
        &pool,
        "SELECT c.name FROM jobs j JOIN customers c ON c.id = j.customer_id",
    )
    .await;
    assert_eq!(owner, "acme");
}

#[sqlx::test]
async fn an_admin_of_one_customer_of_a_shared_user_changes_only_memberships(pool: PgPool) {
    let (mut app, acme, _globex) = TestApp::two_customers(pool).await;
    let shared = app
        .create_user("shared", Role::Viewer, &["acme", "globex"])
        .await;
    let path = format!("/api/v1/users/{shared}/");

    // Globex is not acme's admin's business: not even its id shows.
    let seen = app.get_json(&acme, &path).await.json();
    assert_eq!(seen["customers"].as_array().unwrap().len(), 1);
    let audit = app.get_json(&acme, "/api/v1/audit/").await.body;
    let globex = app.customer_id("globex").await;
    assert!(!audit.contains(&format!("[{globex}]")), "{audit}");

    // What holds in globex too is refused: role, activity, password.
    for body in [
        serde_json::json!({"role": "admin"}),
        serde_json::json!({"is_active": false}),
    ] {
        let r = app.patch_json(&acme, &path, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    let reset = format!("{path}set_password/");
    let r = app.post_json(&acme, &reset, serde_json::json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Leaving acme is acme's admin's to decide; globex's membership stays.
    let r = app
        .patch_json(&acme, &path, serde_json::json!({"customers": []}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM user_customers WHERE user_id = $1")
        .bind(shared)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 1);
}
