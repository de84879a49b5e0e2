//! The daemon's recent history, the engine's evidence after the fact
//! (`explain --connect`, an OOM post-mortem's findings of a minute before):
//! the points of the largest processes and of each cgroup's likeliest OOM
//! victims, of every cgroup and of the system. Every publication of the
//! last [`DENSE_MS`] is kept (at most one a second), then one per
//! [`THIN_STEP_MS`] back to the history span. Recorded from each
//! publication; pure (times come from the publications).

use std::collections::{BTreeMap, VecDeque};

use super::evidence::{
    Builder, CgroupPoint, Evidence, NotFound, ProcPoint, SystemPoint, Target, normalize, under,
};
use crate::{
    model::{
        fields::N_CGROUP,
        process::ProcessKey,
        published::{CgroupView, Published},
        view::ProcessView,
    },
    sample::cgroup::CgroupNames,
};

/// The last this many ms keep every publication (an OOM spike of a few
/// seconds is seen whole).
pub const DENSE_MS: u64 = 60_000;
/// Older points are one per this many ms.
pub const THIN_STEP_MS: u64 = 10_000;
/// Least time between two dense points (a daemon sampling faster than
/// once a second keeps one a second).
const DENSE_STEP_MS: u64 = 900;
/// Records between two returns of the rings' spare room.
const SHRINK_EVERY: u64 = 60;

/// A recorded process.
#[derive(Clone, Debug)]
pub struct ProcRing {
    /// Command name, as last seen.
    pub comm: String,
    /// Memory cgroup, as last seen.
    pub cgroup: Option<String>,
    /// Its points.
    pub points: Ring<ProcPoint>,
}

/// A recorded cgroup.
#[derive(Clone, Debug)]
pub struct CgroupRing {
    /// The names its path carries.
    pub names: CgroupNames,
    /// Its points.
    pub points: Ring<CgroupPoint>,
}

/// Recent points, bounded.
#[derive(Clone, Debug, Default)]
pub struct History {
    span_ms: u64,
    last_ms: Option<u64>,
    processes: crate::fast_hash::FastMap<ProcessKey, ProcRing>,
    cgroups: BTreeMap<String, CgroupRing>,
    system: Option<Ring<SystemPoint>>,
    /// The times recorded (the frames a target's history has).
    times: Option<Ring<u64>>,
    /// Records taken.
    records: u64,
}

/// One series of points, stored only when the value changed: a point
/// holds until the next one (or until `last_seen`, the last record that
/// saw it), so an idle process or cgroup costs one point, not one a second.
#[derive(Clone, Debug)]
pub struct Ring<T> {
    /// (unix ms, value) where the value changed, oldest first.
    pub points: VecDeque<(u64, T)>,
    /// The last record that saw this series.
    pub last_seen: u64,
}

impl<T: Copy + PartialEq> Ring<T> {
    fn new() -> Self {
        Ring {
            points: VecDeque::new(),
            last_seen: 0,
        }
    }

    /// Notes `value` at `now` (stored only if it differs from the last).
    fn push(&mut self, now: u64, value: T) {
        self.last_seen = now;
        if self.points.back().is_none_or(|(_, v)| *v != value) {
            self.points.push_back((now, value));
        }
    }

    /// The value at `t`: the last point at or before it, while the series
    /// was still seen.
    pub fn at(&self, t: u64) -> Option<T> {
        if t > self.last_seen {
            return None;
        }
        self.points
            .iter()
            .rev()
            .find(|(pt, _)| *pt <= t)
            .map(|(_, v)| *v)
    }

    /// Drops the points no time after `oldest` needs (the last one at or
    /// before it stays: it holds from there), and thins those before
    /// `dense_from` to one per [`THIN_STEP_MS`]. False when the series was
    /// not seen since `oldest`.
    fn trim(&mut self, oldest: u64, dense_from: u64) -> bool {
        while self.points.len() >= 2 && self.points[1].0 <= oldest {
            self.points.pop_front();
        }
        let mut kept: Option<u64> = None;
        let mut i = 0;
        while i < self.points.len() && self.points[i].0 < dense_from {
            let t = self.points[i].0;
            if kept.is_some_and(|k| t < k + THIN_STEP_MS) {
                self.points.remove(i);
            } else {
                kept = Some(t);
                i += 1;
            }
        }
        self.last_seen >= oldest && !self.points.is_empty()
    }
}

