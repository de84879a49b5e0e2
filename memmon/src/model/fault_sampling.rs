//! The daemon's adaptive fault sampling (`daemon --profile` with
//! `profile_period = "auto"`, the default): how often the page-fault
//! sampler runs and how many of its runs walk a stack, chosen again at
//! each published pass (checked every 250 ms) from the fault rates and the processes' growth, so that a
//! growing process's memory is sampled densely (a leak of tens of MiB gets
//! hundreds of samples) while the cost stays bounded at any fault rate.
//!
//! Two levels, because a run that walks nothing is cheap (a map lookup
//! and a random number) and a walk is not (1–5 µs):
//! - the perf events' period: the smallest of [`PERIODS`], at least
//!   [`Limits::min_period`], that keeps the program's runs over the whole
//!   machine within [`Limits::runs_per_second`] (the floor bounds what a
//!   storm that starts between two plans costs until the next one);
//! - of those runs, 1 in `walk_every` walks a stack (drawn at random, each
//!   walk weighing `walk_every` runs), so that walks over every process
//!   stay within [`Limits::walks_per_second`];
//! - a process whose resident set grew by [`Limits::min_growth_bytes`]
//!   within the last [`GROWTH_SPAN_MS`] is *boosted* for [`HOLD_MS`]: it
//!   gets a `walk_every` of its own, as small as its own fault rate allows
//!   within [`Limits::process_walks_per_second`] (1 for a leak that
//!   faults less than that), the largest growers first, at most
//!   [`Limits::max_boosted`] of them and [`Limits::boost_walks_per_second`]
//!   in all.
//!
//! Between two plans, [`Planner::react`] raises the levels from the
//! fault rates the sampler's own runs show (a storm that began after the
//! last pass), so such a storm pays the quiet machine's levels for one
//! drain rather than one pass.
//!
//! Every sample carries the faults it stands for (period × its
//! walk_every), so weights stay unbiased whatever the plan was when it
//! was taken. Pure: fed rates and readings, it hands back a [`Plan`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use memmon_common::stacks::MAX_WALK_EVERY;

use crate::model::resident::PERIODS;

/// What the adaptive sampling may spend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Runs of the sampler per second over every CPU (a run that walks
    /// nothing costs a fraction of a microsecond).
    pub runs_per_second: f64,
    /// Stack walks per second of the processes not boosted, together.
    pub walks_per_second: f64,
    /// Stack walks per second of one boosted process.
    pub process_walks_per_second: f64,
    /// Stack walks per second of the boosted processes together.
    pub boost_walks_per_second: f64,
    /// Processes boosted at once.
    pub max_boosted: usize,
    /// The smallest period: a fault storm that starts on a quiet machine
    /// runs the sampler once per this many faults until the next plan
    /// (a run that walks nothing: ~0.2 µs).
    pub min_period: u64,
    /// The fewest faults one walk of a process not boosted stands for
    /// (likewise: what a storm pays in walks until the next plan).
    pub min_faults_per_walk: u64,
    /// Growth of the resident set within [`GROWTH_SPAN_MS`] that boosts a
    /// process.
    pub min_growth_bytes: u64,
    /// Page faults a second over the machine up to which the perf events
    /// stay open all the time; above, they are open one time slot in k
    /// (k = the rate / this, at most [`Limits::max_slots`]), since an open
    /// event costs every fault ~30–40 ns, sampled or not.
    pub full_time_faults_per_second: f64,
    /// The most time slots the events' one open slot stands for.
    pub max_slots: u64,
}

