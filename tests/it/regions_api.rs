//! `/api/v1/regions/`: fields, validation, pagination, tenancy, roles, health.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::TestApp;

#[sqlx::test]
async fn an_admin_creates_a_region_with_every_contract_field(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin1", Role::Admin, "acme").await;
    let r = app
        .post_json(
            &admin,
            "/api/v1/regions/",
            json!({"name": "US East", "identifier": "us-east-1", "priority": 200,
                   "worker_pool_config": {"min_workers": 2}, "description": "Virginia"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let region = r.json();
    for field in [
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
    ] {
        assert!(region.get(field).is_some(), "missing {field}: {region}");
    }
    assert_eq!(region["queue_name"], "region_us-east-1");
    assert_eq!(region["is_available"], true);
    assert_eq!(region["health_status"], "healthy");
    assert_eq!(region["priority"], 200);
    assert_eq!(region["worker_pool_config"]["min_workers"], 2);
    assert_eq!(region["health_check_interval_seconds"], 60);
}

#[sqlx::test]
async fn bad_region_input_gets_field_errors_never_a_500(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin1", Role::Admin, "acme").await;
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
    for (body, field) in cases {
        let r = app
            .post_json(&admin, "/api/v1/regions/", body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} -> {}", r.body);
        assert!(r.json()["errors"][field].is_array(), "{body} -> {}", r.body);
    }
    for raw in ["{not json", "[]", "", "null"] {
        let r = app
            .send(
                axum::http::Request::post("/api/v1/regions/")
                    .header("authorization", format!("Bearer {}", admin.token))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(raw))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw:?} -> {}", r.body);
        let body = r.json();
        assert!(
            body["detail"].is_string() || body["errors"].is_object(),
            "{body}"
        );
    }
    let r = app
        .send(
            axum::http::Request::post("/api/v1/regions/")
                .header("authorization", format!("Bearer {}", admin.token))
                .header("content-type", "text/plain")
                .body(axum::body::Body::from("name=x"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn identifiers_are_unique_per_customer_only(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let acme = app.api_user("a", Role::Admin, "acme").await;
    let globex = app.api_user("g", Role::Admin, "globex").await;
    app.region(&acme, "US East", "us-east-1").await;
    let dup = app
        .post_json(
            &acme,
            "/api/v1/regions/",
            json!({"name": "Again", "identifier": "us-east-1"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        dup.json()["errors"]["identifier"][0],
        "A region with this identifier already exists for this customer."
    );
    // Another customer may use the same identifier.
    app.region(&globex, "US East", "us-east-1").await;
}

#[sqlx::test]
async fn another_customers_region_is_404_for_every_method(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let acme = app.api_user("a", Role::Admin, "acme").await;
    let globex = app.api_user("g", Role::Admin, "globex").await;
    let id = app.region(&acme, "US East", "us-east-1").await;
    let path = format!("/api/v1/regions/{id}/");
    assert_eq!(
        app.get_json(&globex, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch_json(&globex, &path, json!({"name": "mine"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&globex, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_json(
            &globex,
            &format!("{path}update_health/"),
            json!({"health_status": "offline"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_json(&globex, &format!("{path}devices/"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
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
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let operator = app.api_user("op", Role::Operator, "acme").await;
    let viewer = app.api_user("viewer", Role::Viewer, "acme").await;
    let id = app.region(&admin, "US East", "us-east-1").await;
    let path = format!("/api/v1/regions/{id}/");
    for user in [&operator, &viewer] {
        assert_eq!(app.get_json(user, &path).await.status, StatusCode::OK);
        assert_eq!(
            app.post_json(
                user,
                "/api/v1/regions/",
                json!({"name": "X", "identifier": "x"})
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.patch_json(user, &path, json!({"priority": 1}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.delete(user, &path).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.post_json(
                user,
                &format!("{path}update_health/"),
                json!({"health_status": "offline"})
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
    }
}

#[sqlx::test]
async fn patch_changes_only_the_given_fields_and_put_needs_them_all(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let id = app.region(&admin, "US East", "us-east-1").await;
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
        .api(
            axum::http::Method::PUT,
            &path,
            Some(&admin.token),
            Some(json!({"name": "Only name"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert!(put.json()["errors"]["identifier"].is_array());
    let put = app
        .api(
            axum::http::Method::PUT,
            &path,
            Some(&admin.token),
            Some(json!({"name": "Renamed", "identifier": "us-east-2"})),
        )
        .await;
    assert_eq!(put.json()["queue_name"], "region_us-east-2");
}

#[sqlx::test]
async fn update_health_sets_status_message_and_check_time(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let id = app.region(&admin, "US East", "us-east-1").await;
    let path = format!("/api/v1/regions/{id}/update_health/");
    let r = app
        .post_json(
            &admin,
            &path,
            json!({"health_status": "offline", "message": "fire drill"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let region = r.json();
    assert_eq!(region["health_status"], "offline");
    assert_eq!(region["health_message"], "fire drill");
    assert!(region["last_health_check"].is_string());
    assert_eq!(region["is_available"], false);

    let bad = app
        .post_json(&admin, &path, json!({"health_status": "sick"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["errors"]["health_status"].is_array());
    let missing = app.post_json(&admin, &path, json!({})).await;
    assert!(missing.json()["errors"]["health_status"].is_array());
}

#[sqlx::test]
async fn region_lists_are_paginated_by_priority(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    for i in 0..5 {
        app.post_json(
            &admin,
            "/api/v1/regions/",
            json!({"name": format!("R{i}"), "identifier": format!("r{i}"), "priority": i * 10}),
        )
        .await;
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
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let id = app.region(&admin, "US East", "us-east-1").await;
    let device = app
        .device(
            &admin,
            json!({"hostname": "r1", "mgmt_ip": "10.0.0.1", "region": id}),
        )
        .await;
    let listed = app
        .get_json(&admin, &format!("/api/v1/regions/{id}/devices/"))
        .await
        .json();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["hostname"], "r1");

    let r = app.delete(&admin, &format!("/api/v1/regions/{id}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let d = app
        .get_json(&admin, &format!("/api/v1/devices/{device}/"))
        .await
        .json();
    assert_eq!(d["region"], serde_json::Value::Null);
    assert_eq!(
        app.get_json(&admin, &format!("/api/v1/regions/{id}/"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn customer_is_required_when_the_user_has_several(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let id = app
        .create_user("multi", Role::Admin, &["acme", "globex"])
        .await;
    let user = crate::helpers::ApiUser {
        token: app.token_for(id).await,
    };
    let r = app
        .post_json(
            &user,
            "/api/v1/regions/",
            json!({"name": "X", "identifier": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"]["customer"].is_array());
    let me = app.get_json(&user, "/api/v1/me/").await.json();
    let globex = me["customers"][1]["id"].as_i64().unwrap();
    let r = app
        .post_json(
            &user,
            "/api/v1/regions/",
            json!({"name": "X", "identifier": "x", "customer": globex}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["customer"], globex);
    // A customer the user does not belong to does not exist, as far as they know.
    let r = app
        .post_json(
            &user,
            "/api/v1/regions/",
            json!({"name": "Y", "identifier": "y", "customer": 999_999}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn an_oversized_body_is_refused_without_a_500(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let huge = json!({"name": "x".repeat(5 * 1024 * 1024), "identifier": "x"});
    let r = app.post_json(&admin, "/api/v1/regions/", huge).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.json()["detail"].is_string());
}

#[sqlx::test]
async fn a_nul_character_in_a_query_or_form_is_a_400_not_a_500(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let admin = app.api_user("admin1", Role::Admin, "acme").await;
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
