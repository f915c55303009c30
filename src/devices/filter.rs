//! The device list's filters and sort orders, as SQL conditions.

use sqlx::{Postgres, QueryBuilder};

use crate::auth::Scope;
use crate::error::FieldErrors;
use crate::types::Reachability;

/// Which devices a filter keeps by region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionFilter {
    /// Devices without a region (`region=none`).
    Unassigned,
    /// Devices of this region.
    Id(i64),
}

/// Which devices a filter keeps by credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFilter {
    /// Devices without a credential (`credential=none`).
    Missing,
    /// Devices signing in with this credential.
    Id(i64),
}

/// The device list's filters (`?region=&site=&role=&vendor=&platform=&tag=&enabled=
/// &reachability=&credential=&q=`), also used by bulk changes. Text filters match
/// case-insensitively, tags exactly; site, role, vendor, platform and tag take several
/// values (`site=a&site=b`), meaning any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// By region.
    pub region: Option<RegionFilter>,
    /// Any of these sites (exact; empty: any site).
    pub site: Vec<String>,
    /// Any of these roles.
    pub role: Vec<String>,
    /// Any of these vendors.
    pub vendor: Vec<String>,
    /// Any of these platforms.
    pub platform: Vec<String>,
    /// Devices carrying any of these tags.
    pub tag: Vec<String>,
    /// Enabled (`true`) or disabled (`false`) devices.
    pub enabled: Option<bool>,
    /// By the outcome of the last reachability check.
    pub reachability: Option<Reachability>,
    /// By credential.
    pub credential: Option<CredentialFilter>,
    /// Substring of the hostname, prefix of the address, or a network (CIDR) holding it.
    pub q: Option<String>,
}

/// The filters' names, in the order links carry them.
pub const FILTERS: &[&str] = &[
    "region",
    "site",
    "role",
    "vendor",
    "platform",
    "tag",
    "enabled",
    "reachability",
    "credential",
    "q",
];

