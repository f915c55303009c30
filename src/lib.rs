//! webnet: network automation across regions. Regions, devices and jobs live in PostgreSQL;
//! jobs are routed to regional queues and run by regional workers.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod customers;
pub mod db;
pub mod demo;
pub mod devices;
pub mod error;
pub mod execute;
pub mod extract;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod pagination;
pub mod params;
pub mod probes;
pub mod regions;
pub mod routing;
pub mod snapshots;
pub mod ssh;
pub mod state;
pub mod telemetry;
pub mod types;
pub mod usecases;
pub mod web;
pub mod worker;
/// The version of this build, shown in the footer and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
