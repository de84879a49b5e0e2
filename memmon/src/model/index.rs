//! What the model keeps up to date per changed process, so that a pass
//! costs what changed and not what exists: each memory cgroup's sums over
//! its live processes and its OOM candidates (keyed by a cgroup index, not
//! by hashing each process's path every pass), the live processes by
//! resident size (the flight recorder's largest), the processes whose rows
//! must be built again, and those marked exited since the last fold.
//!
//! Every change to a process goes through [`Model::update`]: its part is
//! taken out of the index before and put back after, both computed from
//! the process itself ([`Part`]), so the sums cannot drift from what the
//! processes say.

use std::{cmp::Reverse, collections::BTreeSet, sync::Arc};

use super::{Model, Process, ProcessKey, Totals, history, processes::Tracked};
use crate::fast_hash::{FastMap, FastSet};

/// A memory cgroup's index (stable while the model runs).
pub type CgId = u32;

/// One memory cgroup's live sums.
#[derive(Debug, Default)]
pub(super) struct CgSlot {
    /// Its path ("" for processes whose cgroup is unknown).
    pub(super) path: Arc<str>,
    /// Sums over its live processes (counts, faults, resident size).
    pub(super) live: Totals,
    /// Its live processes with an OOM score, by score.
    pub(super) oom: BTreeSet<(i64, ProcessKey)>,
}

/// The index.
#[derive(Debug, Default)]
pub(super) struct Index {
    ids: FastMap<Arc<str>, CgId>,
    pub(super) slots: Vec<CgSlot>,
    /// Live processes by resident size (read backwards: largest first,
    /// ties by key, lowest first).
    pub(super) by_rss: BTreeSet<(u64, Reverse<ProcessKey>)>,
    /// The fault source the sums were made with (when it changes, every
    /// process's part changes: the sums are made again).
    fault_probes: bool,
    /// Processes changed since their rows were last built.
    pub(super) touched: FastSet<ProcessKey>,
    /// Processes marked exited since the last fold.
    pub(super) exited: Vec<ProcessKey>,
}

/// What one process adds to the index.
struct Part<'a> {
    cg: &'a str,
    live: bool,
    rss: u64,
    oom_score: Option<i64>,
}

impl<'a> Part<'a> {
    fn of(p: &'a Process) -> Part<'a> {
        Part {
            cg: p.cgroup.as_deref().unwrap_or_default(),
            live: !p.exited,
            rss: p.rss_bytes.unwrap_or(0),
            oom_score: p.memory.as_ref().and_then(|m| m.oom_score),
        }
    }
}

impl Index {
    /// The index of cgroup `path`, made on first use.
    pub(super) fn id(&mut self, path: &str) -> CgId {
        if let Some(id) = self.ids.get(path) {
            return *id;
        }
        let id = self.slots.len() as CgId;
        let path: Arc<str> = Arc::from(path);
        self.ids.insert(Arc::clone(&path), id);
        self.slots.push(CgSlot {
            path,
            ..CgSlot::default()
        });
        id
    }

    /// Takes `p`'s part out.
    fn remove(&mut self, p: &Process) {
        let part = Part::of(p);
        if !part.live {
            return;
        }
        self.by_rss.remove(&(part.rss, Reverse(p.key)));
        let fault_probes = self.fault_probes;
        let id = self.id(part.cg);
        let slot = &mut self.slots[id as usize];
        slot.live.sub_live(p, fault_probes);
        if let Some(score) = part.oom_score {
            slot.oom.remove(&(score, p.key));
        }
    }

    /// Puts `p`'s part in.
    fn add(&mut self, p: &Process) {
        let part = Part::of(p);
        if !part.live {
            return;
        }
        self.by_rss.insert((part.rss, Reverse(p.key)));
        let fault_probes = self.fault_probes;
        let id = self.id(part.cg);
        let slot = &mut self.slots[id as usize];
        slot.live.add_live(p, fault_probes);
        if let Some(score) = part.oom_score {
            slot.oom.insert((score, p.key));
        }
    }
}

impl Model {
    /// Changes process `key` with `f`, keeping the index in step (its part
    /// out before, in after; a row to build if it is now dirty; a fold to
    /// come if it just exited). False when the model does not hold it.
    pub(super) fn update(&mut self, key: ProcessKey, f: impl FnOnce(&mut Tracked)) -> bool {
        let Some(p) = self.processes.get_mut(&key) else {
            return false;
        };
        let was_exited = p.exited;
        self.index.remove(p);
        f(p);
        self.index.add(p);
        if p.dirty {
            self.index.touched.insert(key);
        }
        if p.exited && !was_exited {
            self.index.exited.push(key);
        }
        true
    }

