//! The field catalog: every number memmon reports per process and per
//! cgroup, declared once — key, help, kind, unit, the sources that produce
//! it, how to read it from the model, and its column. `/metrics`
//! (`memmon_process_<key>[_total]`, `memmon_cgroup_<key>[_total]`), every
//! JSON output (`<key>`, and `<key>_per_second` for rated counters), the
//! snapshot table and `memmon top` are derived from these lists, so a field
//! has one name everywhere, and a field none of whose sources is live is
//! absent / `null` / `-`, never 0.
//!
//! Adding a per-process field: one [`Field`] entry in [`PROCESS_FIELDS`]
//! (its reader takes a [`ProcessCtx`]); the outputs follow.

use memmon_common::{
    ProcCounters,
    names::probe,
    rss::{RSS_ANON, RSS_FILE, RSS_SHMEM, RSS_SWAPENTS},
};

use super::{process::Process, rollup::Totals};
use crate::sources::{Live, ProcFile, Source};

/// Prometheus kind of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (a `_total` series; windows and rates are differences).
    Counter,
    /// A value now.
    Gauge,
}

/// What a value counts; integral units print as integers in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Pages (4 KiB on x86_64; the kernel's unit for swap and migration).
    Pages,
    /// Events or objects.
    Count,
    /// Seconds.
    Seconds,
    /// A share from 0 to 1.
    Ratio,
    /// A score (the kernel's OOM badness).
    Score,
}

impl Unit {
    /// Whole numbers (printed without a fraction).
    pub fn integral(self) -> bool {
        matches!(self, Unit::Bytes | Unit::Pages | Unit::Count | Unit::Score)
    }

    /// The name `/api/v1/snapshot` reports.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Pages => "pages",
            Unit::Count => "count",
            Unit::Seconds => "seconds",
            Unit::Ratio => "ratio",
            Unit::Score => "score",
        }
    }
}

/// A table column (the snapshot table and `memmon top`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Sort key in `memmon top`.
    pub letter: char,
    /// Width in characters.
    pub width: u16,
    /// Show the per-second rate (counters) rather than the value.
    pub rate: bool,
}

/// One field; `R` is its reader's type ([`ProcessReader`], [`CgroupReader`]).
pub struct Field<R> {
    /// Key in every JSON output; the metric is `memmon_<scope>_<key>`
    /// (`_total` added for counters).
    pub key: &'static str,
    /// One sentence for `/metrics` HELP and `/api/v1/snapshot`.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Unit.
    pub unit: Unit,
    /// Any one of these live makes the field measured.
    pub sources: &'static [Source],
    /// Exported to `/metrics` (per-process series for the top K only).
    pub metric: bool,
    /// A label (name, value) that sets this field apart from others with
    /// the same key: one metric family `memmon_<scope>_<key>` with that
    /// label, and one JSON object under the key (`{value: number}`).
    pub label: Option<(&'static str, &'static str)>,
    /// JSON carries `<key>_per_second` too (counters only).
    pub rate: bool,
    /// Its table column, if it has one.
    pub column: Option<Column>,
    /// Reads the value from the model (None: not known for this record).
    pub read: R,
}

/// Reads a per-process field.
pub type ProcessReader = for<'a, 'b> fn(&'a ProcessCtx<'b>) -> Option<f64>;
/// Reads a per-cgroup field.
pub type CgroupReader = for<'a, 'b> fn(&'a CgroupCtx<'b>) -> Option<f64>;

/// What a per-cgroup field reads: the rollup of its processes and the
/// cgroup's own files, when read.
pub struct CgroupCtx<'a> {
    /// Sums over the processes seen in the cgroup (live and exited).
    pub totals: &'a Totals,
    /// The cgroup's own reading and forecast.
    pub cg: Option<&'a super::cgroups::CgroupState>,
}

impl CgroupCtx<'_> {
    fn sample(&self) -> Option<&crate::sample::cgroup::CgroupSample> {
        self.cg.map(|c| &c.sample)
    }
    fn limits(&self) -> Option<&crate::sample::cgroup::Limits> {
        self.sample()?.limits.as_ref()
    }
    fn stat(&self) -> Option<&crate::sample::cgroup::MemoryStat> {
        self.sample()?.stat.as_ref()
    }
    fn events(&self) -> Option<&crate::sample::cgroup::MemoryEvents> {
        self.sample()?.events.as_ref()
    }
    fn events_local(&self) -> Option<&crate::sample::cgroup::MemoryEvents> {
        self.sample()?.events_local.as_ref()
    }
}

impl<R> Field<R> {
    /// The Prometheus name under `scope` (`process`, `cgroup`).
    pub fn metric_name(&self, scope: &str) -> String {
        match self.kind {
            Kind::Counter => format!("memmon_{scope}_{}_total", self.key),
            Kind::Gauge => format!("memmon_{scope}_{}", self.key),
        }
    }

    /// The JSON key of its rate.
    pub fn rate_key(&self) -> String {
        format!("{}_per_second", self.key)
    }
}