impl History {
    /// A history of `seconds` (0: none kept).
    pub fn new(seconds: u64) -> Self {
        History {
            span_ms: seconds.saturating_mul(1000),
            ..Default::default()
        }
    }

    /// Seconds kept.
    pub fn seconds(&self) -> u64 {
        self.span_ms / 1000
    }

    /// Records `p` (unless the last record is under a second old), and
    /// expires and thins what is older.
    pub fn record(&mut self, p: &Published) {
        if self.span_ms == 0 {
            return;
        }
        let now = p.unix_ms;
        if self
            .last_ms
            .is_some_and(|last| now >= last && now < last + DENSE_STEP_MS)
        {
            return;
        }
        if self.last_ms.is_some_and(|last| now < last) {
            // The clock went back: start over rather than mix times.
            *self = History::new(self.seconds());
        }
        self.last_ms = Some(now);
        // Every time differs from the last: each is kept (then thinned).
        self.times.get_or_insert_with(Ring::new).push(now, now);
        for r in p.recorded.iter().filter(|r| !r.exited) {
            let key = ProcessKey {
                pid: r.pid,
                start_time_ticks: r.start_time_ticks,
            };
            let ring = self.processes.entry(key).or_insert_with(|| ProcRing {
                comm: String::new(),
                cgroup: None,
                points: Ring::new(),
            });
            if ring.comm != r.comm {
                ring.comm.clone_from(&r.comm);
            }
            if ring.cgroup != r.cgroup {
                ring.cgroup.clone_from(&r.cgroup);
            }
            ring.points.push(now, ProcPoint::from_view(r));
        }
        for c in &p.cgroups {
            let ring = match self.cgroups.get_mut(&c.cgroup) {
                Some(r) => r,
                None => self
                    .cgroups
                    .entry(c.cgroup.clone())
                    .or_insert_with(|| CgroupRing {
                        names: CgroupNames::default(),
                        points: Ring::new(),
                    }),
            };
            if ring.names != c.names {
                ring.names = c.names.clone();
            }
            ring.points.push(now, CgroupPoint::from_view(c));
        }
        if let Some(s) = &p.system {
            self.system
                .get_or_insert_with(Ring::new)
                .push(now, SystemPoint::from_view(s));
        }
        let oldest = now.saturating_sub(self.span_ms);
        let dense_from = now.saturating_sub(DENSE_MS);
        self.processes
            .retain(|_, r| r.points.trim(oldest, dense_from));
        self.cgroups
            .retain(|_, r| r.points.trim(oldest, dense_from));
        self.records += 1;
        if self.records.is_multiple_of(SHRINK_EVERY) {
            // A ring's deque doubles as it grows: give back what a busy
            // minute left once it is thinned.
            for r in self.processes.values_mut() {
                r.points.points.shrink_to_fit();
            }
            for r in self.cgroups.values_mut() {
                r.points.points.shrink_to_fit();
            }
        }
        if let Some(r) = &mut self.system {
            r.trim(oldest, dense_from);
        }
        if let Some(r) = &mut self.times {
            r.trim(oldest, dense_from);
        }
    }

    /// The newest process with this pid.
    pub fn process(&self, pid: u32) -> Option<(ProcessKey, &ProcRing)> {
        self.processes
            .iter()
            .filter(|(k, _)| k.pid == pid)
            .max_by_key(|(k, _)| k.start_time_ticks)
            .map(|(k, r)| (*k, r))
    }

    /// A cgroup's ring.
    pub fn cgroup(&self, path: &str) -> Option<&CgroupRing> {
        self.cgroups.get(path)
    }

    /// Points held, all rings together (its memory is about 8 bytes a
    /// value: 19 per process point, 32 per cgroup point).
    pub fn points(&self) -> usize {
        let procs: usize = self.processes.values().map(|r| r.points.points.len()).sum();
        let cgroups: usize = self.cgroups.values().map(|r| r.points.points.len()).sum();
        procs + cgroups + self.system.as_ref().map_or(0, |r| r.points.len())
    }

