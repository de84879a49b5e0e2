//! The one model every sink reads: processes keyed by pid + start time (so a
//! reused pid is a new process), their cumulative counters, probe states
//! and statistics. Fed by [`crate::collector::Sample`]s; no sink reads the
//! kernel or /proc itself.

pub mod oom;
pub mod process;
pub mod view;

use std::collections::HashMap;

use memmon_common::{ExitEvent, ProcCounters, events::EXIT_HAS_TASK};

use crate::{
    collector::Sample,
    probes::{ProbeStatus, StatsSnapshot},
    procfs::{
        ProcRoot, ReadFailure,
        identity::{self, boottime_ns_to_ticks},
    },
};
pub use oom::OomKill;
pub use process::{Process, ProcessKey};
pub use view::ProcessView;

/// Processes and probe state as of the last applied sample.
#[derive(Debug, Default)]
pub struct Model {
    processes: HashMap<ProcessKey, Process>,
    /// Live pid → its current key.
    live: HashMap<u32, ProcessKey>,
    /// Probe states as loaded.
    pub probes: Vec<ProbeStatus>,
    /// Latest kernel statistics.
    pub stats: StatsSnapshot,
    ticks_per_second: u64,
}

impl Model {
    /// An empty model.
    pub fn new(probes: Vec<ProbeStatus>) -> Self {
        Model {
            probes,
            ticks_per_second: identity::ticks_per_second(),
            ..Default::default()
        }
    }

    /// Folds one sample in: live counters (identity read from `root` the
    /// first time a pid is seen) and exit events.
    pub fn apply(&mut self, sample: Sample, root: &ProcRoot) {
        for (tgid, counters) in sample.live {
            self.apply_live(tgid, counters, root);
        }
        for mm in sample.rss {
            if let Some(key) = self.live.get(&mm.tgid)
                && let Some(p) = self.processes.get_mut(key)
            {
                p.rss = Some(mm);
            }
        }
        for exit in &sample.exits {
            self.apply_exit(exit);
        }
        for (tgid, counters) in sample.vanished {
            self.apply_vanished(tgid, counters);
        }
        if let Some(stats) = sample.stats {
            self.stats = stats;
        }
    }

    /// A process gone without an exit event: keep its last counters as
    /// its final ones (identity known only if it was seen alive).
    fn apply_vanished(&mut self, tgid: u32, counters: ProcCounters) {
        let key = self.live.remove(&tgid).unwrap_or(ProcessKey {
            pid: tgid,
            start_time_ticks: 0,
        });
        let p = self
            .processes
            .entry(key)
            .or_insert_with(|| Process::new(key, String::new()));
        p.counters = counters;
        p.exited = true;
        p.vanished = true;
    }

    fn apply_live(&mut self, tgid: u32, counters: ProcCounters, root: &ProcRoot) {
        if let Some(key) = self.live.get(&tgid)
            && let Some(p) = self.processes.get_mut(key)
        {
            // Counters only grow for one process; a drop means the pid was
            // reused and the old exit event was lost.
            if counters.dominates(&p.counters) {
                p.counters = counters;
                return;
            }
            p.exited = true;
            self.live.remove(&tgid);
        }
        match identity::read(root, tgid) {
            Ok(id) => {
                let key = ProcessKey {
                    pid: tgid,
                    start_time_ticks: id.start_time_ticks,
                };
                let p = self
                    .processes
                    .entry(key)
                    .or_insert_with(|| Process::new(key, id.comm.clone()));
                p.ppid = Some(id.ppid);
                p.counters = counters;
                p.exited = false;
                self.live.insert(tgid, key);
            }
            // Exited between the map read and now: its exit event follows.
            Err(ReadFailure::Gone(_)) => {}
            Err(e) => tracing::debug!("identity of pid {tgid}: {e}"),
        }
    }

    fn apply_exit(&mut self, exit: &ExitEvent) {
        let tgid = exit.tgid;
        let has_task = exit.flags & EXIT_HAS_TASK != 0;
        let key = match self.live.remove(&tgid) {
            Some(key) => key,
            None => ProcessKey {
                pid: tgid,
                start_time_ticks: if has_task {
                    boottime_ns_to_ticks(exit.start_boottime_ns, self.ticks_per_second)
                } else {
                    0
                },
            },
        };
        let comm = comm_string(&exit.comm);
        let p = self
            .processes
            .entry(key)
            .or_insert_with(|| Process::new(key, comm.clone()));
        p.record_exit(exit);
    }

    /// Marks the start of a counting window: processes that already exited
    /// are dropped, and every live one's current counters become its
    /// baseline. Processes found vanished stay, with a zero baseline: their
    /// final counts were never reported.
    pub fn start_window(&mut self) {
        self.processes.retain(|_, p| !p.exited || p.vanished);
        for p in self.processes.values_mut() {
            p.baseline = if p.vanished {
                Default::default()
            } else {
                p.counters
            };
        }
    }

    /// Every process the model holds, live or exited.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    /// Views of the processes with activity since the window started.
    pub fn window_views(&self) -> Vec<ProcessView> {
        self.processes
            .values()
            .filter(|p| p.exited || !p.window().is_zero())
            .map(ProcessView::from_process)
            .collect()
    }
}

/// A NUL-padded kernel comm as text (invalid UTF-8 replaced).
pub fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}
