//! What a client may submit for a device, and its validation.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

use crate::error::FieldErrors;
use crate::types;

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Submitted device fields.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
pub struct DeviceInput {
    /// Owning customer (create only).
    pub customer: Option<i64>,
    /// Hostname, unique per customer (required on create and replace).
    pub hostname: Option<String>,
    /// Management address, IPv4 or IPv6 (required on create and replace).
    pub mgmt_ip: Option<String>,
    /// SSH port (default 22).
    #[schema(minimum = 1, maximum = 65_535)]
    pub port: Option<i64>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Free tags.
    pub tags: Option<Vec<String>>,
    /// Credential id, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub credential: Option<Option<i64>>,
    /// Whether jobs may target the device (default true).
    pub enabled: Option<bool>,
    /// Region id, or null to unassign.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub region: Option<Option<i64>>,
}

/// Validated device fields.
#[derive(Debug, Default, Clone)]
pub struct DeviceChanges {
    pub(super) hostname: Option<String>,
    pub(super) mgmt_ip: Option<IpAddr>,
    pub(super) port: Option<i32>,
    pub(super) vendor: Option<String>,
    pub(super) platform: Option<String>,
    pub(super) role: Option<String>,
    pub(super) site: Option<String>,
    pub(super) tags: Option<Vec<String>>,
    pub(super) credential: Option<Option<i64>>,
    pub(super) enabled: Option<bool>,
    pub(super) region: Option<Option<i64>>,
}

impl DeviceChanges {
    /// Whether the change touches nothing but the region (operators may do that).
    pub fn only_region(&self) -> bool {
        let DeviceChanges { region, .. } = self;
        let rest = DeviceChanges {
            region: None,
            ..self.clone()
        };
        region.is_some() && rest.is_noop()
    }

    fn is_noop(&self) -> bool {
        self.hostname.is_none()
            && self.mgmt_ip.is_none()
            && self.port.is_none()
            && self.vendor.is_none()
            && self.platform.is_none()
            && self.role.is_none()
            && self.site.is_none()
            && self.tags.is_none()
            && self.credential.is_none()
            && self.enabled.is_none()
            && self.region.is_none()
    }
}

impl DeviceInput {
    /// Validates every field; with `complete`, hostname and mgmt_ip are required.
    pub fn validate(&self, complete: bool) -> Result<DeviceChanges, FieldErrors> {
        let mut e = FieldErrors::new();
        let hostname = e.check_given("hostname", self.hostname.as_deref(), types::hostname);
        let mgmt_ip = e.check_given("mgmt_ip", self.mgmt_ip.as_deref(), types::address);
        if complete {
            e.require([
                ("hostname", self.hostname.is_some()),
                ("mgmt_ip", self.mgmt_ip.is_some()),
            ]);
        }
        let port = self.port.and_then(|v| e.check("port", types::port(v)));
        let mut text = |name: &str, v: &Option<String>| {
            e.check_given(name, v.as_deref(), |v| types::text(v, 100))
        };
        let vendor = text("vendor", &self.vendor).map(|v| v.to_lowercase());
        let platform = text("platform", &self.platform).map(|v| v.to_lowercase());
        let role = text("role", &self.role);
        let site = text("site", &self.site);
        let tags = self.tags.as_ref().and_then(|tags| {
            let cleaned: Vec<String> = tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if cleaned.len() > 50 || cleaned.iter().any(|t| t.chars().count() > 64) {
                e.add("tags", "Use at most 50 tags of at most 64 characters.");
                None
            } else {
                let mut cleaned = cleaned;
                cleaned.sort();
                cleaned.dedup();
                Some(cleaned)
            }
        });
        if e.is_empty() {
            Ok(DeviceChanges {
                hostname,
                mgmt_ip,
                port,
                vendor,
                platform,
                role,
                site,
                tags,
                credential: self.credential,
                enabled: self.enabled,
                region: self.region,
            })
        } else {
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_region_change_is_recognised() {
        let only = DeviceInput {
            region: Some(None),
            ..Default::default()
        };
        assert!(only.validate(false).unwrap().only_region());
        let more = DeviceInput {
            region: Some(Some(1)),
            site: Some("x".into()),
            ..Default::default()
        };
        assert!(!more.validate(false).unwrap().only_region());
    }

    #[test]
    fn device_validation_collects_every_error() {
        let input = DeviceInput {
            hostname: Some("bad host".into()),
            mgmt_ip: Some("300.1.1.1".into()),
            port: Some(70000),
            tags: Some(vec!["x".repeat(65)]),
            ..Default::default()
        };
        let e = input.validate(true).unwrap_err();
        for f in ["hostname", "mgmt_ip", "port", "tags"] {
            assert_eq!(e.get(f).len(), 1, "{f}");
        }
    }
}
