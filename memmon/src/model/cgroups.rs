//! The model's memory cgroups: each one's latest reading of its own files
//! (usage, limits, memory.stat, events, PSI), the names its path carries,
//! and a sliding window of its unreclaimable memory for the time-to-OOM
//! forecast. A cgroup removed between two scans keeps its final reading
//! (marked gone) until it has been published [`GONE_KEPT_PASSES`] times.

use std::{collections::HashMap, time::Instant};

use super::forecast::Window;
use crate::sample::cgroup::{CgroupNames, CgroupSample};

/// Samples in a forecast window (one per fresh memory.stat read).
pub const FORECAST_SAMPLES: usize = 30;
/// Longest time a forecast window spans, seconds.
pub const FORECAST_SPAN_SECS: f64 = 120.0;
/// Passes a removed cgroup stays in the model with its final reading.
pub const GONE_KEPT_PASSES: u32 = 60;

/// One memory cgroup as the model knows it.
#[derive(Clone, Debug)]
pub struct CgroupState {
    /// The latest reading.
    pub sample: CgroupSample,
    /// unit, pod uid, container id, QoS class from its path.
    pub names: CgroupNames,
    /// Unreclaimable bytes over time (fresh memory.stat reads only).
    pub window: Window,
    /// Removed from the hierarchy: `sample` is its final reading.
    pub gone: bool,
    /// Passes since it was found gone.
    pub gone_passes: u32,
}

impl CgroupState {
    /// The hard limit that applies (its own or an ancestor's).
    pub fn limit(&self) -> Option<u64> {
        let l = self.sample.limits.as_ref()?;
        l.effective_max.or(l.max)
    }

    /// Unreclaimable growth, bytes per second (None: too few samples).
    pub fn growth(&self) -> Option<f64> {
        self.window.slope()
    }

    /// Seconds until unreclaimable memory reaches the limit at the current
    /// growth; None when flat or shrinking, or without a limit.
    pub fn oom_forecast_seconds(&self) -> Option<f64> {
        if self.gone {
            return None;
        }
        self.window.seconds_to_limit(self.limit())
    }
}

/// Every memory cgroup read, by path.
#[derive(Debug, Default)]
pub struct Cgroups {
    by_path: HashMap<String, CgroupState>,
    origin: Option<Instant>,
}

impl Cgroups {
    /// Folds one scan in: `samples` read at `now` (with their names), and
    /// `gone`, the paths found removed.
    pub fn apply(
        &mut self,
        samples: Vec<(CgroupSample, CgroupNames)>,
        gone: &[String],
        now: Instant,
    ) {
        let origin = *self.origin.get_or_insert(now);
        let t = now.saturating_duration_since(origin).as_secs_f64();
        for st in self.by_path.values_mut().filter(|s| s.gone) {
            st.gone_passes += 1;
        }
        self.by_path
            .retain(|_, s| !s.gone || s.gone_passes < GONE_KEPT_PASSES);
        for (sample, names) in samples {
            let fresh = sample.detail_age_ms == Some(0);
            let unreclaimable = sample.unreclaimable;
            let st = self
                .by_path
                .entry(sample.path.clone())
                .or_insert_with(|| CgroupState {
                    sample: CgroupSample::default(),
                    names: names.clone(),
                    window: Window::new(FORECAST_SAMPLES, FORECAST_SPAN_SECS),
                    gone: false,
                    gone_passes: 0,
                });
            if fresh && let Some(u) = unreclaimable {
                st.window.push(t, u);
            }
            st.sample = sample;
            st.names = names;
            st.gone = false;
            st.gone_passes = 0;
        }
        for path in gone {
            if let Some(st) = self.by_path.get_mut(path) {
                st.gone = true;
            }
        }
    }

    /// The cgroup at `path`.
    pub fn get(&self, path: &str) -> Option<&CgroupState> {
        self.by_path.get(path)
    }

    /// Every cgroup, any order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &CgroupState)> {
        self.by_path.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str, unreclaimable: u64, max: u64) -> CgroupSample {
        CgroupSample {
            path: path.into(),
            usage: Some(unreclaimable),
            unreclaimable: Some(unreclaimable),
            detail_age_ms: Some(0),
            limits: Some(crate::sample::cgroup::Limits {
                max: Some(max),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn steady_growth_forecasts_the_limit_and_a_removed_cgroup_keeps_its_reading() {
        let mut c = Cgroups::default();
        let t0 = Instant::now();
        for i in 0..10u64 {
            let at = t0 + std::time::Duration::from_secs(i);
            c.apply(
                vec![(
                    sample("/a", (i + 1) << 23, 256 << 20),
                    CgroupNames::default(),
                )],
                &[],
                at,
            );
        }
        let st = c.get("/a").expect("kept");
        // 8 MiB/s, at 80 MiB of 256 MiB: 22 s to go.
        let f = st.oom_forecast_seconds().expect("a forecast");
        assert!((f - 22.0).abs() < 1.0, "{f}");
        c.apply(
            Vec::new(),
            &["/a".to_string()],
            t0 + std::time::Duration::from_secs(11),
        );
        let st = c.get("/a").expect("final reading kept");
        assert!(st.gone && st.sample.usage == Some(10 << 23));
        assert_eq!(
            st.oom_forecast_seconds(),
            None,
            "no forecast for a gone cgroup"
        );
    }
}
