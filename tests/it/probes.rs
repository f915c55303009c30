//! Probes, metrics, static assets and unknown paths.

use axum::http::{Method, StatusCode};
use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test]
async fn healthz_and_readyz_answer(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let health = app.get("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    let ready = app.get("/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready\n")
    );
}

#[sqlx::test]
async fn readyz_fails_when_the_database_is_gone(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    pool.close().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test]
async fn metrics_count_requests_by_route_pattern(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.api(Method::GET, "/api/v1/me/", None, None).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.body.contains(
            r#"webnet_http_requests_total{method="GET",route="/healthz",status="200"} 2"#
        ),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains(
        r#"webnet_http_requests_total{method="GET",route="/api/v1/me/",status="401"} 1"#
    ));
    assert!(metrics.body.contains(
        r#"webnet_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/healthz"} 2"#
    ) || metrics.body.contains(
        r#"webnet_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"} 2"#
    ));
}

#[sqlx::test]
async fn static_assets_are_embedded_and_revalidated_by_etag(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let htmx = app.get("/static/vendor/htmx-2.0.11.min.js").await;
    assert_eq!(htmx.status, StatusCode::OK);
    assert!(htmx.header("content-type").unwrap().contains("javascript"));
    assert!(htmx.body.contains("htmx"));
    let etag = htmx.header("etag").unwrap().to_string();

    let revalidate = [("if-none-match", etag.as_str())];
    let again = app
        .request(
            Method::GET,
            "/static/vendor/htmx-2.0.11.min.js",
            &revalidate,
            "",
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    // Gzipped for browsers that accept it (the API reference's bundle is large).
    let bundle = "/static/vendor/swagger-ui-5.35.0/swagger-ui-bundle.js";
    let gzipped = app
        .request(Method::GET, bundle, &[("accept-encoding", "gzip")], "")
        .await;
    assert_eq!(gzipped.status, StatusCode::OK);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert!(!htmx.headers.contains_key("content-encoding"));

    let css = app.get("/static/app.css").await;
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(
        app.get("/static/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn pages_reference_only_local_assets(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let page = app.get("/login").await;
    for src in ["script[src]", "link[href]"] {
        let selector = scraper::Selector::parse(src).unwrap();
        for el in page.html().select(&selector) {
            let url = el.value().attr("src").or(el.value().attr("href")).unwrap();
            assert!(url.starts_with("/static/"), "external asset {url}");
            let asset = app.get(url).await;
            assert_eq!(asset.status, StatusCode::OK, "{url}");
        }
    }
}

#[sqlx::test]
async fn unknown_paths_are_404_in_the_right_format(pool: PgPool) {
    let mut app = TestApp::new(pool).await;
    let page = app.get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let api = app.get("/api/v1/no-such-thing/").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.json()["detail"], "Not found.");
}
