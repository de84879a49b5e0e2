//! The resident mode's table (`memmon leaks`, the daemon's
//! `kind=resident`): each sampled fault's page, held while
//! /proc/PID/pagemap says it is still resident or swapped, weighs the
//! pages its sample stands for (the period) on the stack that first
//! touched it. A page found released (unmapped, MADV_DONTNEED, a trimmed
//! heap), a file or shared page, or a page of a process gone is dropped.
//! Each check records the outstanding bytes per (process, stack), so a
//! selection gives both what a stack holds now and how much that grew
//! over the window: the leak suspects. Bounded: past [`MAX_PAGES`] pages
//! the table keeps every other page (chosen by a hash of the address, not
//! by stack) and doubles the weight of those it keeps, and from then on
//! keeps only new samples the same hash selects. Pure: fed samples and
//! page states, it hands back `RawSample`s.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use crate::{
    model::profile_window::{Filter, WINDOW_SECONDS},
    sample::stacks::{PageState, PagesRead, RawSample, RawStack, ResidentPage, StackEvent},
};

/// Sampled pages held at most (each stands for `period` pages).
pub const MAX_PAGES: usize = 1 << 18;

/// A stack's addresses, innermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Addrs {
    user: Vec<u64>,
    kernel: Vec<u64>,
}

/// Outstanding bytes per (tgid, stack id).
type Totals = HashMap<(u32, u32), i64>;

/// One sampled page.
#[derive(Clone, Copy, Debug)]
struct Page {
    stack: u32,
    /// Pages this sample stands for (its period, times the thinning).
    weight: u64,
    /// Swapped out at the last check.
    swapped: bool,
}

/// One (process, stack) of a selection.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidentRow {
    /// The stack; `weight` is its outstanding bytes, `count` its sampled
    /// pages still held, `growth` the change of its bytes over the
    /// selected seconds.
    pub sample: RawSample,
    /// Of the bytes, those swapped out.
    pub swapped_bytes: i64,
}

/// What a selection found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResidentSelection {
    /// Rows, by (process, stack).
    pub rows: Vec<ResidentRow>,
    /// Seconds the growth covers (fewer than asked when the table is younger).
    pub seconds: u64,
    /// The fewest and most faults one held page stands for (its period,
    /// times the thinning), None when no page is held.
    pub periods: Option<(u64, u64)>,
}

/// The table.
#[derive(Debug)]
pub struct ResidentTable {
    page_size: u64,
    max_pages: usize,
    pages: HashMap<(u32, u64), Page>,
    stacks: HashMap<Arc<Addrs>, u32>,
    by_id: HashMap<u32, Arc<Addrs>>,
    next_id: u32,
    cgroups: HashMap<u32, Arc<str>>,
    /// Outstanding bytes per (tgid, stack id) at each recorded second.
    history: VecDeque<(u64, Totals)>,
    /// Keep a new page only when its hash is a multiple of this (a power
    /// of two); its weight is multiplied by it.
    thin: u64,
    started: u64,
    /// Samples not kept (the thinning's selection left them out).
    pub thinned_out: u64,
}

