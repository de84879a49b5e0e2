//! The cost guard for per-process memory reads. smaps_rollup and numa_maps
//! walk the page tables under the mmap lock (seconds on a 200 GB process),
//! so memmon must never stall the host:
//! - a process is re-read only when its RSS moved (by more than 1% or
//!   1 MiB) or its interval is due;
//! - an idle process (its fault counts, address-space size and RSS as the
//!   every-pass scan sees them unchanged since its last read) is read
//!   again only after `max_idle_interval` (its own memory did not change;
//!   its PSS still drifts as others map or drop the pages it shares), and
//!   back at the base interval once it changes; and those re-reads of
//!   idle processes together take at most `idle_share` of a core: past a
//!   thousand or so idle processes their interval grows with their number
//!   (10,000 idle processes: ~4 reads a second, each re-read about every
//!   40 minutes, instead of 33 a second);
//! - its interval grows with its size and with what its last read cost
//!   (each process's reads stay within the same share of a core);
//! - each cycle stops reading once its time budget is spent (default 2% of
//!   one core); the rest wait, most overdue first, for the next cycle;
//! - every cycle's cost is reported;
//! - `/proc/slabinfo`, which walks every cache's partial slabs under the
//!   slab mutex, is read every `slabinfo_interval`, not every pass.
//!
//! Two ways to run it: [`CostGuard::cycle`] looks at every candidate it is
//! given, each cycle; [`CostGuard::track`] and [`CostGuard::cycle_tracked`]
//! keep the live processes between cycles and a queue of when each is
//! next due, so a cycle costs what changed and what is due, not what
//! exists (the daemon's scan reports only what changed).

use std::time::{Duration, Instant};

pub use crate::sample::cost::{Candidate, CycleCost};
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
    /// Longest wait of an idle process between reads (its PSS still moves
    /// as other processes map or drop the pages it shares).
    pub max_idle_interval: Duration,
    /// Interval between reads of `/proc/slabinfo`.
    pub slabinfo_interval: Duration,
    /// Share of one core the re-reads of idle processes may use in all
    /// (their interval grows past `max_idle_interval` to stay within it).
    pub idle_share: f64,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            base_interval: Duration::from_secs(30),
            cpu_share: 0.02,
            per_gib: Duration::from_secs(5),
            max_idle_interval: Duration::from_secs(300),
            slabinfo_interval: Duration::from_secs(10),
            idle_share: 0.0005,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    next_due: Instant,
    read_at: Instant,
    rss_at_read: u64,
    activity_at_read: Option<u64>,
    /// Reads in a row that found the process idle.
    idle_streak: u32,
}

/// Decides which processes to read each cycle.
#[derive(Debug, Default)]
pub struct CostGuard {
    settings: GuardSettings,
    entries: crate::fast_hash::FastMap<ProcessKey, Entry>,
    slabinfo_read_at: Option<Instant>,
    /// The live processes as last told ([`CostGuard::track`]).
    tracked: crate::fast_hash::FastMap<ProcessKey, Candidate>,
    /// Their keys by pid (an exit names a pid).
    tracked_pids: crate::fast_hash::FastMap<u32, ProcessKey>,
    /// When each tracked process is next due, earliest first; an entry
    /// whose process changed since is checked against its due time when
    /// it comes up.
    queue: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, ProcessKey)>>,
    /// What a read costs, on average (exponentially weighted).
    read_cost: Option<Duration>,
}

impl CostGuard {
    /// A guard with these settings.
    pub fn new(settings: GuardSettings) -> Self {
        CostGuard {
            settings,
            ..Default::default()
        }
    }

