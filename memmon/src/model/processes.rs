//! The model's table of processes: each one keyed by pid + start time (a
//! reused pid is a new process), what the kernel's maps, the exit events,
//! the scan and the memory reads say of it, and which are live.

use std::{collections::HashMap, sync::Arc, time::Instant};

use memmon_common::{ExitEvent, ProcCounters, events::EXIT_HAS_TASK};

use super::{Model, Process, ProcessKey, ProcessView, TaskFaults, fields};
use crate::sample::{
    Identity, MemoryRead, ProcMeta, Sample, Scan, comm_string, cost::Candidate,
    key::boottime_ns_to_ticks, memory::ProcessMemory, numa::NumaUsage,
};
use crate::sources::ProcFile;

/// Scans a process may be missing from /proc before it counts as exited
/// without its exit event.
const MISSING_SCANS_BEFORE_EXIT: u8 = 2;

/// A process the model holds, with its last published row.
#[derive(Debug)]
pub(super) struct Tracked {
    pub(super) process: Process,
    /// Its last published row, shared with every publication since (an
    /// idle process costs no copy per pass).
    pub(super) view: Option<Arc<ProcessView>>,
    /// Rated counters at the previous publication (for per-second rates).
    pub(super) rate_base: Option<(Instant, [Option<f64>; fields::N_RATED])>,
    /// Where its row sits among the published live rows (rows.rs).
    pub(super) slot: Option<usize>,
}

impl Tracked {
    pub(super) fn new(key: ProcessKey, comm: String) -> Box<Self> {
        Box::new(Tracked {
            process: Process::new(key, comm),
            view: None,
            rate_base: None,
            slot: None,
        })
    }
}

impl std::ops::Deref for Tracked {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Model {
    /// Every process the model holds, live or exited.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values().map(|p| &p.process)
    }

    /// True when the model holds a live process with this pid.
    pub fn is_live(&self, pid: u32) -> bool {
        self.live.contains_key(&pid)
    }

    /// True when the model holds `pid` live with this start time (else a
    /// scanned pid is new, and its placement must be read).
    pub fn knows_pid(&self, pid: u32, start_time_ticks: u64) -> bool {
        self.live
            .get(&pid)
            .is_some_and(|k| k.start_time_ticks == start_time_ticks)
    }

    /// True when the collector must read `tgid`'s identity for the next
    /// sample: the model holds no live process for it, or its counters went
    /// back (the pid was reused and the old exit was missed).
    pub fn needs_identity(&self, tgid: u32, counters: &ProcCounters) -> bool {
        match self.live.get(&tgid).and_then(|k| self.processes.get(k)) {
            Some(p) => !counters.dominates(&p.counters),
            None => true,
        }
    }

    /// The live processes once `sample` is applied, with their resident
    /// size and a fingerprint of their activity, for the memory cost
    /// guard: each process its scan lists (a repeated reading only of one
    /// the model holds live and that did not exit in `sample`), those
    /// without an address space (kernel threads, zombies) left out.
    pub fn memory_candidates(&self, sample: &Sample) -> Vec<Candidate> {
        let Some(scan) = &sample.scan else {
            return Vec::new();
        };
        let page = self.page_size();
        let exited: crate::fast_hash::FastSet<u32> = sample.exits.iter().map(|e| e.tgid).collect();
        if !scan.complete {
            // The scan listed what changed: the others are as the model
            // holds them.
            let changed: HashMap<u32, &Identity> =
                scan.identities.iter().map(|id| (id.pid, id)).collect();
            let gone: crate::fast_hash::FastSet<u32> = scan.gone.iter().copied().collect();
            let mut out: Vec<Candidate> = self
                .processes
                .values()
                .filter(|p| {
                    !p.exited
                        && !exited.contains(&p.key.pid)
                        && !gone.contains(&p.key.pid)
                        && !changed.contains_key(&p.key.pid)
                        && p.vm_bytes.is_some_and(|v| v != 0)
                })
                .map(|p| Candidate {
                    key: p.key,
                    rss: p.rss_bytes.unwrap_or(0),
                    activity: p
                        .task
                        .zip(p.vm_bytes)
                        .map(|(t, vm)| t.minor ^ t.major.rotate_left(21) ^ vm.rotate_left(42)),
                })
                .collect();
            out.extend(
                scan.identities
                    .iter()
                    .filter(|id| id.vsize_bytes != 0 && !exited.contains(&id.pid))
                    .map(|id| Candidate {
                        key: ProcessKey {
                            pid: id.pid,
                            start_time_ticks: id.start_time_ticks,
                        },
                        rss: id.rss_pages * page,
                        activity: Some(
                            id.minflt ^ id.majflt.rotate_left(21) ^ id.vsize_bytes.rotate_left(42),
                        ),
                    }),
            );
            return out;
        }
        scan.identities
            .iter()
            .filter(|id| id.vsize_bytes != 0)
            .map(|id| {
                let key = ProcessKey {
                    pid: id.pid,
                    start_time_ticks: id.start_time_ticks,
                };
                (id, key)
            })
            .filter(|(id, key)| {
                id.fresh
                    || (!exited.contains(&id.pid)
                        && self.processes.get(key).is_some_and(|p| !p.exited))
            })
            .map(|(id, key)| Candidate {
                key,
                rss: id.rss_pages * page,
                activity: Some(
                    id.minflt ^ id.majflt.rotate_left(21) ^ id.vsize_bytes.rotate_left(42),
                ),
            })
            .collect()
    }

