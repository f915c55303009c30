//! `/api/v1/devices/` and `/api/v1/credentials/`.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{ApiUser, TestApp, assert_has_fields, execute, row_for, scalar};

#[sqlx::test]
async fn a_device_has_every_contract_field_and_defaults(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let id = app
        .device(
            &admin,
            json!({"hostname": "core-1", "mgmt_ip": "2001:db8::1", "tags": ["b", "a", "a"]}),
        )
        .await;
    let d = app
        .get_json(&admin, &format!("/api/v1/devices/{id}/"))
        .await
        .json();
    assert_has_fields(
        &d,
        &[
            "id",
            "customer",
            "hostname",
            "mgmt_ip",
            "port",
            "vendor",
            "platform",
            "role",
            "site",
            "tags",
            "credential",
            "enabled",
            "region",
            "reachability_status",
            "last_reachability_check",
            "created_at",
            "updated_at",
        ],
    );
    assert_eq!(d["port"], 22);
    assert_eq!(d["mgmt_ip"], "2001:db8::1");
    assert_eq!(d["tags"], json!(["a", "b"]));
    assert_eq!(d["region"], serde_json::Value::Null);
    assert_eq!(d["reachability_status"], "unknown");
    assert_eq!(d["enabled"], true);
}

#[sqlx::test]
async fn bad_device_input_names_each_field(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let bad = json!({"hostname": "bad host", "mgmt_ip": "10.0.0.300", "port": 0});
    let cases = [
        (bad.clone(), "hostname"),
        (bad.clone(), "mgmt_ip"),
        (bad, "port"),
        (json!({"hostname": "x"}), "mgmt_ip"),
        (
            json!({"hostname": "x", "mgmt_ip": "10.0.0.1", "port": "22"}),
            "port",
        ),
    ];
    app.assert_field_errors(&admin, "/api/v1/devices/", &cases)
        .await;
    app.new_device(&admin, "dup", "10.0.0.1", None).await;
    let dup = json!({"hostname": "dup", "mgmt_ip": "10.0.0.2"});
    let r = app.post_json(&admin, "/api/v1/devices/", dup).await;
    assert_eq!(
        r.field_error("hostname"),
        "A device with this hostname already exists for this customer."
    );
}

