//! Counters that never go lower across a restart of the daemon (kill -9, a
//! clean restart, a new binary, a probe reload), so Prometheus's `rate()`
//! never sees a reset that was not one. Two kinds of counter series:
//!
//! - the daemon's own ([`counts_from_start`]: kill records it received,
//!   passes, its CPU time, the programs it loaded): each run counts from
//!   zero, so a run continues from what the previous runs exported (an
//!   offset);
//! - every other (cgroup totals from the kernel's pinned exit totals plus
//!   live processes, kernel statistics): the source outlives the daemon
//!   but a part can be lost with it (processes it had folded in itself),
//!   so a series is held at what was exported until it passes it (a
//!   floor).
//!
//! Per-process series (`memmon_process_*`) are left as they are: their
//! counters live in pinned maps, and a pid reused by a new process is a
//! new process whose counters rightly start at zero. Pure: the daemon
//! loads and saves [`Floors`] (`daemon::counter_state`), bound to one boot.

use std::collections::BTreeMap;

use prometheus::proto::{MetricFamily, MetricType};
use serde::{Deserialize, Serialize};

/// Families that count from zero in each run of the daemon.
pub fn counts_from_start(family: &str) -> bool {
    matches!(
        family,
        "memmon_kills_total"
            | "memmon_oom_kills_total"
            | "memmon_samples_total"
            | "memmon_cpu_seconds_total"
            | "memmon_probe_run_seconds_total"
            | "memmon_probe_runs_total"
    )
}

/// Families left as they are.
fn exempt(family: &str) -> bool {
    family.starts_with("memmon_process_")
}

/// What was exported for one series (values kept as their bits: a
/// decimal round trip may lose the last bit, and one bit lower is lower).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The last value exported.
    #[serde(with = "bits")]
    pub exported: f64,
    /// Added to this run's raw value (counts-from-start families only).
    #[serde(with = "bits")]
    pub offset: f64,
    /// Unix ms it was last exported (series unseen for long are dropped).
    pub seen_ms: u64,
}

/// An f64 as its IEEE bits.
mod bits {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

/// Every counter series' floor, by `family{labels}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Floors {
    pub series: BTreeMap<String, Entry>,
}

/// A series unseen for this long is forgotten (a cgroup removed long ago).
pub const FORGET_AFTER_MS: u64 = 24 * 3600 * 1000;

fn series_key(family: &str, m: &prometheus::proto::Metric) -> String {
    let mut key = String::from(family);
    key.push('{');
    for (i, l) in m.get_label().iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(l.name());
        key.push('=');
        key.push_str(l.value());
    }
    key.push('}');
    key
}

impl Floors {
    /// Loaded from a previous run: every counts-from-start series now
    /// continues from what it exported.
    pub fn carried_over(mut self) -> Floors {
        for (key, e) in &mut self.series {
            let family = key.split('{').next().unwrap_or("");
            if counts_from_start(family) {
                e.offset = e.exported;
            }
        }
        self
    }

    /// Raises every counter sample of `families` to its floor (see the
    /// module doc) and records what is exported at `now_ms`.
    pub fn apply(&mut self, families: &mut [MetricFamily], now_ms: u64) {
        for f in families.iter_mut() {
            if f.get_field_type() != MetricType::COUNTER || exempt(f.name()) {
                continue;
            }
            let family = f.name().to_string();
            let from_start = counts_from_start(&family);
            for m in f.mut_metric().iter_mut() {
                let key = series_key(&family, m);
                let raw = m.get_counter().get_value();
                let e = self.series.entry(key).or_default();
                let value = if from_start {
                    (raw + e.offset).max(e.exported)
                } else {
                    raw.max(e.exported)
                };
                e.exported = value;
                e.seen_ms = now_ms;
                let mut c = prometheus::proto::Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
        }
        self.series
            .retain(|_, e| now_ms.saturating_sub(e.seen_ms) < FORGET_AFTER_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, labels: &[(&str, &str)], v: f64) -> MetricFamily {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_field_type(MetricType::COUNTER);
        f.mut_metric()
            .push(super::super::sample(labels, MetricType::COUNTER, v));
        f
    }

    fn value(f: &MetricFamily) -> f64 {
        f.get_metric()[0].get_counter().get_value()
    }

    #[test]
    fn the_daemons_own_counters_continue_and_kept_ones_hold() {
        let mut floors = Floors::default();
        let mut run1 = vec![
            counter("memmon_kills_total", &[("cause", "sigkill")], 7.0),
            // Not exact in decimal.
            counter("memmon_cpu_seconds_total", &[], 0.000052235000000000004),
            counter(
                "memmon_cgroup_minor_faults_total",
                &[("cgroup", "/")],
                131.0,
            ),
        ];
        floors.apply(&mut run1, 1);
        assert_eq!(value(&run1[0]), 7.0);
        // Saved, the daemon killed, a new run: its raw counts start over.
        let json = serde_json::to_string(&floors).expect("ser");
        let mut floors: Floors = serde_json::from_str::<Floors>(&json)
            .expect("de")
            .carried_over();
        let mut run2 = vec![
            counter("memmon_kills_total", &[("cause", "sigkill")], 2.0),
            counter("memmon_cpu_seconds_total", &[], 0.0),
            // A part of the cgroup's count was lost with the daemon.
            counter(
                "memmon_cgroup_minor_faults_total",
                &[("cgroup", "/")],
                100.0,
            ),
        ];
        floors.apply(&mut run2, 2);
        assert_eq!(value(&run2[0]), 9.0, "7 before, 2 since");
        assert_eq!(value(&run2[1]), 0.000052235000000000004, "to the last bit");
        assert_eq!(value(&run2[2]), 131.0, "held at what was exported");
        let mut run2b = vec![
            counter("memmon_kills_total", &[("cause", "sigkill")], 3.0),
            counter(
                "memmon_cgroup_minor_faults_total",
                &[("cgroup", "/")],
                150.0,
            ),
        ];
        floors.apply(&mut run2b, 3);
        assert_eq!(value(&run2b[0]), 10.0);
        assert_eq!(value(&run2b[1]), 150.0, "past the floor: as counted");
    }

    #[test]
    fn process_series_and_gauges_are_left_alone_and_old_series_forgotten() {
        let mut floors = Floors::default();
        let mut f = vec![counter(
            "memmon_process_minor_faults_total",
            &[("pid", "1")],
            50.0,
        )];
        floors.apply(&mut f, 1);
        let mut f = vec![counter(
            "memmon_process_minor_faults_total",
            &[("pid", "1")],
            3.0,
        )];
        floors.apply(&mut f, 2);
        assert_eq!(value(&f[0]), 3.0, "a reused pid starts over");
        let mut g = vec![counter(
            "memmon_cgroup_minor_faults_total",
            &[("cgroup", "/a")],
            5.0,
        )];
        floors.apply(&mut g, 10);
        assert!(
            floors
                .series
                .contains_key("memmon_cgroup_minor_faults_total{cgroup=/a}")
        );
        floors.apply(&mut [], 10 + FORGET_AFTER_MS);
        assert!(floors.series.is_empty());
    }
}