    /// The kernel map's live counters, with the identities the collector
    /// read for pids the model did not know.
    pub(super) fn apply_live_counters(
        &mut self,
        live: Vec<(u32, ProcCounters)>,
        mut infos: HashMap<u32, (Identity, ProcMeta)>,
    ) {
        for (tgid, counters) in live {
            let info = infos.remove(&tgid);
            self.apply_live(tgid, counters, info);
        }
    }

    /// Live processes that moved to another memory cgroup take it (and the
    /// names its path carries) from now on: their rollups and the cgroups
    /// read follow them. A process's counts so far go with it, as the
    /// kernel's exit totals charge a process's whole life to the cgroup it
    /// exits in; the cgroup it left keeps what it published (its counters
    /// never go back).
    pub(super) fn apply_moves(&mut self, moved: HashMap<u32, ProcMeta>) {
        for (pid, meta) in moved {
            let Some(key) = self.live.get(&pid).copied() else {
                continue;
            };
            self.update(key, |p| {
                if p.exited || meta.cgroup.is_none() || meta.cgroup == p.cgroup {
                    return;
                }
                tracing::debug!(
                    pid,
                    from = p.cgroup.as_deref().unwrap_or("?"),
                    to = meta.cgroup.as_deref().unwrap_or("?"),
                    "moved to another memory cgroup"
                );
                p.set_meta(meta);
            });
        }
    }

    /// Exit events, in kernel order; `cgroups` names the memory cgroups
    /// of their ids.
    pub(super) fn apply_exits(&mut self, exits: &[ExitEvent], cgroups: &HashMap<u64, ProcMeta>) {
        for exit in exits {
            self.apply_exit(exit, cgroups);
        }
    }

    /// Map entries that outlived their process without an exit event.
    pub(super) fn apply_vanished(&mut self, vanished: Vec<(u32, ProcCounters)>) {
        for (tgid, counters) in vanished {
            self.apply_vanished_one(tgid, counters);
        }
    }

    /// Folds a process scan in ([`Model::apply_scan_of`]), noting which
    /// scan read it.
    pub(super) fn apply_scan(&mut self, scan: Scan) {
        self.task_iter = scan.task_iter;
        let cost = &mut self.scan_cost;
        if scan.full {
            cost.full_total += 1;
        } else {
            cost.changed_total += 1;
        }
        cost.read = scan.read;
        cost.changed = scan.identities.iter().filter(|id| id.fresh).count() as u64;
        if scan.complete {
            self.apply_scan_of(scan.identities, scan.metas);
        } else {
            self.apply_changes(scan.identities, scan.metas, scan.gone);
        }
    }

    /// Folds a scan of what changed in: the processes that changed (new
    /// ones included) and those found gone. A gone process counts as
    /// missing in this pass and the next ([`Model::count_missing`]), as a
    /// process missing from a full scan does; the others are untouched.
    pub(super) fn apply_changes(
        &mut self,
        changed: Vec<Identity>,
        mut metas: HashMap<u32, ProcMeta>,
        gone: Vec<u32>,
    ) {
        self.scans += 1;
        let this_scan = self.scans;
        for id in changed {
            self.apply_identity(id, &mut metas, this_scan);
        }
        // Gone in an earlier pass and not exited since: missing again.
        let pending: Vec<(u32, ProcessKey)> = self.gone.drain().collect();
        for (pid, key) in pending {
            if self.live.get(&pid) == Some(&key) {
                self.count_missing(pid, key);
            }
        }
        for pid in gone {
            if let Some(key) = self.live.get(&pid).copied() {
                self.count_missing(pid, key);
            }
        }
    }

