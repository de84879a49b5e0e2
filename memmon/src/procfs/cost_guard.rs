//! The cost guard for per-process memory reads. smaps_rollup and numa_maps
//! walk the page tables under the mmap lock (seconds on a 200 GB process),
//! so memmon must never stall the host:
//! - a process is re-read only when its RSS moved (by more than 1% or
//!   1 MiB) or its interval is due;
//! - its interval grows with its size and with what its last read cost
//!   (each process's reads stay within the same share of a core);
//! - each cycle stops reading once its time budget is spent (default 2% of
//!   one core); the rest wait, most overdue first, for the next cycle;
//! - every cycle's cost is reported.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

pub use crate::sample::cost::CycleCost;
use crate::sample::key::ProcessKey;

/// Tuning.
#[derive(Clone, Debug)]
pub struct GuardSettings {
    /// Shortest re-read interval.
    pub base_interval: Duration,
    /// Share of one core the reads may use (0.02 = 2%).
    pub cpu_share: f64,
    /// Extra interval per GiB of RSS.
    pub per_gib: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            base_interval: Duration::from_secs(30),
            cpu_share: 0.02,
            per_gib: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    next_due: Instant,
    rss_at_read: u64,
}

/// Decides which processes to read each cycle.
#[derive(Debug, Default)]
pub struct CostGuard {
    settings: GuardSettings,
    entries: HashMap<ProcessKey, Entry>,
}

impl CostGuard {
    /// A guard with these settings.
    pub fn new(settings: GuardSettings) -> Self {
        CostGuard {
            settings,
            entries: HashMap::new(),
        }
    }

    fn due(&self, key: &ProcessKey, rss: u64, now: Instant) -> Option<Instant> {
        match self.entries.get(key) {
            None => Some(now - Duration::from_secs(3600)),
            Some(e) => {
                let moved = rss.abs_diff(e.rss_at_read);
                if moved > (e.rss_at_read / 100).max(1 << 20) || now >= e.next_due {
                    Some(e.next_due.min(now))
                } else {
                    None
                }
            }
        }
    }

    /// Runs one cycle over `candidates` (key, current RSS bytes), calling
    /// `read` for each chosen one until `cycle` × cpu_share is spent.
    /// `read` returns false when the process is gone.
    pub fn cycle<F>(
        &mut self,
        candidates: &[(ProcessKey, u64)],
        cycle: Duration,
        mut read: F,
    ) -> CycleCost
    where
        F: FnMut(ProcessKey) -> bool,
    {
        let now = Instant::now();
        let budget = cycle.mul_f64(self.settings.cpu_share);
        let mut due: Vec<(Instant, ProcessKey, u64)> = Vec::new();
        let mut cost = CycleCost {
            budget_seconds: budget.as_secs_f64(),
            ..Default::default()
        };
        for (key, rss) in candidates {
            match self.due(key, *rss, now) {
                Some(when) => due.push((when, *key, *rss)),
                None => cost.skipped += 1,
            }
        }
        // Never read first, then the most overdue.
        due.sort_by_key(|(when, key, _)| (*when, *key));
        let started = Instant::now();
        for (i, (_, key, rss)) in due.iter().enumerate() {
            if started.elapsed() >= budget {
                cost.deferred = (due.len() - i) as u64;
                break;
            }
            let t0 = Instant::now();
            let alive = read(*key);
            let took = t0.elapsed();
            cost.read += 1;
            if alive {
                let gib = *rss as f64 / (1u64 << 30) as f64;
                // Keep this process's reads within cpu_share of a core.
                let by_cost = took.div_f64(self.settings.cpu_share.max(1e-6));
                let by_size = self.settings.per_gib.mul_f64(gib);
                let interval = self.settings.base_interval.max(by_cost) + by_size;
                self.entries.insert(
                    *key,
                    Entry {
                        next_due: Instant::now() + interval,
                        rss_at_read: *rss,
                    },
                );
            } else {
                self.entries.remove(key);
            }
        }
        cost.seconds = started.elapsed().as_secs_f64();
        // Forget processes that are gone.
        let live: std::collections::HashSet<&ProcessKey> =
            candidates.iter().map(|(k, _)| k).collect();
        self.entries.retain(|k, _| live.contains(k));
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32) -> ProcessKey {
        ProcessKey {
            pid,
            start_time_ticks: 1,
        }
    }

    #[test]
    fn reads_new_then_only_moved_processes() {
        let mut g = CostGuard::new(GuardSettings {
            cpu_share: 1.0,
            ..Default::default()
        });
        let cands = vec![(key(1), 10 << 20), (key(2), 20 << 20)];
        let mut read = Vec::new();
        let c = g.cycle(&cands, Duration::from_secs(1), |k| {
            read.push(k.pid);
            true
        });
        assert_eq!((c.read, c.skipped), (2, 0));
        // Steady RSS: nothing is due within the base interval.
        let c = g.cycle(&cands, Duration::from_secs(1), |_| true);
        assert_eq!((c.read, c.skipped), (0, 2));
        // pid 2 grew by 10 MiB: re-read it alone.
        let moved = vec![(key(1), 10 << 20), (key(2), 30 << 20)];
        let mut again = Vec::new();
        g.cycle(&moved, Duration::from_secs(1), |k| {
            again.push(k.pid);
            true
        });
        assert_eq!(again, vec![2]);
    }

    #[test]
    fn budget_defers_the_rest() {
        let mut g = CostGuard::new(GuardSettings::default());
        let cands: Vec<_> = (0..100).map(|i| (key(i), 1 << 20)).collect();
        // 2% of 100 ms = 2 ms; each read takes 1 ms.
        let c = g.cycle(&cands, Duration::from_millis(100), |_| {
            std::thread::sleep(Duration::from_millis(1));
            true
        });
        assert!(c.read >= 1 && c.read <= 4, "{c:?}");
        assert_eq!(c.read + c.deferred, 100);
        // The deferred ones come first next time.
        let c2 = g.cycle(&cands, Duration::from_millis(100), |k| {
            assert!(k.pid >= c.read as u32, "re-read an already read process");
            true
        });
        assert!(c2.read >= 1);
    }

    #[test]
    fn costly_processes_wait_longer() {
        let mut g = CostGuard::new(GuardSettings {
            base_interval: Duration::from_millis(1),
            cpu_share: 0.01,
            per_gib: Duration::ZERO,
        });
        let cands = vec![(key(1), 1 << 20)];
        g.cycle(&cands, Duration::from_secs(10), |_| {
            std::thread::sleep(Duration::from_millis(20));
            true
        });
        // 20 ms at a 1% share: not due again for ~2 s.
        let c = g.cycle(&cands, Duration::from_secs(10), |_| true);
        assert_eq!(c.skipped, 1);
    }
}