    /// Adds process `p` to the table (replacing any with its key), indexed.
    pub(super) fn insert(&mut self, p: Box<Tracked>) {
        let key = p.key;
        if let Some(old) = self.processes.remove(&key) {
            self.index.remove(&old);
        }
        self.index.add(&p);
        self.index.touched.insert(key);
        if p.exited {
            self.index.exited.push(key);
        }
        self.processes.insert(key, p);
    }

    /// Takes process `key` out of the table and the index.
    pub(super) fn remove_process(&mut self, key: &ProcessKey) -> Option<Box<Tracked>> {
        let p = self.processes.remove(key)?;
        self.index.remove(&p);
        self.index.touched.remove(key);
        if let Some(slot) = p.slot {
            self.drop_row(slot);
        }
        Some(p)
    }

    /// Makes the sums again when the fault source changed since they were
    /// made (a fault probe attached or suspended): every process's part
    /// depends on it.
    pub(super) fn reindex_if_needed(&mut self) {
        let fault_probes = self.fault_probes();
        if fault_probes == self.index.fault_probes {
            return;
        }
        for slot in &mut self.index.slots {
            slot.live = Totals::default();
            slot.oom.clear();
        }
        self.index.by_rss.clear();
        self.index.fault_probes = fault_probes;
        for p in self.processes.values() {
            self.index.add(p);
        }
    }

    /// The live processes the flight recorders keep: the `largest` by
    /// resident size and, in each memory cgroup, the first
    /// [`history::PER_CGROUP`] by oom_score (the kill candidates of a memcg
    /// OOM), up to [`history::MAX_EXTRA_PROCESSES`] more. Read from the
    /// index, so it costs what is chosen, not what lives (a process whose
    /// oom_score was not read yet is chosen by its size alone).
    pub fn recorded_keys(&self, largest: usize) -> Vec<ProcessKey> {
        let mut chosen: FastSet<ProcessKey> = FastSet::default();
        let mut out = Vec::new();
        for (_, Reverse(key)) in self.index.by_rss.iter().rev().take(largest) {
            chosen.insert(*key);
            out.push(*key);
        }
        let mut extra = 0;
        // Slots in the order their cgroups were first seen: stable while
        // the model runs.
        for slot in self.index.slots.iter().filter(|s| !s.path.is_empty()) {
            for (_, key) in slot.oom.iter().rev().take(history::PER_CGROUP) {
                if extra == history::MAX_EXTRA_PROCESSES {
                    return out;
                }
                if chosen.insert(*key) {
                    out.push(*key);
                    extra += 1;
                }
            }
        }
        out
    }

    /// The keys of the live processes with a resident set, largest first
    /// (ties by key, lowest first), at most `n`.
    pub(super) fn largest_keys(&self, n: usize) -> impl Iterator<Item = ProcessKey> + '_ {
        self.index
            .by_rss
            .iter()
            .rev()
            .take_while(|(rss, _)| *rss > 0)
            .take(n)
            .map(|(_, Reverse(key))| *key)
    }