    /// The cgroup path `target` names (a process's: its own, as last seen).
    pub fn path_of(&self, target: &Target) -> Option<String> {
        match target {
            Target::Pid(pid) => self.process(*pid).and_then(|(_, r)| r.cgroup.clone()),
            Target::Cgroup(c) => Some(normalize(c)),
            Target::Unit(u) => self
                .cgroups
                .iter()
                .filter(|(path, r)| {
                    r.names.unit.as_deref() == Some(u.as_str())
                        || path.rsplit('/').next() == Some(u.as_str())
                })
                .max_by_key(|(path, _)| path.len())
                .map(|(path, _)| path.clone()),
        }
    }

    /// What the history holds of `target` from `from` to `to` ms, as
    /// publication rows: the process (and the recorded processes of its
    /// cgroup), the cgroup, the system, one frame per recorded time.
    pub fn frames(&self, target: &Target, from: u64, to: u64) -> Vec<HistoryFrame> {
        let path = self.path_of(target);
        let pid = match target {
            Target::Pid(p) => Some(*p),
            _ => None,
        };
        let own = pid.and_then(|p| self.process(p)).map(|(k, _)| k);
        let procs: Vec<(&ProcessKey, &ProcRing)> = self
            .processes
            .iter()
            .filter(|(k, r)| {
                Some(**k) == own
                    || (path
                        .as_deref()
                        .is_some_and(|p| r.cgroup.as_deref().is_some_and(|c| under(c, p)))
                        && pid.is_none_or(|p| k.pid != p))
            })
            .collect();
        let cg = path
            .as_deref()
            .and_then(|p| self.cgroups.get(p).map(|r| (p, r)));
        self.times
            .iter()
            .flat_map(|r| r.points.iter().map(|(t, _)| *t))
            .filter(|t| (from..=to).contains(t))
            .map(|t| {
                let processes = procs
                    .iter()
                    .filter_map(|(k, r)| {
                        let point = r.points.at(t)?;
                        let mut v = ProcessView {
                            pid: k.pid,
                            comm: r.comm.clone(),
                            start_time_ticks: k.start_time_ticks,
                            cgroup: r.cgroup.clone(),
                            ..Default::default()
                        };
                        point.fill(&mut v);
                        Some(v)
                    })
                    .collect();
                let cgroups = cg
                    .and_then(|(path, ring)| {
                        let point = ring.points.at(t)?;
                        let mut v = CgroupView {
                            cgroup: path.to_string(),
                            names: ring.names.clone(),
                            gone: false,
                            oom_candidate: None,
                            values: [None; N_CGROUP],
                        };
                        point.fill(&mut v);
                        Some(v)
                    })
                    .into_iter()
                    .collect();
                HistoryFrame {
                    unix_ms: t,
                    processes,
                    cgroups,
                    system: self.system.as_ref().and_then(|r| r.at(t)),
                }
            })
            .collect()
    }

    /// The engine's evidence about `target` from the history between
    /// `from` and `to` ms (an OOM post-mortem's "a minute before": `to` =
    /// the kill's time − 60 s).
    pub fn evidence(&self, target: &Target, from: u64, to: u64) -> Result<Evidence, NotFound> {
        let mut b = Builder::new(target.clone(), "history");
        for f in self.frames(target, from, to) {
            b.push(f.unix_ms, f.processes.iter(), &f.cgroups, f.system, None);
        }
        b.finish()
    }
}

