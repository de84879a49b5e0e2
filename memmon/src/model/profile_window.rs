//! The daemon's rolling window of page-fault stack samples (`--profile`):
//! one bucket per second for the last [`WINDOW_SECONDS`], each counting
//! samples and the faults they stand for (samples × the period they were
//! taken with, which the adaptive sampling changes) by (process, interned
//! stack), with each process's cgroup as the model last published it. Bounded: at most [`MAX_STACKS`] distinct
//! stacks and [`MAX_ENTRIES`] (process, stack, second) counts; a sample
//! beyond either is counted in `dropped`, never stored. Pure: fed
//! addresses, it hands back `RawSample`s for the selected seconds.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use crate::sample::stacks::{RawSample, RawStack, StackEvent};

/// Seconds the window keeps (and the most `/api/v1/profile?seconds=` takes).
pub const WINDOW_SECONDS: u64 = 60;
/// Distinct stacks kept over the window.
pub const MAX_STACKS: usize = 16384;
/// (process, stack) counts kept over all the window's seconds.
pub const MAX_ENTRIES: usize = 200_000;

/// A stack's addresses, innermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Addrs {
    user: Vec<u64>,
    kernel: Vec<u64>,
}

/// Samples and the faults they stand for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    samples: u64,
    faults: u64,
}

/// One second's samples, by (tgid, stack id).
#[derive(Debug, Default)]
struct Bucket {
    second: u64,
    counts: HashMap<(u32, u32), Count>,
}

/// Which samples a selection keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every process.
    All,
    /// One process (tgid).
    Pid(u32),
    /// The processes of a cgroup (its path, e.g. `/system.slice/x.service`)
    /// and of its descendants.
    Cgroup(String),
}

/// What a selection found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// The samples, weight = the faults they stand for, count = samples.
    pub samples: Vec<RawSample>,
    /// The fewest and most faults one sample of the selection stands for
    /// (None when it is empty).
    pub periods: Option<(u64, u64)>,
    /// First second covered (Unix seconds).
    pub from_second: u64,
    /// Seconds covered (at most the ones asked for, fewer when the window
    /// is younger).
    pub seconds: u64,
}

/// The window.
#[derive(Debug)]
pub struct ProfileWindow {
    /// Oldest first.
    buckets: VecDeque<Bucket>,
    stacks: HashMap<Arc<Addrs>, u32>,
    by_id: HashMap<u32, Arc<Addrs>>,
    next_id: u32,
    cgroups: HashMap<u32, Arc<str>>,
    entries: usize,
    /// The first second anything was added (or the window started).
    started: u64,
    /// Samples not stored because a cap was reached.
    pub dropped: u64,
}

impl ProfileWindow {
    /// An empty window, started at Unix second `now`.
    pub fn new(now: u64) -> Self {
        ProfileWindow {
            buckets: VecDeque::new(),
            stacks: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
            cgroups: HashMap::new(),
            entries: 0,
            started: now,
            dropped: 0,
        }
    }

    /// Distinct stacks held.
    pub fn stacks(&self) -> usize {
        self.by_id.len()
    }