/// A hash of a page, independent of its stack (splitmix64).
fn page_hash(tgid: u32, page: u64) -> u64 {
    let mut h = page ^ (u64::from(tgid) << 40) ^ 0x9e37_79b9_7f4a_7c15;
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl ResidentTable {
    /// An empty table of `page_size`-byte pages, started at Unix second `now`.
    pub fn new(page_size: u64, now: u64) -> Self {
        Self::with_capacity(page_size, now, MAX_PAGES)
    }

    /// The same with room for `max_pages` sampled pages.
    pub fn with_capacity(page_size: u64, now: u64, max_pages: usize) -> Self {
        ResidentTable {
            page_size: page_size.max(1),
            max_pages: max_pages.max(2),
            pages: HashMap::new(),
            stacks: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
            cgroups: HashMap::new(),
            history: VecDeque::new(),
            thin: 1,
            started: now,
            thinned_out: 0,
        }
    }

    /// Sampled pages held.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// How many pages each new sample must stand for beyond its period
    /// (1 until the table was thinned).
    pub fn thinning(&self) -> u64 {
        self.thin
    }

    /// Adds a sampled fault; `cgroup` is its process's cgroup path when
    /// known. A page already held takes the newer sample's stack (it was
    /// touched again after a release the last check did not see).
    pub fn add(&mut self, sample: &ResidentPage, cgroup: Option<&str>) {
        let tgid = sample.stack.tgid;
        let page = sample.addr / self.page_size;
        if !page_hash(tgid, page).is_multiple_of(self.thin) {
            self.thinned_out += 1;
            return;
        }
        let addrs = Addrs {
            user: sample.stack.user.clone(),
            kernel: sample.stack.kernel.clone(),
        };
        let stack = match self.stacks.get(&addrs) {
            Some(id) => *id,
            None => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let a = Arc::new(addrs);
                self.stacks.insert(Arc::clone(&a), id);
                self.by_id.insert(id, a);
                id
            }
        };
        self.pages.insert(
            (tgid, page),
            Page {
                stack,
                weight: sample.period.max(1).saturating_mul(self.thin),
                swapped: false,
            },
        );
        if let Some(c) = cgroup
            && self.cgroups.get(&tgid).is_none_or(|old| &**old != c)
        {
            self.cgroups.insert(tgid, Arc::from(c));
        }
        if self.pages.len() >= self.max_pages {
            self.halve();
        }
    }

    /// Keeps the pages whose hash the next thinning selects, doubling
    /// their weight: the estimate stays unbiased with half the pages.
    fn halve(&mut self) {
        self.thin = self.thin.saturating_mul(2);
        let thin = self.thin;
        self.pages.retain(|(tgid, page), p| {
            let keep = page_hash(*tgid, *page).is_multiple_of(thin);
            p.weight = p.weight.saturating_mul(2);
            keep
        });
        self.forget_unused();
    }

    /// The pages to check, per process: addresses (page-aligned), sorted.
    pub fn to_check(&self) -> Vec<(u32, Vec<u64>)> {
        let mut by: HashMap<u32, Vec<u64>> = HashMap::new();
        for (tgid, page) in self.pages.keys() {
            by.entry(*tgid).or_default().push(page * self.page_size);
        }
        let mut out: Vec<(u32, Vec<u64>)> = by.into_iter().collect();
        for (_, pages) in &mut out {
            pages.sort_unstable();
        }
        out.sort_unstable_by_key(|(t, _)| *t);
        out
    }

    /// Applies a check of process `tgid`'s `pages` (as `to_check` gave
    /// them): `None` when the process is gone (all its pages go).
    pub fn apply(&mut self, tgid: u32, pages: &[u64], states: Option<&[PageState]>) {
        let Some(states) = states else {
            self.pages.retain(|(t, _), _| *t != tgid);
            self.cgroups.remove(&tgid);
            return;
        };
        for (addr, state) in pages.iter().zip(states) {
            let key = (tgid, addr / self.page_size);
            match state {
                PageState::Resident | PageState::Swapped => {
                    if let Some(p) = self.pages.get_mut(&key) {
                        p.swapped = *state == PageState::Swapped;
                    }
                }
                PageState::Released | PageState::FileOrShared => {
                    self.pages.remove(&key);
                }
            }
        }
    }

    /// Checks every held page with `read` (a process's page addresses →
    /// what its pagemap says), applies the answers and records the
    /// outstanding bytes at `now`.
    pub fn check(&mut self, now: u64, mut read: impl FnMut(u32, &[u64]) -> PagesRead) {
        for (tgid, pages) in self.to_check() {
            match read(tgid, &pages) {
                PagesRead::States(states) => self.apply(tgid, &pages, Some(&states)),
                PagesRead::Gone => self.apply(tgid, &pages, None),
                PagesRead::Unknown => {}
            }
        }
        self.record(now);
    }

    /// Records the outstanding bytes per (process, stack) at Unix second
    /// `now` (after a check), forgets records older than the window, and
    /// the stacks no page or record uses.
    pub fn record(&mut self, now: u64) {
        let totals = self.totals();
        if let Some(last) = self.history.back_mut()
            && last.0 == now
        {
            last.1 = totals;
        } else {
            self.history.push_back((now, totals));
        }
        let oldest = now.saturating_sub(WINDOW_SECONDS);
        while self.history.front().is_some_and(|(s, _)| *s < oldest) {
            self.history.pop_front();
        }
        self.forget_unused();
    }

    fn totals(&self) -> Totals {
        let mut t: Totals = HashMap::new();
        for ((tgid, _), p) in &self.pages {
            *t.entry((*tgid, p.stack)).or_default() += self.bytes(p.weight);
        }
        t
    }

    fn bytes(&self, pages: u64) -> i64 {
        i64::try_from(pages.saturating_mul(self.page_size)).unwrap_or(i64::MAX)
    }

    fn forget_unused(&mut self) {
        let mut used: HashSet<u32> = self.pages.values().map(|p| p.stack).collect();
        let mut tgids: HashSet<u32> = self.pages.keys().map(|(t, _)| *t).collect();
        for (_, totals) in &self.history {
            for (tgid, id) in totals.keys() {
                used.insert(*id);
                tgids.insert(*tgid);
            }
        }
        self.by_id.retain(|id, _| used.contains(id));
        self.stacks.retain(|_, id| used.contains(id));
        self.cgroups.retain(|t, _| tgids.contains(t));
    }

    /// Processes with pages held.
    pub fn tgids(&self) -> HashSet<u32> {
        self.pages.keys().map(|(t, _)| *t).collect()
    }

    /// What `filter` keeps now, with each stack's growth since the record
    /// nearest `seconds` before `now` (since the start when younger).
    pub fn select(&self, now: u64, seconds: u64, filter: &Filter) -> ResidentSelection {
        let from = now.saturating_sub(seconds);
        // Every page was sampled after the start: a window reaching back
        // to it grows from nothing.
        let base = self
            .history
            .iter()
            .find(|(s, _)| *s >= from)
            .filter(|(s, _)| *s < now && from > self.started);
        let (base_totals, base_second) = match base {
            Some((s, t)) => (Some(t), *s),
            None => (None, self.started),
        };
        let mut now_totals: HashMap<(u32, u32), (i64, i64, u64)> = HashMap::new();
        let mut periods: Option<(u64, u64)> = None;
        for ((tgid, _), p) in &self.pages {
            if !self.keeps(filter, *tgid) {
                continue;
            }
            periods = Some(periods.map_or((p.weight, p.weight), |(lo, hi)| {
                (lo.min(p.weight), hi.max(p.weight))
            }));
            let e = now_totals.entry((*tgid, p.stack)).or_default();
            let b = self.bytes(p.weight);
            e.0 += b;
            if p.swapped {
                e.1 += b;
            }
            e.2 += 1;
        }
        // Stacks that held bytes at the base and hold none now shrank.
        if let Some(base) = base_totals {
            for key in base.keys() {
                if self.keeps(filter, key.0) {
                    now_totals.entry(*key).or_default();
                }
            }
        }
        let rows = now_totals
            .into_iter()
            .filter_map(|((tgid, id), (bytes, swapped, pages))| {
                let addrs = self.by_id.get(&id)?;
                let before = base_totals.and_then(|b| b.get(&(tgid, id)).copied());
                Some(ResidentRow {
                    sample: RawSample {
                        event: StackEvent::Resident,
                        stack: RawStack {
                            tgid,
                            user: addrs.user.clone(),
                            kernel: addrs.kernel.clone(),
                        },
                        weight: bytes,
                        count: pages,
                        growth: bytes - before.unwrap_or(0),
                    },
                    swapped_bytes: swapped,
                })
            })
            .collect();
        ResidentSelection {
            rows,
            seconds: now.saturating_sub(base_second),
            periods,
        }
    }

    fn keeps(&self, filter: &Filter, tgid: u32) -> bool {
        filter.keeps(tgid, &self.cgroups)
    }
}

