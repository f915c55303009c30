//! No form hides an error: an empty or invalid submission of every form answers 400, and the
//! summary at the top of the page lists every error in words, those of fields the form does
//! not show included.

use axum::http::StatusCode;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{PASSWORD, TestApp, scalar};

/// One form: the page that shows it, where it posts, what it sends, and the fields
/// (as the summary labels them) whose errors must be listed.
struct Case {
    page: String,
    action: String,
    fields: Vec<(&'static str, String)>,
    labels: &'static [&'static str],
}

fn case(
    page: impl Into<String>,
    action: impl Into<String>,
    fields: &[(&'static str, &str)],
    labels: &'static [&'static str],
) -> Case {
    Case {
        page: page.into(),
        action: action.into(),
        fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        labels,
    }
}

/// Submits each case and checks its answer: a 400 whose summary names each expected field,
/// and lists every message shown next to a field too.
async fn assert_every_error_shown(app: &mut TestApp, cases: &[Case]) {
    for c in cases {
        app.get(&c.page).await;
        let fields: Vec<(&str, &str)> = c.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = app.post_form(&c.action, &fields).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}: {}",
            c.action,
            r.body
        );
        let summary = r.texts("[data-testid=error-summary] li");
        for label in c.labels {
            assert!(
                summary
                    .iter()
                    .any(|line| line.starts_with(&format!("{label}:"))),
                "{}: no error for {label} in the summary {summary:?}",
                c.action
            );
        }
        // Each message next to a field is that field's description for screen readers.
        let html = r.html();
        let errors = scraper::Selector::parse(".field-error").unwrap();
        for error in html.select(&errors) {
            let id = error.value().id().expect("a field error has an id");
            let described = format!(r#"[aria-describedby="{id}"][aria-invalid="true"]"#);
            assert_eq!(
                html.select(&scraper::Selector::parse(&described).unwrap())
                    .count(),
                1,
                "{}: no field (aria-invalid) is described by #{id}",
                c.action
            );
        }
        for inline in r.texts(".field-error") {
            assert!(
                summary.iter().any(|line| line.ends_with(&inline)),
                "{}: {inline:?} is shown by its field but not in the summary {summary:?}",
                c.action
            );
        }
    }
}

/// A superuser of customer "acme" signed in, with a region, a device and a credential.
async fn superuser_with_inventory(pool: PgPool) -> (TestApp, i64, i64, i64, i64) {
    let mut app = TestApp::new(pool.clone()).await;
    let acme = ["acme".to_string()];
    let root = webnet::auth::accounts::create_user(
        &pool,
        "root",
        Role::Admin,
        true,
        &acme,
        PASSWORD.into(),
    )
    .await
    .unwrap();
    let api = app.api_user("api", Role::Admin, "acme").await;
    let region = app.region(&api, "US East", "us-east-1").await;
    let device = app
        .device(
            &api,
            serde_json::json!({"hostname": "edge-1", "mgmt_ip": "10.0.0.1"}),
        )
        .await;
    let credential = app.credential(&api, "netops", "s3cret").await;
    let r = app.login("root", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    (app, root, region, device, credential)
}

#[sqlx::test]
async fn every_form_lists_every_error_at_its_top(pool: PgPool) {
    let (mut app, root, region, device, credential) = superuser_with_inventory(pool).await;
    let customer: i64 = sqlx::query_scalar("SELECT id FROM customers WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let device_id = device.to_string();
    let cases = [
        case(
            format!("/jobs/new?device_ids={device}"),
            "/jobs",
            &[
                ("device_ids", &device_id),
                ("type", "run_commands"),
                ("commands", ""),
            ],
            &["Payload commands"],
        ),
        case("/regions/new", "/regions", &[], &["Name", "Identifier"]),
        case(
            format!("/regions/{region}/edit"),
            format!("/regions/{region}"),
            &[
                ("name", ""),
                ("identifier", "Not A Slug"),
                ("priority", "high"),
                ("health_check_interval_seconds", "0"),
                ("api_endpoint", "not a url"),
                ("worker_pool_config", "{"),
            ],
            &["Name", "Identifier"],
        ),
        case(
            format!("/regions/{region}"),
            format!("/regions/{region}/health"),
            &[("health_status", "sideways")],
            &["Health status"],
        ),
        case(
            "/devices/new",
            "/devices",
            &[("port", "x")],
            &["Hostname", "Mgmt ip", "Port"],
        ),
        case(
            format!("/devices/{device}/edit"),
            format!("/devices/{device}"),
            &[("hostname", "bad host"), ("mgmt_ip", "10.0.0.1")],
            &["Hostname"],
        ),
        case(
            "/credentials/new",
            "/credentials",
            &[],
            &["Name", "Username"],
        ),
        case(
            format!("/credentials/{credential}/edit"),
            format!("/credentials/{credential}"),
            &[("name", ""), ("username", "")],
            &["Name", "Username"],
        ),
        case("/customers", "/customers", &[], &["Name"]),
        case(
            format!("/customers/{customer}"),
            format!("/customers/{customer}"),
            &[("name", " ")],
            &["Name"],
        ),
        case(
            "/users/new",
            "/users",
            &[("password", "short"), ("password_confirm", "other")],
            &[
                "Username",
                "Role",
                "Customers",
                "Password",
                "Password confirm",
            ],
        ),
        case(
            format!("/users/{root}"),
            format!("/users/{root}/password"),
            &[("password", "short"), ("password_confirm", "different")],
            &["Password", "Password confirm"],
        ),
        case(
            "/tokens",
            "/tokens",
            &[("expires_at", "soon")],
            &["Name", "Expires at"],
        ),
        case(
            "/account",
            "/account/password",
            &[("current_password", "wrong"), ("password", "x")],
            &["Current password", "Password"],
        ),
    ];
    assert_every_error_shown(&mut app, &cases).await;
}

#[sqlx::test]
async fn an_error_on_a_field_the_form_does_not_show_is_listed_in_words(pool: PgPool) {
    // A superuser of no customer: with several customers to choose from and none chosen,
    // the region form's error is on `customer`.
    let mut app = TestApp::new(pool.clone()).await;
    app.api_user("a", Role::Admin, "acme").await;
    app.api_user("g", Role::Admin, "globex").await;
    app.superuser("root").await;
    app.login("root", PASSWORD).await;
    let cases = [case(
        "/regions/new",
        "/regions",
        &[("name", "Lab"), ("identifier", "lab")],
        &["Customer"],
    )];
    assert_every_error_shown(&mut app, &cases).await;

    // Naming a new customer in place makes the region in it.
    app.get("/regions/new").await;
    let fields = [
        ("name", "Lab"),
        ("identifier", "lab"),
        ("new_customer", "Initech"),
    ];
    let r = app.post_form("/regions", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let owner: String = scalar(&pool, "SELECT c.name FROM regions r JOIN customers c ON c.id = r.customer_id WHERE r.identifier = 'lab'").await;
    assert_eq!(owner, "Initech");
}

#[sqlx::test]
async fn a_fresh_installation_offers_to_create_the_first_customer(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    app.superuser("admin").await;
    app.login("admin", PASSWORD).await;
    let dashboard = app.get("/").await;
    assert_eq!(
        dashboard.texts("[data-testid=first-run] h2"),
        ["Welcome to webnet"]
    );
    let r = app
        .post_form("/customers", &[("name", "Acme Networks")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let customer = app.get(r.location().unwrap()).await;
    assert!(!customer.texts("[data-testid=next-steps] li").is_empty());
    let dashboard = app.get("/").await;
    assert!(dashboard.texts("[data-testid=first-run] h2").is_empty());
}
