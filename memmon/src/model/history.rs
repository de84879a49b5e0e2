//! The OOM flight recorder: the last minutes of samples of the processes
//! an OOM kill could take (the largest ones, and the first few by
//! oom_score in every memory cgroup) and of every memory cgroup, so a kill
//! is reported with what led up to it. Every sample of the last
//! [`DENSE_MS`] is kept; older ones one per [`SPARSE_STEP_MS`], up to the
//! window (so five minutes of a 1 s pass are 84 samples, not 300).

use std::collections::VecDeque;

use crate::fast_hash::FastMap;

use serde::{Deserialize, Serialize};

use super::process::ProcessKey;

/// Every sample this recent is kept, ms.
pub const DENSE_MS: u64 = 60_000;
/// Older samples: one per this many ms.
pub const SPARSE_STEP_MS: u64 = 10_000;
/// Processes recorded besides the largest: the first this many by
/// oom_score (else resident size) in each memory cgroup.
pub const PER_CGROUP: usize = 3;
/// At most this many processes recorded for their cgroup's sake.
pub const MAX_EXTRA_PROCESSES: usize = 1000;
/// At most this many memory cgroups recorded.
pub const MAX_CGROUPS: usize = 1000;

/// One process's state at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySample {
    /// Unix time, milliseconds.
    pub unix_ms: u64,
    /// Resident set, bytes.
    pub rss_bytes: Option<u64>,
    /// Minor faults so far.
    pub minor_faults: Option<u64>,
    /// Major faults so far.
    pub major_faults: Option<u64>,
    /// Pages swapped out so far (task iterator), when measured.
    pub swap_out_pages: Option<u64>,
    /// Memory in swap, bytes (task iterator), when known.
    pub swap_bytes: Option<u64>,
}

/// One memory cgroup's state at one sample (its own files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupHistorySample {
    /// Unix time, milliseconds.
    pub unix_ms: u64,
    /// Memory charged, bytes (memory.current, v1 usage_in_bytes).
    pub usage_bytes: Option<u64>,
    /// The hard limit that applies (its own or an ancestor's), bytes.
    pub limit_bytes: Option<u64>,
    /// Working set (usage − inactive_file), bytes.
    pub working_set_bytes: Option<u64>,
    /// What reclaim cannot give back without swap, bytes.
    pub unreclaimable_bytes: Option<u64>,
    /// Swap used, bytes.
    pub swap_bytes: Option<u64>,
    /// memory.events `oom_kill` (v1 memory.oom_control), so far.
    pub oom_kills: Option<u64>,
    /// Charges that hit the limit so far: memory.events `max` (v1
    /// memory.failcnt).
    pub limit_hits: Option<u64>,
    /// memory.high throttling events so far (v2).
    pub high_events: Option<u64>,
    /// memory.pressure `some` total, µs (v2 with PSI).
    pub psi_some_total_us: Option<u64>,
    /// memory.pressure `full` total, µs.
    pub psi_full_total_us: Option<u64>,
}

impl CgroupHistorySample {
    /// From a cgroup's latest reading.
    pub fn from_sample(unix_ms: u64, s: &crate::sample::cgroup::CgroupSample) -> Self {
        let events = s.events.as_ref();
        let limits = s.limits.as_ref();
        CgroupHistorySample {
            unix_ms,
            usage_bytes: s.usage,
            limit_bytes: limits.and_then(|l| l.effective_max.or(l.max)),
            working_set_bytes: s.working_set,
            unreclaimable_bytes: s.unreclaimable,
            swap_bytes: s.swap,
            oom_kills: events.and_then(|e| e.oom_kill),
            limit_hits: events.and_then(|e| e.max.or(e.failcnt)),
            high_events: events.and_then(|e| e.high),
            psi_some_total_us: s.pressure.as_ref().map(|p| p.some_total_us),
            psi_full_total_us: s.pressure.as_ref().and_then(|p| p.full_total_us),
        }
    }
}

/// A sample with a time.
pub trait Timed: Copy {
    /// Unix time, ms.
    fn at_ms(&self) -> u64;
}