/// What a per-process field reads: the process and its window.
pub struct ProcessCtx<'a> {
    /// The process.
    pub p: &'a Process,
    /// Kernel counters accumulated in the window.
    pub w: ProcCounters,
    /// Minor faults in the window (probes or task counters).
    pub minor: u64,
    /// Major faults in the window.
    pub major: u64,
}

impl ProcessCtx<'_> {
    fn rss_member(&self, member: usize) -> Option<f64> {
        self.p
            .rss
            .filter(|_| !self.p.exited)
            .and_then(|m| m.get(member).copied())
            .map(|b| b as f64)
    }

    fn mem(&self) -> Option<&crate::sample::memory::ProcessMemory> {
        self.p.memory.as_ref().filter(|_| !self.p.exited)
    }
}

/// The values /proc/PID/stat prints: from the task iterator where it runs,
/// else from the file.
const STAT: &[Source] = &[Source::TaskIter, Source::Proc(ProcFile::Stat)];
const SMAPS: &[Source] = &[Source::Proc(ProcFile::SmapsRollup)];
const STATUS: &[Source] = &[Source::Proc(ProcFile::Status)];
const OOM: &[Source] = &[Source::Proc(ProcFile::OomScore)];
const NUMA_MAPS: &[Source] = &[Source::Proc(ProcFile::NumaMaps)];
/// Fault totals: the kernel's task counters; the probes' counts only
/// before a process's first reading (`model::process::fault_counts`).
const FAULTS: &[Source] = &[
    Source::TaskIter,
    Source::Proc(ProcFile::Stat),
    Source::Probe(probe::PAGE_FAULT_USER),
];
const MAJOR: &[Source] = &[
    Source::TaskIter,
    Source::Proc(ProcFile::Stat),
    Source::Probe(probe::MAJOR_FAULTS),
];
const FAULT_DETAIL: &[Source] = &[Source::Probe(probe::PAGE_FAULT_USER)];
/// Swap out / swap in: the changes of the mm's swap entries between two
/// reads of the task iterator (counted by it in the kernel).
const SWAP_COUNTS: &[Source] = &[Source::TaskIter];
/// The mm's resident-set counters now, as the task iterator read them.
const RSS_NOW: &[Source] = &[Source::TaskIter];
const SWAP_NOW: &[Source] = &[
    Source::TaskIter,
    Source::Proc(ProcFile::SmapsRollup),
    Source::Proc(ProcFile::Status),
];
const RECLAIM: &[Source] = &[
    Source::Probe(probe::DIRECT_RECLAIM_END),
    Source::Probe(probe::MEMCG_RECLAIM_END),
];
const MIGRATE: &[Source] = &[Source::Probe(probe::MIGRATE_PAGES)];
const NUMA_MOVES: &[Source] = &[
    Source::Probe(probe::NUMA_MOVE_TASK),
    Source::Probe(probe::NUMA_SWAP_TASKS),
];
const MMAP: &[Source] = &[Source::Probe(probe::MMAP_EXIT)];
const MUNMAP: &[Source] = &[Source::Probe(probe::MUNMAP)];
const MREMAP: &[Source] = &[Source::Probe(probe::MREMAP)];
const BRK: &[Source] = &[Source::Probe(probe::BRK_EXIT)];
const SLAB: &[Source] = &[Source::Probe(probe::SLAB_ALLOC)];
const KMALLOC: &[Source] = &[Source::Probe(probe::KMALLOC)];
const PAGE_ALLOC: &[Source] = &[Source::Probe(probe::PAGE_ALLOC)];

const fn col(header: &'static str, letter: char, width: u16, rate: bool) -> Option<Column> {
    Some(Column {
        header,
        letter,
        width,
        rate,
    })
}

/// A window counter read from the kernel counters.
macro_rules! counter {
    ($key:literal, $help:literal, $unit:expr, $src:expr, $field:ident) => {
        counter!($key, $help, $unit, $src, $field, false, None)
    };
    ($key:literal, $help:literal, $unit:expr, $src:expr, $field:ident, $rate:expr, $col:expr) => {
        Field {
            key: $key,
            help: $help,
            kind: Kind::Counter,
            unit: $unit,
            sources: $src,
            metric: true,
            label: None,
            rate: $rate,
            column: $col,
            read: |c: &ProcessCtx| Some(c.w.$field as f64),
        }
    };
}

/// A gauge read from the process's memory readings.
macro_rules! memory_gauge {
    ($key:literal, $help:literal, $src:expr, $metric:expr, $col:expr, $field:ident) => {
        Field {
            key: $key,
            help: $help,
            kind: Kind::Gauge,
            unit: Unit::Bytes,
            sources: $src,
            metric: $metric,
            label: None,
            rate: false,
            column: $col,
            read: |c: &ProcessCtx| c.mem().and_then(|m| m.$field).map(|b| b as f64),
        }
    };
}

