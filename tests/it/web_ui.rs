//! The admin UI, in-process: forms, inline errors, CSRF, escaping, tenancy, bulk assignment.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{PASSWORD, TestApp, count_rows, execute, scalar, scalar_for};

#[sqlx::test]
async fn an_admin_creates_a_region_in_the_browser(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Admin).await;
    let empty = app.get("/regions").await;
    assert_eq!(empty.empty_state("regions"), ["No regions yet"]);
    let r = app
        .submit(
            "/regions/new",
            "/regions",
            &[
                ("name", "US East"),
                ("identifier", "us-east-1"),
                ("priority", "200"),
                ("health_check_interval_seconds", "30"),
                ("enabled", "on"),
                ("worker_pool_config", r#"{"min_workers": 2}"#),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = r.location().unwrap().to_string();
    assert!(location.starts_with("/regions/"));
    let page = app.get(&location).await;
    assert_eq!(
        page.texts(".flash-success"),
        ["Region US East created. Its queue is region_us-east-1."]
    );
    let list = app.get("/regions").await;
    let row: Vec<String> = list.texts("[data-testid=regions-table] tbody tr td");
    assert_eq!(row[0], "US East");
    assert_eq!(row[1], "us-east-1");
    assert_eq!(row[2], "region_us-east-1");
    assert_eq!(row[3], "200");
    assert_eq!(
        list.texts(r#"[data-region-health="us-east-1"]"#),
        ["no workers yet"]
    );
}

#[sqlx::test]
async fn a_bad_region_form_is_shown_again_with_inline_errors(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Admin).await;
    let r = app
        .submit(
            "/regions/new",
            "/regions",
            &[
                ("name", "US East"),
                ("identifier", "US EAST"),
                ("priority", "high"),
                ("worker_pool_config", "{oops"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.texts("#identifier-error").len(), 1);
    assert_eq!(r.texts("#priority-error"), ["Enter a whole number."]);
    assert!(r.texts("#worker_pool_config-error")[0].starts_with("Not valid JSON"));
    // What was typed is kept.
    assert_eq!(r.attr("#name", "value").as_deref(), Some("US East"));

    // A duplicate identifier is an inline error too (from the database constraint).
    app.post_form("/regions", &[("name", "A"), ("identifier", "a")])
        .await;
    let dup = app
        .post_form("/regions", &[("name", "B"), ("identifier", "a")])
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        dup.texts("#identifier-error"),
        ["A region with this identifier already exists for this customer."]
    );
}

#[sqlx::test]
async fn user_supplied_names_are_escaped(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Admin).await;
    let evil = r#"<img src=x onerror="alert(1)">"#;
    let fields = [("name", evil), ("identifier", "evil")];
    let r = app.submit("/regions/new", "/regions", &fields).await;
    let page = app.get(r.location().unwrap()).await;
    assert!(!page.body.contains(evil));
    assert!(page.texts("h1")[0].starts_with(evil));
    let list = app.get("/regions").await;
    assert!(!list.body.contains("<img src=x"));
    assert_eq!(
        list.texts("[data-testid=regions-table] tbody td a")[0],
        evil
    );
}

#[sqlx::test]
async fn deleting_a_region_says_how_many_devices_lose_it(pool: PgPool) {
    let (mut app, _, id) = TestApp::signed_in_with_region(pool.clone(), Role::Admin).await;
    app.bulk_devices("acme", "r", "par", 3).await;
    sqlx::query("UPDATE device_assignments SET region_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();

    let confirm = app.get(&format!("/regions/{id}/delete")).await;
    assert_eq!(
        confirm.texts("[data-testid=delete-impact]"),
        ["3 devices will lose their region; their jobs will go to the default queue."]
    );
    let r = app.post_form(&format!("/regions/{id}/delete"), &[]).await;
    assert_eq!(r.location(), Some("/regions"));
    let list = app.get("/regions").await;
    assert_eq!(
        list.texts(".flash-success"),
        ["Region US East deleted; 3 devices no longer have a region."]
    );
    let unassigned = count_rows(&pool, "device_assignments WHERE region_id IS NULL").await;
    assert_eq!(unassigned, 3);
}

#[sqlx::test]
async fn the_manual_health_form_changes_the_badge(pool: PgPool) {
    let (mut app, _, id) = TestApp::signed_in_with_region(pool, Role::Admin).await;
    let (page, health) = (format!("/regions/{id}"), format!("/regions/{id}/health"));
    let fields = [("health_status", "offline"), ("message", "maintenance")];
    let r = app.submit(&page, &health, &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = app.get(&page).await;
    assert!(
        page.texts(r#"[data-region-health="us-east-1"]"#)
            .iter()
            .all(|t| t == "offline")
    );
    assert_eq!(page.texts("[data-testid=health-message]"), ["maintenance"]);
    let bad = app.post_form(&health, &[("health_status", "sick")]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.texts("#health_status-error").len(), 1);
}

#[sqlx::test]
async fn viewers_see_regions_but_no_management_controls(pool: PgPool) {
    let (mut app, _, id) = TestApp::signed_in_with_region(pool, Role::Viewer).await;
    let list = app.get("/regions").await;
    assert!(list.texts("a[href='/regions/new']").is_empty());
    let page = app.get(&format!("/regions/{id}")).await;
    assert!(page.texts("form.health-form").is_empty());
    assert_eq!(app.get("/regions/new").await.status, StatusCode::FORBIDDEN);
    let r = app
        .post_form("/regions", &[("name", "X"), ("identifier", "x")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.texts("h1")[0].contains("403"));
    let devices = app.get("/devices").await;
    assert!(
        devices.texts("form#bulk").is_empty(),
        "viewers cannot bulk-assign"
    );
}

#[sqlx::test]
async fn another_customers_pages_are_not_found(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Admin).await;
    let globex = app.api_user("g", Role::Admin, "globex").await;
    let region = app.region(&globex, "Theirs", "theirs").await;
    let device = app.new_device(&globex, "theirs", "10.9.9.9", None).await;
    for path in [
        format!("/regions/{region}"),
        format!("/regions/{region}/edit"),
        format!("/regions/{region}/delete"),
        format!("/devices/{device}"),
        format!("/devices/{device}/edit"),
    ] {
        assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    app.get("/regions").await;
    let r = app
        .post_form(&format!("/regions/{region}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let list = app.get("/devices").await;
    assert!(!list.body.contains("theirs"));
}

#[sqlx::test]
async fn the_device_list_filters_sorts_and_paginates_from_the_query_string(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 60).await;
    app.bulk_devices("acme", "lon", "lon", 5).await;
    let page = app.get("/devices?site=par&page_size=25").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.texts("[data-testid=devices-table] tbody tr").len(), 25);
    assert_eq!(page.texts(".pager .muted")[0], "1–25 of 60");
    // The way on is above the list too, not only 25 rows down.
    assert_eq!(
        page.texts("[data-testid=pager-top] a[rel=next]"),
        ["Next →"]
    );
    assert_eq!(
        page.attr("a[rel=next]", "href").as_deref(),
        Some("/devices?site=par&page_size=25&page=2")
    );
    let last = app.get("/devices?site=par&page_size=25&page=3").await;
    assert_eq!(last.texts("[data-testid=devices-table] tbody tr").len(), 10);

    let sorted = app.get("/devices?site=lon&sort=-hostname").await;
    let first = &sorted.texts("[data-testid=devices-table] tbody tr td a")[0];
    assert_eq!(first, "lon-00005");
    assert_eq!(sorted.texts("th[aria-sort=descending] a"), ["Hostname ▼"]);
    assert_eq!(
        sorted.texts("th[aria-sort=descending] a span[aria-hidden=true]"),
        ["▼"]
    );

    let none = app.get("/devices?q=nomatch").await;
    assert_eq!(none.empty_state("devices"), ["No device matches"]);
    let bad = app.get("/devices?region=east").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn the_device_list_takes_several_sites_in_one_box_separated_by_commas(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 30).await;
    app.bulk_devices("acme", "lon", "lon", 5).await;
    app.bulk_devices("acme", "ams", "ams", 4).await;
    let page = app.get("/devices?site=par%2C+lon&page_size=25").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.texts(".pager .muted")[0], "1–25 of 35");
    assert_eq!(
        page.attr("input[name=site]", "value").as_deref(),
        Some("par, lon")
    );
    // Links carry the sites as repeated parameters, which the page reads back the same.
    let next = page.attr("a[rel=next]", "href").unwrap();
    assert_eq!(next, "/devices?site=par&site=lon&page_size=25&page=2");
    let second = app.get(&next).await;
    assert_eq!(
        second.texts("[data-testid=devices-table] tbody tr").len(),
        10
    );
    // The form offers the page size and keeps the sort.
    assert_eq!(
        second.texts("select[name=page_size] option[selected]"),
        ["25 per page"]
    );
    let sorted = app.get("/devices?sort=-site&page_size=37").await;
    assert_eq!(
        sorted.texts("select[name=page_size] option[selected]"),
        ["37 per page"]
    );
    assert_eq!(
        sorted
            .attr("form.filters input[name=sort]", "value")
            .as_deref(),
        Some("-site")
    );
    let default = app.get("/devices").await;
    assert_eq!(
        default
            .attr("select[name=page_size] option[selected]", "value")
            .as_deref(),
        Some("")
    );
    assert!(default.texts("form.filters input[name=sort]").is_empty());
}

#[sqlx::test]
async fn bulk_assigning_all_matching_devices_across_pages_asks_then_moves_them(pool: PgPool) {
    let (mut app, _, east) = TestApp::signed_in_with_region(pool.clone(), Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 1234).await;
    app.bulk_devices("acme", "lon", "lon", 7).await;
    let list = app.get("/devices?site=par").await;
    assert_eq!(list.texts("[data-testid=devices-table] tbody tr").len(), 50);

    let east_s = east.to_string();
    let fields = [
        ("region", east_s.as_str()),
        ("all_matching", "1"),
        ("filter_site", "par"),
        ("back", "/devices?site=par"),
    ];
    let confirm = app.post_form("/devices/bulk-assign", &fields).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        confirm.texts("[data-testid=bulk-summary]"),
        ["1,234 devices will be moved to US East."]
    );
    let moved_yet = count_rows(&pool, "device_assignments WHERE region_id IS NOT NULL").await;
    assert_eq!(moved_yet, 0, "nothing moves before confirmation");

    let mut confirmed = fields.to_vec();
    confirmed.push(("confirmed", "1"));
    let done = app.post_form("/devices/bulk-assign", &confirmed).await;
    assert_eq!(done.location(), Some("/devices?site=par"));
    let back = app.get("/devices?site=par").await;
    assert_eq!(
        back.texts(".flash-success"),
        ["1,234 devices moved to US East."]
    );
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT site, count(*) FILTER (WHERE region_id IS NOT NULL) FROM devices JOIN device_assignments ON device_id = id GROUP BY site ORDER BY site",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(counts, [("lon".to_string(), 0), ("par".to_string(), 1234)]);
}

#[sqlx::test]
async fn bulk_assigning_checked_rows_and_unassigning(pool: PgPool) {
    let (mut app, _, east) = TestApp::signed_in_with_region(pool.clone(), Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 5).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM devices ORDER BY id LIMIT 2")
        .fetch_all(&pool)
        .await
        .unwrap();
    app.get("/devices").await;
    let (a, b, e) = (ids[0].to_string(), ids[1].to_string(), east.to_string());
    let assign_two = vec![
        ("device_ids", a.as_str()),
        ("device_ids", &b),
        ("region", &e),
        ("confirmed", "1"),
    ];
    let unassign_one = vec![
        ("device_ids", a.as_str()),
        ("region", ""),
        ("confirmed", "1"),
    ];
    for (fields, said) in [
        (assign_two, "2 devices moved to US East."),
        (unassign_one, "1 device no longer has a region."),
    ] {
        let r = app.post_form("/devices/bulk-assign", &fields).await;
        assert_eq!(r.location(), Some("/devices"), "{said}: {}", r.body);
        let list = app.get("/devices").await;
        assert_eq!(list.texts(".flash-success"), [said]);
    }
    // Nothing checked and not "all matching": a clear error.
    let r = app
        .post_form(
            "/devices/bulk-assign",
            &[("region", &e), ("back", "/devices?site=par")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/devices?site=par"),
        "back to the list, filter kept"
    );
    let list = app.get("/devices?site=par").await;
    assert!(list.texts(".flash-error")[0].starts_with("Check some devices"));
    // Without the CSRF token: refused.
    let r = app
        .post_form_raw(
            "/devices/bulk-assign",
            &[("device_ids", &a), ("region", &e), ("confirmed", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[sqlx::test]
async fn an_admin_creates_and_edits_a_device_with_inline_errors(pool: PgPool) {
    let (mut app, admin, east) = TestApp::signed_in_with_region(pool, Role::Admin).await;
    let east = east.to_string();
    let fields = [("hostname", "r 1"), ("mgmt_ip", "nope"), ("port", "99999")];
    let bad = app.submit("/devices/new", "/devices", &fields).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    for id in ["#hostname-error", "#mgmt_ip-error", "#port-error"] {
        assert_eq!(bad.texts(id).len(), 1, "{id}");
    }
    let r = app
        .post_form(
            "/devices",
            &[
                ("hostname", "par-rtr-1"),
                ("mgmt_ip", "192.0.2.1"),
                ("port", "2222"),
                ("site", "par"),
                ("tags", "core, lab"),
                ("region", &east),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = app.get(r.location().unwrap()).await;
    assert_eq!(page.texts("h1"), ["par-rtr-1"]);
    assert!(page.body.contains("192.0.2.1:2222"));
    assert_eq!(page.texts(".tag"), ["core", "lab"]);
    let id = r
        .location()
        .unwrap()
        .trim_start_matches("/devices/")
        .to_string();
    let (edit, device) = (format!("/devices/{id}/edit"), format!("/devices/{id}"));
    let no_region = [
        ("hostname", "par-rtr-1"),
        ("mgmt_ip", "192.0.2.1"),
        ("region", ""),
    ];
    let r = app.submit(&edit, &device, &no_region).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let in_api = format!("/api/v1/devices/{id}/");
    let d = app.get_json(&admin, &in_api).await.json();
    assert_eq!(d["region"], serde_json::Value::Null);
    assert_eq!(d["enabled"], false, "an unchecked box disables the device");
}

#[sqlx::test]
async fn credential_pages_never_show_secrets(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Admin).await;
    let secret = "hunter2-secret";
    let fields = [
        ("name", "lab"),
        ("username", "netops"),
        ("password", secret),
    ];
    let r = app
        .submit("/credentials/new", "/credentials", &fields)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = app.get("/credentials").await;
    assert!(list.body.contains("netops") && !list.body.contains(secret));
    let cells = list.texts("tbody td");
    assert_eq!(cells[2], "set");
}

#[sqlx::test]
async fn the_dashboard_shows_each_region_with_a_live_badge(pool: PgPool) {
    let mut app = TestApp::signed_in(pool, Role::Viewer).await;
    let empty = app.get("/").await;
    assert_eq!(empty.empty_state("dashboard"), ["Nothing to watch yet"]);
    let admin = app.api_user("api", Role::Admin, "acme").await;
    app.region(&admin, "US East", "us-east-1").await;
    let page = app.get("/").await;
    let swap = page.attr(r#"[data-region-health="us-east-1"]"#, "sse-swap");
    assert!(swap.unwrap().starts_with("region-health-"));
    assert_eq!(page.attr("main", "sse-connect").as_deref(), Some("/events"));
}

#[sqlx::test]
async fn moving_a_region_to_another_customer_is_refused_by_the_page_as_by_the_api(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    app.create_user("multi", Role::Admin, &["acme", "globex"])
        .await;
    app.login("multi", PASSWORD).await;
    let admin = app.api_user("api", Role::Admin, "acme").await;
    let region = app.region(&admin, "US East", "us-east-1").await;
    let globex: i64 = scalar(&pool, "SELECT id FROM customers WHERE name = 'globex'").await;
    let globex_s = globex.to_string();
    let message = "A region cannot move to another customer.";

    let path = format!("/api/v1/regions/{region}/");
    let api = app
        .patch_json(&admin, &path, json!({"customer": globex}))
        .await;
    assert_eq!(api.status, StatusCode::BAD_REQUEST, "{}", api.body);
    assert_eq!(api.field_error("customer"), message);

    let page = app
        .submit(
            &format!("/regions/{region}/edit"),
            &format!("/regions/{region}"),
            &[
                ("name", "US East"),
                ("identifier", "us-east-1"),
                ("customer", &globex_s),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains(message), "the page says why");
    let owner: String = scalar_for(
        &pool,
        "SELECT c.name FROM regions r JOIN customers c ON c.id = r.customer_id WHERE r.id = $1",
        region,
    )
    .await;
    assert_eq!(owner, "acme", "the region stayed where it was");
}

#[sqlx::test]
async fn a_bulk_edit_asks_for_fields_shows_old_and_new_values_then_changes_every_matching_device(
    pool: PgPool,
) {
    let mut app = TestApp::signed_in(pool.clone(), Role::Admin).await;
    app.bulk_devices("acme", "par", "par", 75).await;
    app.bulk_devices("acme", "lon", "lon", 3).await;
    app.get("/devices?site=par").await;
    let target = [
        ("all_matching", "1"),
        ("filter_site", "par"),
        ("back", "/devices?site=par"),
    ];
    let form = app.post_form("/devices/bulk-edit", &target).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert_eq!(form.texts("h1"), ["Edit 75 devices"]);
    assert_eq!(
        form.attr("select[name=credential] option[selected]", "value")
            .as_deref(),
        Some("keep"),
        "every field starts unchanged"
    );

    // Nothing chosen: the form again, with the reason.
    let mut nothing = target.to_vec();
    nothing.extend([("step", "preview"), ("site", " "), ("credential", "keep")]);
    let again = app.post_form("/devices/bulk-edit", &nothing).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(
        again.texts("[data-testid=error-summary] li")[0].contains("Change at least one field"),
        "{:?}",
        again.texts("[data-testid=error-summary] li")
    );

    let mut preview = target.to_vec();
    preview.extend([
        ("step", "preview"),
        ("role", "core"),
        ("tags_add", "lab, dc1"),
    ]);
    let confirm = app.post_form("/devices/bulk-edit", &preview).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        confirm.texts("[data-testid=bulk-summary]"),
        ["75 devices will change. The first 20 by hostname:"]
    );
    let cells = confirm.texts("[data-testid=bulk-preview] tbody tr:first-child td");
    assert_eq!(cells, ["par-00001", "role", "edge", "core"]);
    let roles = count_rows(&pool, "devices WHERE role = 'core'").await;
    assert_eq!(roles, 0, "nothing changes before confirmation");

    let mut apply = preview.clone();
    apply.retain(|(k, _)| *k != "step");
    apply.push(("step", "apply"));
    let done = app.post_form("/devices/bulk-edit", &apply).await;
    assert_eq!(done.location(), Some("/devices?site=par"));
    let back = app.get("/devices?site=par").await;
    assert_eq!(back.texts(".flash-success"), ["75 devices changed."]);
    let changed: Vec<(String, String, Vec<String>, i64)> = sqlx::query_as(
        "SELECT site, role, tags, count(*) FROM devices GROUP BY 1, 2, 3 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let tags = vec!["dc1".to_string(), "lab".to_string()];
    assert_eq!(
        changed,
        [
            ("lon".to_string(), "edge".to_string(), vec![], 3),
            ("par".to_string(), "core".to_string(), tags, 75)
        ]
    );
}

#[sqlx::test]
async fn an_operators_bulk_edit_offers_the_region_only(pool: PgPool) {
    let (mut app, _, east) = TestApp::signed_in_with_region(pool.clone(), Role::Operator).await;
    app.bulk_devices("acme", "par", "par", 2).await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM devices ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    app.get("/devices").await;
    let form = app
        .post_form("/devices/bulk-edit", &[("device_ids", &ids[0])])
        .await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.attr("select[name=credential]", "disabled").is_some());
    assert!(form.attr("select[name=region]", "disabled").is_none());
    let e = east.to_string();
    let site = app
        .post_form(
            "/devices/bulk-edit",
            &[("device_ids", &ids[0]), ("step", "apply"), ("site", "x")],
        )
        .await;
    assert_eq!(site.status, StatusCode::FORBIDDEN);
    let region = app
        .post_form(
            "/devices/bulk-edit",
            &[("device_ids", &ids[0]), ("step", "apply"), ("region", &e)],
        )
        .await;
    assert_eq!(region.location(), Some("/devices"), "{}", region.body);
    let moved = count_rows(&pool, "device_assignments WHERE region_id IS NOT NULL").await;
    assert_eq!(moved, 1);
}

#[sqlx::test]
async fn the_device_lists_export_link_downloads_the_filtered_list_as_csv(pool: PgPool) {
    let mut app = TestApp::signed_in(pool.clone(), Role::Viewer).await;
    app.bulk_devices("acme", "par", "par", 60).await;
    app.bulk_devices("acme", "lon", "lon", 5).await;
    let page = app
        .get("/devices?site=lon&sort=-hostname&page_size=25")
        .await;
    let href = page.attr("[data-testid=export-csv]", "href").unwrap();
    // Every page of the filter, in its order: the page size is not the export's business.
    assert_eq!(href, "/devices.csv?site=lon&sort=-hostname");

    let csv = app.get(&href).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 1 + 5, "{}", csv.body);
    assert!(lines[0].starts_with("id,hostname,mgmt_ip,"), "{}", lines[0]);
    assert!(lines[1].contains(",lon-00005,"), "{}", lines[1]);

    let all = app.get("/devices.csv").await;
    assert_eq!(all.body.lines().count(), 1 + 65);

    let mut stranger = TestApp::new(pool).await;
    let r = stranger.get("/devices.csv").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.location().unwrap().starts_with("/login"),
        "{:?}",
        r.location()
    );
}

#[sqlx::test]
async fn a_region_no_worker_has_served_says_so_and_how_to_start_one(pool: PgPool) {
    let (mut app, _, id) = TestApp::signed_in_with_region(pool.clone(), Role::Admin).await;
    let badge = r#"[data-region-health="us-east-1"]"#;
    let page = app.get(&format!("/regions/{id}")).await;
    assert!(
        page.texts(badge).iter().all(|t| t == "no workers yet"),
        "{:?}",
        page.texts(badge)
    );
    assert_eq!(app.get("/regions").await.texts(badge), ["no workers yet"]);
    let hint = page.texts("[data-testid=no-workers-yet]").join(" ");
    assert!(hint.contains("webnet worker --region us-east-1"), "{hint}");

    // Once the monitor has looked, the badge shows what it found, and says why.
    execute(
        &pool,
        "UPDATE regions SET created_at = now() - interval '1 minute'".into(),
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    let config = webnet::health::MonitorConfig::default();
    webnet::health::pass(&mut conn, &config, &mut Default::default())
        .await
        .unwrap();
    let page = app.get(&format!("/regions/{id}")).await;
    assert!(page.texts(badge).iter().all(|t| t == "offline"));
    let message = page.texts("[data-testid=health-message]").join("");
    assert!(
        message.starts_with("no workers yet: start `webnet worker --region us-east-1`"),
        "{message}"
    );

    // A worker serving its queue ends "no workers yet" for good.
    let queues = ["region_us-east-1".to_string()];
    let beat = webnet::fleet::Beat {
        name: "w-1-abc",
        host: "test",
        version: "0",
        queues: &queues,
        heartbeat: std::time::Duration::from_secs(1),
        running_tasks: 0,
    };
    webnet::fleet::beat(&pool, &beat).await.unwrap();
    webnet::health::pass(&mut conn, &config, &mut Default::default())
        .await
        .unwrap();
    let page = app.get(&format!("/regions/{id}")).await;
    assert!(page.texts(badge).iter().all(|t| t == "healthy"));
    assert!(page.texts("[data-testid=no-workers-yet]").is_empty());
    let seen: Option<time::OffsetDateTime> = scalar_for(
        &pool,
        "SELECT workers_seen_at FROM regions WHERE id = $1",
        id,
    )
    .await;
    assert!(seen.is_some());
}
