//! Who a pid is, as /proc/PID/stat says: comm, parent, start time (the
//! second half of the process key), the kernel's fault totals and sizes.

/// Identity and fault totals of one live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Process id.
    pub pid: u32,
    /// `comm` from stat (up to 15 bytes, may hold any byte but NUL).
    pub comm: String,
    /// Parent pid.
    pub ppid: u32,
    /// Start time in clock ticks since boot (stat field 22).
    pub start_time_ticks: u64,
    /// The kernel's minor-fault count for the process (stat field 10).
    pub minflt: u64,
    /// The kernel's major-fault count (stat field 12).
    pub majflt: u64,
    /// Resident set in pages (stat field 24).
    pub rss_pages: u64,
    /// Virtual memory size in bytes (stat field 23).
    pub vsize_bytes: u64,
    /// The mm's resident-set counters in pages (file, anon, swap entries,
    /// shmem: what /proc/PID/status prints as RssFile, RssAnon, VmSwap,
    /// RssShmem), when the scan reads them (the task iterator does,
    /// /proc/PID/stat does not).
    pub rss_members: Option<[u64; memmon_common::rss::RSS_MEMBERS]>,
    /// Read in this pass (false: repeated from an earlier read of a process
    /// whose stat had not changed, see `stat_files`).
    pub fresh: bool,
}
