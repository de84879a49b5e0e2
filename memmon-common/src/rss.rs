//! The mm's resident-set counters (`mm->rss_stat`), as the task iterator
//! reads them: what `/proc/PID/status` shows as RssFile, RssAnon, VmSwap
//! and RssShmem.

/// Number of `mm->rss_stat` counters (MM_FILEPAGES, MM_ANONPAGES,
/// MM_SWAPENTS, MM_SHMEMPAGES).
pub const RSS_MEMBERS: usize = 4;
/// Index of MM_FILEPAGES.
pub const RSS_FILE: usize = 0;
/// Index of MM_ANONPAGES.
pub const RSS_ANON: usize = 1;
/// Index of MM_SWAPENTS.
pub const RSS_SWAPENTS: usize = 2;
/// Index of MM_SHMEMPAGES.
pub const RSS_SHMEM: usize = 3;
