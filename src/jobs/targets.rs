//! What a job targets and runs: the seed's device filters, the payload of each job type,
//! and the devices (with their regions) that a target matches.

use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};

use crate::devices::{DeviceFilter, push_exact_matches};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::lifecycle::JobType;
use crate::routing::{DeviceRoute, RegionInfo};
use crate::types::HealthStatus;

/// Most devices one job may target.
pub const MAX_TARGET_DEVICES: i64 = 100_000;

/// Which devices a job targets (the seed's filters), matched case-insensitively among the
/// customer's enabled devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Targets {
    /// Site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Vendor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Device ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_ids: Option<Vec<i64>>,
    /// The device list's filter (`{"filter": {"site": ["par", "lon"], "q": "edge"}}`): every
    /// enabled device it matches, however many, as "all matching" in the list chose them.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_filter"
    )]
    pub filter: Option<DeviceFilter>,
}

fn serialize_filter<S: serde::Serializer>(
    filter: &Option<DeviceFilter>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    filter
        .as_ref()
        .map(DeviceFilter::to_json)
        .serialize(serializer)
}

impl Targets {
    /// Reads `{"filters": {..}}` or the flat form `{..}`; `field` names the body field for
    /// error messages. Targets are required: a forgotten field must not mean every device,
    /// so that takes an explicit `{}`.
    pub fn parse(value: &Value, field: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let object = match value {
            Value::Null => {
                errors.add(
                    field,
                    "This field is required: filters such as {\"site\": \"par1\"}, or {} for every enabled device.",
                );
                return Err(errors);
            }
            Value::Object(map) => match map.get("filters") {
                Some(Value::Object(inner)) if map.len() == 1 => inner,
                Some(_) if map.len() == 1 => {
                    errors.add(format!("{field}.filters"), "Give the filters as an object.");
                    return Err(errors);
                }
                _ => map,
            },
            _ => {
                errors.add(
                    field,
                    "Give the targets as an object, e.g. {\"site\": \"par1\"}.",
                );
                return Err(errors);
            }
        };
        let mut targets = Targets::default();
        for (key, v) in object {
            let text = |errors: &mut FieldErrors| match v {
                Value::String(s) if !s.trim().is_empty() && s.chars().count() <= 200 => {
                    Some(s.trim().to_string())
                }
                _ => {
                    errors.add(
                        format!("{field}.{key}"),
                        "Give a non-empty string of at most 200 characters.",
                    );
                    None
                }
            };
            match key.as_str() {
                "site" => targets.site = text(&mut errors),
                "role" => targets.role = text(&mut errors),
                "vendor" => targets.vendor = text(&mut errors),
                "hostname" => targets.hostname = text(&mut errors),
                "device_ids" => match v {
                    Value::Array(items) if !items.is_empty() && items.len() <= 10_000 => {
                        let ids: Option<Vec<i64>> = items.iter().map(Value::as_i64).collect();
                        match ids {
                            Some(ids) => targets.device_ids = Some(ids),
                            None => errors
                                .add(format!("{field}.device_ids"), "Give a list of device ids."),
                        }
                    }
                    _ => errors.add(
                        format!("{field}.device_ids"),
                        "Give a list of 1 to 10000 device ids.",
                    ),
                },
                "filter" => match v {
                    Value::Object(filter) => {
                        match DeviceFilter::from_json(filter, &format!("{field}.filter")) {
                            Ok(f) => targets.filter = Some(f),
                            Err(e) => errors.extend(e),
                        }
                    }
                    _ => errors.add(
                        format!("{field}.filter"),
                        "Give the device list's filter as an object, e.g. {\"site\": [\"par\"], \"q\": \"edge\"}.",
                    ),
                },
                other => errors.add(
                    format!("{field}.{other}"),
                    "Unknown filter; use site, role, vendor, hostname, device_ids or filter.",
                ),
            }
        }
        if errors.is_empty() {
            Ok(targets)
        } else {
            Err(errors)
        }
    }
}

