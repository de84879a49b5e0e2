//! The system view in the model: the latest system sample plus per-second
//! rates of the vmstat counters that matter (faults, swap, OOM kills,
//! NUMA, THP, reclaim), computed from two samples, and the system-wide
//! time-to-OOM forecast (what is committed out of RAM plus swap, over a
//! sliding window).

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

use super::Model;
use super::{forecast::Window, system_fields::SystemId};
use crate::sample::alloc::AllocSample;
use crate::sample::system::SystemSample;

/// Samples in the system forecast's window (one per pass).
const FORECAST_SAMPLES: usize = 60;
/// Longest time the system forecast's window spans, seconds.
const FORECAST_SPAN_SECS: f64 = 120.0;

/// System memory now and how fast its counters move.
#[derive(Clone, Debug, Serialize)]
pub struct SystemView {
    /// The latest sample.
    #[serde(flatten)]
    pub sample: SystemSample,
    /// Per-second rates of the rated vmstat counters of the system catalog
    /// (`system_fields::rated`) since the previous sample (empty after the
    /// first).
    pub rates: BTreeMap<String, f64>,
    /// Seconds until MemAvailable plus free swap reaches 0 at the current
    /// growth of what is committed (Theil-Sen over the window); absent when
    /// flat or shrinking, or before enough samples.
    pub oom_forecast_seconds: Option<f64>,
    /// Growth of RAM + swap in use (MemTotal + SwapTotal − MemAvailable −
    /// SwapFree), bytes per second: the slope the forecast uses.
    pub memory_growth_bytes_per_second: Option<f64>,
    /// Time the forecast's samples span.
    pub forecast_window_seconds: Option<f64>,
    #[serde(skip)]
    at: Option<Instant>,
    #[serde(skip)]
    window: Window,
    #[serde(skip)]
    origin: Option<Instant>,
}

/// (RAM + swap in use, RAM + swap): what the system forecast tracks and
/// the limit it reaches; `None` without MemAvailable (before 3.14).
pub fn committed(sample: &SystemSample) -> Option<(u64, u64)> {
    use super::system_fields::sys;
    let m = |id: SystemId| id.in_sample(sample);
    let total = m(sys::MEM_TOTAL)?.saturating_add(m(sys::SWAP_TOTAL).unwrap_or(0));
    let free = m(sys::MEM_AVAILABLE)?.saturating_add(m(sys::SWAP_FREE).unwrap_or(0));
    Some((total.saturating_sub(free), total))
}

impl SystemView {
    /// The view after `sample`, taken at `now`, given the previous one.
    pub fn next(prev: Option<SystemView>, mut sample: SystemSample, now: Instant) -> SystemView {
        if !sample.top_slabs_read
            && let Some(p) = &prev
        {
            sample.top_slabs = p.sample.top_slabs.clone();
            sample.top_slabs_read = p.sample.top_slabs_read;
        }
        let rates = match &prev {
            Some(p) => rates(
                &p.sample.vmstat,
                &sample.vmstat,
                p.at.map(|t| now.duration_since(t).as_secs_f64()),
            ),
            None => BTreeMap::new(),
        };
        let (mut window, origin) = match prev {
            Some(p) => (p.window, p.origin.unwrap_or(now)),
            None => (Window::new(FORECAST_SAMPLES, FORECAST_SPAN_SECS), now),
        };
        let limit = committed(&sample).map(|(used, limit)| {
            window.push(now.duration_since(origin).as_secs_f64(), used);
            limit
        });
        SystemView {
            sample,
            rates,
            oom_forecast_seconds: window.seconds_to_limit(limit),
            memory_growth_bytes_per_second: window.slope(),
            forecast_window_seconds: window.span_secs(),
            at: Some(now),
            window,
            origin: Some(origin),
        }
    }
}

/// Rates of the rated counters present in both samples; counter resets
/// give 0.
pub fn rates(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    seconds: Option<f64>,
) -> BTreeMap<String, f64> {
    let Some(dt) = seconds.filter(|d| *d > 0.0) else {
        return BTreeMap::new();
    };
    super::system_fields::rated()
        .filter_map(|f| {
            let (a, b) = (before.get(f.name)?, after.get(f.name)?);
            Some((f.name.to_string(), b.saturating_sub(*a) as f64 / dt))
        })
        .collect()
}

impl Model {
    /// The system view: latest sample, and rates from the one before.
    pub fn system(&self) -> Option<&SystemView> {
        self.system.as_ref()
    }

    /// Folds a system sample in, computing rates from the previous one.
    pub(super) fn apply_system(&mut self, sample: SystemSample, now: Instant) {
        self.system = Some(SystemView::next(self.system.take(), sample, now));
    }