    /// (process, stack, second) counts held.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Adds `samples` of `stack` taken at Unix second `now`, each standing
    /// for `period` faults; `cgroup` is the process's cgroup path when the
    /// model knows it.
    pub fn add(
        &mut self,
        now: u64,
        stack: &RawStack,
        cgroup: Option<&str>,
        samples: u64,
        period: u64,
    ) {
        if samples == 0 {
            return;
        }
        self.advance(now);
        let addrs = Addrs {
            user: stack.user.clone(),
            kernel: stack.kernel.clone(),
        };
        let id = match self.stacks.get(&addrs) {
            Some(id) => *id,
            None if self.by_id.len() >= MAX_STACKS => {
                self.dropped += samples;
                return;
            }
            None => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let a = Arc::new(addrs);
                self.stacks.insert(Arc::clone(&a), id);
                self.by_id.insert(id, a);
                id
            }
        };
        if self.buckets.back().is_none_or(|b| b.second < now) {
            self.buckets.push_back(Bucket {
                second: now,
                counts: HashMap::new(),
            });
        }
        let full = self.entries >= MAX_ENTRIES;
        let Some(bucket) = self.buckets.back_mut() else {
            return;
        };
        let key = (stack.tgid, id);
        let faults = samples.saturating_mul(period.max(1));
        match bucket.counts.get_mut(&key) {
            Some(n) => {
                n.samples += samples;
                n.faults = n.faults.saturating_add(faults);
            }
            None if full => self.dropped += samples,
            None => {
                bucket.counts.insert(key, Count { samples, faults });
                self.entries += 1;
            }
        }
        if let Some(c) = cgroup
            && self.cgroups.get(&stack.tgid).is_none_or(|old| &**old != c)
        {
            self.cgroups.insert(stack.tgid, Arc::from(c));
        }
    }

    /// Names the cgroup of `tgid` when its samples came before the model
    /// published it (a process that grew and died between two passes);
    /// one already known is kept.
    pub fn tag(&mut self, tgid: u32, cgroup: &str) {
        self.cgroups
            .entry(tgid)
            .or_insert_with(|| Arc::from(cgroup));
    }

    /// Drops the seconds older than the window at Unix second `now`, and
    /// the stacks and cgroups nothing refers to any more.
    pub fn advance(&mut self, now: u64) {
        let oldest_kept = now.saturating_sub(WINDOW_SECONDS - 1);
        let mut evicted = false;
        while self.buckets.front().is_some_and(|b| b.second < oldest_kept) {
            if let Some(b) = self.buckets.pop_front() {
                self.entries -= b.counts.len();
                evicted = true;
            }
        }
        if !evicted {
            return;
        }
        let mut ids = HashSet::new();
        let mut tgids = HashSet::new();
        for b in &self.buckets {
            for (tgid, id) in b.counts.keys() {
                ids.insert(*id);
                tgids.insert(*tgid);
            }
        }
        self.by_id.retain(|id, _| ids.contains(id));
        self.stacks.retain(|_, id| ids.contains(id));
        self.cgroups.retain(|tgid, _| tgids.contains(tgid));
    }

    /// The processes with samples in the window.
    pub fn tgids(&self) -> HashSet<u32> {
        self.buckets
            .iter()
            .flat_map(|b| b.counts.keys().map(|(t, _)| *t))
            .collect()
    }

    /// The samples of the last `seconds` seconds up to Unix second `now`
    /// (inclusive) that `filter` keeps, merged per (process, stack).
    pub fn select(&self, now: u64, seconds: u64, filter: &Filter) -> Selection {
        let seconds = seconds.clamp(1, WINDOW_SECONDS);
        let from = now.saturating_sub(seconds - 1).max(self.started);
        let mut merged: HashMap<(u32, u32), Count> = HashMap::new();
        let mut periods: Option<(u64, u64)> = None;
        for b in self
            .buckets
            .iter()
            .filter(|b| b.second >= from && b.second <= now)
        {
            for ((tgid, id), n) in &b.counts {
                if self.keeps(filter, *tgid) {
                    let m = merged.entry((*tgid, *id)).or_default();
                    m.samples += n.samples;
                    m.faults = m.faults.saturating_add(n.faults);
                    // Within one second a (process, stack) is sampled at
                    // one period or two: its mean stands for them.
                    let p = n.faults / n.samples.max(1);
                    periods = Some(periods.map_or((p, p), |(lo, hi)| (lo.min(p), hi.max(p))));
                }
            }
        }
        let samples = merged
            .into_iter()
            .filter_map(|((tgid, id), n)| {
                let addrs = self.by_id.get(&id)?;
                Some(RawSample {
                    event: StackEvent::Faults,
                    stack: RawStack {
                        tgid,
                        user: addrs.user.clone(),
                        kernel: addrs.kernel.clone(),
                    },
                    weight: i64::try_from(n.faults).unwrap_or(i64::MAX),
                    count: n.samples,
                    growth: 0,
                })
            })
            .collect();
        Selection {
            samples,
            periods,
            from_second: from,
            seconds: now.saturating_sub(from) + 1,
        }
    }

    fn keeps(&self, filter: &Filter, tgid: u32) -> bool {
        filter.keeps(tgid, &self.cgroups)
    }
}

impl Filter {
    /// True when the filter keeps process `tgid`, whose cgroup path
    /// `cgroups` holds (when known).
    pub fn keeps(&self, tgid: u32, cgroups: &HashMap<u32, Arc<str>>) -> bool {
        match self {
            Filter::All => true,
            Filter::Pid(p) => *p == tgid,
            Filter::Cgroup(path) => cgroups.get(&tgid).is_some_and(|c| within(c, path)),
        }
    }
}