/// Appends ` AND lower(d.<column>) IN (lower(<value>), …)` for each column given values:
/// the exact, case-insensitive text matches that the device list and a job's targets share.
/// (An `IN` list of `lower(..)`, unlike `= ANY(array)`, lets the `lower(column)` indexes
/// serve it.)
pub fn push_exact_matches<const N: usize>(
    qb: &mut QueryBuilder<Postgres>,
    matches: [(&'static str, &[String]); N],
) {
    for (column, values) in matches {
        let Some((first, rest)) = values.split_first() else {
            continue;
        };
        qb.push(format_args!(" AND lower(d.{column}) IN (lower("))
            .push_bind(first.clone())
            .push(")");
        for v in rest {
            qb.push(", lower(").push_bind(v.clone()).push(")");
        }
        qb.push(")");
    }
}

/// The filters that take several values, meaning any of them.
pub const MULTI_VALUED: &[&str] = &["site", "role", "vendor", "platform", "tag"];

/// Most values one multi-valued filter takes.
pub const MAX_VALUES: usize = 50;

/// Sort orders of the device list.
pub const SORTS: &[&str] = &[
    "hostname",
    "mgmt_ip",
    "site",
    "role",
    "vendor",
    "region",
    "updated_at",
];

impl DeviceFilter {
    /// Reads the filters from key/value pairs (a query string or a JSON object's entries),
    /// recording bad values. Unknown keys are ignored, empty values mean "no filter".
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, String)>,
        errors: &mut FieldErrors,
    ) -> Self {
        let mut f = Self::default();
        for (key, value) in pairs {
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            let too_long = value.chars().count() > 200;
            match key {
                "region" => match value.as_str() {
                    "none" | "null" => f.region = Some(RegionFilter::Unassigned),
                    v => match v.parse::<i64>() {
                        Ok(id) => f.region = Some(RegionFilter::Id(id)),
                        Err(_) => errors.add("region", "Enter a region id, or \"none\"."),
                    },
                },
                "site" | "role" | "vendor" | "platform" | "tag" | "q" if too_long => {
                    errors.add(key, "Use at most 200 characters.")
                }
                "site" | "role" | "vendor" | "platform" | "tag" => {
                    let values = match key {
                        "site" => &mut f.site,
                        "role" => &mut f.role,
                        "vendor" => &mut f.vendor,
                        "platform" => &mut f.platform,
                        _ => &mut f.tag,
                    };
                    if values.len() >= MAX_VALUES {
                        if !errors.has(key) {
                            errors.add(key, format!("Give at most {MAX_VALUES} values."));
                        }
                    } else if !values.contains(&value) {
                        values.push(value);
                    }
                }
                "enabled" => match value.as_str() {
                    "true" | "yes" | "1" => f.enabled = Some(true),
                    "false" | "no" | "0" => f.enabled = Some(false),
                    _ => errors.add("enabled", "Enter true or false."),
                },
                "reachability" => match Reachability::parse(&value) {
                    Ok(r) => f.reachability = Some(r),
                    Err(message) => errors.add("reachability", message),
                },
                "credential" => match value.as_str() {
                    "none" | "null" => f.credential = Some(CredentialFilter::Missing),
                    v => match v.parse::<i64>() {
                        Ok(id) => f.credential = Some(CredentialFilter::Id(id)),
                        Err(_) => errors.add("credential", "Enter a credential id, or \"none\"."),
                    },
                },
                // Hostnames have no '/': a slash makes it a network (CIDR).
                "q" if value.contains('/') && value.parse::<ipnet::IpNet>().is_err() => errors.add(
                    "q",
                    "Enter a network such as 10.0.1.0/24, or a name or address without a slash.",
                ),
                "q" => f.q = Some(value),
                _ => {}
            }
        }
        f
    }

    /// Reads the filters from a JSON object (`{"site": ["par", "lon"], "q": "edge"}`), as a
    /// bulk change's `filters` or a job's `targets.filter` give them: a list gives a
    /// multi-valued filter several values (any of them), `null` means "none". `field` names
    /// the object in errors of unknown keys and of lists where one value belongs.
    pub fn from_json(
        object: &serde_json::Map<String, serde_json::Value>,
        field: &str,
    ) -> Result<Self, FieldErrors> {
        use serde_json::Value;
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => "none".to_string(),
            other => other.to_string(),
        };
        let mut errors = FieldErrors::new();
        let mut pairs = Vec::new();
        for (key, value) in object {
            if !FILTERS.contains(&key.as_str()) {
                errors.add(
                    format!("{field}.{key}"),
                    format!("Unknown filter; use {}.", FILTERS.join(", ")),
                );
                continue;
            }
            match value {
                Value::Array(items) if MULTI_VALUED.contains(&key.as_str()) => {
                    pairs.extend(items.iter().map(|v| (key.as_str(), text(v))));
                }
                Value::Array(_) => {
                    errors.add(format!("{field}.{key}"), "Give this filter one value.")
                }
                v => pairs.push((key.as_str(), text(v))),
            }
        }
        let filter = Self::from_pairs(pairs, &mut errors);
        if errors.is_empty() {
            Ok(filter)
        } else {
            Err(errors)
        }
    }

    /// The filters as the JSON object [`Self::from_json`] reads (multi-valued ones as lists).
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (key, value) in self.to_pairs() {
            if MULTI_VALUED.contains(&key) {
                let list = object
                    .entry(key)
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                if let serde_json::Value::Array(items) = list {
                    items.push(value.into());
                }
            } else {
                object.insert(key.to_string(), value.into());
            }
        }
        serde_json::Value::Object(object)
    }

    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The filters as query-string pairs (to keep them in links and forms).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self.region {
            Some(RegionFilter::Unassigned) => out.push(("region", "none".to_string())),
            Some(RegionFilter::Id(id)) => out.push(("region", id.to_string())),
            None => {}
        }
        for (k, v) in [
            ("site", &self.site),
            ("role", &self.role),
            ("vendor", &self.vendor),
            ("platform", &self.platform),
            ("tag", &self.tag),
        ] {
            out.extend(v.iter().map(|v| (k, v.clone())));
        }
        if let Some(enabled) = self.enabled {
            out.push(("enabled", enabled.to_string()));
        }
        if let Some(r) = self.reachability {
            out.push(("reachability", r.as_str().to_string()));
        }
        match self.credential {
            Some(CredentialFilter::Missing) => out.push(("credential", "none".to_string())),
            Some(CredentialFilter::Id(id)) => out.push(("credential", id.to_string())),
            None => {}
        }
        if let Some(q) = &self.q {
            out.push(("q", q.clone()));
        }
        out
    }

    /// The network `q` names, when it is one (`10.0.1.0/24`, `2001:db8::/32`): devices whose
    /// address is in it match.
    pub fn network(&self) -> Option<ipnet::IpNet> {
        let q = self.q.as_deref()?;
        q.contains('/')
            .then(|| q.parse::<ipnet::IpNet>().ok().map(|n| n.trunc()))
            .flatten()
    }

    /// Whether a filter other than the region is set (they need the `devices` row).
    pub fn has_device_conditions(&self) -> bool {
        *self
            != DeviceFilter {
                region: self.region,
                ..Default::default()
            }
    }

    /// Appends ` AND …` for the region filter (columns of `device_assignments a`), with the
    /// tenancy condition on `a` too so the `(customer_id, region_id)` index serves it.
    pub(super) fn push_region_condition(&self, qb: &mut QueryBuilder<Postgres>, scope: &Scope) {
        if self.region.is_some() {
            push_scope(qb, scope, "a");
        }
        self.push_region_match(qb, "a");
    }

    /// Appends ` AND <alias>.region_id …` for the region filter, if any.
    pub fn push_region_match(&self, qb: &mut QueryBuilder<Postgres>, alias: &str) {
        match self.region {
            Some(RegionFilter::Unassigned) => {
                qb.push(format_args!(" AND {alias}.region_id IS NULL"));
            }
            Some(RegionFilter::Id(id)) => {
                qb.push(format_args!(" AND {alias}.region_id = "))
                    .push_bind(id);
            }
            None => {}
        }
    }

    /// Appends ` AND …` conditions for every filter (columns of `devices d` joined with
    /// `device_assignments a`).
    pub(super) fn push_conditions(&self, qb: &mut QueryBuilder<Postgres>, scope: &Scope) {
        self.push_region_condition(qb, scope);
        self.push_device_conditions(qb);
    }

    /// Appends ` AND …` for the filters on the device itself (columns of `devices d`).
    pub fn push_device_conditions(&self, qb: &mut QueryBuilder<Postgres>) {
        push_exact_matches(
            qb,
            [
                ("site", &self.site),
                ("role", &self.role),
                ("vendor", &self.vendor),
                ("platform", &self.platform),
            ],
        );
        if !self.tag.is_empty() {
            qb.push(" AND d.tags && ")
                .push_bind(self.tag.clone())
                .push("::text[]");
        }
        if let Some(enabled) = self.enabled {
            qb.push(" AND d.enabled = ").push_bind(enabled);
        }
        if let Some(r) = self.reachability {
            qb.push(" AND d.reachability_status = ").push_bind(r);
        }
        match self.credential {
            Some(CredentialFilter::Missing) => {
                qb.push(" AND d.credential_id IS NULL");
            }
            Some(CredentialFilter::Id(id)) => {
                qb.push(" AND d.credential_id = ").push_bind(id);
            }
            None => {}
        }
        if let Some(network) = self.network() {
            qb.push(" AND d.mgmt_ip <<= ").push_bind(network);
        } else if let Some(q) = &self.q {
            let pattern = format!("%{}%", escape_like(q));
            // Only something shaped like an address can match one; leaving the address
            // branch out otherwise lets the trigram index answer alone.
            let address_like = q
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':');
            qb.push(" AND (d.hostname ILIKE ").push_bind(pattern);
            if address_like {
                qb.push(" OR host(d.mgmt_ip) LIKE ")
                    .push_bind(format!("{}%", escape_like(q)));
            }
            qb.push(")");
        }
    }
}

