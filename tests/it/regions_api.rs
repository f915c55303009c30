//! `/api/v1/regions/`: fields, validation, pagination, tenancy, roles, health.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{TestApp, assert_has_fields};

#[sqlx::test]
async fn an_admin_creates_a_region_with_every_contract_field(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let body = json!({"name": "US East", "identifier": "us-east-1", "priority": 200,
                      "worker_pool_config": {"min_workers": 2}, "description": "Virginia"});
    let region = app.create(&admin, "/api/v1/regions/", body).await;
    assert_has_fields(
        &region,
        &[
            "id",
            "customer",
            "name",
            "identifier",
            "api_endpoint",
            "worker_pool_config",
            "health_status",
            "health_message",
            "last_health_check",
            "health_check_interval_seconds",
            "priority",
            "enabled",
            "description",
            "created_at",
            "updated_at",
            "queue_name",
            "is_available",
        ],
    );
    assert_eq!(region["queue_name"], "region_us-east-1");
    assert_eq!(region["is_available"], true);
    assert_eq!(region["health_status"], "healthy");
    assert_eq!(region["priority"], 200);
    assert_eq!(region["worker_pool_config"]["min_workers"], 2);
    assert_eq!(region["health_check_interval_seconds"], 60);
}

#[sqlx::test]
async fn bad_region_input_gets_field_errors_never_a_500(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let cases = [
        (json!({"identifier": "us-east-1"}), "name"),
        (json!({"name": "X", "identifier": "US East"}), "identifier"),
        (
            json!({"name": "X", "identifier": "x", "priority": "high"}),
            "priority",
        ),
        (
            json!({"name": "X", "identifier": "x", "worker_pool_config": "nope"}),
            "worker_pool_config",
        ),
        (
            json!({"name": "X", "identifier": "x", "health_check_interval_seconds": 0}),
            "health_check_interval_seconds",
        ),
        (json!({"name": "x".repeat(201), "identifier": "x"}), "name"),
        (
            json!({"name": "X", "identifier": "x", "enabled": "yes"}),
            "enabled",
        ),
        // PostgreSQL text cannot hold NUL: a field error, not a database error.
        (json!({"name": "US\u{0}East", "identifier": "x"}), "name"),
        (
            json!({"name": "X", "identifier": "x", "worker_pool_config": {"tags": ["a\u{0}"]}}),
            "worker_pool_config.tags.0",
        ),
    ];
    app.assert_field_errors(&admin, "/api/v1/regions/", &cases)
        .await;
    let bearer = format!("Bearer {}", admin.token);
    let raw_post = |content_type| {
        [
            ("authorization", bearer.as_str()),
            ("content-type", content_type),
        ]
    };
    for raw in ["{not json", "[]", "", "null"] {
        let headers = raw_post("application/json");
        let r = app
            .request(Method::POST, "/api/v1/regions/", &headers, raw)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw:?} -> {}", r.body);
        let body = r.json();
        assert!(
            body["detail"].is_string() || body["errors"].is_object(),
            "{body}"
        );
    }
    let headers = raw_post("text/plain");
    let r = app
        .request(Method::POST, "/api/v1/regions/", &headers, "name=x")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn identifiers_are_unique_per_customer_only(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool).await;
    app.region(&acme, "US East", "us-east-1").await;
    let again = json!({"name": "Again", "identifier": "us-east-1"});
    let dup = app.post_json(&acme, "/api/v1/regions/", again).await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        dup.field_error("identifier"),
        "A region with this identifier already exists for this customer."
    );
    // Another customer may use the same identifier.
    app.region(&globex, "US East", "us-east-1").await;
}

