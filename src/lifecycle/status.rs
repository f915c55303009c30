//! The typed words of a job's life: its type, the status of a job or a dispatch, and the
//! level of a log line. SQL binds these; it never spells them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobType {
    /// Run commands over SSH.
    RunCommands,
    /// Save the running configuration.
    ConfigBackup,
    /// TCP connect to the management port.
    CheckReachability,
}

impl JobType {
    /// Every type, for selects.
    pub const ALL: [JobType; 3] = [
        JobType::RunCommands,
        JobType::ConfigBackup,
        JobType::CheckReachability,
    ];

    /// The API word.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::RunCommands => "run_commands",
            JobType::ConfigBackup => "config_backup",
            JobType::CheckReachability => "check_reachability",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            JobType::RunCommands => "Run commands",
            JobType::ConfigBackup => "Back up configuration",
            JobType::CheckReachability => "Check reachability",
        }
    }

    /// Parses the API word.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw.trim())
            .ok_or_else(|| {
                "Choose one of: run_commands, config_backup, check_reachability.".to_string()
            })
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job (or one dispatch) stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting in a queue.
    Queued,
    /// Waiting for a later time.
    Scheduled,
    /// A worker is on it.
    Running,
    /// Every device succeeded.
    Success,
    /// Some devices succeeded.
    Partial,
    /// No device succeeded.
    Failed,
    /// Withdrawn by a user.
    Cancelled,
}

impl JobStatus {
    /// Every status, for filters.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Queued,
        JobStatus::Scheduled,
        JobStatus::Running,
        JobStatus::Success,
        JobStatus::Partial,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The API word.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The words of the statuses in which something is still to happen, to bind as a
    /// `text[]`.
    pub fn open_words() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|s| !s.is_finished())
            .map(Self::as_str)
            .collect()
    }

    /// Whether nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Partial | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Parses the API word.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw.trim())
            .ok_or_else(|| format!("Unknown status {raw:?}."))
    }

    /// The status of a set of device outcomes: success when all succeeded, partial when
    /// some did, failed when none did.
    pub fn from_outcomes(succeeded: usize, total: usize) -> Self {
        match (succeeded, total) {
            (_, 0) => JobStatus::Success,
            (s, t) if s == t => JobStatus::Success,
            (0, _) => JobStatus::Failed,
            _ => JobStatus::Partial,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
/// How a job log line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum LogLevel {
    /// What happened as planned.
    Info,
    /// Something the operator should know (a failover, a rescue, skipped commands).
    Warning,
    /// A device or a dispatch failed.
    Error,
}

impl LogLevel {
    /// Info when `ok`, else error.
    pub fn of(ok: bool) -> Self {
        if ok { LogLevel::Info } else { LogLevel::Error }
    }
}
