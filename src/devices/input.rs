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
        let tags = self.tags.as_deref().and_then(|tags| {
            let cleaned = clean_tags(tags);
            if cleaned.is_none() {
                e.add("tags", "Use at most 50 tags of at most 64 characters.");
            }
            cleaned
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

/// Submitted changes for many devices at once: every field left out stays as it is.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkEditInput {
    /// Credential id, or null for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub credential: Option<Option<i64>>,
    /// Site.
    pub site: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Platform.
    pub platform: Option<String>,
    /// Whether jobs may target the devices.
    pub enabled: Option<bool>,
    /// Tags to add (kept once, sorted).
    pub tags_add: Option<Vec<String>>,
    /// Tags to remove.
    pub tags_remove: Option<Vec<String>>,
    /// Region id, or null to unassign.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub region: Option<Option<i64>>,
}

/// A validated bulk edit; see [`BulkEditInput`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BulkEdit {
    /// New credential (`Some(None)`: none).
    pub credential: Option<Option<i64>>,
    /// New site.
    pub site: Option<String>,
    /// New role.
    pub role: Option<String>,
    /// New vendor (lower case).
    pub vendor: Option<String>,
    /// New platform (lower case).
    pub platform: Option<String>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// Tags added.
    pub tags_add: Vec<String>,
    /// Tags removed.
    pub tags_remove: Vec<String>,
    /// New region (`Some(None)`: none).
    pub region: Option<Option<i64>>,
}

impl BulkEdit {
    /// Whether it changes anything on the `devices` row itself (all but the region).
    pub fn changes_devices(&self) -> bool {
        *self
            != BulkEdit {
                region: self.region,
                ..Default::default()
            }
    }

    /// Whether it changes nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == BulkEdit::default()
    }
}

/// Trims tags and drops empty ones; `None` when there are too many or one is too long.
fn clean_tags(tags: &[String]) -> Option<Vec<String>> {
    let mut cleaned: Vec<String> = tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if cleaned.len() > 50 || cleaned.iter().any(|t| t.chars().count() > 64) {
        return None;
    }
    cleaned.sort();
    cleaned.dedup();
    Some(cleaned)
}

impl BulkEditInput {
    /// Validates every field, with the rules of a single device's, and requires at least one.
    pub fn validate(&self) -> Result<BulkEdit, FieldErrors> {
        let mut e = FieldErrors::new();
        let mut text = |name: &str, v: &Option<String>| {
            let v = v.as_deref().map(str::trim).filter(|v| !v.is_empty());
            e.check_given(name, v, |v| types::text(v, 100))
        };
        let site = text("site", &self.site);
        let role = text("role", &self.role);
        let vendor = text("vendor", &self.vendor).map(|v| v.to_lowercase());
        let platform = text("platform", &self.platform).map(|v| v.to_lowercase());
        let mut tags = |name: &str, v: &Option<Vec<String>>| match v.as_deref().map(clean_tags) {
            None => Vec::new(),
            Some(Some(tags)) => tags,
            Some(None) => {
                e.add(name, "Use at most 50 tags of at most 64 characters.");
                Vec::new()
            }
        };
        let tags_add = tags("tags_add", &self.tags_add);
        let tags_remove = tags("tags_remove", &self.tags_remove);
        if let Some(both) = tags_add.iter().find(|t| tags_remove.contains(t)) {
            e.add(
                "tags_remove",
                format!("“{both}” is both added and removed; keep it in one list."),
            );
        }
        let edit = BulkEdit {
            credential: self.credential,
            site,
            role,
            vendor,
            platform,
            enabled: self.enabled,
            tags_add,
            tags_remove,
            region: self.region,
        };
        if e.is_empty() && edit.is_empty() {
            e.add(
                "changes",
                "Change at least one field: credential, site, role, vendor, platform, enabled, \
                 tags_add, tags_remove or region.",
            );
        }
        if e.is_empty() { Ok(edit) } else { Err(e) }
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

    #[test]
    fn a_bulk_edit_needs_a_change_and_cannot_add_and_remove_one_tag() {
        let e = BulkEditInput::default().validate().unwrap_err();
        assert_eq!(e.get("changes").len(), 1);
        let blank = BulkEditInput {
            site: Some("  ".into()),
            ..Default::default()
        };
        assert!(blank.validate().is_err(), "a blank site is no change");
        let both = BulkEditInput {
            tags_add: Some(vec!["lab".into()]),
            tags_remove: Some(vec![" lab ".into()]),
            ..Default::default()
        };
        assert_eq!(both.validate().unwrap_err().get("tags_remove").len(), 1);
        let region = BulkEditInput {
            region: Some(None),
            ..Default::default()
        };
        let edit = region.validate().unwrap();
        assert!(!edit.changes_devices() && !edit.is_empty());
        let vendor = BulkEditInput {
            vendor: Some("Cisco".into()),
            ..Default::default()
        };
        let edit = vendor.validate().unwrap();
        assert_eq!(edit.vendor.as_deref(), Some("cisco"));
        assert!(edit.changes_devices());
    }
}