#[sqlx::test]
async fn another_customers_region_is_404_for_every_method(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool).await;
    let id = app.region(&acme, "US East", "us-east-1").await;
    let path = format!("/api/v1/regions/{id}/");
    let every_method = vec![
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "mine"}))),
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            format!("{path}update_health/"),
            Some(json!({"health_status": "offline"})),
        ),
        (Method::GET, format!("{path}devices/"), None),
    ];
    app.assert_each(&globex, every_method, StatusCode::NOT_FOUND)
        .await;
    let list = app.get_json(&globex, "/api/v1/regions/").await.json();
    assert_eq!(list["count"], 0);
    // Unchanged for its owner.
    assert_eq!(app.get_json(&acme, &path).await.json()["name"], "US East");
    // A non-numeric id is simply not found.
    assert_eq!(
        app.get_json(&acme, "/api/v1/regions/abc/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn viewers_and_operators_read_but_only_admins_manage_regions(pool: PgPool) {
    let (mut app, _, id) = TestApp::with_region(pool).await;
    let operator = app.api_user("op", Role::Operator, "acme").await;
    let viewer = app.api_user("viewer", Role::Viewer, "acme").await;
    let path = format!("/api/v1/regions/{id}/");
    for user in [&operator, &viewer] {
        assert_eq!(app.get_json(user, &path).await.status, StatusCode::OK);
        let managing = vec![
            (
                Method::POST,
                "/api/v1/regions/".to_string(),
                Some(json!({"name": "X", "identifier": "x"})),
            ),
            (Method::PATCH, path.clone(), Some(json!({"priority": 1}))),
            (Method::DELETE, path.clone(), None),
            (
                Method::POST,
                format!("{path}update_health/"),
                Some(json!({"health_status": "offline"})),
            ),
        ];
        app.assert_each(user, managing, StatusCode::FORBIDDEN).await;
    }
}

#[sqlx::test]
async fn patch_changes_only_the_given_fields_and_put_needs_them_all(pool: PgPool) {
    let (mut app, admin, id) = TestApp::with_region(pool).await;
    let path = format!("/api/v1/regions/{id}/");
    let r = app
        .patch_json(&admin, &path, json!({"enabled": false, "priority": 5}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let region = r.json();
    assert_eq!(
        (region["enabled"].clone(), region["priority"].clone()),
        (json!(false), json!(5))
    );
    assert_eq!(region["name"], "US East");
    assert_eq!(region["is_available"], false);

    let put = app
        .put_json(&admin, &path, json!({"name": "Only name"}))
        .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert!(put.json()["errors"]["identifier"].is_array());
    let renamed = json!({"name": "Renamed", "identifier": "us-east-2"});
    let put = app.put_json(&admin, &path, renamed).await;
    assert_eq!(put.json()["queue_name"], "region_us-east-2");
}

#[sqlx::test]
async fn update_health_sets_status_message_and_check_time(pool: PgPool) {
    let (mut app, admin, id) = TestApp::with_region(pool).await;
    let path = format!("/api/v1/regions/{id}/update_health/");
    let drill = json!({"health_status": "offline", "message": "fire drill"});
    let r = app.post_json(&admin, &path, drill).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let region = r.json();
    assert_eq!(region["health_status"], "offline");
    assert_eq!(region["health_message"], "fire drill");
    assert!(region["last_health_check"].is_string());
    assert_eq!(region["is_available"], false);

    let sick_or_missing = [
        (json!({"health_status": "sick"}), "health_status"),
        (json!({}), "health_status"),
    ];
    app.assert_field_errors(&admin, &path, &sick_or_missing)
        .await;
}

#[sqlx::test]
async fn region_lists_are_paginated_by_priority(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    for i in 0..5 {
        let body =
            json!({"name": format!("R{i}"), "identifier": format!("r{i}"), "priority": i * 10});
        app.region_with(&admin, body).await;
    }
    let page1 = app
        .get_json(&admin, "/api/v1/regions/?page_size=2")
        .await
        .json();
    assert_eq!(page1["count"], 5);
    assert_eq!(page1["results"][0]["name"], "R4");
    assert_eq!(page1["previous"], serde_json::Value::Null);
    let next = page1["next"].as_str().unwrap();
    assert!(
        next.ends_with("/api/v1/regions/?page_size=2&page=2"),
        "{next}"
    );
    let page3 = app
        .get_json(&admin, "/api/v1/regions/?page_size=2&page=3")
        .await
        .json();
    assert_eq!(page3["results"].as_array().unwrap().len(), 1);
    assert_eq!(page3["next"], serde_json::Value::Null);
    let bad = app
        .get_json(&admin, "/api/v1/regions/?page_size=100000")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["errors"]["page_size"].is_array());
}

#[sqlx::test]
async fn deleting_a_region_leaves_its_devices_without_one(pool: PgPool) {
    let (mut app, admin, id) = TestApp::with_region(pool).await;
    let device = app.new_device(&admin, "r1", "10.0.0.1", Some(id)).await;
    let listed = app
        .get_json(&admin, &format!("/api/v1/regions/{id}/devices/"))
        .await
        .json();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["hostname"], "r1");

    let region = format!("/api/v1/regions/{id}/");
    let r = app.delete(&admin, &region).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let d = app
        .get_json(&admin, &format!("/api/v1/devices/{device}/"))
        .await
        .json();
    assert_eq!(d["region"], serde_json::Value::Null);
    assert_eq!(
        app.get_json(&admin, &region).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn customer_is_required_when_the_user_has_several(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let id = app
        .create_user("multi", Role::Admin, &["acme", "globex"])
        .await;
    let user = app.api_user_of(id).await;
    let no_customer = json!({"name": "X", "identifier": "x"});
    let r = app.post_json(&user, "/api/v1/regions/", no_customer).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"]["customer"].is_array());
    let globex = app.customer_id("globex").await;
    let me = app.get_json(&user, "/api/v1/me/").await.json();
    assert_eq!(me["customers"][1], globex);
    let named = json!({"name": "X", "identifier": "x", "customer": globex});
    let region = app.create(&user, "/api/v1/regions/", named).await;
    assert_eq!(region["customer"], globex);
    // A customer the user does not belong to does not exist, as far as they know.
    let unknown = json!({"name": "Y", "identifier": "y", "customer": 999_999});
    let r = app.post_json(&user, "/api/v1/regions/", unknown).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn an_oversized_body_is_refused_without_a_500(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let huge = json!({"name": "x".repeat(5 * 1024 * 1024), "identifier": "x"});
    let r = app.post_json(&admin, "/api/v1/regions/", huge).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.json()["detail"].is_string());
}

#[sqlx::test]
async fn a_nul_character_in_a_query_or_form_is_a_400_not_a_500(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let r = app.get_json(&admin, "/api/v1/devices/?site=par%00").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("NUL"),
        "{}",
        r.body
    );
    let r = app
        .post_form_raw("/login", &[("username", "a\0b"), ("password", "x")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}