/// Every per-process field, in table order for those with columns.
pub const PROCESS_FIELDS: &[Field<ProcessReader>] = &[
    Field {
        key: "rss_bytes",
        help: "Resident set size (/proc/PID/stat).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: STAT,
        metric: true,
        label: None,
        rate: false,
        column: col("RSS", 'r', 7, false),
        read: |c| c.p.rss_bytes.filter(|_| !c.p.exited).map(|b| b as f64),
    },
    memory_gauge!(
        "pss_bytes",
        "Proportional set size: shared pages divided among their sharers (smaps_rollup, cost-guarded).",
        SMAPS,
        true,
        col("PSS", 'p', 7, false),
        pss
    ),
    memory_gauge!(
        "uss_bytes",
        "Unique set size: pages only this process maps (smaps_rollup Private_Clean + Private_Dirty).",
        SMAPS,
        true,
        col("USS", 'u', 7, false),
        uss
    ),
    Field {
        key: "swap_bytes",
        help: "Memory in swap now (the mm's swap entries as the task iterator reads them, else smaps_rollup or VmSwap).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: SWAP_NOW,
        metric: true,
        label: None,
        rate: false,
        column: col("SWAP", 's', 7, false),
        read: |c| {
            c.rss_member(RSS_SWAPENTS)
                .or_else(|| c.mem().and_then(|m| m.swap).map(|b| b as f64))
        },
    },
    Field {
        key: "minor_faults",
        help: "Minor page faults (no I/O), as the kernel counts them per task (/proc/PID/stat minflt).",
        kind: Kind::Counter,
        unit: Unit::Count,
        sources: FAULTS,
        metric: true,
        label: None,
        rate: true,
        column: col("MINFLT/s", 'f', 9, true),
        read: |c| Some(c.minor as f64),
    },
    Field {
        key: "major_faults",
        help: "Major page faults (waited for I/O).",
        kind: Kind::Counter,
        unit: Unit::Count,
        sources: MAJOR,
        metric: true,
        label: None,
        rate: true,
        column: col("MAJFLT/s", 'F', 9, true),
        read: |c| Some(c.major as f64),
    },
    counter!(
        "cow_faults",
        "Write faults on present pages: copy-on-write and friends (per-fault probes).",
        Unit::Count,
        FAULT_DETAIL,
        cow_faults,
        true,
        col("COW/s", 'c', 8, true)
    ),
    counter!(
        "mmap_calls",
        "Successful mmap calls (mmap syscall probes).",
        Unit::Count,
        MMAP,
        mmap_calls,
        true,
        col("MMAP/s", 'm', 8, true)
    ),
    counter!(
        "slab_allocs",
        "Slab objects allocated in the process's context (allocation detail).",
        Unit::Count,
        SLAB,
        slab_allocs,
        true,
        col("SLAB/s", 'l', 8, true)
    ),
    Field {
        key: "reclaim_stall_seconds",
        help: "Time spent in direct or memcg reclaim stalls.",
        kind: Kind::Counter,
        unit: Unit::Seconds,
        sources: RECLAIM,
        metric: true,
        label: None,
        rate: true,
        column: col("RECLAIM", 'R', 8, true),
        read: |c| Some(c.w.reclaim_stall_ns as f64 / 1e9),
    },
    Field {
        key: "numa_local_ratio",
        help: "Share of the process's pages on the NUMA nodes its threads run on (machines with 2+ nodes).",
        kind: Kind::Gauge,
        unit: Unit::Ratio,
        sources: NUMA_MAPS,
        metric: true,
        label: None,
        rate: false,
        column: col("NUMA%", 'n', 6, false),
        read: |c| {
            c.p.numa
                .as_ref()
                .filter(|_| !c.p.exited)
                .and_then(|n| n.local_ratio)
        },
    },
    Field {
        key: "oom_score",
        help: "The kernel's OOM badness score (/proc/PID/oom_score, 0-2000).",
        kind: Kind::Gauge,
        unit: Unit::Score,
        sources: OOM,
        metric: true,
        label: None,
        rate: false,
        column: col("OOM", 'o', 5, false),
        read: |c| c.mem().and_then(|m| m.oom_score).map(|s| s as f64),
    },
    // Fields without a column.
    Field {
        key: "faults",
        help: "All page faults (minor + major).",
        kind: Kind::Counter,
        unit: Unit::Count,
        sources: FAULTS,
        metric: false,
        label: None,
        rate: true,
        column: None,
        read: |c| Some((c.minor + c.major) as f64),
    },
    Field {
        key: "read_faults",
        help: "Read or instruction-fetch faults (per-fault probes).",
        kind: Kind::Counter,
        unit: Unit::Count,
        sources: FAULT_DETAIL,
        metric: false,
        label: None,
        rate: false,
        column: None,
        read: |c| Some(c.w.faults.saturating_sub(c.w.write_faults) as f64),
    },
    counter!(
        "write_faults",
        "Write faults (per-fault probes).",
        Unit::Count,
        FAULT_DETAIL,
        write_faults
    ),
    counter!(
        "swap_out_pages",
        "Pages of this process swapped out: rises of its swap entries between two reads of the task iterator (a swap-out and a swap-in between two reads cancel).",
        Unit::Pages,
        SWAP_COUNTS,
        swap_out_pages
    ),
    counter!(
        "swap_in_pages",
        "Swap entries of this process released (swapped in or freed): falls of its swap entries between two reads of the task iterator.",
        Unit::Pages,
        SWAP_COUNTS,
        swap_in_pages
    ),
    counter!(
        "reclaim_stalls",
        "Direct or memcg reclaim stalls the process waited in.",
        Unit::Count,
        RECLAIM,
        reclaim_stalls
    ),
    counter!(
        "pages_migrated",
        "Pages migrated by migrations the process ran.",
        Unit::Pages,
        MIGRATE,
        pages_migrated
    ),
    counter!(
        "pages_migrate_failed",
        "Pages those migrations failed to move.",
        Unit::Pages,
        MIGRATE,
        pages_migrate_failed
    ),
    counter!(
        "numa_pages_migrated",
        "Pages migrated for NUMA placement.",
        Unit::Pages,
        MIGRATE,
        numa_pages_migrated
    ),
    counter!(
        "numa_task_moves",
        "NUMA balancing moves or swaps of the process's threads.",
        Unit::Count,
        NUMA_MOVES,
        numa_task_moves
    ),
    counter!(
        "mmap_bytes",
        "Bytes mapped by mmap.",
        Unit::Bytes,
        MMAP,
        mmap_bytes
    ),
    counter!(
        "mmap_anon_bytes",
        "Bytes mapped anonymously by mmap.",
        Unit::Bytes,
        MMAP,
        mmap_anon_bytes
    ),
    counter!(
        "mmap_file_bytes",
        "Bytes of files mapped by mmap.",
        Unit::Bytes,
        MMAP,
        mmap_file_bytes
    ),
    counter!(
        "mmap_failed",
        "Failed mmap calls.",
        Unit::Count,
        MMAP,
        mmap_failed
    ),
    counter!(
        "munmap_calls",
        "munmap calls.",
        Unit::Count,
        MUNMAP,
        munmap_calls
    ),
    counter!(
        "munmap_bytes",
        "Bytes munmap was asked to unmap.",
        Unit::Bytes,
        MUNMAP,
        munmap_bytes
    ),
    counter!(
        "mremap_calls",
        "mremap calls.",
        Unit::Count,
        MREMAP,
        mremap_calls
    ),
    counter!("brk_calls", "brk calls.", Unit::Count, BRK, brk_calls),
    counter!(
        "brk_grow_bytes",
        "Program-break growth.",
        Unit::Bytes,
        BRK,
        brk_grow_bytes
    ),
    counter!(
        "brk_shrink_bytes",
        "Program-break shrinkage.",
        Unit::Bytes,
        BRK,
        brk_shrink_bytes
    ),
    counter!(
        "slab_alloc_bytes",
        "Bytes of slab objects allocated in the process's context.",
        Unit::Bytes,
        SLAB,
        slab_alloc_bytes
    ),
    counter!(
        "kmalloc_allocs",
        "kmalloc calls in the process's context.",
        Unit::Count,
        KMALLOC,
        kmalloc_allocs
    ),
    counter!(
        "kmalloc_req_bytes",
        "Bytes those kmalloc calls requested.",
        Unit::Bytes,
        KMALLOC,
        kmalloc_req_bytes
    ),
    counter!(
        "kmalloc_alloc_bytes",
        "Bytes they were given (size classes).",
        Unit::Bytes,
        KMALLOC,
        kmalloc_alloc_bytes
    ),
    counter!(
        "page_allocs",
        "Pages given by the buddy allocator in the process's context (the page_alloc probe).",
        Unit::Pages,
        PAGE_ALLOC,
        page_allocs
    ),
    Field {
        key: "rss_anon_bytes",
        help: "Resident anonymous memory now (RssAnon's counter without its per-CPU parts, as /proc/PID/stat's RSS, read by the task iterator).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: RSS_NOW,
        metric: false,
        label: None,
        rate: false,
        column: None,
        read: |c| c.rss_member(RSS_ANON),
    },
    Field {
        key: "rss_file_bytes",
        help: "Resident file-backed memory now (RssFile's counter without its per-CPU parts, read by the task iterator).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: RSS_NOW,
        metric: false,
        label: None,
        rate: false,
        column: None,
        read: |c| c.rss_member(RSS_FILE),
    },
    Field {
        key: "rss_shmem_bytes",
        help: "Resident shared memory now (RssShmem's counter without its per-CPU parts, read by the task iterator).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: RSS_NOW,
        metric: false,
        label: None,
        rate: false,
        column: None,
        read: |c| c.rss_member(RSS_SHMEM),
    },
    Field {
        key: "vm_bytes",
        help: "Virtual memory size (/proc/PID/stat).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: STAT,
        metric: true,
        label: None,
        rate: false,
        column: None,
        read: |c| c.p.vm_bytes.filter(|_| !c.p.exited).map(|b| b as f64),
    },
    memory_gauge!(
        "pss_anon_bytes",
        "PSS of anonymous memory (kernel 5.8+).",
        SMAPS,
        false,
        None,
        pss_anon
    ),
    memory_gauge!(
        "pss_file_bytes",
        "PSS of file-backed memory.",
        SMAPS,
        false,
        None,
        pss_file
    ),
    memory_gauge!(
        "pss_shmem_bytes",
        "PSS of shared memory.",
        SMAPS,
        false,
        None,
        pss_shmem
    ),
    memory_gauge!(
        "swap_pss_bytes",
        "Proportional swap.",
        SMAPS,
        false,
        None,
        swap_pss
    ),
    memory_gauge!(
        "anon_huge_bytes",
        "Anonymous transparent huge pages.",
        SMAPS,
        false,
        None,
        anon_huge
    ),
    memory_gauge!(
        "hugetlb_bytes",
        "hugetlbfs pages (status HugetlbPages).",
        STATUS,
        false,
        None,
        hugetlb
    ),
    memory_gauge!(
        "rss_peak_bytes",
        "Peak resident set size (VmHWM).",
        STATUS,
        true,
        None,
        rss_peak
    ),
    Field {
        key: "oom_score_adj",
        help: "/proc/PID/oom_score_adj (-1000 to 1000).",
        kind: Kind::Gauge,
        unit: Unit::Score,
        sources: OOM,
        metric: false,
        label: None,
        rate: false,
        column: None,
        read: |c| c.mem().and_then(|m| m.oom_score_adj).map(|s| s as f64),
    },
];

