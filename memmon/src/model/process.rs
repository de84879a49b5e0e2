//! One process in the model: its key, identity, and counters (cumulative
//! kernel values plus the baseline at the start of the current window).

pub use crate::sample::key::ProcessKey;
use memmon_common::{
    ExitEvent, ProcCounters,
    events::{EXIT_HAS_COUNTERS, EXIT_HAS_TASK, EXIT_MEMCG_ID},
};

/// A process's cumulative kernel counters, held only once one is non-zero:
/// a process no probe counted anything for (an idle one, the daemon's
/// defaults) carries 8 bytes instead of ~300. Reads see zeros then.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(Option<Box<ProcCounters>>);

impl Counters {
    /// Takes these values (dropping the allocation when all are zero).
    pub fn set(&mut self, c: ProcCounters) {
        if c.is_zero() {
            self.0 = None;
        } else if let Some(b) = &mut self.0 {
            **b = c;
        } else {
            self.0 = Some(Box::new(c));
        }
    }
}

impl std::ops::Deref for Counters {
    type Target = ProcCounters;
    fn deref(&self) -> &ProcCounters {
        self.0.as_deref().unwrap_or(&ProcCounters::ZERO)
    }
}

impl std::ops::DerefMut for Counters {
    fn deref_mut(&mut self) -> &mut ProcCounters {
        self.0.get_or_insert_with(Box::default)
    }
}

/// A process as the model knows it.
#[derive(Clone, Debug)]
pub struct Process {
    /// Its key.
    pub key: ProcessKey,
    /// Command name.
    pub comm: String,
    /// Parent pid, when known.
    pub ppid: Option<u32>,
    /// True once its exit was seen.
    pub exited: bool,
    /// It was found gone without an exit event (it exited while memmon was
    /// not running, on pinned maps): its counters are final and have not
    /// been reported yet, so a window starting now still reports them.
    pub vanished: bool,
    /// Cumulative kernel counters (since the probes were attached).
    pub counters: Counters,
    /// Counters at the start of the current window (None: zero, as in the
    /// daemon, which never starts one; boxed so 10,000 processes do not
    /// each carry 232 bytes of zeros).
    pub baseline: Option<Box<ProcCounters>>,
    /// The kernel's own (minor, major) totals at exit, when read.
    pub exit_task_faults: Option<(u64, u64)>,
    /// cgroup id at exit.
    pub exit_cgroup_id: Option<u64>,
    /// Its mm's resident-set counters as of the last scan, bytes
    /// (`memmon_common::rss` indexes; the task iterator reads them).
    pub rss: Option<[u64; memmon_common::rss::RSS_MEMBERS]>,
    /// The kernel's own per-task fault totals (/proc/PID/stat while alive,
    /// the exit event at exit): what fault counts come from when the
    /// per-fault probes are off.
    pub task: Option<TaskFaults>,
    /// `task` at the start of the current window.
    pub task_baseline: TaskFaults,
    /// Resident set from /proc/PID/stat, bytes.
    pub rss_bytes: Option<u64>,
    /// Virtual size from /proc/PID/stat, bytes.
    pub vm_bytes: Option<u64>,
    /// Owner uid (of /proc/PID), read when first seen.
    pub uid: Option<u32>,
    /// Memory cgroup path (v1 memory controller, else unified), read when
    /// first seen and kept: its rollup never changes under it.
    pub cgroup: Option<String>,
    /// systemd unit named by the cgroup path, when any.
    pub unit: Option<String>,
    /// Container id named by the cgroup path, when any.
    pub container_id: Option<String>,
    /// What it holds (smaps_rollup, status, OOM score), when read.
    pub memory: Option<crate::sample::memory::ProcessMemory>,
    /// NUMA placement, when read (boxed: a one-node machine reads none,
    /// and 10,000 processes do not each carry 72 empty bytes).
    pub numa: Option<Box<crate::sample::numa::NumaUsage>>,
    /// Consecutive /proc scans that did not find it (it is exiting; its
    /// exit event normally arrives first).
    pub missing_scans: u8,
    /// Something its row shows changed since its row was last built.
    pub dirty: bool,
    /// The model's scan number when the /proc scan last listed it.
    pub seen_scan: u64,
}

/// Minor and major fault totals as the kernel counts them per task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskFaults {
    /// min_flt.
    pub minor: u64,
    /// maj_flt.
    pub major: u64,
}

/// (minor, major) faults: the kernel's per-task counters (min_flt,
/// maj_flt, what /proc/PID/stat prints) wherever they were read; the
/// per-fault probes' counts only before the first reading. The probes see
/// every fault exception, the retried and spurious ones too, which the
/// kernel does not count: they give the split (read/write/copy-on-write),
/// not the totals.
pub fn fault_counts(
    counters: &ProcCounters,
    task: Option<TaskFaults>,
    fault_probes: bool,
) -> (u64, u64) {
    match task {
        Some(t) => (t.minor, t.major),
        None if fault_probes => (
            counters.faults.saturating_sub(counters.major_faults),
            counters.major_faults,
        ),
        None => (0, 0),
    }
}

impl TaskFaults {
    /// `self - earlier`, saturating.
    pub fn since(self, earlier: TaskFaults) -> TaskFaults {
        TaskFaults {
            minor: self.minor.saturating_sub(earlier.minor),
            major: self.major.saturating_sub(earlier.major),
        }
    }
}

impl Process {
    /// A process first seen now.
    pub fn new(key: ProcessKey, comm: String) -> Self {
        Process {
            key,
            comm,
            ppid: None,
            exited: false,
            vanished: false,
            counters: Counters::default(),
            baseline: None,
            exit_task_faults: None,
            exit_cgroup_id: None,
            rss: None,
            task: None,
            task_baseline: TaskFaults::default(),
            rss_bytes: None,
            vm_bytes: None,
            uid: None,
            cgroup: None,
            unit: None,
            container_id: None,
            memory: None,
            numa: None,
            missing_scans: 0,
            dirty: true,
            seen_scan: 0,
        }
    }

    /// Takes the final values from an exit event.
    pub fn record_exit(&mut self, exit: &ExitEvent) {
        self.exited = true;
        self.dirty = true;
        if exit.flags & EXIT_HAS_COUNTERS != 0 {
            self.counters.set(exit.counters);
        }
        if exit.flags & EXIT_HAS_TASK != 0 {
            self.exit_task_faults = Some((exit.task_min_flt, exit.task_maj_flt));
            self.task = Some(TaskFaults {
                minor: exit.task_min_flt,
                major: exit.task_maj_flt,
            });
            if exit.ppid != 0 {
                self.ppid = Some(exit.ppid);
            }
        }
        self.exit_cgroup_id = (exit.flags & EXIT_MEMCG_ID != 0).then_some(exit.cgroup_id);
    }

    /// Takes where it belongs (cgroup and the names its path carries,
    /// owner); a uid already known is kept when `meta` has none.
    pub fn set_meta(&mut self, meta: crate::sample::ProcMeta) {
        self.dirty = true;
        self.cgroup = meta.cgroup;
        self.unit = meta.unit;
        self.container_id = meta.container_id;
        self.uid = meta.uid.or(self.uid);
    }

    /// Counters accumulated in the current window.
    pub fn window(&self) -> ProcCounters {
        match &self.baseline {
            Some(base) => self.counters.saturating_sub(base),
            None => *self.counters,
        }
    }
}
