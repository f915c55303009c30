//! Validated values shared by forms and the API: one rule, one message, everywhere.

use std::net::IpAddr;

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

/// Declares an enum of words: each variant is spelled one way in the API, the database and
/// the pages. Generates the derives (serde, sqlx as `text`, OpenAPI), `ALL`, `as_str`,
/// `parse` (whose error lists the words) and `Display`, so no status is ever a bare string.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $word:tt,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            sqlx::Type,
            utoipa::ToSchema,
        )]
        #[sqlx(type_name = "text")]
        pub enum $name {
            // `tt`, not `literal`: derive macros such as utoipa's do not see through the
            // invisible group a `literal` fragment is passed in.
            $($(#[$vmeta])* #[serde(rename = $word)] #[sqlx(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: [$name; [$($word),+].len()] = [$($name::$variant),+];

            /// The word used in the API, the database and the pages.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// Parses the word (surrounding spaces ignored); the error lists the words.
            pub fn parse(raw: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == raw.trim())
                    .ok_or_else(|| format!("Choose one of: {}.", [$($word),+].join(", ")))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use words;

words! {
    /// A region's health.
    pub enum HealthStatus {
        /// Workers are live and keeping up.
        Healthy = "healthy",
        /// Working, but slow or short of workers.
        Degraded = "degraded",
        /// No live worker: jobs go elsewhere.
        Offline = "offline",
    }
}

words! {
    /// Who changed a region's health.
    pub enum HealthSource {
        /// The health monitor, from heartbeats and queue age.
        Monitor = "monitor",
        /// An administrator, by hand.
        Manual = "manual",
    }
}

words! {
    /// Whether a device answered its last reachability check.
    pub enum Reachability {
        /// Never checked.
        Unknown = "unknown",
        /// The management port accepted a connection.
        Reachable = "reachable",
        /// It did not.
        Unreachable = "unreachable",
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
        let hostnames = [
            ("core-rtr01.par.example.net", true),
            ("bad host", false),
            ("", false),
        ];
        for (raw, ok) in hostnames {
            assert_eq!(hostname(raw).is_ok(), ok, "{raw:?}");
        }
        let addresses = [
            ("10.0.0.1", true),
            ("2001:db8::1", true),
            ("10.0.0.256", false),
            ("10.0.0.0/24", false),
        ];
        for (raw, ok) in addresses {
            assert_eq!(address(raw).is_ok(), ok, "{raw:?}");
        }
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