/// Number of per-process fields.
pub const N_PROCESS: usize = PROCESS_FIELDS.len();

/// Number of rated per-process counters.
pub const N_RATED: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < N_PROCESS {
        if PROCESS_FIELDS[i].rate {
            n += 1;
        }
        i += 1;
    }
    n
};

/// Indexes of the rated counters in [`PROCESS_FIELDS`].
pub const RATED: [usize; N_RATED] = {
    let mut out = [0; N_RATED];
    let (mut n, mut i) = (0, 0);
    while i < N_PROCESS {
        if PROCESS_FIELDS[i].rate {
            out[n] = i;
            n += 1;
        }
        i += 1;
    }
    out
};

/// For each field in [`PROCESS_FIELDS`], its slot among the rated counters
/// (the inverse of [`RATED`]), or `usize::MAX` for a field without a rate.
pub const RATE_SLOT: [usize; N_PROCESS] = {
    let mut out = [usize::MAX; N_PROCESS];
    let mut k = 0;
    while k < N_RATED {
        out[RATED[k]] = k;
        k += 1;
    }
    out
};

/// A cgroup counter summed from its processes' kernel counters.
macro_rules! cgroup_counter {
    ($key:literal, $help:literal, $unit:expr, $src:expr, $read:expr) => {
        Field {
            key: $key,
            help: $help,
            kind: Kind::Counter,
            unit: $unit,
            sources: $src,
            metric: true,
            label: None,
            rate: false,
            column: None,
            read: $read,
        }
    };
}