/// One recorded time of a target, as publication rows.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryFrame {
    /// Unix ms.
    pub unix_ms: u64,
    /// The process and the recorded processes of its cgroup.
    pub processes: Vec<ProcessView>,
    /// The cgroup (none, or one).
    pub cgroups: Vec<CgroupView>,
    /// The system.
    pub system: Option<SystemPoint>,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::view::field_index;

    /// A publication at Unix ms `ms` of process 7 (`grower`, in `/a`)
    /// with this RSS, its cgroup's usage the same.
    pub(crate) fn publication(ms: u64, rss: f64) -> Published {
        let mut v = ProcessView {
            pid: 7,
            comm: "grower".into(),
            start_time_ticks: 1,
            cgroup: Some("/a".into()),
            ..Default::default()
        };
        v.values.set(field_index("rss_bytes"), Some(rss));
        v.values.set(field_index("oom_score"), Some(500.0));
        let mut cg = CgroupView {
            cgroup: "/a".into(),
            names: CgroupNames {
                unit: Some("a.service".into()),
                ..Default::default()
            },
            gone: false,
            oom_candidate: None,
            values: [None; N_CGROUP],
        };
        cg.values[super::super::evidence::cgroup_field_index("memory_usage_bytes", None)] =
            Some(rss);
        let v = Arc::new(v);
        Published {
            unix_ms: ms,
            processes: vec![Arc::clone(&v)],
            recorded: vec![v],
            cgroups: vec![cg],
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_last_minute_dense_and_thins_the_rest() {
        let mut h = History::new(300);
        for s in 0..400u64 {
            h.record(&publication(1_000_000 + s * 1000, (s as f64) * 1e6));
        }
        let (_, ring) = h.process(7).expect("recorded");
        let times: Vec<u64> = ring.points.points.iter().map(|(t, _)| *t).collect();
        let now = 1_000_000 + 399 * 1000;
        // The last point at or before the span's start holds from there.
        assert!(
            times[0] <= now - 300_000 && times[1] > now - 300_000,
            "{times:?}"
        );
        let dense = times.iter().filter(|t| **t >= now - DENSE_MS).count();
        assert_eq!(dense, 61, "every second of the last minute");
        let old: Vec<u64> = times
            .iter()
            .copied()
            .filter(|t| *t < now - DENSE_MS)
            .collect();
        assert!(
            old.windows(2).all(|w| w[1] - w[0] >= THIN_STEP_MS),
            "{old:?}"
        );
        assert!(times.len() <= 61 + 24 + 1, "{} points", times.len());
        // A faster daemon still keeps one point a second.
        h.record(&publication(now + 100, 0.0));
        assert_eq!(
            h.process(7).map(|(_, r)| r.points.points.len()),
            Some(times.len())
        );
    }

    #[test]
    fn an_idle_series_costs_one_point_and_holds_its_value() {
        let mut h = History::new(300);
        for s in 0..400u64 {
            h.record(&publication(3_000_000 + s * 1000, 5e7));
        }
        let (_, ring) = h.process(7).expect("recorded");
        assert_eq!(
            ring.points.points.len(),
            1,
            "one point for a value that never changed"
        );
        let now = 3_000_000 + 399 * 1000;
        let frames = h.frames(&Target::Pid(7), now - 30_000, now);
        assert_eq!(frames.len(), 31, "a frame per recorded second");
        assert!(
            frames
                .iter()
                .all(|f| f.processes.len() == 1 && f.cgroups.len() == 1)
        );
        // Gone from the publications: no value after its last record.
        h.record(&Published {
            unix_ms: now + 1000,
            ..Default::default()
        });
        assert_eq!(
            h.process(7).and_then(|(_, r)| r.points.at(now + 1000)),
            None
        );
    }

    #[test]
    fn evidence_from_history_judges_like_live() {
        let mut h = History::new(300);
        for s in 0..30u64 {
            h.record(&publication(2_000_000 + s * 1000, 1e8 + (s as f64) * 3e6));
        }
        let ev = h
            .evidence(&Target::Pid(7), 2_000_000, 2_000_000 + 20_000)
            .expect("evidence");
        assert_eq!(ev.frames.len(), 21);
        let r = super::super::explain(&ev);
        let g = r.finding("steady_growth").expect("growth");
        assert!((g.evidence[0].value.unwrap_or(0.0) - 3e6).abs() < 1e3);
        // By unit, the cgroup's points.
        let ev = h
            .evidence(&Target::Unit("a.service".into()), 0, u64::MAX)
            .expect("by unit");
        assert_eq!(ev.cgroup.as_deref(), Some("/a"));
        assert_eq!(ev.frames.len(), 30);
        assert!(h.evidence(&Target::Pid(8), 0, u64::MAX).is_err());
    }
}