/// A job's payload, validated for its type.
pub fn validate_payload(job_type: JobType, payload: &Value) -> Result<Value, FieldErrors> {
    let mut errors = FieldErrors::new();
    let empty = Map::new();
    let map = match payload {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => {
            errors.add("payload", "Give the payload as an object.");
            return Err(errors);
        }
    };
    let timeout = |errors: &mut FieldErrors, default: u64, max: u64| -> u64 {
        match map.get("timeout") {
            None | Some(Value::Null) => default,
            Some(v) => match v.as_u64() {
                Some(t) if (1..=max).contains(&t) => t,
                _ => {
                    errors.add(
                        "payload.timeout",
                        format!("Give a timeout of 1 to {max} seconds."),
                    );
                    default
                }
            },
        }
    };
    let out = match job_type {
        JobType::RunCommands => {
            let commands: Vec<String> = match map.get("commands") {
                Some(Value::Array(items)) if !items.is_empty() && items.len() <= 50 => items
                    .iter()
                    .filter_map(|c| match c.as_str().map(str::trim) {
                        Some(s) if !s.is_empty() && s.len() <= 1000 && !s.contains('\n') => {
                            Some(s.to_string())
                        }
                        _ => {
                            errors.add(
                                "payload.commands",
                                "Each command is a non-empty single line of at most 1000 characters.",
                            );
                            None
                        }
                    })
                    .collect(),
                _ => {
                    errors.add("payload.commands", "Give a list of 1 to 50 commands.");
                    Vec::new()
                }
            };
            let t = timeout(&mut errors, 30, 600);
            json!({"commands": commands, "timeout": t})
        }
        JobType::ConfigBackup => json!({"timeout": timeout(&mut errors, 60, 600)}),
        JobType::CheckReachability => json!({"timeout": timeout(&mut errors, 5, 60)}),
    };
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The matching devices of one region (or of none), with the region.
#[derive(FromRow)]
struct RegionGroup {
    region_id: Option<i64>,
    identifier: Option<String>,
    name: Option<String>,
    priority: Option<i32>,
    enabled: Option<bool>,
    health_status: Option<HealthStatus>,
    device_ids: Vec<i64>,
    hostnames: Vec<String>,
    default_served: bool,
}

/// The customer's enabled devices matching `targets`, with their regions, and whether a live
/// worker serves the default queue (see [`crate::routing::plan`]).
pub async fn match_devices(
    conn: &mut PgConnection,
    customer_id: i64,
    targets: &Targets,
) -> AppResult<(Vec<DeviceRoute>, bool)> {
    // One row per region: a region's details once rather than with each of up to 10,000
    // devices, and the devices as arrays, which cost far less to send and decode than rows.
    let filters = [
        ("site", targets.site.as_slice()),
        ("role", targets.role.as_slice()),
        ("vendor", targets.vendor.as_slice()),
        ("hostname", targets.hostname.as_slice()),
    ];
    // The assignment row carries the region, the hostname and `enabled`: a list of ids
    // needs no other table, which halves the cost of a job on a thousand devices.
    let list_filter = targets.filter.as_ref();
    let device_row_needed = !filters.iter().all(|(_, v)| v.is_empty())
        || list_filter.is_some_and(DeviceFilter::has_device_conditions);
    let mut qb: QueryBuilder<Postgres> = if !device_row_needed {
        QueryBuilder::new(
            "WITH matched AS (
               SELECT a.device_id AS id, a.hostname, a.region_id
               FROM device_assignments a
               WHERE a.enabled AND a.customer_id = ",
        )
    } else {
        QueryBuilder::new(
            "WITH matched AS (
               SELECT d.id, d.hostname, a.region_id
               FROM devices d JOIN device_assignments a ON a.device_id = d.id
               WHERE d.enabled AND d.customer_id = ",
        )
    };
    qb.push_bind(customer_id);
    push_exact_matches(&mut qb, filters);
    if let Some(ids) = &targets.device_ids {
        qb.push(" AND a.device_id = ANY(")
            .push_bind(ids.clone())
            .push(")");
    }
    if let Some(filter) = list_filter {
        filter.push_region_match(&mut qb, "a");
        if device_row_needed {
            filter.push_device_conditions(&mut qb);
        }
    }
    // Unordered: one device more than the cap is enough to refuse, and the devices are
    // sorted below; sorting a thousand rows here, per region, cost more than the lookups.
    qb.push(" LIMIT ").push_bind(MAX_TARGET_DEVICES + 1).push(
        "),
         grouped AS (
           SELECT region_id, array_agg(id) AS device_ids, array_agg(hostname) AS hostnames
           FROM matched GROUP BY region_id)
         SELECT g.region_id, r.identifier, r.name, r.priority, r.enabled, r.health_status,
                g.device_ids, g.hostnames,
                -- Whether a live worker serves the default queue (fleet::live_workers' rule).
                EXISTS (SELECT 1 FROM worker_heartbeats
                        WHERE 'default' = ANY(queues)
                          AND last_seen > now() - make_interval(secs => 3 * heartbeat_ms / 1000.0))
                  AS default_served
         FROM grouped g LEFT JOIN regions r ON r.id = g.region_id",
    );
    // Filters run unprepared, so that PostgreSQL plans them for the values given: the cached
    // generic plan of a site filter walked a million devices in id order (261 ms) where the
    // site index answers (20 ms). A list of ids stays prepared: planning `id = ANY(…)` with
    // 10,000 values costs more (129 ms) than the cached plan's primary-key lookups (48 ms).
    let groups: Vec<RegionGroup> = qb
        .build_query_as()
        .persistent(crate::db::persistent(targets.device_ids.is_some()))
        .fetch_all(&mut *conn)
        .await?;
    let matched: usize = groups.iter().map(|g| g.device_ids.len()).sum();
    if matched as i64 > MAX_TARGET_DEVICES {
        return Err(AppError::Validation(FieldErrors::single(
            "target_summary",
            format!("These targets match more than {MAX_TARGET_DEVICES} devices; narrow them."),
        )));
    }
    let default_served = groups.first().is_some_and(|g| g.default_served);
    let mut devices = Vec::with_capacity(matched);
    for group in groups {
        let region = match group {
            RegionGroup {
                region_id: Some(id),
                identifier: Some(identifier),
                name: Some(name),
                priority: Some(priority),
                enabled: Some(enabled),
                health_status: Some(health_status),
                ..
            } => Some(std::sync::Arc::new(RegionInfo {
                id,
                identifier,
                name,
                priority,
                enabled,
                health_status,
            })),
            _ => None,
        };
        devices.extend(group.device_ids.into_iter().zip(group.hostnames).map(
            |(device_id, hostname)| DeviceRoute {
                device_id,
                hostname,
                region: region.clone(),
            },
        ));
    }
    devices.sort_unstable_by_key(|d| d.device_id);
    Ok((devices, default_served))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_nested_and_flat_filters() {
        let nested = Targets::parse(&json!({"filters": {"site": "par1"}}), "targets").unwrap();
        let flat = Targets::parse(&json!({"site": "par1"}), "targets").unwrap();
        assert_eq!(nested, flat);
        assert_eq!(flat.site.as_deref(), Some("par1"));
        let ids = Targets::parse(&json!({"device_ids": [3, 1]}), "targets").unwrap();
        assert_eq!(ids.device_ids, Some(vec![3, 1]));
    }

    #[test]
    fn bad_targets_name_the_field() {
        let e = Targets::parse(&json!({"colour": "red"}), "targets").unwrap_err();
        assert!(e.has("targets.colour"));
        let e = Targets::parse(&json!({"device_ids": ["a"]}), "targets").unwrap_err();
        assert!(e.has("targets.device_ids"));
        let e = Targets::parse(&json!({"site": 3}), "targets").unwrap_err();
        assert!(e.has("targets.site"));
        assert!(
            Targets::parse(&json!([1]), "targets")
                .unwrap_err()
                .has("targets")
        );
        // A forgotten field is not "every device"; `{}` is.
        assert!(
            Targets::parse(&Value::Null, "targets")
                .unwrap_err()
                .has("targets")
        );
        assert_eq!(
            Targets::parse(&json!({}), "targets").unwrap(),
            Targets::default()
        );
    }

    #[test]
    fn payloads_are_validated_per_type() {
        let ok =
            validate_payload(JobType::RunCommands, &json!({"commands": ["show version"]})).unwrap();
        assert_eq!(ok, json!({"commands": ["show version"], "timeout": 30}));
        for bad in [
            json!({}),
            json!({"commands": []}),
            json!({"commands": [""]}),
            json!({"commands": ["a\nb"]}),
            json!({"commands": ["x"], "timeout": 0}),
            json!({"commands": ["x"], "timeout": 601}),
            json!({"commands": "show version"}),
        ] {
            assert!(
                validate_payload(JobType::RunCommands, &bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            validate_payload(JobType::CheckReachability, &Value::Null).unwrap(),
            json!({"timeout": 5})
        );
        assert!(validate_payload(JobType::CheckReachability, &json!({"timeout": 61})).is_err());
        assert!(validate_payload(JobType::ConfigBackup, &json!([1])).is_err());
    }
}