const CGROUP_FILES: &[Source] = &[Source::Proc(ProcFile::CgroupMemory)];

/// A gauge from the cgroup's own files, bytes.
macro_rules! cg_gauge {
    ($key:literal, $help:literal, $read:expr) => {
        Field {
            key: $key,
            help: $help,
            kind: Kind::Gauge,
            unit: Unit::Bytes,
            sources: CGROUP_FILES,
            metric: true,
            label: None,
            rate: false,
            column: None,
            read: |c| {
                let f: fn(&CgroupCtx) -> Option<u64> = $read;
                f(c).map(|v| v as f64)
            },
        }
    };
}

/// A labeled value from the cgroup's own files (bytes or a count).
macro_rules! cg_labeled {
    ($key:literal, $kind:expr, $help:literal, $label:expr, $read:expr) => {
        Field {
            key: $key,
            help: $help,
            kind: $kind,
            unit: Unit::Bytes,
            sources: CGROUP_FILES,
            metric: true,
            label: Some($label),
            rate: false,
            column: None,
            read: |c| {
                let f: fn(&CgroupCtx) -> Option<u64> = $read;
                f(c).map(|v| v as f64)
            },
        }
    };
}

/// One memory.stat item, under the `item` label.
macro_rules! cg_stat {
    ($key:literal, $kind:expr, $help:literal, $item:literal, $field:ident) => {
        Field {
            unit: if matches!($kind, Kind::Counter) {
                Unit::Count
            } else {
                Unit::Bytes
            },
            ..cg_labeled!($key, $kind, $help, ("item", $item), |c| c.stat()?.$field)
        }
    };
}

/// One memory.events counter, under the `event` label.
macro_rules! cg_event {
    ($key:literal, $help:literal, $event:literal, $which:ident, $field:ident) => {
        Field {
            unit: Unit::Count,
            ..cg_labeled!($key, Kind::Counter, $help, ("event", $event), |c| c
                .$which()?
                .$field)
        }
    };
}