/// The daemon's limits: at most 10,000 runs (~0.2 µs each: 2 ms a
/// second) and 500 + 2,000 walks a second (2–5 µs each: under 13 ms a
/// second over the whole machine, at any fault rate); a process that
/// grows by 1 MiB within 10 s is boosted. The period is at least 13:
/// until a storm that starts on a quiet machine is seen (the next drain,
/// `Planner::react`) it pays ~0.2 µs / 13 ≈ 17 ns a fault (~1% of a
/// first-touch fault) for the sampler's runs, measured at 0.22 µs a run
/// here (BPF run-time statistics); a growing process's samples then weigh
/// 13 pages (52 KiB) each, ~800 for a 40 MiB leak. A walk of a process not
/// boosted stands for 251 faults or more (until then a storm pays a walk,
/// ~3 µs, per 251 faults: ~12 ns a fault). Above 100,000 faults a second
/// the events are open one time slot in 2 to 8: the event's own cost on
/// every fault (+2.5% to +3.6% of a first-touch fault storm measured with
/// an empty program that never runs) is paid an eighth of the time in a
/// storm of 800,000 faults a second.
pub const LIMITS: Limits = Limits {
    runs_per_second: 10_000.0,
    walks_per_second: 500.0,
    process_walks_per_second: 1_000.0,
    boost_walks_per_second: 2_000.0,
    max_boosted: 32,
    min_growth_bytes: 1 << 20,
    min_period: 13,
    min_faults_per_walk: 251,
    full_time_faults_per_second: 100_000.0,
    max_slots: 8,
};

/// How far back growth is measured, ms.
pub const GROWTH_SPAN_MS: u64 = 10_000;
/// How long a process stays boosted after it last grew, ms.
pub const HOLD_MS: u64 = 30_000;
/// [`Planner::react`] raises the levels when the sampler's runs or walks
/// go past this many times their limits.
pub const REACT_OVER: f64 = 2.0;
/// The plan before any rate is known: one walk per 1,000 faults or so
/// (`walk_every` 16 of period 61).
const START: (u64, u64) = (61, 16);

/// What the sampler does until the next plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The perf events' period: faults per run of the sampler, per CPU,
    /// while they are open.
    pub period: u64,
    /// The events are open one time slot in this many (1: always), so a
    /// run stands for `period × slots` faults.
    pub slots: u64,
    /// 1 run in this many walks a stack, for a process not in `boosted`.
    pub walk_every: u64,
    /// Processes (tgid) with a `walk_every` of their own.
    pub boosted: BTreeMap<u32, u64>,
}

impl Plan {
    /// Every run walks, one run per `period` faults, for everyone: a fixed
    /// `profile_period`.
    pub fn fixed(period: u64) -> Plan {
        Plan {
            period: period.max(1),
            slots: 1,
            walk_every: 1,
            boosted: BTreeMap::new(),
        }
    }

    /// Faults one run stands for (the period × the slots).
    pub fn faults_per_run(&self) -> u64 {
        self.period.saturating_mul(self.slots)
    }

    /// Faults one walk of a process not boosted stands for.
    pub fn faults_per_walk(&self) -> u64 {
        self.faults_per_run().saturating_mul(self.walk_every)
    }

    /// Faults one walk of process `tgid` stands for.
    pub fn faults_per_walk_of(&self, tgid: u32) -> u64 {
        let every = self.boosted.get(&tgid).copied().unwrap_or(self.walk_every);
        self.faults_per_run().saturating_mul(every)
    }

    /// The fewest faults any walk stands for (the densest sampling).
    pub fn finest(&self) -> u64 {
        let every = self
            .boosted
            .values()
            .copied()
            .min()
            .unwrap_or(self.walk_every)
            .min(self.walk_every);
        self.faults_per_run().saturating_mul(every)
    }
}

/// What the planner reads of one live process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessReading {
    /// Process (tgid).
    pub tgid: u32,
    /// Resident set, bytes (None: not read this pass).
    pub rss_bytes: Option<u64>,
    /// Its page faults per second over the last pass (None: unknown).
    pub faults_per_second: Option<f64>,
}

/// A boosted process: until when, and by how much it grew.
#[derive(Clone, Copy, Debug)]
struct Boost {
    until_ms: u64,
    growth: u64,
}

/// Chooses plans.
#[derive(Debug)]
pub struct Planner {
    limits: Limits,
    /// Resident set readings of each process within the growth span.
    history: HashMap<u32, VecDeque<(u64, u64)>>,
    boosts: HashMap<u32, Boost>,
    plan: Plan,
    /// The fault rates the last drains saw, by process (`react`).
    sampled: HashMap<u32, f64>,
}

