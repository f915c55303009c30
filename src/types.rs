//! Validated values shared by forms and the API: one rule, one message, everywhere.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A region identifier: a lowercase slug (`us-east-1`), 1–63 characters, starting and
/// ending with a letter or digit. It names the queue `region_<identifier>`.
pub fn identifier(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_string())
    } else {
        Err("Use 1–63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit (e.g. us-east-1).".into())
    }
}

/// A device hostname: 1–253 characters of letters, digits, `.`, `-` and `_`, no spaces.
pub fn hostname(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 253 {
        return Err("Enter a hostname of 1 to 253 characters.".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err("Use only letters, digits, '.', '-' and '_' in a hostname.".into());
    }
    Ok(s.to_string())
}

/// A management address: an IPv4 or IPv6 address, without prefix length.
pub fn address(raw: &str) -> Result<IpAddr, String> {
    raw.trim()
        .parse()
        .map_err(|_| "Enter a valid IPv4 or IPv6 address.".to_string())
}

/// A TCP port, 1–65535.
pub fn port(value: i64) -> Result<i32, String> {
    if (1..=65535).contains(&value) {
        Ok(value as i32)
    } else {
        Err("Enter a port between 1 and 65535.".into())
    }
}

/// A free-text field with a length limit; surrounding whitespace is dropped.
pub fn text(raw: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.chars().count() > max {
        Err(format!("Use at most {max} characters."))
    } else {
        Ok(s.to_string())
    }
}

/// A required free-text field.
pub fn required_text(raw: &str, max: usize) -> Result<String, String> {
    let s = text(raw, max)?;
    if s.is_empty() {
        Err("This field is required.".into())
    } else {
        Ok(s)
    }
}

/// A region's health.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum HealthStatus {
    /// Workers are live and keeping up.
    Healthy,
    /// Working, but slow or short of workers.
    Degraded,
    /// No live worker: jobs go elsewhere.
    Offline,
}

impl HealthStatus {
    /// Every status, for selects.
    pub const ALL: [HealthStatus; 3] = [Self::Healthy, Self::Degraded, Self::Offline];

    /// The word used in the API and on badges.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Offline => "offline",
        }
    }

    /// Parses the API word.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "healthy" => Ok(Self::Healthy),
            "degraded" => Ok(Self::Degraded),
            "offline" => Ok(Self::Offline),
            _ => Err("Choose one of: healthy, degraded, offline.".into()),
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who changed a region's health.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum HealthSource {
    /// The health monitor, from heartbeats and queue age.
    Monitor,
    /// An administrator, by hand.
    Manual,
}

impl fmt::Display for HealthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthSource::Monitor => "monitor",
            HealthSource::Manual => "manual",
        })
    }
}

/// Whether a device answered its last reachability check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Reachability {
    /// Never checked.
    Unknown,
    /// The management port accepted a connection.
    Reachable,
    /// It did not.
    Unreachable,
}

impl Reachability {
    /// The API word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Reachable => "reachable",
            Self::Unreachable => "unreachable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_lowercase_slugs() {
        assert_eq!(identifier(" us-east-1 ").unwrap(), "us-east-1");
        assert!(identifier("eu_west").is_ok());
        for bad in ["", "US-EAST", "-a", "a-", "a b", "é", &"a".repeat(64)] {
            assert!(identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames_and_addresses_are_checked() {
        assert!(hostname("core-rtr01.par.example.net").is_ok());
        assert!(hostname("bad host").is_err());
        assert!(hostname("").is_err());
        assert!(address("10.0.0.1").is_ok());
        assert!(address("2001:db8::1").is_ok());
        assert!(address("10.0.0.256").is_err());
        assert!(address("10.0.0.0/24").is_err());
    }

    #[test]
    fn ports_are_in_range() {
        assert_eq!(port(22), Ok(22));
        assert!(port(0).is_err() && port(65536).is_err());
    }

    #[test]
    fn health_words_round_trip() {
        for s in HealthStatus::ALL {
            assert_eq!(HealthStatus::parse(s.as_str()), Ok(s));
        }
        assert!(HealthStatus::parse("sick").is_err());
    }
}
