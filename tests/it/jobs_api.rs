//! Jobs over the API: validation, routing into dispatches, transactional enqueue, cancel.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use webnet::auth::Role;

use crate::helpers::{ApiUser, TestApp, assert_has_fields, scalar, scalar_for};

struct World {
    app: TestApp,
    admin: ApiUser,
    operator: ApiUser,
    east: i64,
    west: i64,
    devices: Vec<i64>,
}

/// Regions east (priority 100) and west (200); devices e1 and e2 in east, w1 in west,
/// n1 without a region.
async fn world(pool: PgPool) -> World {
    let (mut app, admin) = TestApp::with_admin(pool).await;
    let operator = app.api_user("op", Role::Operator, "acme").await;
    let mut regions = Vec::new();
    for (name, identifier, priority) in
        [("US East", "us-east-1", 100), ("US West", "us-west-2", 200)]
    {
        let body = json!({"name": name, "identifier": identifier, "priority": priority});
        regions.push(app.region_with(&admin, body).await);
    }
    let (east, west) = (regions[0], regions[1]);
    let mut devices = Vec::new();
    for (host, region, site) in [
        ("e1", Some(east), "par"),
        ("e2", Some(east), "par"),
        ("w1", Some(west), "par"),
        ("n1", None, "lon"),
    ] {
        devices.push(
            app.device(&admin, json!({"hostname": host, "mgmt_ip": format!("127.0.0.{}", devices.len() + 1), "region": region, "site": site}))
                .await,
        );
    }
    World {
        app,
        admin,
        operator,
        east,
        west,
        devices,
    }
}

impl World {
    /// Has the operator create a reachability check of `targets`; the new job.
    async fn check(&mut self, targets: Value) -> Value {
        let body = json!({"type": "check_reachability", "target_summary": targets});
        self.app.create(&self.operator, "/api/v1/jobs/", body).await
    }
}

