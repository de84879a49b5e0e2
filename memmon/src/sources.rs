//! The names of every data source a field can come from — a kernel probe
//! (by its catalog name) or a /proc file — and which of them are live on
//! this machine now. Shared by the readers (`procfs`, `probes`), the model
//! and the sinks, so none of them has to import another for these names.

use std::collections::BTreeSet;

use memmon_common::names::Probe;
use serde::Serialize;

/// A /proc file memmon reads per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcFile {
    /// `/proc/PID/stat` (identity, RSS, virtual size, the kernel's fault
    /// counters).
    Stat,
    /// `/proc/PID/smaps_rollup` (PSS, USS, swap, huge pages).
    SmapsRollup,
    /// `/proc/PID/status` (peak RSS, hugetlb, VmSwap).
    Status,
    /// `/proc/PID/oom_score` and `oom_score_adj`.
    OomScore,
    /// `/proc/PID/numa_maps` (read only on machines with two or more NUMA
    /// nodes).
    NumaMaps,
    /// The memory cgroup's own files (`/sys/fs/cgroup/...`: usage, limits,
    /// memory.stat, memory.events, memory.pressure).
    CgroupMemory,
}

impl ProcFile {
    /// The path pattern, e.g. `/proc/PID/smaps_rollup`.
    pub fn path(self) -> &'static str {
        match self {
            ProcFile::Stat => "/proc/PID/stat",
            ProcFile::SmapsRollup => "/proc/PID/smaps_rollup",
            ProcFile::Status => "/proc/PID/status",
            ProcFile::OomScore => "/proc/PID/oom_score",
            ProcFile::NumaMaps => "/proc/PID/numa_maps",
            ProcFile::CgroupMemory => "/sys/fs/cgroup/.../memory.*",
        }
    }
}

/// Where a field's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A kernel probe, by its name in the probe catalog.
    Probe(&'static Probe),
    /// A /proc file.
    Proc(ProcFile),
    /// The kernel's task iterator (`iter/task`): the values
    /// /proc/PID/stat prints, for every process in one read.
    TaskIter,
}

impl Source {
    /// The name reported in `/api/v1/snapshot`: the probe name, or the
    /// /proc path.
    pub fn name(self) -> &'static str {
        match self {
            Source::Probe(p) => p.name(),
            Source::Proc(f) => f.path(),
            Source::TaskIter => "iter/task",
        }
    }
}

/// Which sources are live: the attached probes, and the /proc files this
/// kernel has (and memmon reads here).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Live {
    /// Names of the attached probes.
    pub probes: BTreeSet<String>,
    /// /proc files found missing from this kernel (or not read here, such
    /// as numa_maps on a one-node machine, or /proc/PID/stat while the
    /// task iterator reads the same values).
    pub missing_files: BTreeSet<ProcFile>,
    /// The task iterator is the scan's source.
    pub task_iter: bool,
}

impl Live {
    /// True when `s` produces values now.
    pub fn has(&self, s: Source) -> bool {
        match s {
            Source::Probe(p) => self.has_probe(p),
            Source::Proc(f) => !self.missing_files.contains(&f),
            Source::TaskIter => self.task_iter,
        }
    }

    /// True when probe `p` is attached.
    pub fn has_probe(&self, p: &Probe) -> bool {
        self.probes.contains(p.name())
    }

    /// True when any of `sources` is live (a field with several sources
    /// needs one of them).
    pub fn any(&self, sources: &[Source]) -> bool {
        sources.iter().any(|s| self.has(*s))
    }
}