/// Every per-cgroup field: sums over the processes seen in the cgroup
/// (live and exited), then the cgroup's own files and its forecast.
pub const CGROUP_FIELDS: &[Field<CgroupReader>] = &[
    cgroup_counter!(
        "minor_faults",
        "Minor page faults of every process seen in the cgroup.",
        Unit::Count,
        FAULTS,
        |c| Some(c.totals.minor_faults as f64)
    ),
    cgroup_counter!(
        "major_faults",
        "Major page faults of every process seen in the cgroup.",
        Unit::Count,
        MAJOR,
        |c| Some(c.totals.major_faults as f64)
    ),
    cgroup_counter!(
        "swap_out_pages",
        "Pages swapped out of the cgroup's processes (task iterator: rises of their swap entries).",
        Unit::Pages,
        SWAP_COUNTS,
        |c| Some(c.totals.counters.swap_out_pages as f64)
    ),
    cgroup_counter!(
        "swap_in_pages",
        "Swap entries of the cgroup's processes released (task iterator: falls of their swap entries).",
        Unit::Pages,
        SWAP_COUNTS,
        |c| Some(c.totals.counters.swap_in_pages as f64)
    ),
    cgroup_counter!(
        "reclaim_stalls",
        "Reclaim stalls of the cgroup's processes.",
        Unit::Count,
        RECLAIM,
        |c| Some(c.totals.counters.reclaim_stalls as f64)
    ),
    cgroup_counter!(
        "reclaim_stall_seconds",
        "Time the cgroup's processes spent in reclaim stalls.",
        Unit::Seconds,
        RECLAIM,
        |c| Some(c.totals.counters.reclaim_stall_ns as f64 / 1e9)
    ),
    cgroup_counter!(
        "exited_processes",
        "Processes of the cgroup that exited.",
        Unit::Count,
        STAT,
        |c| Some(c.totals.exited_processes as f64)
    ),
    Field {
        key: "processes",
        help: "Live processes in the cgroup.",
        kind: Kind::Gauge,
        unit: Unit::Count,
        sources: STAT,
        metric: true,
        label: None,
        rate: false,
        column: None,
        read: |c| Some(c.totals.live_processes as f64),
    },
    Field {
        key: "rss_bytes",
        help: "Resident bytes of the cgroup's live processes (/proc/PID/stat).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: STAT,
        metric: true,
        label: None,
        rate: false,
        column: None,
        read: |c| Some(c.totals.rss_bytes as f64),
    },
    cg_gauge!(
        "memory_usage_bytes",
        "Memory charged to the cgroup (v2 memory.current, v1 memory.usage_in_bytes).",
        |c| c.sample()?.usage
    ),
    cg_gauge!(
        "memory_peak_bytes",
        "Largest usage the kernel saw (v2 memory.peak, 5.19+; v1 max_usage_in_bytes).",
        |c| c.sample()?.peak
    ),
    cg_gauge!(
        "memory_swap_bytes",
        "Swap used by the cgroup (v2 memory.swap.current; v1 memsw.usage - usage).",
        |c| c.sample()?.swap
    ),
    cg_gauge!(
        "memory_working_set_bytes",
        "Usage minus inactive file pages (cAdvisor's working set).",
        |c| c.sample()?.working_set
    ),
    cg_gauge!(
        "memory_unreclaimable_bytes",
        "What reclaim cannot give back without swap: anon + shmem + unreclaimable kernel memory.",
        |c| c.sample()?.unreclaimable
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "Limits of the cgroup; absent where there is none (v2 max/high/low/min/swap.max, v1 limit/soft/memsw).",
        ("limit", "max"),
        |c| c.limits()?.max
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "high"),
        |c| c.limits()?.high
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "low"),
        |c| c.limits()?.low
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "min"),
        |c| c.limits()?.min
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "swap_max"),
        |c| c.limits()?.swap_max
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "soft"),
        |c| c.limits()?.soft
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "memsw_max"),
        |c| c.limits()?.memsw_max
    ),
    cg_labeled!(
        "memory_limit_bytes",
        Kind::Gauge,
        "",
        ("limit", "effective_max"),
        |c| c.limits()?.effective_max
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "memory.stat by item, bytes (v1 names mapped onto v2's).",
        "anon",
        anon
    ),
    cg_stat!("memory_stat_bytes", Kind::Gauge, "", "file", file),
    cg_stat!("memory_stat_bytes", Kind::Gauge, "", "kernel", kernel),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "kernel_stack",
        kernel_stack
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "pagetables",
        pagetables
    ),
    cg_stat!("memory_stat_bytes", Kind::Gauge, "", "percpu", percpu),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "slab_reclaimable",
        slab_reclaimable
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "slab_unreclaimable",
        slab_unreclaimable
    ),
    cg_stat!("memory_stat_bytes", Kind::Gauge, "", "shmem", shmem),
    cg_stat!("memory_stat_bytes", Kind::Gauge, "", "sock", sock),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "file_mapped",
        file_mapped
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "file_dirty",
        file_dirty
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "file_writeback",
        file_writeback
    ),
    cg_stat!("memory_stat_bytes", Kind::Gauge, "", "anon_thp", anon_thp),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "active_anon",
        active_anon
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "inactive_anon",
        inactive_anon
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "active_file",
        active_file
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "inactive_file",
        inactive_file
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "unevictable",
        unevictable
    ),
    cg_stat!(
        "memory_stat_bytes",
        Kind::Gauge,
        "",
        "swapcached",
        swapcached
    ),
    cg_stat!(
        "memory_stat_events",
        Kind::Counter,
        "memory.stat event counters by item (refaults, scans, steals, faults).",
        "workingset_refault_anon",
        workingset_refault_anon
    ),
    cg_stat!(
        "memory_stat_events",
        Kind::Counter,
        "",
        "workingset_refault_file",
        workingset_refault_file
    ),
    cg_stat!("memory_stat_events", Kind::Counter, "", "pgscan", pgscan),
    cg_stat!("memory_stat_events", Kind::Counter, "", "pgsteal", pgsteal),
    cg_stat!("memory_stat_events", Kind::Counter, "", "pgfault", pgfault),
    cg_stat!(
        "memory_stat_events",
        Kind::Counter,
        "",
        "pgmajfault",
        pgmajfault
    ),
    cg_event!(
        "memory_events",
        "memory.events (hierarchical) by event; v1: memory.failcnt (event failcnt) and memory.oom_control's oom_kill.",
        "low",
        events,
        low
    ),
    cg_event!("memory_events", "", "high", events, high),
    cg_event!("memory_events", "", "max", events, max),
    cg_event!("memory_events", "", "oom", events, oom),
    cg_event!("memory_events", "", "oom_kill", events, oom_kill),
    cg_event!(
        "memory_events",
        "",
        "oom_group_kill",
        events,
        oom_group_kill
    ),
    cg_event!("memory_events", "", "failcnt", events, failcnt),
    cg_event!(
        "memory_events_local",
        "memory.events.local (the cgroup itself, v2) by event.",
        "low",
        events_local,
        low
    ),
    cg_event!("memory_events_local", "", "high", events_local, high),
    cg_event!("memory_events_local", "", "max", events_local, max),
    cg_event!("memory_events_local", "", "oom", events_local, oom),
    cg_event!(
        "memory_events_local",
        "",
        "oom_kill",
        events_local,
        oom_kill
    ),
    cg_event!(
        "memory_events_local",
        "",
        "oom_group_kill",
        events_local,
        oom_group_kill
    ),
    Field {
        key: "memory_pressure_seconds",
        help: "Time tasks of the cgroup stalled on memory (v2 memory.pressure), some or full.",
        kind: Kind::Counter,
        unit: Unit::Seconds,
        sources: CGROUP_FILES,
        metric: true,
        label: Some(("kind", "some")),
        rate: false,
        column: None,
        read: |c| Some(c.sample()?.pressure.as_ref()?.some_total_us as f64 / 1e6),
    },
    Field {
        key: "memory_pressure_seconds",
        help: "",
        kind: Kind::Counter,
        unit: Unit::Seconds,
        sources: CGROUP_FILES,
        metric: true,
        label: Some(("kind", "full")),
        rate: false,
        column: None,
        read: |c| Some(c.sample()?.pressure.as_ref()?.full_total_us? as f64 / 1e6),
    },
    Field {
        key: "oom_forecast_seconds",
        help: "Seconds until unreclaimable memory reaches the hard limit at its current growth (Theil-Sen over the window); absent when flat, shrinking or unlimited.",
        kind: Kind::Gauge,
        unit: Unit::Seconds,
        sources: CGROUP_FILES,
        metric: true,
        label: None,
        rate: false,
        column: None,
        read: |c| c.cg?.oom_forecast_seconds(),
    },
    Field {
        key: "unreclaimable_growth_bytes_per_second",
        help: "Growth rate of unreclaimable memory the forecast uses (Theil-Sen slope).",
        kind: Kind::Gauge,
        unit: Unit::Bytes,
        sources: CGROUP_FILES,
        metric: true,
        label: None,
        rate: false,
        column: None,
        read: |c| c.cg?.growth(),
    },
    Field {
        key: "forecast_window_seconds",
        help: "Time the forecast's samples span.",
        kind: Kind::Gauge,
        unit: Unit::Seconds,
        sources: CGROUP_FILES,
        metric: true,
        label: None,
        rate: false,
        column: None,
        read: |c| c.cg?.window.span_secs(),
    },
    Field {
        key: "memory_detail_age_seconds",
        help: "Age of the reading's full detail (memory.stat, events, PSI, limits, peak): read every pass only when usage moves, else carried forward up to 30 s.",
        kind: Kind::Gauge,
        unit: Unit::Seconds,
        sources: CGROUP_FILES,
        metric: false,
        label: None,
        rate: false,
        column: None,
        read: |c| c.sample()?.detail_age_ms.map(|ms| ms as f64 / 1000.0),
    },
];