#[sqlx::test]
async fn a_device_cannot_point_at_another_customers_region_or_credential(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool).await;
    let their_region = app.region(&globex, "Theirs", "theirs").await;
    let their_cred = app.credential(&globex, "u", "pw").await;
    let body = json!({"hostname": "x", "mgmt_ip": "10.0.0.1", "region": their_region, "credential": their_cred});
    let r = app.post_json(&acme, "/api/v1/devices/", body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.field_error("region"),
        format!("No region with id {their_region}.")
    );
    assert_eq!(
        r.field_error("credential"),
        format!("No credential with id {their_cred}.")
    );

    let mine = app.new_device(&acme, "x", "10.0.0.1", None).await;
    let path = format!("/api/v1/devices/{mine}/");
    let r = app
        .patch_json(&acme, &path, json!({"region": their_region}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // And the other customer cannot see the device at all.
    assert_eq!(
        app.get_json(&globex, &path).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_json(&globex, "/api/v1/devices/").await.json()["count"],
        0
    );
}

#[sqlx::test]
async fn device_filters_match_case_insensitively_and_region_none(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool).await;
    app.device(&admin, json!({"hostname": "par-edge-1", "mgmt_ip": "10.0.0.1", "site": "PAR", "role": "edge", "vendor": "Cisco", "region": east})).await;
    app.device(&admin, json!({"hostname": "par-core-1", "mgmt_ip": "10.0.0.2", "site": "par", "role": "core", "vendor": "juniper"})).await;
    app.device(&admin, json!({"hostname": "lon-edge-1", "mgmt_ip": "10.0.1.1", "site": "lon", "role": "edge", "vendor": "arista"})).await;
    let names = |v: serde_json::Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["hostname"].as_str().unwrap().to_string())
            .collect()
    };
    let cases: [(&str, &[&str]); 7] = [
        ("site=par", &["par-core-1", "par-edge-1"]),
        ("role=EDGE", &["lon-edge-1", "par-edge-1"]),
        ("vendor=cisco", &["par-edge-1"]),
        ("region=none", &["lon-edge-1", "par-core-1"]),
        (&format!("region={east}") as &str, &["par-edge-1"]),
        ("q=core", &["par-core-1"]),
        ("q=10.0.1.", &["lon-edge-1"]),
    ];
    for (query, expected) in cases {
        let got = names(
            app.get_json(&admin, &format!("/api/v1/devices/?{query}"))
                .await
                .json(),
        );
        assert_eq!(got, expected, "{query}");
    }
    let sorted = names(
        app.get_json(&admin, "/api/v1/devices/?sort=-hostname")
            .await
            .json(),
    );
    assert_eq!(sorted, ["par-edge-1", "par-core-1", "lon-edge-1"]);
    for bad in ["region=east", "sort=password", "page=0"] {
        let r = app
            .get_json(&admin, &format!("/api/v1/devices/?{bad}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["errors"].is_object());
    }
    // LIKE wildcards are literal.
    assert_eq!(
        app.get_json(&admin, "/api/v1/devices/?q=%25").await.json()["count"],
        0
    );
}

#[sqlx::test]
async fn bulk_assignment_by_ids_and_by_filters(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    let operator = app.api_user("op", Role::Operator, "acme").await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let east = app.region(&admin, "US East", "us-east-1").await;
    app.bulk_devices("acme", "par", "par", 120).await;
    app.bulk_devices("acme", "lon", "lon", 10).await;

    let r = app
        .post_json(
            &operator,
            "/api/v1/devices/bulk_assign_region/",
            json!({"filters": {"site": "PAR"}, "region": east}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), json!({"updated": 120}));
    let in_east = app
        .get_json(&admin, &format!("/api/v1/regions/{east}/devices/"))
        .await
        .json();
    assert_eq!(in_east["count"], 120);
    assert_eq!(
        app.get_json(&admin, "/api/v1/devices/?region=none")
            .await
            .json()["count"],
        10
    );

    let lon: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE site = 'lon' ORDER BY id LIMIT 3")
            .fetch_all(&pool)
            .await
            .unwrap();
    let r = app
        .post_json(
            &operator,
            "/api/v1/devices/bulk_assign_region/",
            json!({"device_ids": lon, "region": east}),
        )
        .await;
    assert_eq!(r.json(), json!({"updated": 3}));
    let r = app
        .post_json(
            &operator,
            "/api/v1/devices/bulk_assign_region/",
            json!({"filters": {"region": east}, "region": null}),
        )
        .await;
    assert_eq!(r.json(), json!({"updated": 123}));
    assert_eq!(
        app.get_json(&admin, "/api/v1/devices/?region=none")
            .await
            .json()["count"],
        130
    );
}

#[sqlx::test]
async fn bulk_assignment_rejects_bad_requests_and_respects_tenancy(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool.clone()).await;
    let viewer = app.api_user("viewer", Role::Viewer, "acme").await;
    let globex = app.api_user("g", Role::Admin, "globex").await;
    let theirs = app.region(&globex, "Theirs", "theirs").await;
    let mine = app.new_device(&admin, "a", "10.0.0.1", None).await;
    let other = app.new_device(&globex, "b", "10.0.0.2", None).await;
    let path = "/api/v1/devices/bulk_assign_region/";

    let r = app
        .post_json(&viewer, path, json!({"device_ids": [mine], "region": east}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post_json(&admin, path, json!({"device_ids": [mine]}))
        .await;
    assert!(r.json()["errors"]["region"].is_array());
    let r = app.post_json(&admin, path, json!({"region": east})).await;
    assert!(r.json()["errors"]["device_ids"].is_array());
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine], "filters": {}, "region": east}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .post_json(
            &admin,
            path,
            json!({"filters": {"colour": "red"}, "region": east}),
        )
        .await;
    assert!(
        r.json()["errors"]["filters.colour"].is_array(),
        "{}",
        r.body
    );
    // Another customer's region and devices do not exist for us.
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine], "region": theirs}),
        )
        .await;
    assert!(r.json()["errors"]["region"].is_array());
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine, other], "region": east}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let why = r.field_error("device_ids");
    assert!(why.contains(&other.to_string()), "{why}");
    // Nothing changed.
    let theirs_region: Option<i64> =
        sqlx::query_scalar("SELECT region_id FROM device_assignments WHERE device_id = $1")
            .bind(other)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(theirs_region, None);
    // Unassigning by filter never touches another customer.
    app.patch_json(
        &globex,
        &format!("/api/v1/devices/{other}/"),
        json!({"region": theirs}),
    )
    .await;
    let r = app
        .post_json(&admin, path, json!({"filters": {}, "region": null}))
        .await;
    assert_eq!(r.json(), json!({"updated": 1}));
    let d = app
        .get_json(&globex, &format!("/api/v1/devices/{other}/"))
        .await
        .json();
    assert_eq!(d["region"], theirs);
}

