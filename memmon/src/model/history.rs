//! The OOM flight recorder: the last minutes of samples (RSS, faults, swap)
//! of the largest processes, so an OOM kill can be reported with what led
//! up to it.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::process::ProcessKey;

/// One process's state at one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

/// Per-process rings of samples, dropped once older than `max_age_ms`.
#[derive(Debug, Default)]
pub struct FlightRecorder {
    max_age_ms: u64,
    rings: HashMap<ProcessKey, VecDeque<HistorySample>>,
}

impl FlightRecorder {
    /// Keeps `seconds` of history (0 turns recording off).
    pub fn new(seconds: u64) -> Self {
        FlightRecorder {
            max_age_ms: seconds.saturating_mul(1000),
            rings: HashMap::new(),
        }
    }

    /// True when recording.
    pub fn enabled(&self) -> bool {
        self.max_age_ms > 0
    }

    /// Appends a sample for `key`.
    pub fn record(&mut self, key: ProcessKey, s: HistorySample) {
        if self.enabled() {
            self.rings.entry(key).or_default().push_back(s);
        }
    }

    /// Drops samples older than the window, and processes with none left.
    pub fn expire(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.max_age_ms);
        self.rings.retain(|_, ring| {
            while ring.front().is_some_and(|s| s.unix_ms < cutoff) {
                ring.pop_front();
            }
            !ring.is_empty()
        });
    }

    /// The history of the most recent process with pid `pid`.
    pub fn history_of(&self, pid: u32) -> Vec<HistorySample> {
        self.rings
            .iter()
            .filter(|(k, _)| k.pid == pid)
            .max_by_key(|(k, _)| k.start_time_ticks)
            .map(|(_, ring)| ring.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Processes being recorded.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
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
    fn zero_seconds_records_nothing() {
        let mut r = FlightRecorder::new(0);
        r.record(
            ProcessKey {
                pid: 1,
                start_time_ticks: 1,
            },
            s(1, 1),
        );
        assert!(r.is_empty());
    }
}