    /// Folds a /proc scan in: every live process's identity, resident and
    /// virtual size, and the kernel's fault totals; `metas` holds the
    /// placement of the pids new to the model ([`Model::knows_pid`]). Live
    /// processes missing from the scan have exited (their exit event, if
    /// any, brings the final counts).
    pub(super) fn apply_scan_of(&mut self, scan: Vec<Identity>, mut metas: HashMap<u32, ProcMeta>) {
        self.scans += 1;
        let this_scan = self.scans;
        // A complete scan finds the missing ones itself.
        self.gone.clear();
        for id in scan {
            self.apply_identity(id, &mut metas, this_scan);
        }
        // Missing from /proc: exiting. Its exit event normally arrives in
        // the next pass with the final counts; after two scans without one,
        // take the last counts as final.
        let missing: Vec<(u32, ProcessKey)> = self
            .live
            .iter()
            .filter(|(_, key)| {
                self.processes
                    .get(key)
                    .is_none_or(|p| p.seen_scan != this_scan)
            })
            .map(|(pid, key)| (*pid, *key))
            .collect();
        for (pid, key) in missing {
            self.count_missing(pid, key);
        }
    }

    /// One process as a scan read it (its placement in `metas` when it is
    /// new to the model).
    fn apply_identity(&mut self, id: Identity, metas: &mut HashMap<u32, ProcMeta>, this_scan: u64) {
        let page = self.page_size();
        {
            let key = ProcessKey {
                pid: id.pid,
                start_time_ticks: id.start_time_ticks,
            };
            // A repeated reading never brings back a process the model no
            // longer holds as live.
            if !id.fresh && self.processes.get(&key).is_none_or(|p| p.exited) {
                return;
            }
            if let Some(old) = self.live.get(&id.pid).copied()
                && old != key
            {
                // The pid was reused and the old exit was missed.
                self.update(old, |p| {
                    p.exited = true;
                    p.dirty = true;
                });
            }
            self.live.insert(id.pid, key);
            if !self.processes.contains_key(&key) {
                let mut p = Tracked::new(key, id.comm.clone());
                p.set_meta(metas.remove(&id.pid).unwrap_or_default());
                self.insert(p);
            }
            self.update(key, |p| {
                if id.fresh {
                    let task = Some(TaskFaults {
                        minor: id.minflt,
                        major: id.majflt,
                    });
                    let (rss, vm) = (Some(id.rss_pages * page), Some(id.vsize_bytes));
                    let members = id.rss_members.map(|m| m.map(|pages| pages * page));
                    if p.task != task
                        || p.rss_bytes != rss
                        || p.vm_bytes != vm
                        || p.ppid != Some(id.ppid)
                        || (!id.comm.is_empty() && p.comm != id.comm)
                        || (members.is_some() && p.rss != members)
                    {
                        p.dirty = true;
                    }
                    if members.is_some() {
                        p.rss = members;
                    }
                    p.task = task;
                    if !id.comm.is_empty() {
                        p.comm = id.comm;
                    }
                    p.ppid = Some(id.ppid);
                    p.rss_bytes = rss;
                    p.vm_bytes = vm;
                }
                if p.exited {
                    p.exited = false;
                    p.dirty = true;
                }
                p.missing_scans = 0;
                p.seen_scan = this_scan;
            });
        }
    }

    /// A live process a scan found missing: exiting. Its exit event
    /// normally arrives in the next pass with the final counts; after two
    /// scans without one, its last counts are taken as final.
    fn count_missing(&mut self, pid: u32, key: ProcessKey) {
        let mut gone = false;
        let held = self.update(key, |p| {
            p.missing_scans = p.missing_scans.saturating_add(1);
            if p.missing_scans >= MISSING_SCANS_BEFORE_EXIT {
                p.exited = true;
                p.dirty = true;
                gone = true;
            }
        });
        if gone || !held {
            self.live.remove(&pid);
        } else {
            self.gone.insert(pid, key);
        }
    }