#[sqlx::test]
async fn operators_may_move_a_device_between_regions_but_not_edit_it(pool: PgPool) {
    let (mut app, admin, east) = TestApp::with_region(pool).await;
    let operator = app.api_user("op", Role::Operator, "acme").await;
    let id = app.new_device(&admin, "a", "10.0.0.1", None).await;
    let path = format!("/api/v1/devices/{id}/");
    let r = app
        .patch_json(&operator, &path, json!({"region": east}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["region"], east);
    let r = app
        .patch_json(&operator, &path, json!({"region": null}))
        .await;
    assert_eq!(r.json()["region"], serde_json::Value::Null);
    let editing = vec![
        (Method::PATCH, path.clone(), Some(json!({"site": "x"}))),
        (
            Method::POST,
            "/api/v1/devices/".to_string(),
            Some(json!({"hostname": "b", "mgmt_ip": "10.0.0.2"})),
        ),
        (Method::DELETE, path.clone(), None),
    ];
    app.assert_each(&operator, editing, StatusCode::FORBIDDEN)
        .await;
    assert_eq!(
        app.delete(&admin, &path).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get_json(&admin, &path).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn credential_secrets_are_encrypted_and_never_returned(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let viewer = app.api_user("viewer", Role::Viewer, "acme").await;
    let secrets = json!({"name": "lab", "username": "netops", "password": "pa55-word!", "enable_password": "en4ble"});
    let r = app.post_json(&admin, "/api/v1/credentials/", secrets).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(!r.body.contains("pa55-word!") && !r.body.contains("en4ble"));
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(r.json()["has_password"], true);

    for path in [
        "/api/v1/credentials/".to_string(),
        format!("/api/v1/credentials/{id}/"),
    ] {
        let body = app.get_json(&viewer, &path).await.body;
        assert!(
            !body.contains("pa55-word!") && !body.contains("password_enc"),
            "{body}"
        );
    }
    let (pw, en): (Vec<u8>, Vec<u8>) = row_for(
        &pool,
        "SELECT password_enc, enable_password_enc FROM credentials WHERE id = $1",
        id,
    )
    .await;
    assert!(!pw.windows(10).any(|w| w == b"pa55-word!"));
    assert!(!en.windows(6).any(|w| w == b"en4ble"));

    // PATCH without a password keeps it; with one replaces it.
    let path = format!("/api/v1/credentials/{id}/");
    let r = app
        .patch_json(&admin, &path, json!({"username": "ops2"}))
        .await;
    assert_eq!(r.json()["has_password"], true);
    assert_eq!(r.json()["username"], "ops2");
    let other = json!({"name": "x", "username": "y"});
    let r = app.post_json(&viewer, "/api/v1/credentials/", other).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let same_name = json!({"name": "lab", "username": "y"});
    let dup = app
        .post_json(&admin, "/api/v1/credentials/", same_name)
        .await;
    assert!(dup.json()["errors"]["name"].is_array());
}

#[sqlx::test]
async fn a_credential_in_use_cannot_be_deleted(pool: PgPool) {
    let (mut app, admin, globex) = TestApp::two_customers(pool).await;
    let cred = app.credential(&admin, "u", "pw").await;
    let using_it = json!({"hostname": "a", "mgmt_ip": "10.0.0.1", "credential": cred});
    let device = app.device(&admin, using_it).await;
    let path = format!("/api/v1/credentials/{cred}/");
    assert_eq!(
        app.delete(&globex, &path).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app.delete(&admin, &path).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"]["credential"].is_array());
    let device_path = format!("/api/v1/devices/{device}/");
    app.patch_json(&admin, &device_path, json!({"credential": null}))
        .await;
    assert_eq!(
        app.delete(&admin, &path).await.status,
        StatusCode::NO_CONTENT
    );
}

#[sqlx::test]
async fn superusers_see_every_customer(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool).await;
    app.region(&acme, "A", "a").await;
    app.region(&globex, "G", "g").await;
    let root = app.superuser("root").await;
    assert_eq!(
        app.get_json(&root, "/api/v1/regions/").await.json()["count"],
        2
    );
    // Without a membership, the customer must be named.
    let r = app
        .post_json(
            &root,
            "/api/v1/regions/",
            json!({"name": "X", "identifier": "x"}),
        )
        .await;
    assert!(r.json()["errors"]["customer"].is_array());
}

async fn total(app: &mut TestApp, user: &ApiUser, query: String) -> i64 {
    let path = format!("/api/v1/devices/?{query}");
    app.get_json(user, &path).await.json()["count"]
        .as_i64()
        .unwrap()
}

/// The device list's total and the region list's counts come from counters that triggers
/// keep; every way a device comes, moves or goes must keep them equal to the rows.
#[sqlx::test]
async fn device_totals_stay_exact_through_creates_moves_bulk_changes_and_deletions(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let east = app.region(&admin, "East", "east").await;
    let west = app.region(&admin, "West", "west").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let region = if i < 4 { json!(east) } else { json!(null) };
        let body = json!({"hostname": format!("d{i}"), "mgmt_ip": format!("10.0.0.{}", i + 1), "region": region, "site": "s1"});
        ids.push(app.device(&admin, body).await);
    }
    assert_eq!(total(&mut app, &admin, String::new()).await, 6);
    assert_eq!(total(&mut app, &admin, format!("region={east}")).await, 4);
    assert_eq!(total(&mut app, &admin, "region=none".into()).await, 2);

    let moved = json!({"device_ids": [ids[0], ids[1], ids[4]], "region": west});
    let r = app
        .post_json(&admin, "/api/v1/devices/bulk_assign_region/", moved)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .patch_json(
            &admin,
            &format!("/api/v1/devices/{}/", ids[5]),
            json!({"region": east}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(total(&mut app, &admin, format!("region={east}")).await, 3);
    assert_eq!(total(&mut app, &admin, format!("region={west}")).await, 3);
    assert_eq!(total(&mut app, &admin, "region=none".into()).await, 0);

    let r = app
        .delete(&admin, &format!("/api/v1/devices/{}/", ids[2]))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .delete(&admin, &format!("/api/v1/regions/{west}/"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(total(&mut app, &admin, String::new()).await, 5);
    assert_eq!(total(&mut app, &admin, format!("region={east}")).await, 2);
    assert_eq!(total(&mut app, &admin, "region=none".into()).await, 3);

    let drift: i64 = scalar(
        &pool,
        "SELECT count(*) FROM (
             SELECT customer_id, region_id, count(*) AS devices FROM device_assignments
             GROUP BY 1, 2
             EXCEPT SELECT customer_id, region_id, devices FROM device_counts WHERE devices <> 0
         ) AS differing",
    )
    .await;
    assert_eq!(drift, 0, "a counter differs from the rows it counts");
}

async fn hostnames_in_order(app: &mut TestApp, user: &ApiUser, sort: &str) -> Vec<String> {
    let mut names = Vec::new();
    for page in 1..=5 {
        let path = format!("/api/v1/devices/?sort={sort}&page_size=2&page={page}");
        let r = app.get_json(user, &path).await;
        if r.status == StatusCode::NOT_FOUND {
            break;
        }
        let body = r.json();
        let rows = body["results"].as_array().unwrap().clone();
        names.extend(
            rows.iter()
                .map(|d| d["hostname"].as_str().unwrap().to_string()),
        );
        if body["next"].is_null() {
            break;
        }
    }
    names
}

/// Sorting by region reads the page's regions one by one; pages must still follow one order:
/// devices without a region first (last when reversed), regions by name, hostnames ascending.
#[sqlx::test]
async fn pages_sorted_by_region_follow_region_name_then_hostname(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let beta = app.region(&admin, "Beta", "beta").await;
    let alpha = app.region(&admin, "Alpha", "alpha").await;
    let placed = [
        ("b2", json!(beta)),
        ("n1", json!(null)),
        ("a2", json!(alpha)),
        ("b1", json!(beta)),
        ("a1", json!(alpha)),
        ("n0", json!(null)),
        ("b3", json!(beta)),
    ];
    for (i, (hostname, region)) in placed.iter().enumerate() {
        let body =
            json!({"hostname": hostname, "mgmt_ip": format!("10.0.0.{}", i + 1), "region": region});
        app.device(&admin, body).await;
    }
    assert_eq!(
        hostnames_in_order(&mut app, &admin, "region").await,
        ["n0", "n1", "a1", "a2", "b1", "b2", "b3"]
    );
    assert_eq!(
        hostnames_in_order(&mut app, &admin, "-region").await,
        ["b1", "b2", "b3", "a1", "a2", "n0", "n1"]
    );

    // A renamed device moves within its region: the region's hostname order follows.
    let a1 = app.get_json(&admin, "/api/v1/devices/?q=a1").await.json()["results"][0]["id"]
        .as_i64()
        .unwrap();
    let r = app
        .patch_json(
            &admin,
            &format!("/api/v1/devices/{a1}/"),
            json!({"hostname": "a9"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        hostnames_in_order(&mut app, &admin, "region").await,
        ["n0", "n1", "a2", "a9", "b1", "b2", "b3"]
    );
}

/// A text search stops counting at 10,000 matches and says so; narrower lists count exactly.
#[sqlx::test]
async fn a_search_matching_more_than_ten_thousand_devices_says_its_count_is_capped(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    app.device(&admin, json!({"hostname": "core-1", "mgmt_ip": "10.9.0.1"}))
        .await;
    execute(
        &pool,
        "INSERT INTO devices (customer_id, hostname, mgmt_ip)
         SELECT (SELECT customer_id FROM devices WHERE hostname = 'core-1'),
                format('edge-%s', i), '10.0.0.0'::inet + i
         FROM generate_series(1, 10050) AS i"
            .to_string(),
    )
    .await;

    let r = app.get_json(&admin, "/api/v1/devices/?q=edge").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get("x-count-capped").unwrap(), "true");
    let body = r.json();
    assert_eq!(body["count"], 10_000);
    assert!(body["next"].is_string(), "a capped list still links on");

    // The page just past the cap exists, and is the last.
    let r = app
        .get_json(&admin, "/api/v1/devices/?q=edge&page_size=1000&page=11")
        .await;
    let body = r.json();
    assert_eq!(body["results"].as_array().unwrap().len(), 50);
    assert!(body["next"].is_null());

    let r = app.get_json(&admin, "/api/v1/devices/?q=edge-100").await;
    assert!(r.headers.get("x-count-capped").is_none());
    // edge-100 and edge-1000…edge-1009 and edge-10000…edge-10050.
    assert_eq!(r.json()["count"], 1 + 10 + 51);
    let r = app.get_json(&admin, "/api/v1/devices/").await;
    assert!(r.headers.get("x-count-capped").is_none());
    assert_eq!(
        r.json()["count"],
        10_051,
        "lists without a search count exactly"
    );
}

#[sqlx::test]
async fn a_bulk_update_sets_a_credential_tags_and_a_site_on_every_device_of_a_filter(pool: PgPool) {
    let mut app = TestApp::new(pool.clone()).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let east = app.region(&admin, "US East", "us-east-1").await;
    let cred = app.credential(&admin, "netops", "s3cret").await;
    app.bulk_devices("acme", "par", "par", 60).await;
    app.bulk_devices("acme", "lon", "lon", 5).await;
    let path = "/api/v1/devices/bulk_update/";
    let changes = json!({"credential": cred, "site": "par2", "tags_add": ["lab", "edge"],
        "region": east});

    // A dry run says what would change, and changes nothing.
    let dry = app
        .post_json(
            &admin,
            path,
            json!({"filters": {"site": "par"}, "changes": changes, "dry_run": true}),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    let dry = dry.json();
    assert_eq!(
        (dry["count"].clone(), dry["updated"].clone()),
        (json!(60), json!(0))
    );
    let preview = dry["preview"].as_array().unwrap();
    assert_eq!(preview.len(), 20, "the first page of the devices");
    assert_eq!(preview[0]["hostname"], "par-00001");
    let fields: Vec<&str> = preview[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["credential", "site", "tags", "region"]);
    assert_eq!(
        preview[0]["changes"][0],
        json!({"field": "credential", "old": "none", "new": "netops login"})
    );
    assert_eq!(
        preview[0]["changes"][1],
        json!({"field": "site", "old": "par", "new": "par2"})
    );
    assert_eq!(
        preview[0]["changes"][3],
        json!({"field": "region", "old": "none", "new": "US East"})
    );
    let untouched: i64 = scalar(
        &pool,
        "SELECT count(*) FROM devices WHERE credential_id IS NOT NULL",
    )
    .await;
    assert_eq!(untouched, 0);

    // Applied: every device of the filter, across pages, and only those; the region moves
    // with them although the site they were matched by has changed.
    let r = app
        .post_json(
            &admin,
            path,
            json!({"filters": {"site": "par"}, "changes": changes}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["updated"], 60);
    let changed: Vec<(String, Option<i64>, Vec<String>)> = sqlx::query_as(
        "SELECT DISTINCT d.site, d.credential_id, d.tags FROM devices d WHERE d.hostname LIKE 'par-%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        changed,
        [(
            "par2".to_string(),
            Some(cred),
            vec!["edge".to_string(), "lab".to_string()]
        )]
    );
    let in_east = app
        .get_json(&admin, &format!("/api/v1/regions/{east}/devices/"))
        .await
        .json();
    assert_eq!(in_east["count"], 60);
    let lon: i64 = scalar(
        &pool,
        "SELECT count(*) FROM devices WHERE site = 'lon' AND credential_id IS NULL AND tags = '{}'",
    )
    .await;
    assert_eq!(lon, 5, "devices outside the filter are untouched");

    // By ids: a tag removed, devices disabled; the audit trail has the change.
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE site = 'par2' ORDER BY id LIMIT 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": ids, "changes": {"tags_remove": ["lab"], "enabled": false}}),
        )
        .await;
    assert_eq!(r.json()["updated"], 2, "{}", r.body);
    let disabled: Vec<(bool, Vec<String>)> =
        sqlx::query_as("SELECT DISTINCT enabled, tags FROM devices WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(disabled, [(false, vec!["edge".to_string()])]);
    let audit: serde_json::Value = scalar(
        &pool,
        "SELECT changes FROM audit_log WHERE action = 'bulk_edit' ORDER BY id LIMIT 1",
    )
    .await;
    assert_eq!(audit["count"], 60);
    assert_eq!(audit["credential"], json!([null, "netops login"]));
    assert_eq!(audit["tags_add"], json!([null, ["edge", "lab"]]));
    assert_eq!(audit["target"], json!({"filters": {"site": "par"}}));
}

#[sqlx::test]
async fn a_bulk_update_refuses_bad_changes_other_customers_objects_and_too_little_a_role(
    pool: PgPool,
) {
    let mut app = TestApp::new(pool.clone()).await;
    let admin = app.api_user("admin", Role::Admin, "acme").await;
    let operator = app.api_user("op", Role::Operator, "acme").await;
    let globex = app.api_user("g", Role::Admin, "globex").await;
    let theirs = app.credential(&globex, "theirs", "x").await;
    let mine = app.new_device(&admin, "a", "10.0.0.1", None).await;
    let other = app.new_device(&globex, "b", "10.0.0.2", None).await;
    let path = "/api/v1/devices/bulk_update/";

    let r = app
        .post_json(&admin, path, json!({"device_ids": [mine], "changes": {}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["errors"]["changes"][0]
            .as_str()
            .unwrap()
            .contains("at least one"),
        "{}",
        r.body
    );
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine], "changes": {"site": "x".repeat(101), "tags_add": ["a"], "tags_remove": ["a"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let errors = &r.json()["errors"];
    assert!(
        errors["changes.site"].is_array() && errors["changes.tags_remove"].is_array(),
        "{errors}"
    );
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine], "changes": {"colour": "red"}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "an unknown field is refused: {}",
        r.body
    );

    // Another customer's credential does not exist here; nor do its devices.
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine], "changes": {"credential": theirs}}),
        )
        .await;
    assert_eq!(
        r.json()["errors"]["credential"][0],
        format!("No credential with id {theirs}.")
    );
    let r = app
        .post_json(
            &admin,
            path,
            json!({"device_ids": [mine, other], "changes": {"site": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains(&other.to_string()), "{}", r.body);

    // An operator may move devices between regions, nothing else.
    let r = app
        .post_json(
            &operator,
            path,
            json!({"device_ids": [mine], "changes": {"site": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post_json(
            &operator,
            path,
            json!({"device_ids": [mine], "changes": {"region": null}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sites: Vec<String> = sqlx::query_scalar("SELECT site FROM devices ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        sites.iter().all(|s| s != "x"),
        "nothing was changed: {sites:?}"
    );
}

#[sqlx::test]
async fn a_network_in_the_search_finds_the_devices_whose_address_it_holds(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    for (name, ip) in [
        ("a", "10.0.1.7"),
        ("b", "10.0.1.200"),
        ("c", "10.0.2.1"),
        ("d", "2001:db8::5"),
    ] {
        app.new_device(&admin, name, ip, None).await;
    }
    assert_eq!(
        app.device_hostnames(&admin, "q=10.0.1.0/24").await,
        ["a", "b"]
    );
    assert_eq!(
        app.device_hostnames(&admin, "q=10.0.1.9/24").await,
        ["a", "b"],
        "host bits are ignored"
    );
    assert_eq!(
        app.device_hostnames(&admin, "q=10.0.0.0/16").await,
        ["a", "b", "c"]
    );
    assert_eq!(app.device_hostnames(&admin, "q=2001:db8::/32").await, ["d"]);
    assert_eq!(
        app.device_hostnames(&admin, "q=10.0.1.").await,
        ["a", "b"],
        "a prefix still works"
    );
    let bad = app
        .get_json(&admin, "/api/v1/devices/?q=10.0.1.0%2F33")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json()["errors"]["q"][0]
            .as_str()
            .unwrap()
            .contains("10.0.1.0/24"),
        "{}",
        bad.body
    );
}

#[sqlx::test]
async fn devices_filter_by_platform_tag_enabled_reachability_and_credential(pool: PgPool) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let cred = app.credential(&admin, "netops", "s3cret").await;
    let bodies = [
        json!({"hostname": "a", "mgmt_ip": "10.0.0.1", "platform": "ios", "tags": ["lab"], "credential": cred}),
        json!({"hostname": "b", "mgmt_ip": "10.0.0.2", "platform": "junos", "tags": ["lab", "dc1"], "enabled": false}),
        json!({"hostname": "c", "mgmt_ip": "10.0.0.3", "platform": "IOS", "credential": cred}),
    ];
    for body in bodies {
        app.device(&admin, body).await;
    }
    execute(
        &pool,
        "UPDATE devices SET reachability_status = 'unreachable' WHERE hostname = 'c'".into(),
    )
    .await;
    assert_eq!(
        app.device_hostnames(&admin, "platform=ios").await,
        ["a", "c"]
    );
    assert_eq!(app.device_hostnames(&admin, "tag=lab").await, ["a", "b"]);
    assert_eq!(app.device_hostnames(&admin, "tag=dc1").await, ["b"]);
    assert_eq!(app.device_hostnames(&admin, "enabled=false").await, ["b"]);
    assert_eq!(
        app.device_hostnames(&admin, "enabled=true&tag=lab").await,
        ["a"]
    );
    assert_eq!(
        app.device_hostnames(&admin, "reachability=unreachable")
            .await,
        ["c"]
    );
    assert_eq!(
        app.device_hostnames(&admin, "reachability=unknown").await,
        ["a", "b"]
    );
    assert_eq!(
        app.device_hostnames(&admin, &format!("credential={cred}"))
            .await,
        ["a", "c"]
    );
    assert_eq!(app.device_hostnames(&admin, "credential=none").await, ["b"]);

    let page = app
        .get_json(
            &admin,
            "/api/v1/devices/?enabled=maybe&reachability=up&credential=x",
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let errors = &page.json()["errors"];
    for field in ["enabled", "reachability", "credential"] {
        assert!(errors[field].is_array(), "{field}: {errors}");
    }
    // The same filters select a bulk change's devices.
    let r = app
        .post_json(
            &admin,
            "/api/v1/devices/bulk_update/",
            json!({"filters": {"credential": "none", "enabled": false}, "changes": {"credential": cred}}),
        )
        .await;
    assert_eq!(r.json()["updated"], 1, "{}", r.body);
    assert_eq!(
        app.device_hostnames(&admin, "credential=none").await,
        Vec::<String>::new()
    );
}

#[sqlx::test]
async fn a_repeated_filter_matches_any_of_its_values_and_a_repeated_scalar_is_an_error(
    pool: PgPool,
) {
    let (mut app, admin) = TestApp::with_admin(pool.clone()).await;
    let bodies = [
        json!({"hostname": "a", "mgmt_ip": "10.0.0.1", "site": "s01", "tags": ["lab"]}),
        json!({"hostname": "b", "mgmt_ip": "10.0.0.2", "site": "S02", "tags": ["dc1"]}),
        json!({"hostname": "c", "mgmt_ip": "10.0.0.3", "site": "s03"}),
    ];
    for body in bodies {
        app.device(&admin, body).await;
    }
    assert_eq!(
        app.device_hostnames(&admin, "site=s01&site=s02").await,
        ["a", "b"]
    );
    assert_eq!(
        app.device_hostnames(&admin, "tag=lab&tag=dc1").await,
        ["a", "b"]
    );
    assert_eq!(
        app.device_hostnames(&admin, "site=s01&site=s03&tag=lab")
            .await,
        ["a"]
    );
    // The API does not split at commas: a site may hold one.
    assert_eq!(
        app.device_hostnames(&admin, "site=s01,s02").await,
        Vec::<String>::new()
    );

    for (query, field) in [("q=a&q=b", "q"), ("region=none&region=1", "region")] {
        let r = app
            .get_json(&admin, &format!("/api/v1/devices/?{query}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            r.json()["errors"][field][0],
            "Give this parameter once.",
            "{query}: {}",
            r.body
        );
    }
    let r = app.get_json(&admin, "/api/v1/devices/?site=").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"]["site"].is_array(), "{}", r.body);

    // In a bulk change, a list gives a filter several values.
    let r = app
        .post_json(
            &admin,
            "/api/v1/devices/bulk_update/",
            json!({"filters": {"site": ["s01", "s03"]}, "changes": {"role": "edge"}, "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["count"], 2, "{}", r.body);
    let r = app
        .post_json(
            &admin,
            "/api/v1/devices/bulk_update/",
            json!({"filters": {"q": ["a", "b"]}, "changes": {"role": "edge"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.json()["errors"]["filters.q"].is_array(), "{}", r.body);
}

/// The rows of a CSV export, header first.
fn csv_rows(body: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[sqlx::test]
async fn the_csv_export_holds_every_matching_device_of_the_callers_customer_in_order(pool: PgPool) {
    let (mut app, acme, globex) = TestApp::two_customers(pool.clone()).await;
    // More rows than a page holds and than one streamed chunk.
    app.bulk_devices("acme", "par", "par", 1200).await;
    app.bulk_devices("acme", "lon", "lon", 3).await;
    app.bulk_devices("globex", "par", "par", 5).await;
    app.device(
        &acme,
        json!({"hostname": "evil", "mgmt_ip": "10.9.0.1", "site": "=HYPERLINK(\"http://x\")", "tags": ["a", "b"]}),
    )
    .await;

    let r = app
        .get_json(&acme, "/api/v1/devices/export/?site=par&sort=-hostname")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"devices-"),
        "{disposition}"
    );
    let rows = csv_rows(&r.body);
    assert_eq!(rows[0], webnet::devices::CSV_COLUMNS);
    assert_eq!(rows.len(), 1 + 1200, "acme's par devices only");
    let hostnames: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(hostnames[0], "par-01200");
    assert_eq!(hostnames[1199], "par-00001");
    assert!(
        hostnames.windows(2).all(|w| w[0] > w[1]),
        "sorted descending"
    );
    assert_eq!(rows[1][7], "par");

    // A value a spreadsheet would run is defused; tags are space-separated.
    let r = app.get_json(&acme, "/api/v1/devices/export/?q=evil").await;
    let rows = csv_rows(&r.body);
    assert_eq!(rows.len(), 2, "{}", r.body);
    assert_eq!(rows[1][7], "'=HYPERLINK(\"http://x\")");
    assert_eq!(rows[1][8], "a b");
    assert_eq!(rows[1][9], "true");

    let r = app.get_json(&globex, "/api/v1/devices/export/").await;
    assert_eq!(csv_rows(&r.body).len(), 1 + 5, "globex sees its own only");

    let r = app
        .get_json(&acme, "/api/v1/devices/export/?enabled=maybe&region=east")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for field in ["enabled", "region"] {
        assert!(r.json()["errors"][field].is_array(), "{}", r.body);
    }
    let r = app
        .api(Method::GET, "/api/v1/devices/export/", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