/// Number of per-cgroup fields.
pub const N_CGROUP: usize = CGROUP_FIELDS.len();

/// Which catalog fields have a live source now, worked out once per pass
/// from [`Live`] (a set of names) so that reading a thousand rows tests a
/// bool per field instead of looking names up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveFields {
    /// Per-process fields, in [`PROCESS_FIELDS`] order.
    pub process: [bool; N_PROCESS],
    /// Per-cgroup fields, in [`CGROUP_FIELDS`] order.
    pub cgroup: [bool; N_CGROUP],
    /// numa_maps is read here (two or more nodes).
    pub numa_maps: bool,
}

impl LiveFields {
    /// The fields `live` produces.
    pub fn new(live: &Live) -> Self {
        let mut process = [false; N_PROCESS];
        for (slot, f) in process.iter_mut().zip(PROCESS_FIELDS) {
            *slot = live.any(f.sources);
        }
        let mut cgroup = [false; N_CGROUP];
        for (slot, f) in cgroup.iter_mut().zip(CGROUP_FIELDS) {
            *slot = live.any(f.sources);
        }
        LiveFields {
            process,
            cgroup,
            numa_maps: live.has(Source::Proc(ProcFile::NumaMaps)),
        }
    }
}

/// Reads every per-process field, leaving those without a live source None.
pub fn read_process(ctx: &ProcessCtx<'_>, live: &LiveFields) -> [Option<f64>; N_PROCESS] {
    let mut out = [None; N_PROCESS];
    for ((slot, f), on) in out.iter_mut().zip(PROCESS_FIELDS).zip(live.process) {
        if on {
            *slot = (f.read)(ctx);
        }
    }
    out
}

