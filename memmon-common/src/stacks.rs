//! Keys and values of the stack-sampling probes (`memmon profile`,
//! `memmon leaks`): weight per (process, user stack, kernel stack, event),
//! the live allocations of a traced allocator, the allocations between a
//! malloc's entry and its return, and the slots of the settings array.

/// What a [`StackKey`]'s weight counts.
pub mod stack_event {
    /// Page-fault samples (weight: samples; userspace multiplies by the period).
    pub const FAULTS: u32 = 0;
    /// Program-break growth in bytes (brk).
    pub const BRK: u32 = 1;
    /// Bytes mapped by mmap, less those unmapped (per stack).
    pub const MMAP: u32 = 2;
}

/// A sampled stack of one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StackKey {
    /// Process (tgid).
    pub tgid: u32,
    /// `stack_event::*`.
    pub event: u32,
    /// User stack id in STACK_TRACES, or negative (none / lost).
    pub user_stack: i32,
    /// Kernel stack id in STACK_TRACES, or negative.
    pub kernel_stack: i32,
}

/// An allocation the leak probes track, keyed by its address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveAlloc {
    /// Bytes asked for.
    pub size: u64,
    /// When it was returned (bpf_ktime_get_ns).
    pub time_ns: u64,
    /// User stack id in STACK_TRACES (negative: lost).
    pub stack: i32,
    /// Process (tgid).
    pub tgid: u32,
}

/// An allocation between its function's entry and return, keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingAlloc {
    /// Bytes asked for.
    pub size: u64,
    /// posix_memalign's `void **memptr` (0 for the others).
    pub memptr: u64,
}

/// Slots of the PROFILE_SETTINGS array (u64 each), set by userspace.
pub mod setting {
    /// Which processes are sampled: [`TARGET_ALL`](super::setting::TARGET_ALL),
    /// `TARGET_PIDS` (those in PROFILE_PIDS) or `TARGET_CGROUP`.
    pub const TARGET: u32 = 0;
    /// The cgroup v2 id sampled when `TARGET` is `TARGET_CGROUP`.
    pub const CGROUP_ID: u32 = 1;
    /// Track one allocation in N (leaks); 0 or 1: every one.
    pub const SAMPLE_RATE: u32 = 2;
    /// Number of slots.
    pub const LEN: u32 = 4;
    /// Every process.
    pub const TARGET_ALL: u64 = 0;
    /// The processes in PROFILE_PIDS.
    pub const TARGET_PIDS: u64 = 1;
    /// The processes of one cgroup (and not its descendants).
    pub const TARGET_CGROUP: u64 = 2;
}

/// Frames kept per stack (the kernel's PERF_MAX_STACK_DEPTH).
pub const MAX_STACK_DEPTH: usize = 127;

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for StackKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for LiveAlloc {}
#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for PendingAlloc {}

/// A mapping `memmon profile --event mmap` charged to a stack, by process
/// and start address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MmapKey {
    /// Start address.
    pub addr: u64,
    /// Process (tgid).
    pub tgid: u32,
    /// Padding.
    pub _pad: u32,
}

/// What a charged mapping holds: its length and the stack it was charged to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmapCharge {
    /// Bytes still charged.
    pub len: u64,
    /// User stack id.
    pub stack: i32,
    /// Padding.
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for MmapKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for MmapCharge {}