    /// Folds the cost-guarded memory reads in (each process's memory and
    /// NUMA placement, the cgroups read again with them, what the reads
    /// cost, whether smaps_rollup is there), then the system view.
    pub(super) fn apply_memory(&mut self, m: MemoryRead, now: Instant) {
        for (key, memory, numa) in m.processes {
            self.apply_process_memory(key, memory, numa);
        }
        self.apply_moves(m.moved);
        self.memory_cost = m.cost;
        match m.smaps_rollup {
            Some(true) => {
                self.missing_files.remove(&ProcFile::SmapsRollup);
            }
            Some(false) => {
                self.missing_files.insert(ProcFile::SmapsRollup);
            }
            None => {}
        }
        self.missing_sources.extend(m.missing);
        self.apply_system(m.system, now);
    }

    /// Stores a process's memory and NUMA readings.
    fn apply_process_memory(
        &mut self,
        key: ProcessKey,
        memory: ProcessMemory,
        numa: Option<NumaUsage>,
    ) {
        self.update(key, |p| {
            if p.memory.as_ref() != Some(&memory)
                || (numa.is_some() && p.numa.as_deref() != numa.as_ref())
            {
                p.dirty = true;
            }
            p.memory = Some(memory);
            if let Some(numa) = numa {
                p.numa = Some(Box::new(numa));
            }
        });
    }

    /// The process each of `pids` names: the live one, else the latest one
    /// that exited and is still held (a killed process's exit event usually
    /// arrives in the same sample as the kill). One pass over the model,
    /// however many kills.
    pub(super) fn last_known(
        &self,
        pids: impl IntoIterator<Item = u32>,
    ) -> HashMap<u32, ProcessKey> {
        let mut out: HashMap<u32, ProcessKey> = HashMap::new();
        let mut dead = crate::fast_hash::FastSet::default();
        for pid in pids {
            match self.live.get(&pid) {
                Some(k) => {
                    out.insert(pid, *k);
                }
                None => {
                    dead.insert(pid);
                }
            }
        }
        if !dead.is_empty() {
            for p in self.processes.values() {
                if p.exited
                    && dead.contains(&p.key.pid)
                    && out
                        .get(&p.key.pid)
                        .is_none_or(|k| k.start_time_ticks < p.key.start_time_ticks)
                {
                    out.insert(p.key.pid, p.key);
                }
            }
        }
        out
    }

    /// Gives back the room a burst of processes left (after a pid storm the
    /// maps keep their peak capacity); true when something shrank.
    pub fn shrink(&mut self) -> bool {
        let roomy = |len: usize, cap: usize| cap > 2 * len + 1024;
        let shrink = roomy(self.processes.len(), self.processes.capacity())
            || roomy(self.live.len(), self.live.capacity());
        if shrink {
            self.processes.shrink_to_fit();
            self.live.shrink_to_fit();
        }
        shrink
    }

    /// A process gone without an exit event: keep its last counters as
    /// its final ones (identity known only if it was seen alive).
    fn apply_vanished_one(&mut self, tgid: u32, counters: ProcCounters) {
        let key = self.live.remove(&tgid).unwrap_or(ProcessKey {
            pid: tgid,
            start_time_ticks: 0,
        });
        if !self.processes.contains_key(&key) {
            self.insert(Tracked::new(key, String::new()));
        }
        self.update(key, |p| {
            p.counters.set(counters);
            p.exited = true;
            p.vanished = true;
            p.dirty = true;
        });
    }