impl Timed for HistorySample {
    fn at_ms(&self) -> u64 {
        self.unix_ms
    }
}

impl Timed for CgroupHistorySample {
    fn at_ms(&self) -> u64 {
        self.unix_ms
    }
}

/// Samples of one series: every one of the last [`DENSE_MS`], one per
/// [`SPARSE_STEP_MS`] before.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    sparse: VecDeque<T>,
    dense: VecDeque<T>,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring {
            sparse: VecDeque::new(),
            dense: VecDeque::new(),
        }
    }
}

impl<T: Timed> Ring<T> {
    /// Appends `s` (newest).
    pub fn push(&mut self, s: T) {
        self.dense.push_back(s);
    }

    /// Thins samples older than [`DENSE_MS`] and drops those before
    /// `cutoff`; false when none is left.
    fn expire(&mut self, now_ms: u64, cutoff: u64) -> bool {
        let dense_from = now_ms.saturating_sub(DENSE_MS);
        while let Some(s) = self.dense.front().copied() {
            if s.at_ms() >= dense_from {
                break;
            }
            self.dense.pop_front();
            if self
                .sparse
                .back()
                .is_none_or(|b| s.at_ms().saturating_sub(b.at_ms()) >= SPARSE_STEP_MS)
            {
                self.sparse.push_back(s);
            }
        }
        while self.sparse.front().is_some_and(|s| s.at_ms() < cutoff) {
            self.sparse.pop_front();
        }
        while self.dense.front().is_some_and(|s| s.at_ms() < cutoff) {
            self.dense.pop_front();
        }
        !(self.sparse.is_empty() && self.dense.is_empty())
    }

    /// Every sample, oldest first.
    pub fn samples(&self) -> Vec<T> {
        self.sparse.iter().chain(&self.dense).copied().collect()
    }

    /// The samples up to `until_ms`, oldest first.
    pub fn until(&self, until_ms: u64) -> Vec<T> {
        self.sparse
            .iter()
            .chain(&self.dense)
            .take_while(|s| s.at_ms() <= until_ms)
            .copied()
            .collect()
    }
}

/// Per-process and per-cgroup rings of samples, dropped once older than
/// `max_age_ms`.
#[derive(Debug, Default)]
pub struct FlightRecorder {
    max_age_ms: u64,
    rings: FastMap<ProcessKey, Ring<HistorySample>>,
    cgroups: FastMap<String, Ring<CgroupHistorySample>>,
}

impl FlightRecorder {
    /// Keeps `seconds` of history (0 turns recording off).
    pub fn new(seconds: u64) -> Self {
        FlightRecorder {
            max_age_ms: seconds.saturating_mul(1000),
            ..Default::default()
        }
    }

    /// True when recording.
    pub fn enabled(&self) -> bool {
        self.max_age_ms > 0
    }

    /// Seconds kept.
    pub fn seconds(&self) -> u64 {
        self.max_age_ms / 1000
    }

    /// Appends a sample for `key`.
    pub fn record(&mut self, key: ProcessKey, s: HistorySample) {
        if self.enabled() {
            self.rings.entry(key).or_default().push(s);
        }
    }

    /// Appends a sample for the memory cgroup `path`.
    pub fn record_cgroup(&mut self, path: &str, s: CgroupHistorySample) {
        if !self.enabled() {
            return;
        }
        match self.cgroups.get_mut(path) {
            Some(r) => r.push(s),
            None => {
                let mut r = Ring::default();
                r.push(s);
                self.cgroups.insert(path.to_string(), r);
            }
        }
    }

