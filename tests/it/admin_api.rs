//! Administration on `/api/v1`: customers, users, tokens, `/me/` and the audit trail.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use webnet::auth::Role;
use webnet::state::SESSION_COOKIE;

use crate::helpers::{
    ApiUser, PASSWORD, TestApp, TestResponse, assert_has_fields, count_rows, execute,
    rows_mentioning, scalar,
};

const LAST_SUPERUSER: &str =
    "This is the last active superuser: make another user a superuser first.";

fn user_path(id: i64) -> String {
    format!("/api/v1/users/{id}/")
}

/// `PATCH /users/{id}/` as `actor`.
async fn patch_user(app: &mut TestApp, actor: &ApiUser, id: i64, body: Value) -> TestResponse {
    app.patch_json(actor, &user_path(id), body).await
}

/// The audit rows `user` may read that match `query` (`actor=admin&…`), newest first.
async fn audit(app: &mut TestApp, user: &ApiUser, query: &str) -> Vec<Value> {
    let path = format!("/api/v1/audit/?page_size=1000&{query}");
    app.list(user, &path).await
}

/// `field` of each row, as text (`""` for null).
fn texts(rows: &[Value], field: &str) -> Vec<String> {
    let text = |r: &Value| r[field].as_str().unwrap_or_default().to_string();
    rows.iter().map(text).collect()
}

/// The usernames `user` sees in the user list.
async fn usernames(app: &mut TestApp, user: &ApiUser) -> Vec<String> {
    texts(&app.list(user, "/api/v1/users/").await, "username")
}

/// A time `days` from now, as RFC 3339.
fn days_from_now(days: i64) -> String {
    let at = OffsetDateTime::now_utc() + time::Duration::days(days);
    at.format(&Rfc3339).unwrap()
}

/// Creates a token through the API as `user`; the answer (with its secret in `token`).
async fn new_token(app: &mut TestApp, user: &ApiUser, body: Value) -> (Value, ApiUser) {
    let made = app.create(user, "/api/v1/tokens/", body).await;
    let token = made["token"].as_str().unwrap().to_string();
    (made, ApiUser { id: user.id, token })
}

/// The status `GET /me/` answers for `user`'s token.
async fn me_status(app: &mut TestApp, user: &ApiUser) -> StatusCode {
    app.get_json(user, "/api/v1/me/").await.status
}

#[sqlx::test]
async fn an_admin_cannot_reach_the_users_tokens_or_audit_rows_of_another_customer(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool).await;
    let bob = app.api_user("bob", Role::Operator, "globex").await;
    app.region(&acme, "Ours", "ours").await;
    app.region(&globex, "Theirs", "theirs").await;
    let bobs_token = app.list(&bob, "/api/v1/tokens/").await[0]["id"].clone();
    let bob_path = user_path(bob.id);
    let reset = format!("{bob_path}set_password/");

    let calls = vec![
        (Method::GET, bob_path.clone(), None),
        (
            Method::PATCH,
            bob_path.clone(),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::PATCH,
            bob_path.clone(),
            Some(json!({"is_active": false})),
        ),
        (
            Method::POST,
            reset.clone(),
            Some(json!({"password": PASSWORD})),
        ),
        (Method::POST, reset, Some(json!({}))),
        (
            Method::GET,
            format!("/api/v1/tokens/?user={}", bob.id),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/tokens/{bobs_token}/"),
            None,
        ),
    ];
    app.assert_each(&acme, calls, StatusCode::NOT_FOUND).await;
    assert_eq!(usernames(&mut app, &acme).await, ["admin"]);
    assert!(app.list(&acme, "/api/v1/users/?q=bob").await.is_empty());
    // Nothing happened to bob: his token works and he is still an active operator.
    let me = app.get_json(&bob, "/api/v1/me/").await.json();
    assert_eq!(
        (&me["role"], &me["is_active"]),
        (&json!("operator"), &json!(true))
    );
    assert_eq!(
        texts(&audit(&mut app, &acme, "").await, "object_repr"),
        ["Ours"]
    );

    // A superuser sees and manages both customers' users, and reads every row.
    let root = app.superuser("root").await;
    let everyone = ["admin", "bob", "globex-admin", "root"];
    assert_eq!(usernames(&mut app, &root).await, everyone);
    assert_eq!(app.get_json(&root, &bob_path).await.status, StatusCode::OK);
    let rows = audit(&mut app, &root, "").await;
    assert_eq!(texts(&rows, "object_repr"), ["Theirs", "Ours"]);
}