/// Reads every per-cgroup field, leaving those without a live source None.
pub fn read_cgroup(ctx: &CgroupCtx<'_>, live: &LiveFields) -> [Option<f64>; N_CGROUP] {
    let mut out = [None; N_CGROUP];
    for ((slot, f), on) in out.iter_mut().zip(CGROUP_FIELDS).zip(live.cgroup) {
        if on {
            *slot = (f.read)(ctx);
        }
    }
    out
}

/// The per-process field with this key.
pub fn process_field(key: &str) -> Option<usize> {
    PROCESS_FIELDS.iter().position(|f| f.key == key)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_are_unique_and_snake_case() {
        // (key, label value) is unique; labeled fields of one key are
        // declared together, with one help text (on the first).
        for (scope, keys) in [
            (
                "process",
                PROCESS_FIELDS
                    .iter()
                    .map(|f| (f.key, f.label, f.help))
                    .collect::<Vec<_>>(),
            ),
            (
                "cgroup",
                CGROUP_FIELDS
                    .iter()
                    .map(|f| (f.key, f.label, f.help))
                    .collect(),
            ),
        ] {
            let mut seen = HashSet::new();
            let mut prev: Option<&str> = None;
            for (k, label, help) in keys {
                assert!(
                    seen.insert((k, label)),
                    "{scope} key {k} {label:?} declared twice"
                );
                assert!(
                    k.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{scope} key {k}"
                );
                if label.is_none() || prev != Some(k) {
                    assert!(!help.is_empty(), "{scope} key {k}: no help");
                    assert!(
                        !seen.iter().any(|(sk, sl)| *sk == k && *sl != label),
                        "{scope} key {k}: declared apart from its other labels"
                    );
                }
                prev = Some(k);
            }
        }
    }

    #[test]
    fn rates_and_columns_are_consistent() {
        for (k, i) in RATED.iter().enumerate() {
            assert_eq!(RATE_SLOT[*i], k, "{}", PROCESS_FIELDS[*i].key);
        }
        for (i, f) in PROCESS_FIELDS.iter().enumerate() {
            assert_eq!(f.rate, RATE_SLOT[i] != usize::MAX, "{}", f.key);
        }
        let mut letters = HashSet::new();
        for f in PROCESS_FIELDS {
            assert!(
                !f.rate || f.kind == Kind::Counter,
                "{}: rate of a gauge",
                f.key
            );
            if let Some(c) = f.column {
                assert!(!c.rate || f.rate, "{}: rate column without rate", f.key);
                assert!(letters.insert(c.letter), "{}: letter {}", f.key, c.letter);
            }
        }
    }

    #[test]
    fn a_field_without_a_live_source_is_none() {
        let p = Process::new(
            super::super::ProcessKey {
                pid: 1,
                start_time_ticks: 1,
            },
            "x".into(),
        );
        let ctx = ProcessCtx {
            p: &p,
            w: ProcCounters::default(),
            minor: 3,
            major: 0,
        };
        let none = Live {
            probes: Default::default(),
            missing_files: [ProcFile::Stat].into_iter().collect(),
            task_iter: false,
        };
        let v = read_process(&ctx, &LiveFields::new(&none));
        assert!(v.iter().all(Option::is_none), "{v:?}");
        let stat_only = Live::default();
        let v = read_process(&ctx, &LiveFields::new(&stat_only));
        let minor = process_field("minor_faults").expect("minor_faults");
        let cow = process_field("cow_faults").expect("cow_faults");
        assert_eq!(v[minor], Some(3.0));
        assert_eq!(v[cow], None, "cow needs the per-fault probe");
    }

    /// README.md lists every exported cgroup family and each label value
    /// (the fixed, documented item and event lists).
    #[test]
    fn readme_documents_every_cgroup_series() {
        let readme = include_str!("../../../README.md");
        for f in CGROUP_FIELDS.iter().filter(|f| f.metric) {
            let name = f.metric_name("cgroup");
            assert!(
                readme.contains(&format!("`{name}")),
                "README.md lacks {name}"
            );
            if let Some((label, value)) = f.label {
                assert!(
                    readme.contains(&format!("`{value}`")),
                    "README.md lacks {name}{{{label}=\"{value}\"}}"
                );
            }
        }
    }
}