    /// One process's live counters (with its identity when the model did
    /// not know it).
    fn apply_live(
        &mut self,
        tgid: u32,
        counters: ProcCounters,
        info: Option<(Identity, ProcMeta)>,
    ) {
        if let Some(key) = self.live.get(&tgid).copied()
            && let Some(p) = self.processes.get(&key)
        {
            // Counters only grow for one process; a drop means the pid was
            // reused and the old exit event was lost.
            if counters.dominates(&p.counters) {
                if counters != *p.counters {
                    self.update(key, |p| {
                        p.counters.set(counters);
                        p.dirty = true;
                    });
                }
                return;
            }
            self.update(key, |p| {
                p.exited = true;
                p.dirty = true;
            });
            self.live.remove(&tgid);
        }
        // No identity: it exited between the map read and the collector's
        // read of /proc (its exit event follows).
        let Some((id, meta)) = info else {
            return;
        };
        let page = self.page_size();
        let key = ProcessKey {
            pid: tgid,
            start_time_ticks: id.start_time_ticks,
        };
        if !self.processes.contains_key(&key) {
            self.insert(Tracked::new(key, id.comm.clone()));
        }
        self.update(key, |p| {
            p.ppid = Some(id.ppid);
            p.counters.set(counters);
            p.exited = false;
            p.dirty = true;
            if p.cgroup.is_none() {
                p.set_meta(meta);
            }
            p.rss_bytes = Some(id.rss_pages * page);
            p.vm_bytes = Some(id.vsize_bytes);
            if p.task.is_none() {
                p.task = Some(TaskFaults {
                    minor: id.minflt,
                    major: id.majflt,
                });
            }
        });
        self.live.insert(tgid, key);
    }

    /// One exit event.
    fn apply_exit(&mut self, exit: &ExitEvent, cgroups: &HashMap<u64, ProcMeta>) {
        let tgid = exit.tgid;
        let has_task = exit.flags & EXIT_HAS_TASK != 0;
        let key = match self.live.remove(&tgid) {
            Some(key) => key,
            None => ProcessKey {
                pid: tgid,
                start_time_ticks: if has_task {
                    boottime_ns_to_ticks(
                        exit.start_boottime_ns,
                        self.host.map_or(100, |h| h.ticks_per_second),
                    )
                } else {
                    0
                },
            },
        };
        if !self.processes.contains_key(&key) {
            self.insert(Tracked::new(key, comm_string(&exit.comm)));
        }
        self.update(key, |p| {
            p.record_exit(exit);
            // Born and gone between two scans: its cgroup from the exit
            // event.
            if p.cgroup.is_none()
                && let Some(id) = p.exit_cgroup_id
                && let Some(meta) = cgroups.get(&id)
            {
                p.set_meta(meta.clone());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Host;

    fn id(pid: u32, fresh: bool, vsize_bytes: u64) -> Identity {
        Identity {
            pid,
            comm: if fresh {
                format!("p{pid}")
            } else {
                String::new()
            },
            ppid: 1,
            start_time_ticks: u64::from(pid) * 10,
            minflt: 5,
            majflt: 1,
            rss_pages: u64::from(pid),
            vsize_bytes,
            rss_members: None,
            fresh,
        }
    }

    /// The memory reads' candidates are the processes live once the
    /// sample is applied: a fresh reading, or a repeat of one the model
    /// holds live that did not exit in it; never one without an address
    /// space.
    #[test]
    fn memory_candidates_are_the_processes_live_after_the_sample() {
        let host = Host {
            page_size: 4096,
            ticks_per_second: 100,
        };
        let mut m = Model::new(Vec::new(), host);
        m.apply_scan_of(
            vec![id(1, true, 1 << 20), id(2, true, 1 << 20)],
            HashMap::new(),
        );
        let exit = ExitEvent {
            kind: memmon_common::events::EVENT_EXIT,
            flags: 0,
            tgid: 2,
            ppid: 1,
            start_boottime_ns: 0,
            task_min_flt: 0,
            task_maj_flt: 0,
            cgroup_id: 0,
            comm: [0; 16],
            counters: ProcCounters::default(),
        };
        let sample = Sample {
            exits: vec![exit],
            scan: Some(Scan {
                identities: vec![
                    id(1, false, 1 << 20), // held live, unchanged
                    id(2, false, 1 << 20), // exited in this sample
                    id(3, true, 1 << 20),  // new
                    id(4, true, 0),        // a kernel thread
                    id(5, false, 1 << 20), // a repeat of one never held
                ],
                complete: true,
                ..Scan::default()
            }),
            ..Sample::default()
        };
        let c = m.memory_candidates(&sample);
        let pids: Vec<u32> = c.iter().map(|c| c.key.pid).collect();
        assert_eq!(pids, [1, 3]);
        assert_eq!(c[1].rss, 3 * 4096);
        assert_eq!(c[1].key.start_time_ticks, 30);
        assert!(c[1].activity.is_some());
        assert!(
            m.memory_candidates(&Sample::default()).is_empty(),
            "no scan"
        );
    }
}
