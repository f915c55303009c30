//! Integration tests: each `#[sqlx::test]` gets a fresh, migrated PostgreSQL database and
//! drives the real router in-process (or the real binary, in `cli`).

mod admin_api;
mod admin_ui;
mod api_auth;
mod architecture;
mod auth;
mod browser;
mod cancellation;
mod cli;
mod devices_api;
mod failover;
mod fake_device;
mod forms;
mod helpers;
mod jobs_api;
mod jobs_ui;
mod live_badges;
mod openapi;
mod outage;
mod ownership;
mod pgbouncer;
mod private_pg;
mod probes;
mod processes;
mod regions_api;
mod schemathesis;
mod web_ui;
mod worker_e2e;
