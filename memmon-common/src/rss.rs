//! Per-mm state kept by the `kmem:rss_stat` probe in the `MM_STATE` map,
//! keyed by the tracepoint's `mm_id`: the owning process, the last value of
//! each resident-set counter (what `/proc/PID/status` shows as RssFile,
//! RssAnon, VmSwap, RssShmem), updated in real time.

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
/// A counter not seen since the probe attached.
pub const RSS_UNKNOWN: i64 = -1;

/// One mm as the probe knows it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmState {
    /// Owning process (the last task that updated it as its own mm).
    pub tgid: u32,
    /// Padding.
    pub _pad: u32,
    /// Last size in bytes of each counter, or [`RSS_UNKNOWN`].
    pub bytes: [i64; RSS_MEMBERS],
}

impl MmState {
    /// A new mm owned by `tgid`, nothing known yet.
    pub const fn new(tgid: u32) -> Self {
        MmState {
            tgid,
            _pad: 0,
            bytes: [RSS_UNKNOWN; RSS_MEMBERS],
        }
    }

    /// Counter `member` in bytes, when known.
    pub fn get(&self, member: usize) -> Option<u64> {
        let v = *self.bytes.get(member)?;
        (v >= 0).then_some(v as u64)
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C); two u32 then i64s: no padding.
unsafe impl aya::Pod for MmState {}