/// Each query of the job list is a 400 naming its parameter as the field in error.
async fn assert_job_queries_refused(w: &mut World, queries: &[&str]) {
    for query in queries {
        let r = w
            .app
            .get_json(&w.operator, &format!("/api/v1/jobs/?{query}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        let field = query.split('=').next().unwrap();
        assert!(r.json()["errors"][field].is_array(), "{query}: {}", r.body);
    }
}

fn queues(job: &Value) -> Vec<String> {
    job["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["queue"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test]
async fn a_job_spanning_regions_fans_out_one_dispatch_per_region(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    let job = w.check(json!({"filters": {"device_ids": w.devices}})).await;
    assert_has_fields(
        &job,
        &[
            "id",
            "customer",
            "type",
            "status",
            "user",
            "region",
            "requested_at",
            "started_at",
            "finished_at",
            "target_summary",
            "payload",
            "result_summary",
            "dispatches",
        ],
    );
    assert_eq!(job["status"], "queued");
    assert_eq!(
        job["region"], w.west,
        "the highest-priority regional dispatch"
    );
    assert_eq!(
        queues(&job),
        ["region_us-west-2", "region_us-east-1", "default"]
    );
    let d = &job["dispatches"];
    assert_eq!(d[0]["region"], w.west);
    assert_eq!(d[1]["device_ids"], json!([w.devices[0], w.devices[1]]));
    assert_eq!(d[2]["region"], Value::Null);
    assert_eq!(d[2]["device_ids"], json!([w.devices[3]]));
    assert_eq!(d[0]["status"], "queued");
    assert_eq!(d[0]["worker"], Value::Null);
    // No worker runs in this test: each queued dispatch says so.
    assert!(
        d[0]["waiting"]
            .as_str()
            .unwrap()
            .starts_with("no live worker on region_us-west-2"),
        "{}",
        d[0]
    );
    assert!(
        d[2]["waiting"]
            .as_str()
            .unwrap()
            .contains("webnet worker --default-queue")
    );

    // One pending apalis task per dispatch, on its queue, carrying the dispatch id.
    let tasks: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT t.job_type, t.status, t.job FROM apalis.jobs t
         JOIN job_dispatches d ON d.task_id = t.id WHERE d.job_id = $1 ORDER BY d.id",
    )
    .bind(job["id"].as_i64().unwrap())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0].0, "region_us-west-2");
    assert!(tasks.iter().all(|t| t.1 == "Pending"));
    let args: Value = serde_json::from_slice(&tasks[0].2).unwrap();
    assert_eq!(args["dispatch_id"], d[0]["id"]);

    let id = job["id"].as_i64().unwrap();
    let text = w.app.log_messages(&w.operator, id).await;
    assert!(
        text.iter()
            .any(|m| m.contains("region_us-east-1") && m.contains("e1, e2")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("default") && m.contains("no region: n1")),
        "{text:?}"
    );
}

#[sqlx::test]
async fn an_offline_or_disabled_region_fails_over_to_the_default_queue(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    w.app
        .post_json(
            &w.admin,
            &format!("/api/v1/regions/{}/update_health/", w.west),
            json!({"health_status": "offline"}),
        )
        .await;
    w.app
        .patch_json(
            &w.admin,
            &format!("/api/v1/regions/{}/", w.east),
            json!({"enabled": false}),
        )
        .await;
    // Without a worker on the default queue, the offline region keeps its device (it runs
    // when the region's workers return); the disabled one's still goes.
    let job = w.check(json!({"site": "PAR"})).await;
    assert_eq!(queues(&job), ["region_us-west-2", "default"]);

    let default_queue = vec!["default".to_string()];
    let fallback = webnet::fleet::Beat {
        name: "fallback-1-abc",
        host: "test",
        version: "0",
        queues: &default_queue,
        heartbeat: std::time::Duration::from_secs(60),
        running_tasks: 0,
    };
    webnet::fleet::beat(&pool, &fallback).await.unwrap();
    let job = w.check(json!({"site": "PAR"})).await;
    assert_eq!(queues(&job), ["default"]);
    assert_eq!(job["region"], Value::Null);
    let reason = job["dispatches"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("US West is offline") && reason.contains("US East is disabled"),
        "{reason}"
    );
}

#[sqlx::test]
async fn deleting_a_region_moves_its_queued_tasks_to_the_default_queue(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    let job = w.check(json!({"hostname": "w1"})).await;
    let id = job["id"].as_i64().unwrap();
    assert_eq!(queues(&job), ["region_us-west-2"]);
    let deleted = w
        .app
        .delete(&w.admin, &format!("/api/v1/regions/{}/", w.west))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let queue: String = scalar_for(
        &pool,
        "SELECT t.job_type FROM apalis.jobs t JOIN job_dispatches d ON d.task_id = t.id
         WHERE d.job_id = $1",
        id,
    )
    .await;
    assert_eq!(queue, "default", "the task would wait for a deleted region");
    let job = w.app.job(&w.admin, id).await;
    assert_eq!(job["dispatches"][0]["queue"], "default");
    assert_eq!(job["dispatches"][0]["failed_over_from"], "region_us-west-2");
    let reason = job["dispatches"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("its region was deleted"), "{reason}");
}

#[sqlx::test]
async fn job_requests_are_validated(pool: PgPool) {
    let mut w = world(pool).await;
    let viewer = w.app.api_user("viewer", Role::Viewer, "acme").await;
    let cases = [
        (json!({"type": "reboot", "target_summary": {}}), "type"),
        (json!({"target_summary": {}}), "type"),
        (
            json!({"type": "run_commands", "target_summary": {}, "payload": {"commands": []}}),
            "payload.commands",
        ),
        (
            json!({"type": "run_commands", "target_summary": {}, "payload": {"commands": ["show version"], "timeout": 9999}}),
            "payload.timeout",
        ),
        (
            json!({"type": "check_reachability", "target_summary": {"colour": "red"}}),
            "target_summary.colour",
        ),
        (
            json!({"type": "check_reachability", "target_summary": {"site": "nowhere"}}),
            "target_summary",
        ),
        (
            json!({"type": "check_reachability", "target_summary": {"filter": {"colour": "red"}}}),
            "target_summary.filter.colour",
        ),
        (
            json!({"type": "check_reachability", "target_summary": {"filter": {"region": "east"}}}),
            "region",
        ),
        (
            json!({"type": "check_reachability", "target_summary": {"filter": "par"}}),
            "target_summary.filter",
        ),
        // Forgetting the targets must not mean every device.
        (json!({"type": "config_backup"}), "target_summary"),
        (
            json!({"type": "config_backup", "target_summary": null}),
            "target_summary",
        ),
    ];
    w.app
        .assert_field_errors(&w.operator, "/api/v1/jobs/", &cases)
        .await;
    let r = w
        .app
        .post_json(
            &viewer,
            "/api/v1/jobs/",
            json!({"type": "check_reachability", "target_summary": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Another customer's devices are never matched.
    let globex = w.app.api_user("g", Role::Admin, "globex").await;
    let r = w
        .app
        .post_json(
            &globex,
            "/api/v1/jobs/",
            json!({"type": "check_reachability", "target_summary": {"device_ids": w.devices}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.field_error("target_summary"),
        "No enabled device matches these targets."
    );
}

#[sqlx::test]
async fn the_seed_shortcuts_answer_202_with_the_job_id(pool: PgPool) {
    let mut w = world(pool).await;
    let r = w
        .app
        .post_json(
            &w.operator,
            "/api/v1/commands/run",
            json!({"targets": {"site": "lon"}, "commands": ["show version"], "timeout": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "queued");
    let id = body["job_id"].as_i64().unwrap();
    let job = w.app.job(&w.operator, id).await;
    assert_eq!(job["type"], "run_commands");
    assert_eq!(
        job["payload"],
        json!({"commands": ["show version"], "timeout": 10})
    );
    for path in ["/api/v1/reachability/run", "/api/v1/config/backup"] {
        let r = w
            .app
            .post_json(&w.operator, path, json!({"targets": {"site": "par"}}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{path}: {}", r.body);
    }
    for (path, body, field) in [
        (
            "/api/v1/commands/run",
            json!({"targets": {"site": "lon"}, "commands": []}),
            "commands",
        ),
        (
            "/api/v1/reachability/run",
            json!({"targets": {"site": "mars"}}),
            "targets",
        ),
    ] {
        w.app
            .assert_field_errors(&w.operator, path, &[(body, field)])
            .await;
    }
    let forgotten = w
        .app
        .post_json(&w.operator, "/api/v1/config/backup", json!({}))
        .await;
    assert_eq!(forgotten.status, StatusCode::BAD_REQUEST);
    let why = forgotten.field_error("targets");
    assert!(why.contains("required"), "{why}");
}

#[sqlx::test]
async fn a_rolled_back_transaction_leaves_neither_job_nor_task(pool: PgPool) {
    let w = world(pool.clone()).await;
    let mut tx = pool.begin().await.unwrap();
    let customer: i64 = sqlx::query_scalar("SELECT id FROM customers WHERE name = 'acme'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let actor = webnet::auth::AuthUser {
        id: w.operator.id,
        username: "operator".into(),
        role: Role::Operator,
        is_superuser: false,
        customers: Vec::new(),
        method: webnet::auth::AuthMethod::Token,
        token: None,
        client_addr: None,
    };
    let change = webnet::audit::Change {
        object_type: webnet::audit::ObjectType::Job,
        object_id: None,
        object_repr: "#{id} (check reachability)".into(),
        action: webnet::audit::Action::Submit,
        customer_ids: vec![customer],
        changes: json!({}),
    };
    let id = webnet::jobs::create(
        &mut tx,
        &webnet::jobs::NewJob {
            customer_id: customer,
            user_id: None,
            job_type: webnet::jobs::JobType::CheckReachability,
            target_summary: json!({}),
            targets: webnet::jobs::Targets::default(),
            payload: json!({"timeout": 5}),
            retry_of: None,
        },
        Some((&actor, &change)),
    )
    .await
    .unwrap();
    let count = "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM apalis.jobs),
                        (SELECT count(*) FROM audit_log WHERE object_type = 'job')";
    let inside: (i64, i64, i64) = sqlx::query_as(count).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(
        inside,
        (1, 3, 1),
        "the job, three dispatches' tasks and the audit row, inside the transaction"
    );
    let repr: String = sqlx::query_scalar(
        "SELECT object_repr FROM audit_log WHERE object_type = 'job' AND object_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(repr, format!("#{id} (check reachability)"));
    tx.rollback().await.unwrap();
    let after: (i64, i64, i64) = sqlx::query_as(count).fetch_one(&pool).await.unwrap();
    assert_eq!(
        after,
        (0, 0, 0),
        "job {id}, its tasks and its audit row vanished together"
    );
    drop(w);
}

#[sqlx::test]
async fn cancelling_withdraws_pending_tasks_and_retry_makes_a_new_job(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    let id = w.check(json!({})).await["id"].as_i64().unwrap();
    let cancel = format!("/api/v1/jobs/{id}/cancel/");
    let r = w.app.post_json(&w.operator, &cancel, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cancelled = r.json();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        cancelled["dispatches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "cancelled")
    );
    let tasks: i64 = scalar(&pool, "SELECT count(*) FROM apalis.jobs").await;
    assert_eq!(tasks, 0);
    let again = w.app.post_json(&w.operator, &cancel, json!({})).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);

    let retry = w
        .app
        .post_json(&w.operator, &format!("/api/v1/jobs/{id}/retry/"), json!({}))
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let new = retry.json();
    assert_ne!(new["id"], id);
    assert_eq!(new["status"], "queued");
    assert_eq!(new["retry_of"], id);

    let globex = w.app.api_user("g", Role::Admin, "globex").await;
    assert_eq!(
        w.app
            .get_json(&globex, &format!("/api/v1/jobs/{id}/"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.app.post_json(&globex, &cancel, json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test]
async fn jobs_are_listed_and_filtered_by_status_type_and_region(pool: PgPool) {
    let mut w = world(pool).await;
    for target in [
        json!({"device_ids": [w.devices[0]]}),
        json!({"device_ids": [w.devices[2]]}),
        json!({"site": "lon"}),
    ] {
        w.check(target).await;
    }
    for (path, count) in [
        ("/api/v1/jobs/".to_string(), 3),
        (format!("/api/v1/jobs/?region={}", w.east), 1),
        (format!("/api/v1/regions/{}/jobs/", w.west), 1),
        (
            "/api/v1/jobs/?status=queued&type=check_reachability".to_string(),
            3,
        ),
        ("/api/v1/jobs/?status=running".to_string(), 0),
    ] {
        let listed = w.app.get_json(&w.operator, &path).await.json();
        assert_eq!(listed["count"], count, "{path}");
    }
    // Unknown, empty or repeated filters are field errors, not "no filter".
    let refused = [
        "status=sleeping",
        "status=",
        "type=",
        "region=",
        "status=queued&status=failed",
    ];
    assert_job_queries_refused(&mut w, &refused).await;
}

#[sqlx::test]
async fn finished_queue_tasks_are_pruned_after_the_retention_age(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    w.check(json!({})).await;
    // Pretend one task finished long ago and another just now; the third is still pending.
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Done', done_at = now() - interval '8 days'
         WHERE id = (SELECT id FROM apalis.jobs ORDER BY id LIMIT 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Done', done_at = now()
         WHERE id = (SELECT id FROM apalis.jobs ORDER BY id OFFSET 1 LIMIT 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let pruned = webnet::lifecycle::prune_finished_tasks(
        &mut conn,
        std::time::Duration::from_secs(7 * 86_400),
    )
    .await
    .unwrap();
    assert_eq!(pruned, 1);
    let left: i64 = scalar(&pool, "SELECT count(*) FROM apalis.jobs").await;
    assert_eq!(left, 2);
}

#[sqlx::test]
async fn metrics_report_region_health_queues_and_jobs(pool: PgPool) {
    let mut w = world(pool).await;
    w.check(json!({})).await;
    let metrics = w.app.get("/metrics").await.body;
    for line in [
        r#"webnet_region_health{region="us-east-1",customer="acme",status="healthy"} 1"#,
        r#"webnet_region_health{region="us-east-1",customer="acme",status="offline"} 0"#,
        r#"webnet_jobs{type="check_reachability",status="queued"} 1"#,
        r#"webnet_queue_depth{queue="region_us-west-2"} 1"#,
        r#"webnet_queue_depth{queue="default"} 1"#,
        "webnet_dispatch_failovers 0",
        "# EOF",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    assert_eq!(metrics.matches("# EOF").count(), 1);
    assert!(metrics.contains("webnet_queue_oldest_task_age_seconds{queue=\"default\"}"));
}

#[sqlx::test]
async fn a_disabled_device_is_left_out_of_jobs_by_id_and_by_filter_until_enabled_again(
    pool: PgPool,
) {
    let mut w = world(pool.clone()).await;
    let (e1, e2) = (w.devices[0], w.devices[1]);
    let path = format!("/api/v1/devices/{e1}/");
    let r = w
        .app
        .patch_json(&w.admin, &path, json!({"enabled": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let by_id = w.check(json!({"device_ids": [e1, e2]})).await;
    assert_eq!(by_id["dispatches"][0]["device_ids"], json!([e2]));
    let by_site = w.check(json!({"filters": {"site": "par"}})).await;
    let targeted: Vec<i64> = by_site["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["device_ids"].as_array().unwrap().clone())
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert!(!targeted.contains(&e1), "{targeted:?}");
    let r = w
        .app
        .post_json(
            &w.operator,
            "/api/v1/jobs/",
            json!({"type": "check_reachability", "target_summary": {"device_ids": [e1]}}),
        )
        .await;
    assert_eq!(
        r.field_error("target_summary"),
        "No enabled device matches these targets."
    );
    let r = w
        .app
        .patch_json(&w.admin, &path, json!({"enabled": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let again = w.check(json!({"device_ids": [e1]})).await;
    assert_eq!(again["dispatches"][0]["device_ids"], json!([e1]));
}

#[sqlx::test]
async fn a_queued_dispatch_wakes_only_the_workers_of_its_queue(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    let east = webnet::lifecycle::queue_channel("region_us-east-1");
    let west = webnet::lifecycle::queue_channel("region_us-west-2");
    listener
        .listen_all([east.as_str(), west.as_str()])
        .await
        .unwrap();
    let job = w.check(json!({"device_ids": [w.devices[0]]})).await;
    assert_eq!(queues(&job), ["region_us-east-1"]);
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("the east queue's channel is notified")
        .unwrap();
    assert_eq!(heard.channel(), east);
    // Nothing else was announced: the west queue's workers slept through it.
    assert!(listener.next_buffered().is_none());
    let nothing =
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
    assert!(nothing.is_err(), "{nothing:?}");
}

#[sqlx::test]
async fn jobs_are_filtered_by_device_user_and_request_date(pool: PgPool) {
    let mut w = world(pool.clone()).await;
    let first = w
        .check(json!({"device_ids": [w.devices[0], w.devices[2]]}))
        .await;
    w.check(json!({"site": "lon"})).await;
    let by_admin = w
        .app
        .create(
            &w.admin,
            "/api/v1/jobs/",
            json!({"type": "check_reachability", "target_summary": {"device_ids": [w.devices[2]]}}),
        )
        .await;
    // The first job was requested yesterday.
    sqlx::query("UPDATE jobs SET requested_at = now() - interval '1 day' WHERE id = $1")
        .bind(first["id"].as_i64().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let ids = |listed: &Value| -> Vec<i64> {
        listed["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    let (first, by_admin) = (
        first["id"].as_i64().unwrap(),
        by_admin["id"].as_i64().unwrap(),
    );
    let admin_id: i64 = scalar_for(&pool, "SELECT user_id FROM jobs WHERE id = $1", by_admin).await;
    for (query, expected) in [
        (format!("device={}", w.devices[2]), vec![by_admin, first]),
        (format!("device={}", w.devices[1]), vec![]),
        (format!("user={admin_id}"), vec![by_admin]),
        (
            format!("since={today}&device={}", w.devices[2]),
            vec![by_admin],
        ),
        (
            format!("until={today}&device={}", w.devices[0]),
            vec![first],
        ),
    ] {
        let listed = w
            .app
            .get_json(&w.operator, &format!("/api/v1/jobs/?{query}"))
            .await
            .json();
        assert_eq!(ids(&listed), expected, "{query}: {listed}");
        assert_eq!(listed["count"], expected.len(), "{query}");
    }
    let refused = ["device=abc", "user=", "since=yesterday", "until=2026-13-01"];
    assert_job_queries_refused(&mut w, &refused).await;
}

#[sqlx::test]
async fn a_job_may_target_the_device_lists_filter_and_fans_out_by_region(pool: PgPool) {
    let mut w = world(pool).await;
    // Any of two sites, and a hostname search: e1, e2 (east) and w1 (west), not n1.
    let job = w
        .check(json!({"filter": {"site": ["par", "lon"], "q": "1", "region": w.east}}))
        .await;
    assert_eq!(queues(&job), ["region_us-east-1"]);
    let job = w
        .check(json!({"filter": {"site": ["par", "lon"], "q": "1"}}))
        .await;
    let mut got = queues(&job);
    got.sort();
    assert_eq!(got, ["default", "region_us-east-1", "region_us-west-2"]);
    assert_eq!(
        job["target_summary"],
        json!({"filter": {"site": ["par", "lon"], "q": "1"}})
    );
    let r = w
        .app
        .post_json(
            &w.operator,
            "/api/v1/jobs/",
            json!({"type": "check_reachability", "target_summary": {"filter": {"q": "nothing-like-it"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}