    /// Whether `/proc/slabinfo` is due now (true on the first call); a
    /// true answer starts the next interval.
    pub fn slabinfo_due(&mut self, now: Instant) -> bool {
        let due = self
            .slabinfo_read_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.settings.slabinfo_interval);
        if due {
            self.slabinfo_read_at = Some(now);
        }
        due
    }

    /// How long an idle process waits between reads when `n` processes
    /// are followed: `max_idle_interval`, or longer when re-reading all of
    /// them that often would take more than `idle_share` of a core.
    fn idle_interval(&self, n: usize) -> Duration {
        let cost = self.read_cost.unwrap_or(Duration::from_micros(200));
        let spread = cost
            .mul_f64(n as f64)
            .div_f64(self.settings.idle_share.max(1e-9));
        self.settings.max_idle_interval.max(spread)
    }

    fn due(&self, c: &Candidate, now: Instant) -> Option<Instant> {
        match self.entries.get(&c.key) {
            None => Some(now - Duration::from_secs(3600)),
            Some(e) => {
                let moved = c.rss.abs_diff(e.rss_at_read);
                let unchanged = c.activity.is_some()
                    && c.activity == e.activity_at_read
                    && c.rss == e.rss_at_read;
                // A process idle until now that became active again goes
                // back to the base interval.
                let woke = e.idle_streak > 0
                    && c.activity != e.activity_at_read
                    && now >= e.read_at + self.settings.base_interval;
                // Unchanged since its read: the scan has already shown it
                // idle; a read before max_idle_interval would only see the
                // same numbers.
                let idle_wait =
                    unchanged && now < e.read_at + self.idle_interval(self.entries.len());
                if moved > (e.rss_at_read / 100).max(1 << 20)
                    || woke
                    || (now >= e.next_due && !idle_wait)
                {
                    Some(e.next_due.min(now))
                } else {
                    None
                }
            }
        }
    }

    /// Notes that `c` was read at `read_at` in `took`: when it is next due.
    fn record_read(&mut self, c: &Candidate, read_at: Instant, took: Duration) {
        self.read_cost = Some(match self.read_cost {
            Some(avg) => avg.mul_f64(0.9) + took.mul_f64(0.1),
            None => took,
        });
        let gib = c.rss as f64 / (1u64 << 30) as f64;
        // Keep this process's reads within cpu_share of a core.
        let by_cost = took.div_f64(self.settings.cpu_share.max(1e-6));
        let by_size = self.settings.per_gib.mul_f64(gib);
        let idle_streak = match self.entries.get(&c.key) {
            Some(e)
                if c.activity.is_some()
                    && c.activity == e.activity_at_read
                    && c.rss == e.rss_at_read =>
            {
                e.idle_streak.saturating_add(1)
            }
            _ => 0,
        };
        let base = self.settings.base_interval.max(by_cost);
        let idle = base
            .saturating_mul(1u32 << idle_streak.min(16))
            .min(self.settings.max_idle_interval.max(base));
        let interval = idle + by_size;
        self.entries.insert(
            c.key,
            Entry {
                next_due: read_at + interval,
                read_at,
                rss_at_read: c.rss,
                activity_at_read: c.activity,
                idle_streak,
            },
        );
    }

    /// When `c` is next due as it is now: the moment [`CostGuard::due`]
    /// first answers yes while nothing changes (a process never read is
    /// due at once, first of all).
    fn due_at(&self, c: &Candidate, now: Instant) -> Instant {
        let Some(e) = self.entries.get(&c.key) else {
            return now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        };
        let moved = c.rss.abs_diff(e.rss_at_read);
        if moved > (e.rss_at_read / 100).max(1 << 20) {
            return e.next_due.min(now);
        }
        let unchanged =
            c.activity.is_some() && c.activity == e.activity_at_read && c.rss == e.rss_at_read;
        if unchanged {
            return e
                .next_due
                .max(e.read_at + self.idle_interval(self.tracked.len()));
        }
        if e.idle_streak > 0 && c.activity != e.activity_at_read {
            return e.next_due.min(e.read_at + self.settings.base_interval);
        }
        e.next_due
    }

    /// Follows the live processes from one cycle to the next: `changed`
    /// are new or changed since they were last told (each is queued at
    /// its due time), `gone` (pids) left.
    pub fn track(
        &mut self,
        changed: impl IntoIterator<Item = Candidate>,
        gone: impl IntoIterator<Item = u32>,
        now: Instant,
    ) {
        for pid in gone {
            if let Some(key) = self.tracked_pids.remove(&pid) {
                self.tracked.remove(&key);
                self.entries.remove(&key);
            }
        }
        for c in changed {
            if let Some(old) = self.tracked_pids.insert(c.key.pid, c.key)
                && old != c.key
            {
                // The pid names another process now.
                self.tracked.remove(&old);
                self.entries.remove(&old);
            }
            self.tracked.insert(c.key, c);
            let at = self.due_at(&c, now);
            self.queue.push(std::cmp::Reverse((at, c.key)));
        }
        // The queue holds one entry per change at most: rebuilt when stale
        // entries outnumber the live processes.
        if self.queue.len() > 2 * self.tracked.len() + 1024 {
            self.queue = self
                .tracked
                .values()
                .map(|c| std::cmp::Reverse((self.due_at(c, now), c.key)))
                .collect();
        }
    }

    /// Processes followed by [`CostGuard::track`].
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// One cycle over the tracked processes that are due now (most overdue
    /// first), calling `read` for each until `cycle` × cpu_share is spent;
    /// `read` returns false when the process is gone.
    pub fn cycle_tracked<F>(&mut self, now: Instant, cycle: Duration, mut read: F) -> CycleCost
    where
        F: FnMut(ProcessKey) -> bool,
    {
        let budget = cycle.mul_f64(self.settings.cpu_share);
        let mut cost = CycleCost {
            budget_seconds: budget.as_secs_f64(),
            ..Default::default()
        };
        let mut due: Vec<(Instant, Candidate)> = Vec::new();
        let mut taken = crate::fast_hash::FastSet::default();
        while let Some(std::cmp::Reverse((at, key))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            let Some(c) = self.tracked.get(&key).copied() else {
                continue;
            };
            // Checked again: the entry may be stale (read since, changed
            // since): a process is read once at most per cycle.
            let when = self.due_at(&c, now);
            if when > now {
                self.queue.push(std::cmp::Reverse((when, key)));
                continue;
            }
            if taken.insert(key) {
                due.push((when, c));
            }
        }
        due.sort_by_key(|(when, c)| (*when, c.key));
        cost.skipped = (self.tracked.len() - due.len()) as u64;
        let started = Instant::now();
        for (i, (_, c)) in due.iter().enumerate() {
            if started.elapsed() >= budget {
                cost.deferred = (due.len() - i) as u64;
                for (when, c) in &due[i..] {
                    self.queue.push(std::cmp::Reverse((*when, c.key)));
                }
                break;
            }
            let t0 = Instant::now();
            let alive = read(c.key);
            let took = t0.elapsed();
            cost.read += 1;
            if alive {
                let read_at = now + t0.saturating_duration_since(started) + took;
                self.record_read(c, read_at, took);
                let next = self.due_at(c, now);
                self.queue.push(std::cmp::Reverse((next, c.key)));
            } else {
                self.entries.remove(&c.key);
                self.tracked.remove(&c.key);
                self.tracked_pids.remove(&c.key.pid);
            }
        }
        cost.seconds = started.elapsed().as_secs_f64();
        cost
    }

    /// Runs one cycle over `candidates`, calling `read` for each chosen
    /// one until `cycle` × cpu_share is spent. `read` returns false when
    /// the process is gone.
    pub fn cycle<F>(&mut self, candidates: &[Candidate], cycle: Duration, read: F) -> CycleCost
    where
        F: FnMut(ProcessKey) -> bool,
    {
        self.cycle_at(Instant::now(), candidates, cycle, read)
    }

    /// [`CostGuard::cycle`] with intervals counted from `now` (the budget
    /// is still spent in real time).
    pub fn cycle_at<F>(
        &mut self,
        now: Instant,
        candidates: &[Candidate],
        cycle: Duration,
        mut read: F,
    ) -> CycleCost
    where
        F: FnMut(ProcessKey) -> bool,
    {
        let budget = cycle.mul_f64(self.settings.cpu_share);
        let mut due: Vec<(Instant, Candidate)> = Vec::new();
        let mut cost = CycleCost {
            budget_seconds: budget.as_secs_f64(),
            ..Default::default()
        };
        for c in candidates {
            match self.due(c, now) {
                Some(when) => due.push((when, *c)),
                None => cost.skipped += 1,
            }
        }
        // Never read first, then the most overdue.
        due.sort_by_key(|(when, c)| (*when, c.key));
        let started = Instant::now();
        for (i, (_, c)) in due.iter().enumerate() {
            let key = &c.key;
            if started.elapsed() >= budget {
                cost.deferred = (due.len() - i) as u64;
                break;
            }
            let t0 = Instant::now();
            let alive = read(*key);
            let took = t0.elapsed();
            cost.read += 1;
            if alive {
                let read_at = now + t0.saturating_duration_since(started) + took;
                self.record_read(c, read_at, took);
            } else {
                self.entries.remove(key);
            }
        }
        cost.seconds = started.elapsed().as_secs_f64();
        // Forget processes that are gone.
        let live: crate::fast_hash::FastSet<&ProcessKey> =
            candidates.iter().map(|c| &c.key).collect();
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

    fn cand(pid: u32, rss: u64) -> Candidate {
        Candidate {
            key: key(pid),
            rss,
            activity: None,
        }
    }

    #[test]
    fn reads_new_then_only_moved_processes() {
        let mut g = CostGuard::new(GuardSettings {
            cpu_share: 1.0,
            ..Default::default()
        });
        let cands = vec![cand(1, 10 << 20), cand(2, 20 << 20)];
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
        let moved = vec![cand(1, 10 << 20), cand(2, 30 << 20)];
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
        let cands: Vec<_> = (0..100).map(|i| cand(i, 1 << 20)).collect();
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
            ..Default::default()
        });
        let cands = vec![cand(1, 1 << 20)];
        g.cycle(&cands, Duration::from_secs(10), |_| {
            std::thread::sleep(Duration::from_millis(20));
            true
        });
        // 20 ms at a 1% share: not due again for ~2 s.
        let c = g.cycle(&cands, Duration::from_secs(10), |_| true);
        assert_eq!(c.skipped, 1);
    }

    /// Counts the reads of one process over `passes` cycles 1 s apart.
    fn reads(g: &mut CostGuard, passes: u32, mut c: impl FnMut(u32) -> Candidate) -> usize {
        let t0 = Instant::now();
        let mut n = 0;
        for i in 0..passes {
            let at = t0 + Duration::from_secs(i.into());
            g.cycle_at(at, &[c(i)], Duration::from_secs(1), |_| {
                n += 1;
                true
            });
        }
        n
    }

    #[test]
    fn idle_processes_back_off_and_wake_on_activity() {
        let settings = GuardSettings {
            base_interval: Duration::from_secs(10),
            cpu_share: 1.0,
            per_gib: Duration::ZERO,
            max_idle_interval: Duration::from_secs(80),
            ..Default::default()
        };
        let idle = |_| Candidate {
            activity: Some(7),
            ..cand(1, 1 << 20)
        };
        // Busy (activity changes every pass): read every base interval
        // (the first pass after it: every 11 s of 1 s passes).
        let mut g = CostGuard::new(settings.clone());
        let busy = reads(&mut g, 300, |i| Candidate {
            activity: Some(i.into()),
            ..cand(1, 1 << 20)
        });
        assert!((27..=31).contains(&busy), "busy: {busy} reads in 300 s");
        // Idle (the scan shows no change): read again once 80 s have
        // passed since the last read: at 0, 81, 162, 243 s.
        let mut g = CostGuard::new(settings.clone());
        assert_eq!(reads(&mut g, 300, idle), 4);
        // Unknown activity never counts as idle.
        let mut g = CostGuard::new(settings.clone());
        let unknown = reads(&mut g, 300, |_| cand(1, 1 << 20));
        assert!((27..=31).contains(&unknown), "unknown: {unknown}");
        // An idle process that faults again is read once the base interval
        // since its last read is over, not at the end of its long wait.
        let mut g = CostGuard::new(settings);
        let t0 = Instant::now();
        reads(&mut g, 300, idle); // last read at 243 s, next at 324 s
        let woke = Candidate {
            activity: Some(8),
            ..cand(1, 1 << 20)
        };
        let at = |s| t0 + Duration::from_secs(s);
        let c = g.cycle_at(at(250), &[woke], Duration::from_secs(1), |_| true);
        assert_eq!(c.read, 0, "within the base interval: {c:?}");
        let c = g.cycle_at(at(260), &[woke], Duration::from_secs(1), |_| true);
        assert_eq!(c.read, 1, "{c:?}");
    }

    /// The tracked guard decides as the one given every candidate, looking
    /// only at what changed and what is due: new processes first, then a
    /// moved one alone; idle ones wait out their long interval, gone ones
    /// are forgotten.
    #[test]
    fn tracked_processes_are_read_as_the_full_list_would_be() {
        let settings = GuardSettings {
            base_interval: Duration::from_secs(10),
            cpu_share: 1.0,
            per_gib: Duration::ZERO,
            max_idle_interval: Duration::from_secs(80),
            ..Default::default()
        };
        let mut g = CostGuard::new(settings);
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let idle = |pid| Candidate {
            activity: Some(7),
            ..cand(pid, 10 << 20)
        };
        g.track([idle(1), idle(2)], [], at(0));
        let mut read = Vec::new();
        let c = g.cycle_tracked(at(0), Duration::from_secs(1), |k| {
            read.push(k.pid);
            true
        });
        assert_eq!((c.read, c.skipped, read.as_slice()), (2, 0, &[1, 2][..]));
        // Nothing changed: nothing due for 80 s.
        for s in 1..80 {
            assert_eq!(
                g.cycle_tracked(at(s), Duration::from_secs(1), |_| true)
                    .read,
                0
            );
        }
        // pid 2 grew by 10 MiB: read it alone, at once.
        g.track(
            [Candidate {
                rss: 20 << 20,
                ..idle(2)
            }],
            [],
            at(81),
        );
        let mut again = Vec::new();
        g.cycle_tracked(at(81), Duration::from_secs(1), |k| {
            again.push(k.pid);
            true
        });
        // Most overdue first: pid 2 was due at 10 s, pid 1 at 80 s.
        assert_eq!(again, [2, 1], "pid 1's idle wait is over too");
        // Gone: never read again, not counted.
        g.track([], [1, 2], at(82));
        assert_eq!(g.tracked(), 0);
        let c = g.cycle_tracked(at(500), Duration::from_secs(1), |_| true);
        assert_eq!((c.read, c.skipped), (0, 0));
    }

    #[test]
    fn tracked_budget_defers_the_rest_to_the_next_cycle() {
        let mut g = CostGuard::new(GuardSettings::default());
        g.track((0..100).map(|i| cand(i, 1 << 20)), [], Instant::now());
        let c = g.cycle_tracked(Instant::now(), Duration::from_millis(100), |_| {
            std::thread::sleep(Duration::from_millis(1));
            true
        });
        assert!(c.read >= 1 && c.read <= 4, "{c:?}");
        assert_eq!(c.read + c.deferred, 100);
        let c2 = g.cycle_tracked(Instant::now(), Duration::from_millis(100), |k| {
            assert!(k.pid >= c.read as u32, "re-read an already read process");
            true
        });
        assert!(c2.read >= 1);
    }

    /// Idle re-reads together stay within `idle_share` of a core: past
    /// the number that fits in `max_idle_interval`, idle processes wait
    /// longer in proportion.
    #[test]
    fn idle_rereads_spread_to_stay_within_their_share() {
        let mut g = CostGuard::new(GuardSettings {
            max_idle_interval: Duration::from_secs(300),
            idle_share: 0.001,
            ..Default::default()
        });
        g.read_cost = Some(Duration::from_micros(100));
        // 100 µs each at 0.1% of a core: 10 re-reads a second, 3,000 per
        // 300 s.
        assert_eq!(g.idle_interval(1_000), Duration::from_secs(300));
        assert_eq!(g.idle_interval(3_000), Duration::from_secs(300));
        assert_eq!(g.idle_interval(30_000), Duration::from_secs(3_000));
    }

    #[test]
    fn slabinfo_is_read_once_per_interval() {
        let mut g = CostGuard::new(GuardSettings::default());
        let t0 = Instant::now();
        assert!(g.slabinfo_due(t0));
        assert!(!g.slabinfo_due(t0 + Duration::from_secs(9)));
        assert!(g.slabinfo_due(t0 + Duration::from_secs(10)));
        assert!(!g.slabinfo_due(t0 + Duration::from_secs(11)));
    }
}