#[sqlx::test]
async fn only_a_superuser_may_change_a_superuser_or_make_one(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let acme = app.customer_id("acme").await;
    let root = app.superuser("root").await;
    let joined = patch_user(&mut app, &root, root.id, json!({"customers": [acme]})).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    let roots_token = app.list(&root, "/api/v1/tokens/").await[0]["id"].clone();

    // The admin sees the superuser of their customer, but may not touch them.
    let path = user_path(root.id);
    assert_eq!(app.get_json(&admin, &path).await.status, StatusCode::OK);
    let calls = vec![
        (Method::PATCH, path.clone(), Some(json!({"role": "viewer"}))),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"is_active": false})),
        ),
        (
            Method::POST,
            format!("{path}set_password/"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/api/v1/tokens/?user={}", root.id),
            None,
        ),
    ];
    app.assert_each(&admin, calls, StatusCode::FORBIDDEN).await;
    let revoke = format!("/api/v1/tokens/{roots_token}/");
    assert_eq!(
        app.delete(&admin, &revoke).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(me_status(&mut app, &root).await, StatusCode::OK);

    // Nor make anyone a superuser, themselves included.
    let body = json!({"username": "eve", "role": "admin", "customers": [acme],
                      "is_superuser": true, "password": PASSWORD});
    app.assert_field_errors(&admin, "/api/v1/users/", &[(body, "is_superuser")])
        .await;
    let r = patch_user(&mut app, &admin, admin.id, json!({"is_superuser": true})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"]["is_superuser"].is_array());
    let flag: bool = scalar(
        &app.pool,
        "SELECT bool_or(is_superuser) FROM users WHERE username <> 'root'",
    )
    .await;
    assert!(!flag);
}

#[sqlx::test]
async fn bad_user_input_gets_field_errors_and_a_user_has_every_contract_field(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let acme = app.customer_id("acme").await;
    let user = |name: &str, role: &str, password: &str| {
        json!({"username": name, "role": role, "customers": [acme],
               "password": password})
    };
    let cases = [
        (user("", "viewer", PASSWORD), "username"),
        (user("admin", "viewer", PASSWORD), "username"),
        (user("bob", "root", PASSWORD), "role"),
        (user("bob", "viewer", "short"), "password"),
        (
            json!({"username": "bob", "role": "viewer", "password": PASSWORD}),
            "customers",
        ),
        (
            json!({"username": "bob", "customers": [acme], "password": PASSWORD}),
            "role",
        ),
        (
            json!({"username": "bob", "role": "viewer", "customers": [acme]}),
            "password",
        ),
    ];
    app.assert_field_errors(&admin, "/api/v1/users/", &cases)
        .await;
    assert_eq!(count_rows(&pool, "users").await, 1);
    assert_eq!(count_rows(&pool, "audit_log").await, 0);

    let bob = app
        .create(&admin, "/api/v1/users/", user("bob", "viewer", PASSWORD))
        .await;
    let fields = [
        "id",
        "username",
        "role",
        "is_superuser",
        "is_active",
        "customers",
        "last_login",
        "created_at",
    ];
    assert_has_fields(&bob, &fields);
    assert_eq!(bob["customers"], json!([acme]));
    assert!(bob.get("password").is_none(), "{bob}");
    let id = bob["id"].as_i64().unwrap();
    for (body, field) in [
        (json!({"username": "robert"}), "username"),
        (json!({"role": "root"}), "role"),
        (json!({"customers": [999_999]}), "customers"),
    ] {
        let r = patch_user(&mut app, &admin, id, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.json()["errors"][field].is_array(), "{field}: {}", r.body);
    }
}

#[sqlx::test]
async fn an_admin_changes_a_shared_user_only_within_their_own_customers(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool).await;
    let (acme_id, globex_id) = (
        app.customer_id("acme").await,
        app.customer_id("globex").await,
    );
    let shared = app
        .create_user("shared", Role::Viewer, &["acme", "globex"])
        .await;
    let path = user_path(shared);
    // Globex's membership is globex's business: acme's admin sees only acme's.
    assert_eq!(
        app.get_json(&acme, &path).await.json()["customers"],
        json!([acme_id])
    );

    // Only their own customers can be handed out.
    let r = patch_user(&mut app, &acme, shared, json!({"customers": [globex_id]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"]["customers"].is_array(), "{}", r.body);
    let body = json!({"username": "eve", "role": "viewer", "customers": [globex_id],
                      "password": PASSWORD});
    app.assert_field_errors(&acme, "/api/v1/users/", &[(body, "customers")])
        .await;

    // Leaving acme keeps the membership acme's admin does not see; then the user is gone
    // for them, and still there for globex's.
    let r = patch_user(&mut app, &acme, shared, json!({"customers": []})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["customers"], json!([]));
    assert_eq!(
        app.get_json(&acme, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get_json(&globex, &path).await.status, StatusCode::OK);
    let found = app.list(&globex, "/api/v1/users/?q=SHA").await;
    assert_eq!(texts(&found, "username"), ["shared"]);
}

#[sqlx::test]
async fn an_admin_sees_the_audit_row_of_taking_a_user_out_of_their_customer(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let acme = app.customer_id("acme").await;
    let bob = app.create_user("bob", Role::Viewer, &["acme"]).await;
    let r = patch_user(&mut app, &admin, bob, json!({"customers": []})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rows = audit(
        &mut app,
        &admin,
        &format!("object_type=user&object_id={bob}"),
    )
    .await;
    assert_eq!(texts(&rows, "action"), ["update"]);
    assert_eq!(rows[0]["changes"]["customers"], json!([[acme], []]));
}

#[sqlx::test]
async fn the_last_active_superuser_cannot_be_deactivated_or_demoted_until_another_exists(
    pool: PgPool,
) {
    let mut app = TestApp::new(pool).await;
    let root = app.superuser("root").await;
    // A deactivated superuser does not count.
    let retired = app.superuser("retired").await;
    let r = patch_user(&mut app, &root, retired.id, json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    for (body, field) in [
        (json!({"is_active": false}), "is_active"),
        (json!({"is_superuser": false}), "is_superuser"),
    ] {
        let r = patch_user(&mut app, &root, root.id, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.field_error(field), LAST_SUPERUSER);
    }
    let me = app.get_json(&root, "/api/v1/me/").await.json();
    assert_eq!(
        (&me["is_superuser"], &me["is_active"]),
        (&json!(true), &json!(true))
    );

    let body = json!({"username": "root2", "role": "admin", "is_superuser": true,
                      "password": PASSWORD});
    let second = app.create_id(&root, "/api/v1/users/", body).await;
    let second = app.api_user_of(second).await;
    // With two, the first may go, which leaves the second as the last.
    let r = patch_user(&mut app, &second, root.id, json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = patch_user(&mut app, &second, second.id, json!({"is_superuser": false})).await;
    assert_eq!(r.field_error("is_superuser"), LAST_SUPERUSER);
    // Back with the first, the second may be demoted.
    let r = patch_user(&mut app, &second, root.id, json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = patch_user(&mut app, &second, second.id, json!({"is_superuser": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["is_superuser"], false);
}

/// Asserts that neither the browser session `session` nor `token` signs anyone in.
async fn assert_signed_out(app: &mut TestApp, session: &str, token: &ApiUser) {
    app.set_cookie(SESSION_COOKIE, session);
    assert_eq!(app.get("/").await.location(), Some("/login"));
    app.set_cookie(SESSION_COOKIE, session);
    let me = app.api(Method::GET, "/api/v1/me/", None, None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(app, token).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn deactivating_a_user_ends_their_sessions_and_tokens_for_good(pool: PgPool) {
    let mut app = TestApp::signed_in(pool.clone(), Role::Operator).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let alice = scalar(&pool, "SELECT id FROM users WHERE username = 'alice'").await;
    let alice = app.api_user_of(alice).await;
    let session = app.session_cookie().unwrap().clone();
    let me = app.api(Method::GET, "/api/v1/me/", None, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me_status(&mut app, &alice).await, StatusCode::OK);
    let sessions = format!("sessions WHERE data ->> 'user_id' = '{}'", alice.id);
    let tokens = format!("api_tokens WHERE user_id = {}", alice.id);
    assert_eq!(count_rows(&pool, &sessions).await, 1);

    let r = patch_user(&mut app, &admin, alice.id, json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["is_active"], false);
    assert_eq!(count_rows(&pool, &sessions).await, 0);
    assert_eq!(count_rows(&pool, &tokens).await, 0);
    assert_signed_out(&mut app, &session, &alice).await;
    let query = format!("object_type=user&object_id={}", alice.id);
    let row = audit(&mut app, &admin, &query).await[0].clone();
    assert_eq!(row["changes"]["is_active"], json!([true, false]));
    assert_eq!(row["changes"]["ended"], json!({"sessions": 1, "tokens": 1}));
    // An inactive user cannot sign in again.
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);

    let r = patch_user(&mut app, &admin, alice.id, json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_signed_out(&mut app, &session, &alice).await;
    assert_eq!(count_rows(&pool, &tokens).await, 0);
    // Signing in afresh works.
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
}

/// Waits until a query on this test's database waits for a lock (no sleeping: each look is
/// a round trip to the database).
async fn until_a_query_waits_on_a_lock(pool: &PgPool) {
    for _ in 0..100_000 {
        let waiting: i64 = scalar(
            pool,
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting > 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("no query waited on the lock");
}

#[sqlx::test]
async fn a_form_in_flight_while_its_user_is_deactivated_does_not_bring_the_session_back(
    pool: PgPool,
) {
    let mut browser = TestApp::signed_in(pool.clone(), Role::Admin).await;
    let mut admin_app = TestApp::new(pool.clone()).await;
    let admin = admin_app.api_user("admin", Role::Admin, "acme").await;
    let alice: i64 = scalar(&pool, "SELECT id FROM users WHERE username = 'alice'").await;
    browser.get("/regions/new").await;
    let session = browser.session_cookie().unwrap().clone();

    // Alice, signed in, submits a form that waits on the regions table while she is
    // deactivated; it then finishes, and its answer saves her session (a flash message).
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE regions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let fields = [("name", "Late"), ("identifier", "late")];
    let submit = browser.post_form("/regions", &fields);
    let deactivate = async {
        until_a_query_waits_on_a_lock(&pool).await;
        let r = patch_user(&mut admin_app, &admin, alice, json!({"is_active": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        lock.commit().await.unwrap();
    };
    let (submitted, ()) = tokio::join!(submit, deactivate);
    assert!(!submitted.status.is_server_error(), "{}", submitted.body);

    let r = patch_user(&mut admin_app, &admin, alice, json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    browser.set_cookie(SESSION_COOKIE, &session);
    let page = browser.get("/").await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, Some("/login"))
    );
    let sessions = format!("sessions WHERE data ->> 'user_id' = '{alice}'");
    assert_eq!(count_rows(&pool, &sessions).await, 0);
}

#[sqlx::test]
async fn no_secret_reaches_the_audit_trail(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let acme = app.customer_id("acme").await;
    let mut secrets: Vec<String> = [
        "ssh-Secret-0001",
        "enable-Secret-0002",
        "ssh-Secret-0003",
        "user-Secret-0004",
        "user-Secret-0005",
    ]
    .map(String::from)
    .to_vec();
    let body = json!({"name": "core", "username": "netops", "password": secrets[0],
                      "enable_password": secrets[1]});
    let credential = app.create_id(&admin, "/api/v1/credentials/", body).await;
    let path = format!("/api/v1/credentials/{credential}/");
    let r = app
        .patch_json(&admin, &path, json!({"password": secrets[2]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = json!({"username": "bob", "role": "viewer", "customers": [acme],
                      "password": secrets[3]});
    let bob = app.create(&admin, "/api/v1/users/", body).await;
    assert!(bob.get("password").is_none(), "{bob}");
    let reset = format!("{}set_password/", user_path(bob["id"].as_i64().unwrap()));
    let r = app
        .post_json(&admin, &reset, json!({"password": secrets[4]}))
        .await;
    assert_eq!(r.json(), json!({"password": null}));
    let generated = app.post_json(&admin, &reset, json!({})).await.json();
    secrets.push(generated["password"].as_str().unwrap().to_string());
    let (_, token) = new_token(&mut app, &admin, json!({"name": "ci"})).await;
    secrets.push(token.token.clone());
    secrets.push(token.token["wn_".len()..].to_string());

    let listed = app.get_json(&admin, "/api/v1/audit/").await.body;
    for secret in &secrets {
        assert_eq!(
            rows_mentioning(&pool, "audit_log", secret).await,
            0,
            "{secret}"
        );
        assert!(!listed.contains(secret.as_str()), "{secret} in {listed}");
    }
    let said = |field: &str, kind: &str| {
        format!("audit_log WHERE object_type = '{kind}' AND changes ->> '{field}' = 'changed'")
    };
    assert_eq!(count_rows(&pool, &said("password", "credential")).await, 2);
    assert_eq!(
        count_rows(&pool, &said("enable_password", "credential")).await,
        1
    );
    let reset_rows =
        "audit_log WHERE action = 'set_password' AND changes ->> 'password' = 'changed'";
    assert_eq!(count_rows(&pool, reset_rows).await, 2);
}

/// Whether `password` signs `username` in, in a browser of its own.
async fn signs_in(pool: &PgPool, username: &str, password: &str) -> bool {
    let mut browser = TestApp::new(pool.clone()).await;
    let r = browser.login(username, password).await;
    assert!(
        matches!(r.status, StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED),
        "{}: {}",
        r.status,
        r.body
    );
    r.status == StatusCode::SEE_OTHER
}

#[sqlx::test]
async fn set_password_takes_a_password_or_generates_one_shown_once(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let bob = app.create_user("bob", Role::Viewer, &["acme"]).await;
    let reset = format!("{}set_password/", user_path(bob));
    let short = json!({"password": "too short"});
    let r = app.post_json(&admin, &reset, short).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field_error("password"), "Use at least 10 characters.");
    assert!(signs_in(&pool, "bob", PASSWORD).await);

    let given = "a password chosen by the admin";
    let r = app
        .post_json(&admin, &reset, json!({"password": given}))
        .await;
    assert_eq!(r.json(), json!({"password": null}));
    assert!(!signs_in(&pool, "bob", PASSWORD).await);
    assert!(signs_in(&pool, "bob", given).await);

    let r = app.post_json(&admin, &reset, json!({})).await;
    let generated = r.json()["password"].as_str().unwrap().to_string();
    assert!(generated.len() >= 10, "{generated}");
    assert!(!signs_in(&pool, "bob", given).await);
    assert!(signs_in(&pool, "bob", &generated).await);
}

#[sqlx::test]
async fn a_refused_change_writes_no_audit_row(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool.clone()).await;
    let device = app.new_device(&admin, "r1", "10.0.0.1", Some(east)).await;
    app.new_device(&admin, "r2", "10.0.0.2", None).await;
    let before = count_rows(&pool, "audit_log").await;
    assert_eq!(before, 3);

    let again = json!({"name": "Again", "identifier": "us-east-1"});
    app.assert_field_errors(&admin, "/api/v1/regions/", &[(again, "identifier")])
        .await;
    let path = format!("/api/v1/devices/{device}/");
    for (body, field) in [
        (json!({"hostname": "r2"}), "hostname"),
        (json!({"mgmt_ip": "not-an-address"}), "mgmt_ip"),
    ] {
        let r = app.patch_json(&admin, &path, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.json()["errors"][field].is_array(), "{}", r.body);
    }
    assert_eq!(count_rows(&pool, "audit_log").await, before);
}

#[sqlx::test]
async fn a_change_and_its_audit_row_commit_or_roll_back_together(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool.clone()).await;
    let refuse = "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
                  AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$";
    execute(&pool, refuse.to_string()).await;
    // The audit row cannot be written: the region is not created either.
    let on_audit = "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW
                    WHEN (NEW.object_repr = 'Doomed') EXECUTE FUNCTION refuse()";
    execute(&pool, on_audit.to_string()).await;
    let doomed = json!({"name": "Doomed", "identifier": "doomed"});
    let r = app.post_json(&admin, "/api/v1/regions/", doomed).await;
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    assert_eq!(
        count_rows(&pool, "regions WHERE identifier = 'doomed'").await,
        0
    );

    // The change fails at commit, after its row was written: the row goes with it.
    let at_commit = "CREATE CONSTRAINT TRIGGER refuse_late AFTER UPDATE ON regions
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                     WHEN (NEW.description = 'doomed') EXECUTE FUNCTION refuse()";
    execute(&pool, at_commit.to_string()).await;
    let path = format!("/api/v1/regions/{east}/");
    let r = app
        .patch_json(&admin, &path, json!({"description": "doomed"}))
        .await;
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    assert_eq!(
        count_rows(&pool, "audit_log WHERE action = 'update'").await,
        0
    );
    assert_eq!(
        count_rows(&pool, "regions WHERE description = 'doomed'").await,
        0
    );

    // Otherwise both commit.
    let r = app
        .patch_json(&admin, &path, json!({"description": "fine"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        count_rows(&pool, "audit_log WHERE action = 'update'").await,
        1
    );
}

#[sqlx::test]
async fn a_superuser_creates_renames_and_deletes_customers_and_others_get_403(pool: PgPool) {
    let (mut app, admin, _) = TestApp::with_region(pool).await;
    app.new_device(&admin, "r1", "10.0.0.1", None).await;
    let acme = app.customer_id("acme").await;
    let root = app.superuser("root").await;

    let made = app
        .create(&root, "/api/v1/customers/", json!({"name": "Initech"}))
        .await;
    assert_has_fields(&made, &["id", "name", "created_at"]);
    assert_eq!(made["name"], "Initech");
    let id = made["id"].as_i64().unwrap();
    let cases = [
        (json!({"name": "Initech"}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
    ];
    app.assert_field_errors(&root, "/api/v1/customers/", &cases)
        .await;
    let path = format!("/api/v1/customers/{id}/");
    let r = app
        .patch_json(&root, &path, json!({"name": "Initrode"}))
        .await;
    assert_eq!(r.json()["name"], "Initrode");
    let taken = app.patch_json(&root, &path, json!({"name": "acme"})).await;
    assert_eq!(
        taken.field_error("name"),
        "A customer with this name already exists."
    );
    let mut names = texts(&app.list(&root, "/api/v1/customers/").await, "name");
    names.sort();
    assert_eq!(names, ["Initrode", "acme"]);

    // One that still holds something is kept, and the answer says what it holds.
    let acme_path = format!("/api/v1/customers/{acme}/");
    let refused = app.delete(&root, &acme_path).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let why = refused.field_error("customer");
    assert!(
        why.contains("1 region(s), 1 device(s), 0 credential(s) and 0 job(s)"),
        "{why}"
    );
    assert_eq!(app.get_json(&root, &acme_path).await.status, StatusCode::OK);
    app.assert_deleted(&root, &path).await;
    let query = format!("object_type=customer&object_id={id}");
    let rows = audit(&mut app, &root, &query).await;
    assert_eq!(texts(&rows, "action"), ["delete", "update", "create"]);
    assert_eq!(rows[1]["changes"]["name"], json!(["Initech", "Initrode"]));

    let calls = vec![
        (Method::GET, "/api/v1/customers/".to_string(), None),
        (
            Method::POST,
            "/api/v1/customers/".into(),
            Some(json!({"name": "X"})),
        ),
        (Method::GET, acme_path.clone(), None),
        (Method::PATCH, acme_path.clone(), Some(json!({"name": "X"}))),
        (Method::DELETE, acme_path, None),
    ];
    app.assert_each(&admin, calls, StatusCode::FORBIDDEN).await;
    assert_eq!(count_rows(&app.pool, "customers WHERE name = 'X'").await, 0);
}

#[sqlx::test]
async fn tokens_expire_are_revoked_at_once_and_stay_within_managed_users(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool.clone()).await;
    let past = json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"});
    let unnamed = json!({"expires_at": days_from_now(1)});
    let cases = [(past, "expires_at"), (unnamed, "name")];
    app.assert_field_errors(&acme, "/api/v1/tokens/", &cases)
        .await;

    let body = json!({"name": "ci", "expires_at": days_from_now(1)});
    let (made, ci) = new_token(&mut app, &acme, body).await;
    let fields = [
        "id",
        "user",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
    ];
    assert_has_fields(&made, &fields);
    assert_eq!(made["user"], acme.id);
    assert!(ci.token.starts_with(made["prefix"].as_str().unwrap()));
    assert!(ci.token.starts_with("wn_"), "{}", ci.token);
    assert_eq!(me_status(&mut app, &ci).await, StatusCode::OK);
    // The list shows it without its secret.
    let listed = app.get_json(&acme, "/api/v1/tokens/").await;
    assert_eq!(listed.json()["count"], 2);
    assert!(!listed.body.contains(&ci.token));
    // Once its time has passed, it is refused.
    let id = made["id"].as_i64().unwrap();
    let expire =
        format!("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = {id}");
    execute(&pool, expire).await;
    let refused = StatusCode::UNAUTHORIZED;
    let status = app
        .status_within_a_second(&ci, "/api/v1/me/", refused)
        .await;
    assert_eq!(status, refused);

    let (made, temp) = new_token(&mut app, &acme, json!({"name": "temp"})).await;
    assert_eq!(made["expires_at"], Value::Null);
    assert_eq!(me_status(&mut app, &temp).await, StatusCode::OK);
    let path = format!("/api/v1/tokens/{}/", made["id"]);
    assert_eq!(
        app.delete(&acme, &path).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(me_status(&mut app, &temp).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.delete(&acme, &path).await.status, StatusCode::NOT_FOUND);

    // Another user's tokens: only for an admin who manages them.
    let bob = app.api_user("bob", Role::Viewer, "globex").await;
    let theirs = format!("/api/v1/tokens/?user={}", bob.id);
    assert_eq!(
        app.get_json(&acme, &theirs).await.status,
        StatusCode::NOT_FOUND
    );
    let bobs = app.list(&globex, &theirs).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["user"], bob.id);
    app.assert_query_errors(&acme, "/api/v1/tokens/", &[("user=bob", "user")])
        .await;
}

#[sqlx::test]
async fn a_token_rows_expiry_is_rfc_3339_like_the_api(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let body = json!({"name": "ci", "expires_at": days_from_now(1)});
    let (made, _) = new_token(&mut app, &admin, body).await;
    let rows = audit(&mut app, &admin, "object_type=token").await;
    assert_eq!(
        rows[0]["changes"]["expires_at"],
        json!([null, made["expires_at"]])
    );
}

#[sqlx::test]
async fn audit_filters_narrow_the_list_and_bad_values_are_field_errors(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool).await;
    let ops = app.api_user("ops", Role::Admin, "acme").await;
    app.region(&ops, "US West", "us-west-2").await;
    let east_path = format!("/api/v1/regions/{east}/");
    let r = app
        .patch_json(&admin, &east_path, json!({"priority": 300}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.new_device(&ops, "r1", "10.0.0.1", Some(east)).await;
    let all = audit(&mut app, &admin, "").await;
    assert_eq!(
        texts(&all, "object_repr"),
        ["r1", "US East", "US West", "US East"]
    );

    let reprs = async |app: &mut TestApp, query: &str| {
        texts(&audit(app, &admin, query).await, "object_repr")
    };
    assert_eq!(reprs(&mut app, "actor=ops").await, ["r1", "US West"]);
    assert_eq!(reprs(&mut app, "object_type=device").await, ["r1"]);
    let east_rows = format!("object_type=region&object_id={east}");
    let rows = audit(&mut app, &admin, &east_rows).await;
    assert_eq!(texts(&rows, "action"), ["update", "create"]);
    assert_eq!(rows[0]["changes"]["priority"][1], 300);
    assert!(
        reprs(&mut app, "actor=admin&object_type=device")
            .await
            .is_empty()
    );

    // Times: `since` is inclusive, `until` exclusive; a date means its midnight.
    let at = |i: usize| {
        let at = all[i]["at"].as_str().unwrap();
        form_urlencoded::byte_serialize(at.as_bytes()).collect::<String>()
    };
    let ids = async |app: &mut TestApp, query: String| {
        let rows = audit(app, &admin, &query).await;
        rows.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let all_ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids(&mut app, format!("since={}", at(1))).await,
        all_ids[..2]
    );
    assert_eq!(
        ids(&mut app, format!("until={}", at(1))).await,
        all_ids[2..]
    );
    let between = format!("since={}&until={}", at(2), at(0));
    assert_eq!(ids(&mut app, between).await, all_ids[1..3]);
    assert_eq!(ids(&mut app, "since=2000-01-01".into()).await, all_ids);
    assert!(ids(&mut app, "until=2000-01-01".into()).await.is_empty());
    assert!(
        ids(&mut app, format!("since={}", days_from_now(1)))
            .await
            .is_empty()
    );

    let cases = [
        ("object_type=router", "object_type"),
        ("object_id=abc", "object_id"),
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
        ("actor=", "actor"),
        ("page_size=0", "page_size"),
    ];
    app.assert_query_errors(&admin, "/api/v1/audit/", &cases)
        .await;
}

#[sqlx::test]
async fn every_audited_action_names_its_actor_token_and_client(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    app.peer = Some("203.0.113.7:40000".parse().unwrap());
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let token = app.token_named(admin.id, "deploy-bot").await;
    let bot = ApiUser {
        id: admin.id,
        token,
    };
    let acme = app.customer_id("acme").await;

    let region = app.region(&bot, "US East", "us-east-1").await;
    let spare = app.region(&bot, "Spare", "spare").await;
    let device = app.new_device(&bot, "r1", "127.0.0.1", None).await;
    let doomed = app.new_device(&bot, "r2", "127.0.0.2", None).await;
    let credential = app.credential(&bot, "netops", "Secret-pass-1").await;
    let job = app.run_commands(&bot, device, &["show version"]).await;
    let body = json!({"username": "carol", "role": "viewer", "customers": [acme],
                      "password": PASSWORD});
    let carol = user_path(app.create_id(&bot, "/api/v1/users/", body).await);
    let temp = app
        .create_id(&bot, "/api/v1/tokens/", json!({"name": "temp"}))
        .await;
    let health = json!({"health_status": "degraded", "message": "maintenance"});
    let bulk = json!({"device_ids": [device], "region": region});
    let updates = vec![
        (
            Method::PATCH,
            format!("/api/v1/regions/{region}/"),
            Some(json!({"priority": 300})),
        ),
        (
            Method::POST,
            format!("/api/v1/regions/{region}/update_health/"),
            Some(health),
        ),
        (
            Method::PATCH,
            format!("/api/v1/devices/{device}/"),
            Some(json!({"site": "par"})),
        ),
        (
            Method::POST,
            "/api/v1/devices/bulk_assign_region/".into(),
            Some(bulk),
        ),
        (
            Method::PATCH,
            format!("/api/v1/credentials/{credential}/"),
            Some(json!({"username": "ops"})),
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job}/cancel/"),
            Some(json!({})),
        ),
        (
            Method::PATCH,
            carol.clone(),
            Some(json!({"role": "operator"})),
        ),
        (
            Method::POST,
            format!("{carol}set_password/"),
            Some(json!({})),
        ),
    ];
    app.assert_each(&bot, updates, StatusCode::OK).await;
    app.create(&bot, &format!("/api/v1/jobs/{job}/retry/"), json!({}))
        .await;
    let deletes = vec![
        (Method::DELETE, format!("/api/v1/regions/{spare}/"), None),
        (Method::DELETE, format!("/api/v1/devices/{doomed}/"), None),
        (
            Method::DELETE,
            format!("/api/v1/credentials/{credential}/"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/tokens/{temp}/"), None),
    ];
    app.assert_each(&bot, deletes, StatusCode::NO_CONTENT).await;

    let root = app.superuser("root").await;
    let root_ops = ApiUser {
        id: root.id,
        token: app.token_named(root.id, "root-ops").await,
    };
    let customer = app
        .create_id(&root_ops, "/api/v1/customers/", json!({"name": "Initech"}))
        .await;
    let path = format!("/api/v1/customers/{customer}/");
    app.patch_json(&root_ops, &path, json!({"name": "Initrode"}))
        .await;
    app.delete(&root_ops, &path).await;

    let rows = audit(&mut app, &root, "").await;
    let mut seen = BTreeSet::new();
    for row in &rows {
        let kind = row["object_type"].as_str().unwrap();
        let who = if kind == "customer" {
            ("root", "root-ops")
        } else {
            ("admin", "deploy-bot")
        };
        assert_eq!(
            (row["actor"].as_str(), row["token"].as_str()),
            (Some(who.0), Some(who.1)),
            "{row}"
        );
        assert_eq!(row["client_addr"], "203.0.113.7", "{row}");
        seen.insert(format!("{kind} {}", row["action"].as_str().unwrap()));
    }
    let expected = [
        "credential create",
        "credential delete",
        "credential update",
        "customer create",
        "customer delete",
        "customer update",
        "device bulk_assign",
        "device create",
        "device delete",
        "device update",
        "job cancel",
        "job retry",
        "job submit",
        "region create",
        "region delete",
        "region health",
        "region update",
        "token create",
        "token delete",
        "user create",
        "user set_password",
        "user update",
    ];
    assert_eq!(seen, expected.map(String::from).into());
    assert_eq!(rows.len(), 24, "two regions and two devices created");
}

#[sqlx::test]
async fn a_change_through_the_browser_session_names_no_token(pool: PgPool) {
    let (mut app, _, east) = TestApp::signed_in_with_region(pool, Role::Admin).await;
    app.get("/").await;
    let csrf = app.csrf.clone().unwrap();
    let headers = [
        ("x-csrf-token", csrf.as_str()),
        ("content-type", "application/json"),
    ];
    let path = format!("/api/v1/regions/{east}/");
    let r = app
        .request(Method::PATCH, &path, &headers, r#"{"priority": 300}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rows = app
        .api(Method::GET, "/api/v1/audit/?object_type=region", None, None)
        .await
        .json();
    let row = &rows["results"][0];
    assert_eq!(
        (&row["actor"], &row["action"]),
        (&json!("alice"), &json!("update"))
    );
    assert_eq!(row["token"], Value::Null);
}

#[sqlx::test]
async fn a_bulk_assignment_writes_one_row_with_its_count(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool.clone()).await;
    app.bulk_devices("acme", "par", "par", 40).await;
    app.bulk_devices("acme", "lon", "lon", 5).await;
    let before = count_rows(&pool, "audit_log").await;

    let body = json!({"filters": {"site": "par"}, "region": east});
    let r = app
        .post_json(&admin, "/api/v1/devices/bulk_assign_region/", body)
        .await;
    assert_eq!(r.json(), json!({"updated": 40}));
    assert_eq!(count_rows(&pool, "audit_log").await, before + 1);
    let rows = audit(&mut app, &admin, "object_type=device").await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (&row["action"], &row["actor"]),
        (&json!("bulk_assign"), &json!("admin"))
    );
    assert_eq!(row["object_id"], Value::Null);
    assert_eq!(row["object_repr"], "40 device(s)");
    assert_eq!(row["customer"], app.customer_id("acme").await);
    assert_eq!(row["changes"]["count"], 40);
    assert_eq!(row["changes"]["region"], json!([null, "US East"]));
    assert_eq!(row["changes"]["target"]["filters"]["site"], "par");
}

#[sqlx::test]
async fn an_admin_sees_a_superusers_bulk_unassignment_of_their_devices(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool).await;
    app.bulk_devices("acme", "par", "par", 5).await;
    let path = "/api/v1/devices/bulk_assign_region/";
    let assign = json!({"filters": {"site": "par"}, "region": east});
    assert_eq!(
        app.post_json(&admin, path, assign).await.json(),
        json!({"updated": 5})
    );
    let root = app.superuser("root").await;
    let unassign = json!({"filters": {"region": east}, "region": null});
    assert_eq!(
        app.post_json(&root, path, unassign).await.json(),
        json!({"updated": 5})
    );
    let rows = audit(&mut app, &admin, "object_type=device").await;
    assert_eq!(texts(&rows, "actor"), ["root", "admin"]);
}

#[sqlx::test]
async fn a_token_revoked_or_a_user_deactivated_on_one_server_is_refused_by_another_within_a_second(
    pool: PgPool,
) {
    let (mut here, admin) = TestApp::with_admin(pool.clone()).await;
    let mut there = TestApp::new(pool.clone()).await;
    let alice = here.api_user("alice", Role::Operator, "acme").await;
    let (made, script) = new_token(&mut here, &alice, json!({"name": "script"})).await;
    // The other server knows both tokens from memory before the changes.
    there.until_cached(&script, "/api/v1/me/").await;
    there.until_cached(&alice, "/api/v1/me/").await;
    let refused = StatusCode::UNAUTHORIZED;

    let revoke = format!("/api/v1/tokens/{}/", made["id"]);
    assert_eq!(
        here.delete(&alice, &revoke).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(me_status(&mut here, &script).await, refused, "at once here");
    let status = there
        .status_within_a_second(&script, "/api/v1/me/", refused)
        .await;
    assert_eq!(status, refused, "within a second there");
    assert_eq!(me_status(&mut there, &alice).await, StatusCode::OK);

    let r = patch_user(&mut here, &admin, alice.id, json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    let status = there
        .status_within_a_second(&alice, "/api/v1/me/", refused)
        .await;
    assert_eq!(status, refused);
}

#[sqlx::test]
async fn a_role_changed_from_another_process_holds_within_a_second(pool: PgPool) {
    let (mut app, _admin) = TestApp::with_admin(pool.clone()).await;
    let alice = app.api_user("alice", Role::Admin, "acme").await;
    app.until_cached(&alice, "/api/v1/users/").await;
    execute(
        &pool,
        format!("UPDATE users SET role = 'viewer' WHERE id = {}", alice.id),
    )
    .await;
    let forbidden = StatusCode::FORBIDDEN;
    let status = app
        .status_within_a_second(&alice, "/api/v1/users/", forbidden)
        .await;
    assert_eq!(status, forbidden);
}