pub(super) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The `ORDER BY` of a sort key from [`SORTS`], `-` prefixed to reverse.
pub(super) fn order_by(sort: &str) -> String {
    let (desc, key) = match sort.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, sort),
    };
    let dir = if desc { " DESC" } else { "" };
    // Each order ends in a unique key, and matches an index within one customer
    // (`customer_id` is constant there, so the planner skips it). Only the keys of `SORTS`
    // reach the SQL: anything else sorts by hostname.
    match key {
        "mgmt_ip" | "updated_at" => format!(" ORDER BY d.{key}{dir}, d.id{dir}"),
        "site" | "role" | "vendor" => {
            format!(" ORDER BY lower(d.{key}){dir}, d.hostname{dir}, d.customer_id{dir}")
        }
        "region" => {
            let nulls = if desc { " NULLS LAST" } else { " NULLS FIRST" };
            format!(" ORDER BY r.name{dir}{nulls}, d.hostname, d.customer_id")
        }
        _ => format!(" ORDER BY d.hostname{dir}, d.customer_id{dir}"),
    }
}

/// Appends the tenancy condition on `{alias}.customer_id`. One customer (the common case)
/// is bound as a scalar, so the planner can walk the `(customer_id, …)` indexes in order.
pub(super) fn push_scope(qb: &mut QueryBuilder<Postgres>, scope: &Scope, alias: &str) {
    match scope.ids() {
        Some([one]) => {
            qb.push(format!(" AND {alias}.customer_id = "))
                .push_bind(*one);
        }
        Some(ids) => {
            qb.push(format!(" AND {alias}.customer_id = ANY("))
                .push_bind(ids.to_vec())
                .push(")");
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        v.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn filters_parse_and_round_trip() {
        let mut e = FieldErrors::new();
        let f = DeviceFilter::from_pairs(
            pairs(&[
                ("region", "none"),
                ("site", " PAR1 "),
                ("q", "rtr"),
                ("page", "2"),
                ("role", ""),
            ]),
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!(f.region, Some(RegionFilter::Unassigned));
        assert_eq!(f.site, vec!["PAR1".to_string()]);
        assert!(f.role.is_empty());
        assert_eq!(
            DeviceFilter::from_pairs(f.to_pairs().into_iter(), &mut e),
            f
        );
    }

    #[test]
    fn a_repeated_filter_keeps_every_value_once() {
        let mut e = FieldErrors::new();
        let f = DeviceFilter::from_pairs(
            pairs(&[("site", "a"), ("site", "b"), ("site", "a"), ("tag", "core")]),
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!(f.site, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(f.tag, vec!["core".to_string()]);
        let back = f.to_pairs();
        assert_eq!(back.iter().filter(|(k, _)| *k == "site").count(), 2);
    }

    #[test]
    fn too_many_values_for_a_filter_is_a_field_error() {
        let mut e = FieldErrors::new();
        let many: Vec<(&'static str, String)> = (0..MAX_VALUES + 5)
            .map(|i| ("site", format!("s{i}")))
            .collect();
        DeviceFilter::from_pairs(many, &mut e);
        assert_eq!(e.get("site").len(), 1);
    }

    #[test]
    fn a_bad_region_filter_is_a_field_error() {
        let mut e = FieldErrors::new();
        DeviceFilter::from_pairs(pairs(&[("region", "east")]), &mut e);
        assert_eq!(e.get("region").len(), 1);
    }

    #[test]
    fn like_wildcards_in_searches_are_literal() {
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