/// True when cgroup path `c` is `parent` or below it.
pub fn within(c: &str, parent: &str) -> bool {
    let parent = parent.trim_end_matches('/');
    if parent.is_empty() {
        return true;
    }
    c == parent
        || c.strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(tgid: u32, user: &[u64]) -> RawStack {
        RawStack {
            tgid,
            user: user.to_vec(),
            kernel: Vec::new(),
        }
    }

    #[test]
    fn selects_seconds_merges_and_weighs_by_period() {
        let mut w = ProfileWindow::new(100);
        w.add(100, &stack(1, &[1, 2]), Some("/a"), 3, 10);
        w.add(101, &stack(1, &[1, 2]), Some("/a"), 2, 10);
        w.add(102, &stack(2, &[3]), Some("/a/b"), 4, 10);
        let all = w.select(102, 60, &Filter::All);
        assert_eq!(all.seconds, 3, "the window is 3 s old");
        assert_eq!(all.periods, Some((10, 10)));
        let one = all
            .samples
            .iter()
            .find(|s| s.stack.tgid == 1)
            .expect("pid 1");
        assert_eq!((one.count, one.weight), (5, 50));
        // The period changes: each sample keeps the faults it stood for.
        w.add(102, &stack(1, &[1, 2]), Some("/a"), 1, 7);
        let p1 = w.select(102, 60, &Filter::Pid(1));
        assert_eq!((p1.samples[0].count, p1.samples[0].weight), (6, 57));
        assert_eq!(p1.periods, Some((7, 10)));
        assert_eq!(w.select(102, 60, &Filter::Pid(9)).periods, None);
        let last = w.select(102, 2, &Filter::Pid(1));
        assert_eq!(last.samples.len(), 1);
        assert_eq!(last.samples[0].count, 3, "seconds 101 and 102 of pid 1");
        let cg = w.select(102, 60, &Filter::Cgroup("/a".into()));
        assert_eq!(cg.samples.len(), 2, "the cgroup and its descendants");
        assert!(
            w.select(102, 60, &Filter::Cgroup("/a/b".into()))
                .samples
                .iter()
                .all(|s| s.stack.tgid == 2)
        );
        // Samples drained before their process was published: untagged
        // until tagged later; a known cgroup is not overwritten.
        w.add(102, &stack(3, &[5]), None, 1, 10);
        assert_eq!(
            w.select(102, 60, &Filter::Cgroup("/c".into()))
                .samples
                .len(),
            0
        );
        w.tag(3, "/c");
        w.tag(2, "/c");
        assert_eq!(
            w.select(102, 60, &Filter::Cgroup("/c".into()))
                .samples
                .len(),
            1
        );
        assert_eq!(
            w.select(102, 60, &Filter::Cgroup("/a/b".into()))
                .samples
                .len(),
            1
        );
    }

    #[test]
    fn old_seconds_and_their_stacks_are_dropped() {
        let mut w = ProfileWindow::new(0);
        w.add(0, &stack(1, &[1]), None, 1, 1);
        w.add(30, &stack(1, &[2]), None, 1, 1);
        assert_eq!(w.stacks(), 2);
        w.advance(WINDOW_SECONDS + 1);
        assert_eq!(w.stacks(), 1, "second 0 left the window");
        assert_eq!(w.entries(), 1);
        w.advance(30 + WINDOW_SECONDS);
        assert_eq!((w.stacks(), w.entries()), (0, 0));
        assert!(w.tgids().is_empty());
    }

    #[test]
    fn caps_count_what_they_drop() {
        let mut w = ProfileWindow::new(0);
        for i in 0..(MAX_STACKS as u64 + 5) {
            w.add(1, &stack(1, &[i]), None, 1, 1);
        }
        assert_eq!(w.stacks(), MAX_STACKS);
        assert_eq!(w.dropped, 5);
    }

    #[test]
    fn cgroup_paths_match_on_component_boundaries() {
        assert!(within("/a/b", "/a"));
        assert!(within("/a", "/a/"));
        assert!(!within("/ab", "/a"));
        assert!(within("/x", "/"));
    }
}
