//! One-time messages shown on the next page ("Signed in as alice").

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::error::AppResult;

const SESSION_KEY: &str = "flash";

/// How a message is styled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Something worked.
    Success,
    /// Neutral news.
    Info,
    /// Something failed.
    Error,
}

impl Level {
    /// CSS class suffix and ARIA wording.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Success => "success",
            Level::Info => "info",
            Level::Error => "error",
        }
    }
}

/// A message for the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// Style.
    pub level: Level,
    /// Text, escaped when rendered.
    pub message: String,
}

/// Queues a message for the next page the session renders.
pub async fn push(session: &Session, level: Level, message: impl Into<String>) -> AppResult<()> {
    let mut all: Vec<Flash> = session
        .get(SESSION_KEY)
        .await
        .map_err(|e| crate::auth::session_store::session_error("reading session", e))?
        .unwrap_or_default();
    all.push(Flash {
        level,
        message: message.into(),
    });
    session
        .insert(SESSION_KEY, all)
        .await
        .map_err(|e| crate::auth::session_store::session_error("writing session", e))?;
    Ok(())
}

/// Takes the queued messages, so each is shown once.
pub async fn take(session: &Session) -> AppResult<Vec<Flash>> {
    Ok(session
        .remove(SESSION_KEY)
        .await
        .map_err(|e| crate::auth::session_store::session_error("reading session", e))?
        .unwrap_or_default())
}