impl Planner {
    /// A planner within `limits`, starting from a plan of about one walk
    /// per 1,000 faults.
    pub fn new(limits: Limits) -> Planner {
        Planner {
            limits,
            history: HashMap::new(),
            boosts: HashMap::new(),
            plan: Plan {
                period: START.0,
                slots: 1,
                walk_every: START.1,
                boosted: BTreeMap::new(),
            },
            sampled: HashMap::new(),
        }
    }

    /// The plan in force.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The next plan, at `now_ms`, from the machine's page faults per
    /// second (None: not known yet, the plan's levels stay) and the live
    /// processes.
    pub fn update(
        &mut self,
        now_ms: u64,
        all_faults_per_second: Option<f64>,
        processes: &[ProcessReading],
    ) -> &Plan {
        let l = self.limits;
        // A pass's rates are averages over the pass: a storm that began
        // within it is under-read, so the rates the last drains saw
        // (`react`) count where they are higher.
        let recent_all: Option<f64> =
            (!self.sampled.is_empty()).then(|| self.sampled.values().sum());
        let all_faults_per_second =
            higher(all_faults_per_second.filter(|r| r.is_finite()), recent_all);
        if let Some(all) = all_faults_per_second {
            (self.plan.period, self.plan.slots, self.plan.walk_every) = self.levels(all.max(0.0));
        }
        self.note_growth(now_ms, processes);
        let period = self.plan.period;
        // The faults the sampler sees: those of the open slots.
        let seen = 1.0 / self.plan.slots as f64;
        let default_every = self.plan.walk_every;
        let mut ranked: Vec<(u32, u64)> = self.boosts.iter().map(|(t, b)| (*t, b.growth)).collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rates: HashMap<u32, Option<f64>> = processes
            .iter()
            .map(|p| {
                let recent = self.sampled.get(&p.tgid).copied();
                (p.tgid, higher(p.faults_per_second, recent))
            })
            .collect();
        let candidates = ranked.into_iter().take(l.max_boosted).map(|(tgid, _)| {
            // A process whose fault rate is unknown is charged the whole
            // machine's (the safe side of the budget).
            let faults = rates
                .get(&tgid)
                .copied()
                .flatten()
                .or(all_faults_per_second)
                .unwrap_or(0.0)
                .max(0.0)
                * seen;
            (tgid, faults, 1)
        });
        self.plan.boosted = boost_levels(&l, period, default_every, candidates);
        &self.plan
    }

    /// The period, the slots and the walk level for a machine faulting
    /// `all_faults_per_second` times a second.
    fn levels(&self, all_faults_per_second: f64) -> (u64, u64, u64) {
        let l = self.limits;
        let slots = (all_faults_per_second / l.full_time_faults_per_second)
            .ceil()
            .clamp(1.0, l.max_slots.max(1) as f64) as u64;
        let all_faults_per_second = all_faults_per_second / slots as f64;
        let want = (all_faults_per_second / l.runs_per_second).max(1.0);
        let period = PERIODS
            .iter()
            .copied()
            .find(|p| *p as f64 >= want && *p >= l.min_period)
            .unwrap_or(PERIODS[PERIODS.len() - 1]);
        let walk_every = walks_every(all_faults_per_second, period, l.walks_per_second)
            .max(l.min_faults_per_walk.div_ceil(period));
        (period, slots, walk_every)
    }

