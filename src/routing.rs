//! Where a job's devices are sent: pure decisions, no I/O.
//!
//! Devices are grouped by region. Each *available* region (enabled and not offline) gets one
//! dispatch on its queue `region_<identifier>`; devices without a region, or whose region is
//! unavailable, share one dispatch on the default queue. A job spanning regions therefore
//! fans out (the Django original sent everything to one region). The job's `region` is the
//! region of the highest-priority regional dispatch (ties broken by name), or none.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::lifecycle::{DEFAULT_QUEUE, queue_name};
use crate::types::HealthStatus;

/// What routing needs to know about a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// Id.
    pub id: i64,
    /// Slug, naming the queue.
    pub identifier: String,
    /// Display name (tie-break and log lines).
    pub name: String,
    /// Higher is preferred.
    pub priority: i32,
    /// Enabled flag.
    pub enabled: bool,
    /// Current health.
    pub health_status: HealthStatus,
}

impl RegionInfo {
    fn available(&self) -> bool {
        self.enabled && self.health_status != HealthStatus::Offline
    }
}

/// One targeted device and its region, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRoute {
    /// Device id.
    pub device_id: i64,
    /// Hostname (log lines).
    pub hostname: String,
    /// Its region, shared by its devices (a job may name 10,000 devices of three regions).
    pub region: Option<Arc<RegionInfo>>,
}

/// One queue a job is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The region, or `None` for the default queue.
    pub region_id: Option<i64>,
    /// Queue name.
    pub queue: String,
    /// Devices it runs on, ascending.
    pub device_ids: Vec<i64>,
    /// Why these devices went here, for the job log and the API.
    pub reason: String,
}

/// The routing decision for a whole job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Regional dispatches by priority (highest first, then name), then the default queue.
    pub dispatches: Vec<Dispatch>,
    /// The job's region: that of the first regional dispatch.
    pub region_id: Option<i64>,
}

fn describe(hosts: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = hosts
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > SHOWN {
        s.push_str(&format!(" and {} more", hosts.len() - SHOWN));
    }
    s
}

