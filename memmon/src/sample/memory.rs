//! What a process holds (smaps_rollup, status, OOM score): every field an
//! Option, so a kernel without a field leaves it unknown, never 0.

use serde::Serialize;

/// Memory of one process, bytes unless named otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessMemory {
    /// Resident set (smaps_rollup Rss).
    pub rss: Option<u64>,
    /// Proportional set size.
    pub pss: Option<u64>,
    /// PSS of anonymous memory (kernel 5.8+).
    pub pss_anon: Option<u64>,
    /// PSS of file-backed memory (5.8+).
    pub pss_file: Option<u64>,
    /// PSS of shared memory (5.8+).
    pub pss_shmem: Option<u64>,
    /// Unique set size: private clean + private dirty.
    pub uss: Option<u64>,
    /// Swapped out.
    pub swap: Option<u64>,
    /// Proportional swap.
    pub swap_pss: Option<u64>,
    /// Anonymous transparent huge pages.
    pub anon_huge: Option<u64>,
    /// hugetlbfs pages (status HugetlbPages).
    pub hugetlb: Option<u64>,
    /// Peak resident set (status VmHWM).
    pub rss_peak: Option<u64>,
    /// /proc/PID/oom_score.
    pub oom_score: Option<i64>,
    /// /proc/PID/oom_score_adj.
    pub oom_score_adj: Option<i64>,
    /// A source this kernel lacks, and what goes unreported (said once).
    #[serde(skip)]
    pub missing: Option<(crate::sources::ProcFile, String)>,
}