    /// Raises the levels at once when the faults the sampler itself saw
    /// since the last check (`sampled`: faults a second of each process,
    /// its runs × the period over the span) would take it past
    /// [`REACT_OVER`] times its limits under the plan in force: a storm
    /// that began after the last publication is sampled at the levels it
    /// calls for after one drain (200 ms) instead of one pass. Only raises
    /// (lowering waits for the next publication); a boosted process keeps
    /// its boost if its own rate still allows one. Returns whether the
    /// plan changed.
    pub fn react(&mut self, sampled: &HashMap<u32, f64>) -> bool {
        let l = self.limits;
        self.sampled = sampled
            .iter()
            .filter(|(_, r)| r.is_finite() && **r >= 0.0)
            .map(|(t, r)| (*t, *r))
            .collect();
        let sampled = &self.sampled;
        let all: f64 = sampled.values().sum();
        let plan = &self.plan;
        let runs = all / plan.faults_per_run() as f64;
        let walks_of = |t: &u32, r: &f64| r / plan.faults_per_walk_of(*t) as f64;
        let walks: f64 = sampled
            .iter()
            .filter(|(t, _)| !plan.boosted.contains_key(t))
            .map(|(t, r)| walks_of(t, r))
            .sum();
        let boosted_walks: Vec<f64> = sampled
            .iter()
            .filter(|(t, _)| plan.boosted.contains_key(t))
            .map(|(t, r)| walks_of(t, r))
            .collect();
        if runs <= REACT_OVER * l.runs_per_second
            && walks <= REACT_OVER * l.walks_per_second
            && boosted_walks.iter().sum::<f64>() <= REACT_OVER * l.boost_walks_per_second
            && boosted_walks
                .iter()
                .all(|w| *w <= REACT_OVER * l.process_walks_per_second)
        {
            return false;
        }
        let (period, slots, walk_every) = self.levels(all);
        let period = period.max(plan.period);
        let slots = slots.max(plan.slots);
        let walk_every = walk_every.max(plan.walk_every);
        // A boosted process keeps its boost, never finer than it was.
        let candidates = plan.boosted.iter().map(|(tgid, every)| {
            let rate = sampled.get(tgid).copied().unwrap_or(0.0) / slots as f64;
            (*tgid, rate, *every)
        });
        let boosted = boost_levels(&l, period, walk_every, candidates);
        let next = Plan {
            period,
            slots,
            walk_every,
            boosted,
        };
        if next == self.plan {
            return false;
        }
        self.plan = next;
        true
    }

    /// Records each process's resident set, boosts those that grew, and
    /// forgets processes gone and boosts expired.
    fn note_growth(&mut self, now_ms: u64, processes: &[ProcessReading]) {
        let oldest = now_ms.saturating_sub(GROWTH_SPAN_MS);
        let mut live = std::collections::HashSet::with_capacity(processes.len());
        for p in processes {
            live.insert(p.tgid);
            let Some(rss) = p.rss_bytes else {
                continue;
            };
            let h = self.history.entry(p.tgid).or_default();
            if h.back().is_none_or(|(t, _)| *t < now_ms) {
                h.push_back((now_ms, rss));
            }
            while h.front().is_some_and(|(t, _)| *t < oldest) {
                h.pop_front();
            }
            let low = h.iter().map(|(_, r)| *r).min().unwrap_or(rss);
            let growth = rss.saturating_sub(low);
            if growth >= self.limits.min_growth_bytes {
                self.boosts.insert(
                    p.tgid,
                    Boost {
                        until_ms: now_ms + HOLD_MS,
                        growth,
                    },
                );
            }
        }
        self.history.retain(|t, _| live.contains(t));
        self.boosts
            .retain(|t, b| live.contains(t) && b.until_ms > now_ms);
    }
}

/// The boosted processes' own walk levels: `candidates` in order of
/// priority, each (tgid, the faults a second the sampler sees of it, the
/// least N it may get), gets the smallest N its rate allows within the
/// per-process limit and what is left of the boost budget, and is kept
/// only when that is below `default_every` (the level of everyone else).
fn boost_levels(
    l: &Limits,
    period: u64,
    default_every: u64,
    candidates: impl IntoIterator<Item = (u32, f64, u64)>,
) -> BTreeMap<u32, u64> {
    let mut boosted = BTreeMap::new();
    let mut budget = l.boost_walks_per_second;
    for (tgid, faults, least) in candidates {
        let every = walks_every(faults, period, l.process_walks_per_second.min(budget)).max(least);
        if every >= default_every || budget <= 0.0 {
            continue;
        }
        budget -= faults / (period as f64 * every as f64);
        boosted.insert(tgid, every);
    }
    boosted
}

