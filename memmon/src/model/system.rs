//! The system view in the model: the latest system sample plus per-second
//! rates of the vmstat counters that matter (faults, swap, OOM kills,
//! NUMA, THP, reclaim), computed from two samples.

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

use crate::sample::system::SystemSample;

/// vmstat counters turned into rates.
pub const RATE_KEYS: &[&str] = &[
    "pgfault",
    "pgmajfault",
    "pswpin",
    "pswpout",
    "oom_kill",
    "pgmigrate_success",
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_local",
    "numa_other",
    "numa_pages_migrated",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "pgscan_direct",
    "pgsteal_direct",
    "allocstall_normal",
    "allocstall_movable",
];

/// System memory now and how fast its counters move.
#[derive(Clone, Debug, Serialize)]
pub struct SystemView {
    /// The latest sample.
    #[serde(flatten)]
    pub sample: SystemSample,
    /// Per-second rates of [`RATE_KEYS`] since the previous sample (empty
    /// after the first).
    pub rates: BTreeMap<String, f64>,
    #[serde(skip)]
    at: Option<Instant>,
}

impl SystemView {
    /// The view after `sample`, given the previous one.
    pub fn next(prev: Option<SystemView>, sample: SystemSample) -> SystemView {
        let now = Instant::now();
        let rates = match &prev {
            Some(p) => rates(
                &p.sample.vmstat,
                &sample.vmstat,
                p.at.map(|t| now.duration_since(t).as_secs_f64()),
            ),
            None => BTreeMap::new(),
        };
        SystemView {
            sample,
            rates,
            at: Some(now),
        }
    }
}

/// Rates of the RATE_KEYS present in both samples; counter resets give 0.
pub fn rates(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    seconds: Option<f64>,
) -> BTreeMap<String, f64> {
    let Some(dt) = seconds.filter(|d| *d > 0.0) else {
        return BTreeMap::new();
    };
    RATE_KEYS
        .iter()
        .filter_map(|k| {
            let (a, b) = (before.get(*k)?, after.get(*k)?);
            Some((k.to_string(), b.saturating_sub(*a) as f64 / dt))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_two_samples() {
        let a: BTreeMap<String, u64> =
            [("pgfault".to_string(), 100), ("pswpout".to_string(), 5)].into();
        let b: BTreeMap<String, u64> =
            [("pgfault".to_string(), 300), ("pswpout".to_string(), 4)].into();
        let r = rates(&a, &b, Some(2.0));
        assert_eq!(r.get("pgfault"), Some(&100.0));
        assert_eq!(
            r.get("pswpout"),
            Some(&0.0),
            "a reset is not a negative rate"
        );
        assert!(rates(&a, &b, Some(0.0)).is_empty());
        assert!(rates(&a, &b, None).is_empty());
    }
}
