//! Use cases: what a caller may do, whichever adapter it comes through (JSON API, pages,
//! CLI). Each function checks the role, scopes what it reads to the caller's customers,
//! validates, and runs its statements in one transaction; adapters parse and render.

pub mod inventory;
pub mod jobs;