/// Routes `devices` to queues. Without a live worker on the default queue
/// (`default_served`), an offline region keeps its devices: on the default queue they would
/// wait for good, on the region's queue they run when its workers return (and move to the
/// default queue if one starts meanwhile, see `lifecycle::fail_over`).
pub fn plan(devices: &[DeviceRoute], default_served: bool) -> Plan {
    let mut regional: BTreeMap<i64, (&RegionInfo, Vec<&DeviceRoute>)> = BTreeMap::new();
    // Why devices fall back, by region (none: no region); said once per region.
    let mut fallback: Vec<&DeviceRoute> = Vec::new();
    let mut why: BTreeMap<Option<i64>, (String, Vec<&str>)> = BTreeMap::new();
    for device in devices {
        match &device.region {
            Some(region) if region.available() || (region.enabled && !default_served) => {
                regional
                    .entry(region.id)
                    .or_insert((region, Vec::new()))
                    .1
                    .push(device);
            }
            region => {
                fallback.push(device);
                why.entry(region.as_ref().map(|r| r.id))
                    .or_insert_with(|| {
                        let reason = match region {
                            Some(r) if r.enabled => format!("region {} is offline", r.name),
                            Some(r) => format!("region {} is disabled", r.name),
                            None => "no region".to_string(),
                        };
                        (reason, Vec::new())
                    })
                    .1
                    .push(device.hostname.as_str());
            }
        }
    }

    let mut groups: Vec<(&RegionInfo, Vec<&DeviceRoute>)> = regional.into_values().collect();
    groups.sort_by(|(a, _), (b, _)| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.name.cmp(&b.name))
    });

    let mut dispatches: Vec<Dispatch> = groups
        .iter()
        .map(|(region, members)| {
            let mut ids: Vec<i64> = members.iter().map(|d| d.device_id).collect();
            ids.sort_unstable();
            let hosts: Vec<&str> = members.iter().map(|d| d.hostname.as_str()).collect();
            Dispatch {
                region_id: Some(region.id),
                queue: queue_name(&region.identifier),
                reason: format!(
                    "{} device{} in region {} ({}, priority {}): {}{}",
                    ids.len(),
                    if ids.len() == 1 { "" } else { "s" },
                    region.name,
                    region.health_status,
                    region.priority,
                    describe(&hosts),
                    if region.available() {
                        ""
                    } else {
                        "; no worker serves the default queue, so they wait for this region's"
                    }
                ),
                device_ids: ids,
            }
        })
        .collect();

    if !fallback.is_empty() {
        let mut ids: Vec<i64> = fallback.iter().map(|d| d.device_id).collect();
        ids.sort_unstable();
        // Grouped by reason, so the log says "no region: a, b; region X is offline: c".
        let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (reason, hosts) in why.values() {
            reasons.entry(reason.as_str()).or_default().extend(hosts);
        }
        let reason = reasons
            .iter()
            .map(|(why, hosts)| format!("{why}: {}", describe(hosts)))
            .collect::<Vec<_>>()
            .join("; ");
        dispatches.push(Dispatch {
            region_id: None,
            queue: DEFAULT_QUEUE.to_string(),
            device_ids: ids,
            reason: format!("default queue ({reason})"),
        });
    }

    Plan {
        region_id: dispatches.first().and_then(|d| d.region_id),
        dispatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: i64, identifier: &str, priority: i32) -> RegionInfo {
        RegionInfo {
            id,
            identifier: identifier.to_string(),
            name: identifier.to_uppercase(),
            priority,
            enabled: true,
            health_status: HealthStatus::Healthy,
        }
    }

    fn device(id: i64, region: Option<RegionInfo>) -> DeviceRoute {
        DeviceRoute {
            device_id: id,
            hostname: format!("dev{id}"),
            region: region.map(Arc::new),
        }
    }

    #[test]
    fn a_device_goes_to_its_regions_queue() {
        let plan = plan(&[device(1, Some(region(10, "us-east-1", 100)))], true);
        assert_eq!(plan.region_id, Some(10));
        assert_eq!(plan.dispatches.len(), 1);
        assert_eq!(plan.dispatches[0].queue, "region_us-east-1");
        assert_eq!(plan.dispatches[0].device_ids, [1]);
    }

    #[test]
    fn devices_without_a_region_go_to_the_default_queue() {
        let plan = plan(&[device(1, None), device(2, None)], true);
        assert_eq!(plan.region_id, None);
        assert_eq!(plan.dispatches.len(), 1);
        assert_eq!(plan.dispatches[0].queue, "default");
        assert_eq!(plan.dispatches[0].region_id, None);
        assert_eq!(plan.dispatches[0].device_ids, [1, 2]);
        assert!(plan.dispatches[0].reason.contains("no region: dev1, dev2"));
    }

    #[test]
    fn a_job_spanning_regions_fans_out_and_takes_the_highest_priority_region() {
        let east = region(10, "us-east-1", 100);
        let west = region(20, "us-west-2", 200);
        let plan = plan(
            &[
                device(1, Some(east.clone())),
                device(2, Some(west.clone())),
                device(3, Some(east)),
            ],
            true,
        );
        assert_eq!(plan.region_id, Some(20));
        let queues: Vec<&str> = plan.dispatches.iter().map(|d| d.queue.as_str()).collect();
        assert_eq!(queues, ["region_us-west-2", "region_us-east-1"]);
        assert_eq!(plan.dispatches[1].device_ids, [1, 3]);
    }

    #[test]
    fn equal_priorities_are_ordered_by_name() {
        let plan = plan(
            &[
                device(1, Some(region(10, "b-region", 100))),
                device(2, Some(region(20, "a-region", 100))),
            ],
            true,
        );
        assert_eq!(plan.region_id, Some(20));
    }

    #[test]
    fn an_offline_region_fails_over_to_the_default_queue() {
        let mut offline = region(10, "us-east-1", 100);
        offline.health_status = HealthStatus::Offline;
        let plan = plan(&[device(1, Some(offline))], true);
        assert_eq!(plan.region_id, None);
        assert_eq!(plan.dispatches[0].queue, "default");
        assert!(
            plan.dispatches[0]
                .reason
                .contains("region US-EAST-1 is offline: dev1")
        );
    }

    #[test]
    fn without_a_default_queue_worker_an_offline_region_keeps_its_devices() {
        let mut offline = region(10, "us-east-1", 100);
        offline.health_status = HealthStatus::Offline;
        let mut disabled = region(20, "eu-west-1", 50);
        disabled.enabled = false;
        let plan = plan(
            &[
                device(1, Some(offline)),
                device(2, Some(disabled)),
                device(3, None),
            ],
            false,
        );
        let queues: Vec<&str> = plan.dispatches.iter().map(|d| d.queue.as_str()).collect();
        assert_eq!(queues, ["region_us-east-1", "default"]);
        assert_eq!(plan.dispatches[0].device_ids, [1]);
        assert!(
            plan.dispatches[0]
                .reason
                .ends_with("no worker serves the default queue, so they wait for this region's"),
            "{}",
            plan.dispatches[0].reason
        );
        // A disabled region is out by the operator's choice, and a device without a region
        // has nowhere else to go.
        assert_eq!(plan.dispatches[1].device_ids, [2, 3]);
    }

    #[test]
    fn a_disabled_region_fails_over_too_but_a_degraded_one_does_not() {
        let mut disabled = region(10, "us-east-1", 100);
        disabled.enabled = false;
        let mut degraded = region(20, "eu-west-1", 50);
        degraded.health_status = HealthStatus::Degraded;
        let plan = plan(
            &[device(1, Some(disabled)), device(2, Some(degraded))],
            true,
        );
        assert_eq!(plan.region_id, Some(20));
        assert_eq!(plan.dispatches.len(), 2);
        assert_eq!(plan.dispatches[0].queue, "region_eu-west-1");
        assert_eq!(plan.dispatches[1].queue, "default");
        assert!(plan.dispatches[1].reason.contains("is disabled: dev1"));
    }

    #[test]
    fn mixed_regional_unassigned_and_offline_devices() {
        let east = region(10, "us-east-1", 100);
        let mut west = region(20, "us-west-2", 300);
        west.health_status = HealthStatus::Offline;
        let plan = plan(
            &[
                device(4, None),
                device(1, Some(east.clone())),
                device(2, Some(west)),
                device(3, Some(east)),
            ],
            true,
        );
        assert_eq!(
            plan.region_id,
            Some(10),
            "offline regions never become the job's region"
        );
        assert_eq!(plan.dispatches.len(), 2);
        assert_eq!(plan.dispatches[0].device_ids, [1, 3]);
        assert_eq!(plan.dispatches[1].device_ids, [2, 4]);
        let reason = &plan.dispatches[1].reason;
        assert!(
            reason.contains("no region: dev4") && reason.contains("offline: dev2"),
            "{reason}"
        );
    }

    #[test]
    fn nothing_to_route_gives_no_dispatch() {
        let plan = plan(&[], true);
        assert!(plan.dispatches.is_empty());
        assert_eq!(plan.region_id, None);
    }

    #[test]
    fn long_device_lists_are_abbreviated_in_reasons() {
        let devices: Vec<DeviceRoute> = (1..=8).map(|i| device(i, None)).collect();
        let plan = plan(&devices, true);
        assert!(
            plan.dispatches[0].reason.ends_with("dev5 and 3 more)"),
            "{}",
            plan.dispatches[0].reason
        );
        assert_eq!(plan.dispatches[0].device_ids.len(), 8);
    }
}
