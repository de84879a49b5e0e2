//! The one model every sink reads: processes keyed by pid + start time (so a
//! reused pid is a new process), their cumulative counters, their memory
//! cgroups, kills, probe states and statistics. Pure: it applies the
//! collector's [`Sample`]s with the time they were taken
//! ([`Model::apply`]), and reads no file, kernel map or clock itself. Its
//! state is private; each topic's methods live in the topic's own file:
//! `processes.rs` (the table of processes), `rows.rs` (published rows,
//! rates, the counting window, the flight recorder), `kills.rs` (OOM kills
//! and SIGKILLs), `cgroups.rs` (the cgroups' own files), `rollup.rs`
//! (per-cgroup totals), `kernel.rs` (probe states, statistics, program
//! costs), `liveness.rs` (which sources are live), `system.rs` (the
//! system view and allocator maps).

pub mod budget;
pub mod caps;
pub mod cgroup_ids;
pub mod cgroups;
pub mod explain;
pub mod fault_sampling;
pub mod fields;
pub mod forecast;
pub mod history;
pub mod incident;
mod incident_assembly;
mod index;
mod kernel;
mod kills;
mod liveness;
pub mod oom;
pub mod oom_limit;
pub mod process;
mod processes;
pub mod profile;
pub mod profile_window;
pub mod published;
pub mod resident;
pub mod rollup;
mod rows;
pub mod system;
pub mod system_fields;
#[cfg(test)]
mod totals_tests;
pub mod view;

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

use crate::fast_hash::FastMap;
use crate::sample::{
    Host, Now, Sample, alloc::AllocSample, cost::CycleCost, probe_status::ProbeStatus,
    stats::StatsSnapshot,
};
pub use oom::{OomKill, SignalKill};
pub use process::{Process, ProcessKey, TaskFaults};
pub use rollup::Totals;
pub use view::ProcessView;

/// Processes, cgroups, kills and probe state as of the last applied
/// sample. Private: each topic's file reads and changes its own fields.
#[derive(Debug, Default)]
pub struct Model {
    // The table of processes (processes.rs, rows.rs).
    /// Boxed: a table slot holds a pointer, not 1.2 KB (a map sized for
    /// 10,000 processes has ~16,000 slots).
    processes: FastMap<ProcessKey, Box<processes::Tracked>>,
    /// Live pid → its current key.
    live: FastMap<u32, ProcessKey>,
    /// Live processes a scan of what changed found gone, not yet exited:
    /// counted missing again at the next scan.
    gone: FastMap<u32, ProcessKey>,
    /// Scans applied so far (a process seen in the last one carries its
    /// number in `Process::seen_scan`).
    scans: u64,
    /// What the last per-process memory pass cost.
    memory_cost: CycleCost,
    /// What the process scans read.
    scan_cost: crate::sample::cost::ScanCost,
    /// What the cached rows were built with (live fields, fault source).
    view_inputs: Option<(fields::LiveFields, bool)>,
    /// Every live process's row, as last published (rows.rs); each
    /// process knows its slot.
    rows: Vec<std::sync::Arc<ProcessView>>,
    /// Processes whose last row had a rate not yet back to 0: built again
    /// at the next publication.
    unsettled: Vec<ProcessKey>,
    /// When the rows were last published.
    rows_at: Option<Instant>,
    /// What the live rows were built with.
    rows_inputs: Option<(fields::LiveFields, bool)>,
    /// Per-cgroup live sums, OOM candidates, the largest processes, the
    /// rows to build: kept up to date per changed process (index.rs).
    index: index::Index,
    /// Recent samples of the processes an OOM kill could take and of the
    /// memory cgroups (OOM flight recorder).
    recorder: history::FlightRecorder,
    /// The Unix ms of the last pass recorded ([`Model::record_history`]).
    last_pass_unix_ms: u64,
    /// Post-mortems begun by this sample's kills, completed at its end.
    pending_incidents: Vec<incident::Pending>,
    /// Those completed, for what the model cannot add
    /// ([`Model::take_completed_incidents`]).
    completed_incidents: Vec<incident::Incident>,
    /// Completed post-mortems, oldest first (at most `incident::RECENT`).
    incidents: VecDeque<std::sync::Arc<incident::Incident>>,
    /// Post-mortems made since start, by kind (`oom_kill`, `sigkill`).
    incidents_total: std::collections::BTreeMap<&'static str, u64>,
    /// Kills whose post-mortem was not assembled (SIGKILLs beyond
    /// `incident::SIGKILLS_PER_MINUTE`).
    incidents_skipped: u64,
    /// Kernel times of the SIGKILL post-mortems of the last minute.
    sigkill_incidents: VecDeque<u64>,
    host: Option<Host>,