    /// The allocator maps (slab caches, kmalloc classes, buddy), when
    /// read.
    pub(super) fn apply_alloc(&mut self, alloc: Option<AllocSample>) {
        if alloc.is_some() {
            self.alloc = alloc;
        }
    }

    /// Allocator activity in the current window (since start_window).
    pub fn alloc_window(&self) -> Option<AllocSample> {
        let now = self.alloc.as_ref()?;
        Some(match &self.alloc_baseline {
            Some(base) => now.since(base),
            None => now.clone(),
        })
    }
}

impl SystemView {
    /// A per-machine field's value now (None: the kernel does not have it).
    pub fn value(&self, id: SystemId) -> Option<u64> {
        id.in_sample(&self.sample)
    }

    /// A rated field's per-second rate since the previous sample.
    pub fn rate(&self, id: SystemId) -> Option<f64> {
        self.rates.get(id.name()).copied()
    }
}

/// The system forecast's gauges, `memmon_system_<key>`, read from the
/// view: each is absent while its value is (memory flat or shrinking, too
/// few samples), so a scrape alone does not list them all.
pub struct ForecastField {
    /// Key: the metric is `memmon_system_<key>`, the JSON key `<key>`.
    pub key: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Reads it from the view.
    pub read: fn(&SystemView) -> Option<f64>,
}

/// Every forecast gauge.
pub const FORECAST_FIELDS: &[ForecastField] = &[
    ForecastField {
        key: "oom_forecast_seconds",
        help: "Seconds until MemAvailable plus free swap reaches 0 at the current growth (Theil-Sen over the window); absent when flat or shrinking.",
        read: |v| v.oom_forecast_seconds,
    },
    ForecastField {
        key: "memory_growth_bytes_per_second",
        help: "Growth of RAM plus swap in use (MemTotal + SwapTotal - MemAvailable - SwapFree), the slope the system forecast uses.",
        read: |v| v.memory_growth_bytes_per_second,
    },
    ForecastField {
        key: "forecast_window_seconds",
        help: "Time the system forecast's samples span.",
        read: |v| v.forecast_window_seconds,
    },
];

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

    fn meminfo(available: u64, swap_free: u64) -> SystemSample {
        let mut s = SystemSample::default();
        for (k, v) in [
            ("MemTotal", 8u64 << 30),
            ("MemAvailable", available),
            ("SwapTotal", 2 << 30),
            ("SwapFree", swap_free),
        ] {
            s.meminfo.insert(k.into(), v);
        }
        s
    }

    #[test]
    fn the_system_forecast_counts_ram_and_swap() {
        let t0 = Instant::now();
        let mib = 1u64 << 20;
        // RAM + swap 10 GiB; 4 GiB available + 2 GiB of swap free, falling
        // by 10 MiB/s: 6 GiB / 10 MiB/s = 614.4 s left.
        let mut v: Option<SystemView> = None;
        for i in 0..20u64 {
            let at = t0 + std::time::Duration::from_secs(i);
            let sample = meminfo((4 << 30) - i * 10 * mib, 2 << 30);
            v = Some(SystemView::next(v, sample, at));
        }
        let v = v.expect("a view");
        let growth = v.memory_growth_bytes_per_second.expect("a slope");
        assert!((growth - (10 * mib) as f64).abs() < 1.0, "{growth}");
        let eta = v.oom_forecast_seconds.expect("a forecast");
        let want = ((6u64 << 30) - 19 * 10 * mib) as f64 / (10 * mib) as f64;
        assert!((eta - want).abs() < 0.5, "{eta} vs {want}");
        assert_eq!(v.forecast_window_seconds, Some(19.0));

        // Flat: no forecast.
        let mut flat: Option<SystemView> = None;
        for i in 0..20u64 {
            let at = t0 + std::time::Duration::from_secs(i);
            flat = Some(SystemView::next(flat, meminfo(4 << 30, 2 << 30), at));
        }
        assert_eq!(flat.expect("a view").oom_forecast_seconds, None);
    }

    #[test]
    fn a_pass_without_slabinfo_keeps_the_last_reading() {
        let mut first = meminfo(1 << 30, 0);
        first.top_slabs = vec![crate::sample::system::SlabCache {
            name: "dentry".into(),
            active_objs: 10,
            num_objs: 12,
            objsize: 192,
            bytes: 12 * 192,
        }];
        first.top_slabs_read = true;
        let t0 = Instant::now();
        let v = SystemView::next(None, first, t0);
        let v = SystemView::next(Some(v), meminfo(1 << 30, 0), t0);
        assert_eq!(v.sample.top_slabs.len(), 1);
        assert!(v.sample.top_slabs_read);
        let mut fresh = meminfo(1 << 30, 0);
        fresh.top_slabs_read = true;
        let v = SystemView::next(Some(v), fresh, t0);
        assert!(v.sample.top_slabs.is_empty(), "a new reading replaces it");
    }
}