/// Periods the resident mode picks from: 1 and primes near powers of two
/// (a prime period does not fall into step with a loop's pattern).
pub const PERIODS: &[u64] = &[
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
];
/// Stacks walked per second at most (each a few microseconds): the
/// resident mode's sampling budget for its targets.
pub const TARGET_SAMPLES_PER_SEC: f64 = 2000.0;
/// Sampler runs per second at most over every process (a run for another
/// process only checks the target: a fraction of a microsecond).
pub const ALL_SAMPLES_PER_SEC: f64 = 20_000.0;

/// The period for the next interval, from the faults per second the
/// targets took (estimated from the samples) and the whole system took:
/// the smallest of [`PERIODS`] that keeps the targets' stack walks within
/// [`TARGET_SAMPLES_PER_SEC`] and all runs within [`ALL_SAMPLES_PER_SEC`],
/// so a slow leak is sampled densely (its estimate close) and a fault
/// storm sparsely (its cost bounded).
pub fn choose_period(target_faults_per_sec: f64, all_faults_per_sec: f64) -> u64 {
    let want = (target_faults_per_sec / TARGET_SAMPLES_PER_SEC)
        .max(all_faults_per_sec / ALL_SAMPLES_PER_SEC)
        .max(1.0);
    PERIODS
        .iter()
        .copied()
        .find(|p| *p as f64 >= want)
        .unwrap_or(PERIODS[PERIODS.len() - 1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_period_follows_the_fault_rate() {
        assert_eq!(choose_period(100.0, 5_000.0), 1, "a slow leak: every fault");
        assert_eq!(choose_period(50_000.0, 60_000.0), 31);
        assert_eq!(choose_period(800_000.0, 800_000.0), 509, "a fault storm");
        assert_eq!(
            choose_period(10.0, 1e6),
            61,
            "others' storm: cheap filter runs"
        );
        assert_eq!(choose_period(1e12, 0.0), 65521);
    }

    use super::*;

    fn sample(tgid: u32, user: &[u64], addr: u64, period: u64) -> ResidentPage {
        ResidentPage {
            stack: RawStack {
                tgid,
                user: user.to_vec(),
                kernel: Vec::new(),
            },
            addr,
            period,
        }
    }

    fn bytes_of(sel: &ResidentSelection, leaf: u64) -> (i64, i64) {
        sel.rows
            .iter()
            .filter(|r| r.sample.stack.user.first() == Some(&leaf))
            .map(|r| (r.sample.weight, r.sample.growth))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    #[test]
    fn held_pages_weigh_their_period_and_released_ones_leave() {
        let mut t = ResidentTable::new(4096, 99);
        for i in 0..10 {
            t.add(
                &sample(1, &[0xa, 0xb], 0x10_0000 + i * 4096 + 17, 8),
                Some("/s"),
            );
            t.add(&sample(1, &[0xc, 0xb], 0x20_0000 + i * 4096, 8), Some("/s"));
        }
        t.record(100);
        let checks = t.to_check();
        assert_eq!(checks.len(), 1);
        let (tgid, pages) = &checks[0];
        assert_eq!(pages.len(), 20);
        assert_eq!(pages[0], 0x10_0000, "page-aligned");
        // The 0xc stack's pages were freed; one 0xa page is swapped.
        let states: Vec<PageState> = pages
            .iter()
            .map(|p| match p {
                0x10_0000 => PageState::Swapped,
                p if *p >= 0x20_0000 => PageState::Released,
                _ => PageState::Resident,
            })
            .collect();
        t.apply(*tgid, pages, Some(&states));
        t.record(101);
        let sel = t.select(101, 60, &Filter::All);
        assert_eq!(sel.periods, Some((8, 8)));
        assert_eq!(bytes_of(&sel, 0xa), (10 * 8 * 4096, 10 * 8 * 4096));
        assert_eq!(bytes_of(&sel, 0xc), (0, 0), "freed since the start");
        let a = sel
            .rows
            .iter()
            .find(|r| r.sample.stack.user[0] == 0xa)
            .expect("0xa row");
        assert_eq!(a.swapped_bytes, 8 * 4096);
        assert_eq!(a.sample.count, 10);
        // Growth over the last second: 0xc went from 80 pages to none.
        let last = t.select(101, 1, &Filter::All);
        assert_eq!(bytes_of(&last, 0xc), (0, -(10 * 8 * 4096)));
        assert_eq!(bytes_of(&last, 0xa), (10 * 8 * 4096, 0));
        assert_eq!(
            t.select(101, 60, &Filter::Cgroup("/s".into())).rows.len(),
            1,
            "0xa only: 0xc freed all it touched"
        );
        assert!(t.select(101, 60, &Filter::Pid(2)).rows.is_empty());
        // The process exits: everything it held goes.
        t.apply(1, &[], None);
        t.record(102);
        assert_eq!(t.pages(), 0);
        assert_eq!(bytes_of(&t.select(102, 60, &Filter::All), 0xa).0, 0);
    }

    #[test]
    fn a_check_keeps_unreadable_pages_and_drops_a_gone_process() {
        let mut t = ResidentTable::new(4096, 0);
        t.add(&sample(1, &[0xa], 0x1000, 4), None);
        t.add(&sample(2, &[0xb], 0x2000, 4), None);
        t.check(1, |tgid, _| {
            if tgid == 1 {
                PagesRead::Unknown
            } else {
                PagesRead::Gone
            }
        });
        assert_eq!(t.tgids(), [1].into_iter().collect());
        t.check(2, |_, pages| {
            PagesRead::States(vec![PageState::Resident; pages.len()])
        });
        assert_eq!(bytes_of(&t.select(2, 60, &Filter::All), 0xa).0, 4 * 4096);
    }

    #[test]
    fn thinning_keeps_the_estimate_and_the_bound() {
        let mut t = ResidentTable::with_capacity(4096, 0, 1000);
        for i in 0..20_000u64 {
            let leaf = if i % 4 == 0 { 0xa } else { 0xb };
            t.add(&sample(7, &[leaf], i * 4096, 1), None);
        }
        assert!(t.pages() < 1000, "{} pages held", t.pages());
        assert!(t.thinning() >= 32);
        let sel = t.select(0, 60, &Filter::All);
        let (a, _) = bytes_of(&sel, 0xa);
        let (b, _) = bytes_of(&sel, 0xb);
        let want_a = 5000.0 * 4096.0;
        let want_b = 15000.0 * 4096.0;
        assert!(
            (a as f64 / want_a - 1.0).abs() < 0.15,
            "0xa {a} vs {want_a}"
        );
        assert!(
            (b as f64 / want_b - 1.0).abs() < 0.10,
            "0xb {b} vs {want_b}"
        );
    }
}