    /// Per live cgroup index, the sums over its live processes.
    pub(super) fn live_sums(&self) -> impl Iterator<Item = (&str, &Totals)> {
        self.index
            .slots
            .iter()
            .filter(|s| s.live.live_processes > 0)
            .map(|s| (&*s.path, &s.live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Host;

    fn model() -> Model {
        Model::new(
            Vec::new(),
            Host {
                page_size: 4096,
                ticks_per_second: 100,
            },
        )
    }

    fn process(pid: u32, cg: &str, rss: u64) -> Box<Tracked> {
        let key = ProcessKey {
            pid,
            start_time_ticks: 1,
        };
        let mut p = Tracked::new(key, format!("p{pid}"));
        p.cgroup = Some(cg.to_string());
        p.rss_bytes = Some(rss);
        p.counters.major_faults = u64::from(pid);
        p
    }

    /// The sums follow every change (a move, a size change, an exit) and
    /// equal a fresh sum over the processes, whatever order the changes
    /// come in.
    #[test]
    fn sums_follow_each_change_and_equal_a_fresh_sum() {
        let mut m = model();
        m.insert(process(1, "/a", 100));
        m.insert(process(2, "/a", 50));
        m.insert(process(3, "/b", 7));
        let key = |pid| ProcessKey {
            pid,
            start_time_ticks: 1,
        };
        assert!(m.update(key(2), |p| p.cgroup = Some("/b".into())));
        assert!(m.update(key(1), |p| p.rss_bytes = Some(1000)));
        assert!(m.update(key(3), |p| p.exited = true));
        assert!(!m.update(key(9), |_| unreachable!()));
        let sums: Vec<(String, u64, u64, u64)> = m
            .live_sums()
            .map(|(path, t)| {
                (
                    path.to_string(),
                    t.live_processes,
                    t.rss_bytes,
                    t.counters.major_faults,
                )
            })
            .collect();
        assert_eq!(
            sums,
            [("/a".to_string(), 1, 1000, 1), ("/b".to_string(), 1, 50, 2)]
        );
        assert_eq!(m.index.exited, [key(3)]);
        let largest: Vec<u32> = m.index.by_rss.iter().rev().map(|(_, k)| k.0.pid).collect();
        assert_eq!(
            largest,
            [1, 2],
            "live processes by size; the exited one left"
        );
        assert!(m.remove_process(&key(1)).is_some());
        assert_eq!(m.live_sums().count(), 1);
    }

    /// The ranking by RSS read from the index is the one a sort of every
    /// row gives (largest first, ties by pid, no process without a
    /// resident set), after changes, and its rows are the current ones.
    #[test]
    fn rows_by_rss_rank_as_a_sort_of_every_row() {
        let mut m = model();
        for (pid, rss) in [(5, 300), (2, 300), (9, 0), (4, 700), (7, 300), (1, 50)] {
            m.insert(process(pid, "/a", rss));
        }
        let key = |pid| ProcessKey {
            pid,
            start_time_ticks: 1,
        };
        assert!(m.update(key(1), |p| {
            p.rss_bytes = Some(300);
            p.dirty = true;
        }));
        let rows = m.live_rows(std::time::Instant::now());
        let mut sorted: Vec<(u64, u32)> = rows
            .iter()
            .filter_map(|v| Some((v.whole(crate::model::view::idx::RSS)?, v.pid)))
            .filter(|(rss, _)| *rss > 0)
            .collect();
        sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for n in [0, 1, 2, 3, 5, 10] {
            let ranked: Vec<(u64, u32)> = m
                .rows_by_rss(n)
                .iter()
                .filter_map(|v| Some((v.whole(crate::model::view::idx::RSS)?, v.pid)))
                .collect();
            assert_eq!(ranked, sorted[..n.min(sorted.len())], "top {n}");
        }
        assert_eq!(sorted[..3], [(700, 4), (300, 1), (300, 2)]);
    }

    /// The recorders keep the largest and, per cgroup, the first three by
    /// oom_score, however small; not the exited.
    #[test]
    fn records_the_largest_and_each_cgroups_first_by_oom_score() {
        let mut m = model();
        let scored = |pid, cg, rss, score: Option<i64>| {
            let mut p = process(pid, cg, rss);
            p.memory = score.map(|s| crate::sample::memory::ProcessMemory {
                oom_score: Some(s),
                ..Default::default()
            });
            p
        };
        m.insert(scored(1, "/big", 1000, Some(10)));
        m.insert(scored(2, "/big", 900, Some(9)));
        // A small cgroup: four processes, the first three by oom_score are
        // kept though all are small.
        m.insert(scored(3, "/small", 1, Some(500)));
        m.insert(scored(4, "/small", 2, Some(1)));
        m.insert(scored(5, "/small", 3, Some(400)));
        m.insert(scored(6, "/small", 4, Some(300)));
        m.insert(scored(7, "/other", 5, None));
        m.insert(scored(8, "/gone", 5000, Some(900)));
        assert!(m.update(
            ProcessKey {
                pid: 8,
                start_time_ticks: 1
            },
            |p| p.exited = true
        ));
        let mut pids: Vec<u32> = m.recorded_keys(1).iter().map(|k| k.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, [1, 2, 3, 5, 6]);
        assert_eq!(m.recorded_keys(100).len(), 7);
    }
}
