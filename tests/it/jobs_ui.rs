//! Job pages in-process: starting a job from the device list, the list, the job page and
//! its live stream.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{ApiUser, TestApp, another_server, open_stream, scalar_for};

/// Opens a job's live stream (`/jobs/{id}/events?after=…`) as `app`'s browser would.
async fn job_events(app: &TestApp, id: i64, after: i64) -> Body {
    let path = format!("/jobs/{id}/events?after={after}");
    open_stream(&another_server(&app.pool), app, &path).await
}

/// An operator's browser, an admin's API token, and one device ("a", on 127.0.0.1).
async fn operator_with_a_device(pool: PgPool) -> (TestApp, ApiUser, i64) {
    let mut app = TestApp::signed_in(pool, Role::Operator).await;
    let admin = app.api_user("api", Role::Admin, "acme").await;
    let device = app.new_device(&admin, "a", "127.0.0.1", None).await;
    (app, admin, device)
}

#[sqlx::test]
async fn an_operator_starts_a_job_from_checked_devices(pool: PgPool) {
    let (mut app, admin, east) = TestApp::signed_in_with_region(pool.clone(), Role::Operator).await;
    let a = app.new_device(&admin, "a", "127.0.0.1", Some(east)).await;
    let b = app.new_device(&admin, "b", "127.0.0.2", None).await;
    app.get("/devices").await;
    let (a_s, b_s) = (a.to_string(), b.to_string());
    let form = app
        .post_form(
            "/jobs/new",
            &[("device_ids", &a_s), ("device_ids", &b_s), ("region", "")],
        )
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert_eq!(form.texts("[data-testid=job-targets]"), ["a, b"]);
    let r = app
        .post_form(
            "/jobs",
            &[
                ("device_ids", &a_s),
                ("device_ids", &b_s),
                ("type", "run_commands"),
                ("commands", "show version\n\nshow clock\n"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = r.location().unwrap().to_string();
    let page = app.get(&location).await;
    assert!(page.texts(".flash-success")[0].ends_with("started on 2 devices."));
    assert_eq!(page.texts("[data-testid=job-status]"), ["queued"]);
    let queues = page.texts("[data-testid=dispatches] tbody td code");
    assert_eq!(queues, ["region_us-east-1", "default"]);
    let id: i64 = location.trim_start_matches("/jobs/").parse().unwrap();
    let payload: serde_json::Value =
        scalar_for(&pool, "SELECT payload FROM jobs WHERE id = $1", id).await;
    assert_eq!(payload["commands"], json!(["show version", "show clock"]));

    let list = app.get("/jobs").await;
    assert_eq!(list.texts("[data-testid=jobs-table] tbody tr").len(), 1);
    assert!(
        list.body.contains("hx-trigger=\"every 2s\""),
        "a queued job keeps the list refreshing"
    );
    let filtered = app.get("/jobs?status=success").await;
    assert_eq!(
        filtered.texts("[data-testid=jobs-empty] h2"),
        ["No jobs match the filter"]
    );

    // Bad input comes back on the form.
    let bad = app
        .post_form(
            "/jobs",
            &[
                ("device_ids", &a_s),
                ("type", "run_commands"),
                ("commands", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Give a list of 1 to 50 commands."));
    // The error is tied to its field for screen readers.
    let described = bad.attr("#commands", "aria-describedby");
    assert_eq!(described.as_deref(), Some("payload.commands-error"));
    assert_eq!(
        bad.texts(r#"[id="payload.commands-error"]"#),
        ["Give a list of 1 to 50 commands."]
    );
}

#[sqlx::test]
async fn viewers_cannot_start_jobs(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Viewer).await;
    assert_eq!(
        app.get("/jobs/new?device_ids=1").await.status,
        StatusCode::FORBIDDEN
    );
    app.get("/jobs").await;
    let r = app
        .post_form(
            "/jobs",
            &[("device_ids", "1"), ("type", "check_reachability")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[sqlx::test]
async fn the_live_stream_catches_up_at_once_when_the_job_already_finished(pool: PgPool) {
    let (mut app, admin, _) = operator_with_a_device(pool).await;
    let all = json!({"targets": {}});
    let id = app.start_job(&admin, "/api/v1/reachability/run", all).await;
    // The job finishes (here: is cancelled) before the browser's stream connects.
    app.post_json(&admin, &format!("/api/v1/jobs/{id}/cancel/"), json!({}))
        .await;
    let mut body = job_events(&app, id, 1).await;
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains("event: job") {
                    break;
                }
            }
        }
    })
    .await;
    assert!(seen.contains("event: log"), "{seen}");
    assert!(seen.contains("cancelled by a user"), "{seen}");
    assert!(
        seen.contains("event: job") && seen.contains(">cancelled</span>"),
        "{seen}"
    );
    // A reconnecting browser resumes after the last line it got.
    assert!(seen.contains("id: "), "{seen}");
}

#[sqlx::test]
async fn retrying_from_the_page_makes_the_same_job_as_the_api(pool: PgPool) {
    let (mut app, admin, device) = operator_with_a_device(pool).await;
    let first = app.run_commands(&admin, device, &["show version"]).await;

    let by_api = app
        .post_json(&admin, &format!("/api/v1/jobs/{first}/retry/"), json!({}))
        .await
        .json();
    app.get(&format!("/jobs/{first}")).await;
    let r = app.post_form(&format!("/jobs/{first}/retry"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page_id: i64 = r
        .location()
        .unwrap()
        .trim_start_matches("/jobs/")
        .parse()
        .unwrap();
    let by_page = app.job(&admin, page_id).await;

    assert_eq!(by_page["retry_of"], first, "{by_page}");
    for field in ["retry_of", "type", "target_summary", "payload", "customer"] {
        assert_eq!(by_page[field], by_api[field], "{field}");
    }
}

#[sqlx::test]
async fn a_log_line_committed_after_a_later_one_still_reaches_the_live_log(pool: PgPool) {
    use webnet::lifecycle::{LogLevel, log};
    let (mut app, admin, _) = operator_with_a_device(pool.clone()).await;
    let all = json!({"targets": {}});
    let id = app.start_job(&admin, "/api/v1/reachability/run", all).await;
    let shown: i64 = scalar_for(&pool, "SELECT max(id) FROM job_logs WHERE job_id = $1", id).await;
    let mut body = job_events(&app, id, shown).await;
    let mut seen = String::new();
    let mut read_until = async |needle: &str, seen: &mut String| {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !seen.contains(needle) {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            seen.push_str(&String::from_utf8_lossy(&data));
                        }
                    }
                    _ => break,
                }
            }
        })
        .await;
    };

    // The slow writer takes its id first and commits last.
    let mut slow = pool.begin().await.unwrap();
    log(&mut slow, id, LogLevel::Info, "", "the slow line")
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    log(&mut conn, id, LogLevel::Info, "", "the fast line")
        .await
        .unwrap();
    read_until("the fast line", &mut seen).await;
    assert!(seen.contains("the fast line"), "{seen}");
    slow.commit().await.unwrap();
    read_until("the slow line", &mut seen).await;
    assert!(
        seen.contains("the slow line"),
        "a late commit is not skipped: {seen}"
    );
    assert_eq!(seen.matches("the fast line").count(), 1, "{seen}");
    assert_eq!(
        seen.matches("run_commands job").count() + seen.matches("reachability job").count(),
        0,
        "lines the page showed already are not sent again: {seen}"
    );
}

#[sqlx::test]
async fn a_job_on_all_matching_devices_carries_the_filter_not_ids_whatever_the_count(pool: PgPool) {
    let mut app = TestApp::signed_in(pool.clone(), Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 1500).await;
    app.bulk_devices("acme", "lon", "lon", 5).await;
    crate::helpers::execute(
        &pool,
        "UPDATE devices SET enabled = false WHERE hostname IN ('par-00001', 'par-00002')".into(),
    )
    .await;
    app.get("/devices?site=par").await;
    let bulk = [
        ("all_matching", "1"),
        ("filter_site", "par"),
        ("back", "/devices?site=par"),
    ];
    let form = app.post_form("/jobs/new", &bulk).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert_eq!(form.texts("h1"), ["Run a job on 1,498 devices"]);
    let targets = form.texts("[data-testid=job-targets]").join("");
    assert!(targets.contains("site=par"), "{targets}");
    assert!(targets.ends_with("and 1,488 more"), "{targets}");
    assert!(
        form.texts("form[action='/jobs'] input[name=device_ids]")
            .is_empty(),
        "no list of ids"
    );
    assert_eq!(
        form.attr("form[action='/jobs'] input[name=filter_site]", "value")
            .as_deref(),
        Some("par")
    );

    let r = app
        .post_form(
            "/jobs",
            &[
                ("all_matching", "1"),
                ("filter_site", "par"),
                ("type", "check_reachability"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location()
        .unwrap()
        .trim_start_matches("/jobs/")
        .parse()
        .unwrap();
    let devices: i64 = scalar_for(
        &pool,
        "SELECT sum(cardinality(device_ids))::bigint FROM job_dispatches WHERE job_id = $1",
        id,
    )
    .await;
    assert_eq!(devices, 1498, "every enabled par device, none of lon");
    let summary: serde_json::Value =
        scalar_for(&pool, "SELECT target_summary FROM jobs WHERE id = $1", id).await;
    assert_eq!(summary, json!({"filter": {"site": ["par"]}}));
    let page = app.get(&format!("/jobs/{id}")).await;
    assert!(
        page.texts("[data-testid=job-request] dd div")
            .contains(&"site (filter): par".to_string()),
        "{:?}",
        page.texts("[data-testid=job-request] dd div")
    );
}

#[sqlx::test]
async fn run_a_job_with_nothing_checked_goes_back_to_the_filtered_list_saying_why(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 3).await;
    app.get("/devices?site=par").await;
    let r = app
        .post_form(
            "/jobs/new",
            &[("filter_site", "par"), ("back", "/devices?site=par")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/devices?site=par"));
    let list = app.get("/devices?site=par").await;
    assert!(
        list.texts(".flash-error")[0].starts_with("Check some devices"),
        "{:?}",
        list.texts(".flash-error")
    );
}

#[sqlx::test]
async fn a_region_page_lists_the_jobs_routed_to_it(pool: PgPool) {
    let (mut app, admin, east) = TestApp::signed_in_with_region(pool, Role::Operator).await;
    let page = app.get(&format!("/regions/{east}")).await;
    assert_eq!(
        page.texts("[data-testid=region-jobs] p"),
        ["No job has been routed here yet."]
    );
    let a = app.new_device(&admin, "a", "127.0.0.1", Some(east)).await;
    let elsewhere = app.new_device(&admin, "b", "127.0.0.2", None).await;
    let mut ids = Vec::new();
    for device in [a, elsewhere] {
        let body =
            json!({"type": "check_reachability", "target_summary": {"device_ids": [device]}});
        let job = app.create(&admin, "/api/v1/jobs/", body).await;
        ids.push(job["id"].as_i64().unwrap());
    }
    let page = app.get(&format!("/regions/{east}")).await;
    let rows = page.texts("[data-testid=region-jobs] tbody tr td a");
    assert_eq!(
        rows,
        [format!("#{}", ids[0])],
        "only the job routed to us-east-1"
    );
    assert_eq!(
        page.attr("[data-testid=region-jobs] .page-head a", "href"),
        Some(format!("/jobs?region={east}"))
    );
}
