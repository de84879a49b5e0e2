//! The model's memory cgroups: each one's latest reading of its own files
//! (usage, limits, memory.stat, events, PSI), the names its path carries,
//! and a sliding window of its unreclaimable memory for the time-to-OOM
//! forecast. A cgroup removed between two scans keeps its final reading
//! (marked gone) for [`GONE_KEPT`], then is released.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::Model;
use super::forecast::Window;
use crate::sample::CgroupsRead;
use crate::sample::cgroup::{CgroupNames, CgroupSample};

/// Samples in a forecast window (one per fresh memory.stat read).
pub const FORECAST_SAMPLES: usize = 30;
/// Longest time a forecast window spans, seconds.
pub const FORECAST_SPAN_SECS: f64 = 120.0;
/// How long a removed cgroup stays in the model with its final reading
/// (and its series in /metrics) before it is released. Five minutes:
/// Prometheus's default lookback, so a scraper at any interval up to a few
/// minutes reads the final values more than once; with pod churn, the
/// series of removed cgroups are bounded by the cgroups removed in the
/// last five minutes, and `max_cgroups` gets their room back.
pub const GONE_KEPT: Duration = Duration::from_secs(300);

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
    /// When it was found gone.
    pub gone_since: Option<Instant>,
}

impl CgroupState {
    /// A cgroup not read yet.
    fn new(names: CgroupNames) -> Self {
        CgroupState {
            sample: CgroupSample::default(),
            names,
            window: Window::new(FORECAST_SAMPLES, FORECAST_SPAN_SECS),
            gone: false,
            gone_since: None,
        }
    }

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
    /// `gone`, the paths found removed (one never read before is kept too,
    /// without a reading: what its exited processes left stays until it is
    /// released). Returns the paths released: gone for [`GONE_KEPT`].
    pub fn apply(
        &mut self,
        samples: Vec<(CgroupSample, CgroupNames)>,
        gone: &[String],
        now: Instant,
    ) -> Vec<String> {
        let origin = *self.origin.get_or_insert(now);
        let t = now.saturating_duration_since(origin).as_secs_f64();
        let mut released = Vec::new();
        self.by_path.retain(|path, s| {
            let keep = s
                .gone_since
                .is_none_or(|since| now.saturating_duration_since(since) < GONE_KEPT);
            if !keep {
                released.push(path.clone());
            }
            keep
        });
        for (sample, names) in samples {
            let fresh = sample.detail_age_ms == Some(0);
            let unreclaimable = sample.unreclaimable;
            let st = self
                .by_path
                .entry(sample.path.clone())
                .or_insert_with(|| CgroupState::new(names.clone()));
            if fresh && let Some(u) = unreclaimable {
                st.window.push(t, u);
            }
            st.sample = sample;
            st.names = names;
            st.gone = false;
            st.gone_since = None;
        }
        for path in gone {
            let st = self.by_path.entry(path.clone()).or_insert_with(|| {
                let mut st = CgroupState::new(CgroupNames::default());
                st.sample.path = path.clone();
                st
            });
            if !st.gone {
                st.gone = true;
                st.gone_since = Some(now);
            }
        }
        released
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

impl Model {
    /// The memory cgroups as read from their own files.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    /// Memory cgroups to read: those of the live processes, those read
    /// before that still exist (an emptied cgroup's final events, such as
    /// the OOM kill that emptied it, still count), and those only exited
    /// processes name (so a removed one is found gone, and released).
    pub fn cgroups_in_use(&self) -> crate::fast_hash::FastSet<&str> {
        let gone = |path: &str| self.cgroups.get(path).is_some_and(|c| c.gone);
        self.processes
            .values()
            .filter(|p| !p.exited)
            .filter_map(|p| p.cgroup.as_deref())
            .chain(
                self.cgroups
                    .iter()
                    .filter(|(_, c)| !c.gone)
                    .map(|(path, _)| path.as_str()),
            )
            .chain(
                self.exited_totals
                    .keys()
                    .chain(self.kernel_exits.iter().flat_map(|k| k.keys()))
                    .map(String::as_str)
                    .filter(|path| path.starts_with('/') && !gone(path)),
            )
            .collect()
    }

    /// The `oom` count of `path`'s memory.events as last read (0 when
    /// never read).
    pub fn cgroup_oom_count(&self, path: &str) -> u64 {
        self.cgroups
            .get(path)
            .and_then(|c| c.sample.events.as_ref())
            .and_then(|e| e.oom)
            .unwrap_or(0)
    }

    /// Folds one pass's cgroup reads in (none when no memory controller
    /// was found: the cgroup fields then read as not measured).
    pub(super) fn apply_cgroups_read(&mut self, read: CgroupsRead, now: Instant) {
        self.cgroupfs_live = read.live;
        self.missing_sources.extend(read.missing);
        if read.live {
            self.apply_cgroups(read.readings, &read.gone, now);
        }
    }

    /// Folds a cgroup scan in (readings of the cgroups holding processes
    /// and their ancestors, with their names; paths found removed). A
    /// cgroup gone for [`GONE_KEPT`] is released: it leaves the
    /// model with what its exited processes left (its series end, and
    /// `max_cgroups` has room for a new cgroup).
    pub(super) fn apply_cgroups(
        &mut self,
        samples: Vec<(CgroupSample, CgroupNames)>,
        gone: &[String],
        now: Instant,
    ) {
        for path in self.cgroups.apply(samples, gone, now) {
            self.exited_totals.remove(&path);
            self.vanished_totals.remove(&path);
            self.totals_floor.remove(&path);
            if let Some(k) = self.kernel_exits.as_mut() {
                k.remove(&path);
            }
        }
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

    /// Pod churn: a new cgroup every 10 s, each removed 20 s later. A
    /// removed one keeps its final reading for GONE_KEPT, then is released
    /// (returned once); what is held stays bounded by the cgroups alive
    /// and those removed in the last GONE_KEPT.
    #[test]
    fn removed_cgroups_are_released_after_gone_kept() {
        let mut c = Cgroups::default();
        let t0 = Instant::now();
        let step = Duration::from_secs(10);
        let mut released = Vec::new();
        for i in 0..200u32 {
            let now = t0 + step * i;
            let alive: Vec<_> = (i.saturating_sub(1)..=i)
                .map(|j| {
                    (
                        sample(&format!("/pod-{j}"), 1 << 20, 64 << 20),
                        CgroupNames::default(),
                    )
                })
                .collect();
            let gone: Vec<String> = i
                .checked_sub(2)
                .map(|j| format!("/pod-{j}"))
                .into_iter()
                .collect();
            released.extend(c.apply(alive, &gone, now));
            let held = c.iter().count() as u32;
            let bound = 2 + GONE_KEPT.as_secs() as u32 / 10 + 1;
            assert!(
                held <= bound,
                "pass {i}: {held} cgroups held, more than {bound}"
            );
        }
        // Every pod removed more than GONE_KEPT ago was released, once.
        // pod-j is found gone at pass j + 2, released 30 passes later.
        let mut want: Vec<String> = (0..200 - 32).map(|j| format!("/pod-{j}")).collect();
        want.sort();
        released.sort();
        assert_eq!(released, want);
        let st = c.get("/pod-190").expect("removed 70 s ago: kept");
        assert!(
            st.gone && st.sample.usage == Some(1 << 20),
            "final reading kept"
        );
        // A cgroup found gone that was never read is kept (gone) too.
        c.apply(Vec::new(), &["/never-read".into()], t0 + step * 200);
        assert!(
            c.get("/never-read")
                .is_some_and(|s| s.gone && s.sample.usage.is_none())
        );
    }
}