/// The higher of two rates, either of which may be unknown.
fn higher(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The smallest N such that `faults_per_second` faults, sampled once per
/// `period` and walked 1 in N, walk at most `walks_per_second` times a
/// second (at most [`MAX_WALK_EVERY`], the most the sampler takes).
fn walks_every(faults_per_second: f64, period: u64, walks_per_second: f64) -> u64 {
    if walks_per_second <= 0.0 {
        return MAX_WALK_EVERY;
    }
    let runs = faults_per_second / period.max(1) as f64;
    let n = (runs / walks_per_second).ceil();
    if n.is_finite() && n >= 1.0 {
        n.min(MAX_WALK_EVERY as f64) as u64
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(tgid: u32, rss_mib: u64, faults: f64) -> ProcessReading {
        ProcessReading {
            tgid,
            rss_bytes: Some(rss_mib << 20),
            faults_per_second: Some(faults),
        }
    }

    #[test]
    fn levels_follow_the_machines_fault_rate_within_the_limits() {
        let mut p = Planner::new(LIMITS);
        assert_eq!(p.plan().faults_per_walk(), 61 * 16, "before any rate");
        // A quiet machine: the floors (period 13, a walk per 251 faults
        // or more), the events always open.
        let plan = p.update(1_000, Some(800.0), &[]).clone();
        assert_eq!((plan.period, plan.slots, plan.walk_every), (13, 1, 20));
        // 50,000 faults a second: runs and walks within their limits.
        let plan = p.update(2_000, Some(50_000.0), &[]).clone();
        assert!(50_000.0 / plan.period as f64 <= LIMITS.runs_per_second);
        assert!(50_000.0 / plan.faults_per_walk() as f64 <= LIMITS.walks_per_second);
        assert_eq!((plan.period, plan.slots), (13, 1), "the floor, always open");
        // 300,000 a second: open one slot in 3, the period at its floor.
        let plan = p.update(2_500, Some(300_000.0), &[]).clone();
        assert_eq!((plan.period, plan.slots), (13, 3));
        assert!(300_000.0 / plan.faults_per_run() as f64 <= LIMITS.runs_per_second);
        // A storm of 1.4 M faults a second on two CPUs: the events open
        // one slot in 8, the period above its floor, runs and walks
        // within their limits.
        let plan = p.update(3_000, Some(1.4e6), &[]).clone();
        assert_eq!((plan.period, plan.slots), (31, 8));
        assert!(1.4e6 / plan.faults_per_run() as f64 <= LIMITS.runs_per_second);
        assert!(1.4e6 / plan.faults_per_walk() as f64 <= LIMITS.walks_per_second);
        assert!(plan.boosted.is_empty());
        // Rate unknown: the levels stay.
        assert_eq!(p.update(4_000, None, &[]).period, 31);
    }

    #[test]
    fn a_growing_process_is_boosted_within_its_budget_and_released_after_the_hold() {
        let mut p = Planner::new(LIMITS);
        let all = 100_000.0;
        // Second 0: two processes seen.
        p.update(
            0,
            Some(all),
            &[reading(10, 100, 500.0), reading(11, 50, 90_000.0)],
        );
        assert!(p.plan().boosted.is_empty());
        // Second 1: the leak (10) grew 2 MiB at 500 faults/s: walked on
        // every run; the busy one (11) did not grow: not boosted.
        let plan = p
            .update(
                1_000,
                Some(all),
                &[reading(10, 102, 500.0), reading(11, 50, 90_000.0)],
            )
            .clone();
        assert_eq!(plan.period, 13);
        assert_eq!(plan.boosted.get(&10), Some(&1));
        assert_eq!(plan.faults_per_walk_of(10), 13);
        assert!(plan.faults_per_walk_of(11) >= 100);
        assert_eq!(plan.finest(), 13);
        // A fast grower with a storm of faults: boosted, but its walks
        // stay within the per-process limit.
        let plan = p
            .update(
                2_000,
                Some(all),
                &[reading(10, 104, 500.0), reading(11, 80, 90_000.0)],
            )
            .clone();
        let every = plan.boosted[&11];
        assert!(90_000.0 / (plan.period * every) as f64 <= LIMITS.process_walks_per_second);
        assert!(every < plan.walk_every);
        // The leak stops (its last growth leaves the 10 s span at 12 s);
        // 30 s later it is released, and a process that exits is
        // forgotten at once.
        let mut last = plan;
        for s in 3..=41u64 {
            last = p
                .update(s * 1_000, Some(all), &[reading(10, 104, 0.0)])
                .clone();
        }
        assert!(last.boosted.is_empty(), "{last:?}");
        assert!(p.history.keys().all(|t| *t == 10));
    }

    #[test]
    fn the_boost_budget_goes_to_the_largest_growers() {
        let limits = Limits {
            boost_walks_per_second: 1_500.0,
            min_period: 1,
            min_faults_per_walk: 1,
            ..LIMITS
        };
        let mut p = Planner::new(limits);
        let all = 10_000.0;
        let first: Vec<_> = (1..=4).map(|t| reading(t, 10, 1_000.0)).collect();
        p.update(0, Some(all), &first);
        // All four grow; 4 grew most, then 3, ...: each would walk 1,000
        // a second at walk_every 1.
        let grown: Vec<_> = (1..=4)
            .map(|t| reading(t, 10 + 2 * u64::from(t), 1_000.0))
            .collect();
        let plan = p.update(1_000, Some(all), &grown).clone();
        assert_eq!(plan.period, 1);
        assert_eq!(plan.boosted.get(&4), Some(&1), "the largest grower first");
        assert_eq!(plan.boosted.get(&3), Some(&2), "the rest of the budget");
        assert!(!plan.boosted.contains_key(&1));
        let walks: f64 = plan
            .boosted
            .values()
            .map(|every| 1_000.0 / *every as f64)
            .sum();
        assert!(walks <= limits.boost_walks_per_second);
    }

    #[test]
    fn a_storm_between_two_plans_raises_the_levels_at_once() {
        let mut p = Planner::new(LIMITS);
        p.update(0, Some(500.0), &[reading(7, 10, 100.0)]);
        // A leak (7) boosted on a quiet machine.
        p.update(1_000, Some(500.0), &[reading(7, 12, 100.0)]);
        assert_eq!((p.plan().period, p.plan().boosted.get(&7)), (13, Some(&1)));
        // Runs drained within the limits: nothing changes.
        let calm: HashMap<u32, f64> = [(7, 100.0), (8, 20_000.0)].into();
        assert!(!p.react(&calm));
        // A storm of 800,000 faults a second (8) since the last plan.
        let storm: HashMap<u32, f64> = [(7, 100.0), (8, 800_000.0)].into();
        assert!(p.react(&storm));
        let plan = p.plan().clone();
        assert!(800_100.0 / plan.faults_per_run() as f64 <= LIMITS.runs_per_second);
        assert!(800_000.0 / plan.faults_per_walk_of(8) as f64 <= LIMITS.walks_per_second);
        // The leak keeps a walk on each of its runs.
        assert_eq!(plan.faults_per_walk_of(7), plan.faults_per_run());
        // At the same rate again: within the limits now.
        assert!(!p.react(&storm));
        // A publication whose pass began before the storm reads less than
        // the drains saw: the levels hold.
        let late = p
            .update(2_000, Some(300_000.0), &[reading(7, 12, 100.0)])
            .clone();
        assert_eq!((late.period, late.slots), (plan.period, plan.slots));
        // Quiet again, in the drains and then in the next publication:
        // lowered.
        assert!(!p.react(&[(7, 100.0)].into()));
        let quiet = p.update(3_000, Some(500.0), &[reading(7, 12, 100.0)]);
        assert_eq!((quiet.period, quiet.slots), (13, 1));
    }

    #[test]
    fn a_fixed_plan_walks_every_run() {
        let plan = Plan::fixed(64);
        assert_eq!((plan.faults_per_walk(), plan.finest()), (64, 64));
        assert_eq!(plan.faults_per_walk_of(7), 64);
        assert_eq!(Plan::fixed(0).period, 1);
    }
}