    // Kills (kills.rs).
    /// Recent OOM kills, oldest first (at most RECENT_OOMS).
    recent_ooms: VecDeque<OomKill>,
    /// OOM kills seen since start.
    oom_kills_total: u64,
    /// Recent SIGKILLs, oldest first (at most RECENT_OOMS).
    recent_sigkills: VecDeque<SignalKill>,
    /// Kills since start by cause (`oom`, `sigkill`, `kernel`).
    kills_total: std::collections::BTreeMap<&'static str, u64>,

    // Memory cgroups (cgroups.rs) and their totals (rollup.rs).
    /// Memory cgroups as read from their own files, with forecasts.
    cgroups: cgroups::Cgroups,
    /// Final counts of processes folded out of the model, per cgroup
    /// ("" when unknown): with the live processes, every cgroup's totals.
    exited_totals: HashMap<String, Totals>,
    /// Of those, the processes found vanished (they exited while no exit
    /// probe ran, so the kernel's per-memcg exit totals lack them).
    vanished_totals: HashMap<String, Totals>,
    /// The kernel's per-memory-cgroup totals of exited processes (pinned:
    /// they span restarts), by cgroup path; `None` while the exit probe is
    /// not attached.
    kernel_exits: Option<HashMap<String, memmon_common::MemcgExits>>,
    /// The cgroup totals last published: none goes below them.
    totals_floor: FastMap<String, Totals>,

    // The kernel side (kernel.rs).
    /// Probe states as loaded.
    probes: Vec<ProbeStatus>,
    /// Latest kernel statistics.
    stats: StatsSnapshot,
    /// Each loaded program's cost this pass (empty without the kernel's
    /// run-time statistics).
    program_costs: Vec<budget::ProgramCost>,
    program_runs_prev: Option<(Instant, Vec<crate::sample::stats::ProgramRuns>)>,

    // Which sources are live (liveness.rs).
    /// /proc sources found missing so far, each with what goes unreported.
    missing_sources: std::collections::BTreeSet<String>,
    /// The per-process /proc files this kernel lacks.
    missing_files: std::collections::BTreeSet<crate::sources::ProcFile>,
    /// The memory cgroup files can be read here (a memory controller was
    /// found).
    cgroupfs_live: bool,
    /// The scan reads the kernel's task iterator (not /proc/PID/stat).
    task_iter: bool,

    // The system (system.rs).
    /// The system view: latest sample, and rates from the one before.
    system: Option<system::SystemView>,
    /// Allocator maps (slab caches, kmalloc classes, buddy), latest.
    alloc: Option<AllocSample>,
    /// The same at the start of the current window.
    alloc_baseline: Option<AllocSample>,
}

impl Model {
    /// An empty model on a host with these constants.
    pub fn new(probes: Vec<ProbeStatus>, host: Host) -> Self {
        Model {
            probes,
            host: Some(host),
            ..Default::default()
        }
    }

    /// Keeps `seconds` of the largest processes' recent samples (the OOM
    /// flight recorder; 0: none).
    pub fn with_history(mut self, seconds: u64) -> Self {
        self.recorder = history::FlightRecorder::new(seconds);
        self
    }

    fn page_size(&self) -> u64 {
        self.host.map_or(4096, |h| h.page_size)
    }

    /// Folds one pass's sample in, taken at `now`: the kernel's part first
    /// (live counters, then exits, so a process that exits in between is
    /// seen live first and exited after; then the kills, which name
    /// processes; then statistics), then the process scan, the memory
    /// cgroups, and the per-process memory with the system view, as far
    /// as the sample holds them. Every field of the sample is applied
    /// here (a new one fails to build until it is).
    pub fn apply(&mut self, sample: Sample, now: Now) {
        let Sample {
            live,
            infos,
            exits,
            exit_cgroups,
            vanished,
            ooms,
            kill_signals,
            moved,
            stats,
            alloc,
            memcg_exits,
            program_runs,
            missing,
            scan,
            cgroups,
            memory,
        } = sample;
        self.apply_live_counters(live, infos);
        self.apply_moves(moved);
        self.apply_exits(&exits, &exit_cgroups);
        self.apply_vanished(vanished);
        self.apply_kills(ooms, kill_signals);
        self.apply_stats(stats, program_runs, now.instant);
        self.apply_kernel_exits(memcg_exits);
        self.missing_sources.extend(missing);
        self.apply_alloc(alloc);
        if let Some(scan) = scan {
            self.apply_scan(scan);
        }
        if let Some(read) = cgroups {
            self.apply_cgroups_read(read, now.instant);
        }
        if let Some(read) = memory {
            self.apply_memory(read, now.instant);
        }
        // The cgroups and the system were read after the kills: the
        // post-mortems they began are complete.
        self.complete_incidents(now);
    }
}

/// Which processes [`Model::views`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Every live process.
    Live,
    /// Those with activity since the window started, and those that
    /// exited in it.
    Window,
    /// Every process the model holds.
    All,
}

pub use crate::sample::comm_string;
