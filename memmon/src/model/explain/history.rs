//! The daemon's recent history for `explain --connect` (and post-mortems):
//! the engine's points of the largest processes, of every cgroup's OOM
//! candidate, of every cgroup and of the system, at most [`MAX_POINTS`]
//! per ring over the history span (one point per span/60: 5 s for the
//! default 300 s), recorded from each publication. Pure: times come from
//! the publications.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::evidence::{CgroupPoint, ProcPoint, SystemPoint};
use crate::model::{process::ProcessKey, published::Published, view::idx};

/// Points a ring keeps at most.
pub const MAX_POINTS: usize = 60;
/// Largest processes (by RSS) recorded each time.
pub const LARGEST: usize = 100;

/// A recorded process.
#[derive(Clone, Debug)]
pub struct ProcRing {
    /// Command name, as last seen.
    pub comm: String,
    /// Memory cgroup, as last seen.
    pub cgroup: Option<String>,
    /// (unix ms, point), oldest first.
    pub points: VecDeque<(u64, ProcPoint)>,
}

/// Recent points, bounded.
#[derive(Clone, Debug, Default)]
pub struct History {
    span_ms: u64,
    step_ms: u64,
    last_ms: Option<u64>,
    processes: HashMap<ProcessKey, ProcRing>,
    cgroups: BTreeMap<String, VecDeque<(u64, CgroupPoint)>>,
    system: VecDeque<(u64, SystemPoint)>,
    times: VecDeque<(u64, ())>,
}

fn trim<T>(ring: &mut VecDeque<(u64, T)>, cutoff: u64) {
    while ring.front().is_some_and(|(t, _)| *t < cutoff) || ring.len() > MAX_POINTS {
        ring.pop_front();
    }
}

impl History {
    /// A history of `seconds` (0: none kept).
    pub fn new(seconds: u64) -> Self {
        let span_ms = seconds.saturating_mul(1000);
        History {
            span_ms,
            step_ms: span_ms / MAX_POINTS as u64,
            ..Default::default()
        }
    }

    /// Seconds kept.
    pub fn seconds(&self) -> u64 {
        self.span_ms / 1000
    }

    /// Records `p` when a step has passed since the last record; expires
    /// what is older than the span.
    pub fn record(&mut self, p: &Published) {
        if self.span_ms == 0 {
            return;
        }
        let now = p.unix_ms;
        if self
            .last_ms
            .is_some_and(|last| now < last.saturating_add(self.step_ms) && now >= last)
        {
            return;
        }
        self.last_ms = Some(now);
        self.times.push_back((now, ()));
        // The largest, and the process each cgroup would lose first.
        let mut keep: Vec<&crate::model::ProcessView> = p
            .processes
            .iter()
            .map(|r| &**r)
            .filter(|r| !r.exited)
            .collect();
        let by_rss =
            |r: &&crate::model::ProcessView| std::cmp::Reverse(r.whole(idx::RSS).unwrap_or(0));
        if keep.len() > LARGEST {
            keep.select_nth_unstable_by_key(LARGEST - 1, by_rss);
            keep.truncate(LARGEST);
        }
        let candidates: std::collections::HashSet<u32> = p
            .cgroups
            .iter()
            .filter_map(|c| c.oom_candidate.as_ref().map(|o| o.pid))
            .filter(|pid| !keep.iter().any(|r| r.pid == *pid))
            .collect();
        keep.extend(
            p.processes
                .iter()
                .map(|r| &**r)
                .filter(|r| !r.exited && candidates.contains(&r.pid)),
        );
        for r in keep {
            let key = ProcessKey {
                pid: r.pid,
                start_time_ticks: r.start_time_ticks,
            };
            let ring = self.processes.entry(key).or_insert_with(|| ProcRing {
                comm: String::new(),
                cgroup: None,
                points: VecDeque::new(),
            });
            ring.comm.clone_from(&r.comm);
            ring.cgroup.clone_from(&r.cgroup);
            ring.points.push_back((now, ProcPoint::from_view(r)));
        }
        for c in &p.cgroups {
            if let Some(ring) = self.cgroups.get_mut(&c.cgroup) {
                ring.push_back((now, CgroupPoint::from_view(c)));
            } else {
                self.cgroups.insert(
                    c.cgroup.clone(),
                    VecDeque::from([(now, CgroupPoint::from_view(c))]),
                );
            }
        }
        if let Some(s) = &p.system {
            self.system.push_back((now, SystemPoint::from_view(s)));
        }
        let cutoff = now.saturating_sub(self.span_ms);
        self.processes.retain(|_, r| {
            trim(&mut r.points, cutoff);
            !r.points.is_empty()
        });
        self.cgroups.retain(|_, r| {
            trim(r, cutoff);
            !r.is_empty()
        });
        trim(&mut self.system, cutoff);
        trim(&mut self.times, cutoff);
    }

    /// The newest process with this pid.
    pub fn process(&self, pid: u32) -> Option<(ProcessKey, &ProcRing)> {
        self.processes
            .iter()
            .filter(|(k, _)| k.pid == pid)
            .max_by_key(|(k, _)| k.start_time_ticks)
            .map(|(k, r)| (*k, r))
    }

    /// A cgroup's points, oldest first.
    pub fn cgroup(&self, path: &str) -> Option<&VecDeque<(u64, CgroupPoint)>> {
        self.cgroups.get(path)
    }

    /// The system's point at `unix_ms`, if recorded then.
    pub fn system_at(&self, unix_ms: u64) -> Option<SystemPoint> {
        self.system
            .iter()
            .find(|(t, _)| *t == unix_ms)
            .map(|(_, s)| *s)
    }

    /// The times recorded, oldest first.
    pub fn times(&self) -> impl Iterator<Item = u64> + '_ {
        self.times.iter().map(|(t, _)| *t)
    }

    /// Points held, all rings together (for its memory cost).
    pub fn points(&self) -> usize {
        self.processes
            .values()
            .map(|r| r.points.len())
            .sum::<usize>()
            + self.cgroups.values().map(VecDeque::len).sum::<usize>()
            + self.system.len()
    }
}
