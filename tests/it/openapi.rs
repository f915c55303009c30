//! The OpenAPI description at `/api/v1/openapi.json`: complete, described, and in step with
//! what the router actually serves.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &mut TestApp) -> Value {
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.json()
}

/// `(METHOD, path)` of every operation in the document.
pub(crate) fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn text<'a>(v: &'a Value, what: &str) -> &'a str {
    let s = v.as_str().unwrap_or_default().trim();
    assert!(!s.is_empty(), "{what} has no description");
    s
}

/// Follows `$ref`, `allOf` and `oneOf` into every object property of a schema.
fn check_properties(doc: &Value, schema: &Value, name: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let target = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"].get(target).is_some(),
            "{name}: dangling {r}"
        );
        return;
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            check_properties(doc, sub, name);
        }
    }
    for (prop, s) in schema["properties"].as_object().into_iter().flatten() {
        text(&s["description"], &format!("property {name}.{prop}"));
    }
}

#[sqlx::test]
async fn the_description_is_served_without_signing_in_as_openapi_3_1(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let doc = document(&mut app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc, serde_json::to_value(webnet::api::openapi()).unwrap());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
}

#[sqlx::test]
async fn every_operation_parameter_response_and_field_is_described(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let doc = document(&mut app).await;
    let mut operation_ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let what = format!("{method} {path}");
        let summary = text(&op["summary"], &what);
        assert!(summary.ends_with('.'), "{what}: summary is not a sentence");
        assert!(
            summary.len() <= 100,
            "{what}: summary too long for one line"
        );
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{what} has no tag"
        );
        assert!(
            operation_ids.insert(op["operationId"].as_str().unwrap().to_string()),
            "{what}: duplicate operationId"
        );
        for p in op["parameters"].as_array().into_iter().flatten() {
            text(
                &p["description"],
                &format!("{what} parameter {}", p["name"]),
            );
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what} documents no success"
        );
        for (status, r) in responses {
            if r.get("$ref").is_none() {
                text(&r["description"], &format!("{what} response {status}"));
            }
        }
        if path != "/api/v1/openapi.json" {
            assert!(responses.contains_key("401"), "{what}: 401 missing");
        }
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{what}: 404 missing");
        }
        if method != "GET" {
            assert!(responses.contains_key("403"), "{what}: 403 missing");
        }
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("400"), "{what}: 400 missing");
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        text(&schema["description"], &format!("schema {name}"));
        check_properties(&doc, schema, name);
    }
    for (name, tag) in doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (&t["name"], t))
    {
        text(&tag["description"], &format!("tag {name}"));
    }
}

#[sqlx::test]
async fn every_endpoint_of_the_contract_is_described(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let described = operations(&document(&mut app).await);
    let contract = [
        "GET /regions/",
        "POST /regions/",
        "GET /regions/{id}/",
        "PUT /regions/{id}/",
        "PATCH /regions/{id}/",
        "DELETE /regions/{id}/",
        "POST /regions/{id}/update_health/",
        "GET /regions/{id}/devices/",
        "GET /regions/{id}/jobs/",
        "GET /devices/",
        "POST /devices/",
        "GET /devices/{id}/",
        "PUT /devices/{id}/",
        "PATCH /devices/{id}/",
        "DELETE /devices/{id}/",
        "POST /devices/bulk_assign_region/",
        "GET /devices/{id}/snapshots/",
        "GET /devices/{id}/snapshots/{sid}/",
        "GET /credentials/",
        "POST /credentials/",
        "GET /credentials/{id}/",
        "PATCH /credentials/{id}/",
        "DELETE /credentials/{id}/",
        "POST /jobs/",
        "GET /jobs/",
        "GET /jobs/{id}/",
        "GET /jobs/{id}/logs/",
        "POST /jobs/{id}/cancel/",
        "POST /jobs/{id}/retry/",
        "POST /commands/run",
        "POST /reachability/run",
        "POST /config/backup",
    ];
    for endpoint in contract {
        let (method, path) = endpoint.split_once(' ').unwrap();
        assert!(
            described.contains(&(method.to_string(), format!("/api/v1{path}"))),
            "{endpoint} is not in the description"
        );
    }
}

#[sqlx::test]
async fn the_router_serves_exactly_the_described_methods_of_each_path(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let doc = document(&mut app).await;
    let described = operations(&doc);
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete = path.replace("{id}", "999999").replace("{sid}", "999999");
        // Both spellings are served: with and without the trailing slash.
        let other = match concrete.strip_suffix('/') {
            Some(bare) => bare.to_string(),
            None => format!("{concrete}/"),
        };
        for method in METHODS {
            let upper = method.to_uppercase();
            let expected = described.contains(&(upper.clone(), path.clone()));
            for url in [&concrete, &other] {
                let status = app
                    .api(
                        Method::from_bytes(upper.as_bytes()).unwrap(),
                        url,
                        Some(&admin.token),
                        None,
                    )
                    .await
                    .status;
                assert_eq!(
                    status != StatusCode::METHOD_NOT_ALLOWED,
                    expected,
                    "{upper} {url} answered {status}; described: {expected}"
                );
            }
        }
    }
}

/// The router cannot serve an undescribed API route: `src/api` registers routes only through
/// `api::route`, which takes a handler's `#[utoipa::path]`.
#[test]
fn api_routes_are_registered_only_through_the_describing_helper() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // (`OpenApiRouter::nest`/`merge` carry their paths' descriptions along, so they may
        // be used; a plain axum `Router` or a raw `.route` may not.)
        let raw_routes = source.matches(".route(").count()
            + source.matches(".route_service(").count()
            + source.matches(".nest_service(").count()
            + source.matches(" Router::new").count()
            + source.matches("axum::routing::").count();
        // common.rs's helper adds the other spelling of each described path, and nothing else.
        let allowed = usize::from(name == "common.rs");
        assert_eq!(
            raw_routes, allowed,
            "{name} registers a route outside api::route, so it may go undescribed"
        );
    }
}

#[sqlx::test]
async fn the_api_reference_page_renders_the_description_with_embedded_assets(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let signed_out = app.get("/api/docs").await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert!(signed_out.location().unwrap().starts_with("/login"));

    app.create_user("alice", Role::Viewer, &["acme"]).await;
    app.login("alice", crate::helpers::PASSWORD).await;
    let page = app.get("/api/docs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let html = page.html();
    let select = |css: &str| {
        let selector = scraper::Selector::parse(css).unwrap();
        html.select(&selector)
            .map(|e| {
                e.value()
                    .attr("src")
                    .or(e.value().attr("href"))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let reference = scraper::Selector::parse("#api-reference").unwrap();
    let root = html
        .select(&reference)
        .next()
        .expect("the viewer's mount point");
    assert_eq!(
        root.value().attr("data-spec-url"),
        Some("/api/v1/openapi.json")
    );
    assert_eq!(select("nav a[aria-current=page]"), ["/api/docs"]);
    // Everything the page loads comes from this server, and is there.
    let assets: Vec<String> = select("script[src], link[rel=stylesheet]");
    assert!(
        assets.iter().any(|a| a.contains("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    for asset in assets {
        assert!(asset.starts_with("/static/"), "{asset} is not embedded");
        let response = app.get(&asset).await;
        assert_eq!(response.status, StatusCode::OK, "{asset}");
        assert!(!response.body.is_empty(), "{asset}");
    }
}
