//! The typed words of a job's life: its type, the status of a job or a dispatch, and the
//! level of a log line. SQL binds these; it never spells them.

use crate::types::words;

words! {
    /// What a job does.
    pub enum JobType {
        /// Run commands over SSH.
        RunCommands = "run_commands",
        /// Save the running configuration.
        ConfigBackup = "config_backup",
        /// TCP connect to the management port.
        CheckReachability = "check_reachability",
    }
}

impl JobType {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            JobType::RunCommands => "Run commands",
            JobType::ConfigBackup => "Back up configuration",
            JobType::CheckReachability => "Check reachability",
        }
    }
}

words! {
    /// Where a job (or one dispatch) stands.
    pub enum JobStatus {
        /// Waiting in a queue.
        Queued = "queued",
        /// Waiting for a later time.
        Scheduled = "scheduled",
        /// A worker is on it.
        Running = "running",
        /// Every device succeeded.
        Success = "success",
        /// Some devices succeeded.
        Partial = "partial",
        /// No device succeeded.
        Failed = "failed",
        /// Withdrawn by a user.
        Cancelled = "cancelled",
    }
}

impl JobStatus {
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

words! {
    /// How a job log line reads.
    pub enum LogLevel {
        /// What happened as planned.
        Info = "info",
        /// Something the operator should know (a failover, a rescue, skipped commands).
        Warning = "warning",
        /// A device or a dispatch failed.
        Error = "error",
    }
}

impl LogLevel {
    /// Info when `ok`, else error.
    pub fn of(ok: bool) -> Self {
        if ok { LogLevel::Info } else { LogLevel::Error }
    }
}