    /// Thins and drops samples older than the window, and series with
    /// none left.
    pub fn expire(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.max_age_ms);
        self.rings.retain(|_, ring| ring.expire(now_ms, cutoff));
        self.cgroups.retain(|_, ring| ring.expire(now_ms, cutoff));
    }

    /// The history of the most recent process with pid `pid`.
    pub fn history_of(&self, pid: u32) -> Vec<HistorySample> {
        self.ring_of(pid).map(Ring::samples).unwrap_or_default()
    }

    /// The ring of the most recent process with pid `pid`.
    pub fn ring_of(&self, pid: u32) -> Option<&Ring<HistorySample>> {
        self.rings
            .iter()
            .filter(|(k, _)| k.pid == pid)
            .max_by_key(|(k, _)| k.start_time_ticks)
            .map(|(_, ring)| ring)
    }

    /// The ring of process `key`.
    pub fn ring(&self, key: &ProcessKey) -> Option<&Ring<HistorySample>> {
        self.rings.get(key)
    }

    /// Every recorded process's ring.
    pub fn processes(&self) -> impl Iterator<Item = (&ProcessKey, &Ring<HistorySample>)> {
        self.rings.iter()
    }

    /// The history of the memory cgroup `path`, oldest first.
    pub fn cgroup_history(&self, path: &str) -> Vec<CgroupHistorySample> {
        self.cgroups
            .get(path)
            .map(Ring::samples)
            .unwrap_or_default()
    }

    /// The ring of the memory cgroup `path`.
    pub fn cgroup_ring(&self, path: &str) -> Option<&Ring<CgroupHistorySample>> {
        self.cgroups.get(path)
    }

    /// Processes being recorded.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// Cgroups being recorded.
    pub fn cgroups_len(&self) -> usize {
        self.cgroups.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty() && self.cgroups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64, rss: u64) -> HistorySample {
        HistorySample {
            unix_ms: ms,
            rss_bytes: Some(rss),
            minor_faults: Some(ms),
            major_faults: Some(0),
            swap_out_pages: None,
            swap_bytes: None,
        }
    }

    #[test]
    fn keeps_the_window_and_finds_the_newest_pid() {
        let mut r = FlightRecorder::new(10);
        let old = ProcessKey {
            pid: 7,
            start_time_ticks: 1,
        };
        let new = ProcessKey {
            pid: 7,
            start_time_ticks: 5,
        };
        for t in 0..30 {
            r.record(new, s(t * 1000, t));
        }
        r.record(old, s(0, 1));
        r.expire(29_000);
        let h = r.history_of(7);
        assert_eq!(h.len(), 11, "samples from 19 s to 29 s");
        assert_eq!(h.first().map(|x| x.unix_ms), Some(19_000));
        assert_eq!(r.len(), 1, "the old process expired");
        assert!(r.history_of(8).is_empty());
    }

    #[test]
    fn older_than_a_minute_thins_to_one_per_ten_seconds() {
        let mut r = FlightRecorder::new(300);
        let k = ProcessKey {
            pid: 1,
            start_time_ticks: 1,
        };
        // One sample a second for ten minutes, expired each pass.
        for t in 0..=600u64 {
            r.record(k, s(t * 1000, t));
            r.record_cgroup(
                "/a",
                CgroupHistorySample {
                    unix_ms: t * 1000,
                    usage_bytes: Some(t),
                    ..Default::default()
                },
            );
            r.expire(t * 1000);
        }
        let h = r.history_of(1);
        let times: Vec<u64> = h.iter().map(|x| x.unix_ms / 1000).collect();
        // 300..=540 every 10 s (25), then 541..=600 every second (60).
        let want: Vec<u64> = (300..540).step_by(10).chain(540..=600).collect();
        assert_eq!(times, want);
        let c = r.cgroup_history("/a");
        assert_eq!(c.len(), want.len());
        assert_eq!(
            r.cgroup_ring("/a").map(|g| g.until(545_000).len()),
            Some(24 + 6),
            "until: the thinned samples, then 540..=545"
        );
        assert!(r.cgroup_history("/b").is_empty());
    }

    #[test]
    fn zero_seconds_records_nothing() {
        let mut r = FlightRecorder::new(0);
        r.record(
            ProcessKey {
                pid: 1,
                start_time_ticks: 1,
            },
            s(1, 1),
        );
        r.record_cgroup("/a", CgroupHistorySample::default());
        assert!(r.is_empty());
    }
}
