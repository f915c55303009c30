//! Integration tests: each `#[sqlx::test]` gets a fresh, migrated PostgreSQL database and
//! drives the real router in-process (or the real binary, in `cli`).

mod api_auth;
mod auth;
mod cli;
mod helpers;
mod probes;
