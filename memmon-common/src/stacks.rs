//! Keys and values of the stack-sampling probes (`memmon profile`,
//! `memmon leaks`): weight per (process, user stack, kernel stack, event),
//! the live allocations of a traced allocator, the allocations between a
//! malloc's entry and its return, the slots of the settings array, and
//! the stacks themselves: frames keyed by a 64-bit hash of their content
//! ([`stack_hash`]), which the eBPF side computes and userspace can check.

/// What a [`StackKey`]'s weight counts.
pub mod stack_event {
    /// Page-fault samples (weight: the perf samples a walk stands for, 1
    /// unless the sampler walks 1 in N runs (`setting::WALK_EVERY`);
    /// userspace multiplies by the perf event's period).
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
    /// User stack: its [`stack_hash`], the key of its frames in
    /// STACK_TRACES; [`NO_STACK`] when none was walked or stored.
    pub user_stack: u64,
    /// Kernel stack's hash, or [`NO_STACK`].
    pub kernel_stack: u64,
}

/// An allocation the leak probes track, keyed by its address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveAlloc {
    /// Bytes asked for.
    pub size: u64,
    /// When it was returned (bpf_ktime_get_ns).
    pub time_ns: u64,
    /// User stack's hash in STACK_TRACES ([`NO_STACK`]: lost).
    pub stack: u64,
    /// Process (tgid).
    pub tgid: u32,
    /// Padding.
    pub _pad: u32,
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
    /// 1: the fault sampler also sends each sample's faulting address to
    /// RESIDENT_SAMPLES (`memmon leaks`' resident mode, the daemon's
    /// `kind=resident`); 0: it does not.
    pub const RESIDENT: u32 = 3;
    /// The fault sampler walks the stacks of 1 in N of its runs (drawn at
    /// random), for processes without an entry of their own in
    /// PROFILE_WALK_EVERY; each walk then weighs N runs. 0 or 1: every
    /// run (`memmon profile`, `memmon leaks`). The daemon's adaptive
    /// period sets it (`model::fault_sampling`).
    pub const WALK_EVERY: u32 = 4;
    /// Number of slots.
    pub const LEN: u32 = 5;
    /// Every process.
    pub const TARGET_ALL: u64 = 0;
    /// The processes in PROFILE_PIDS.
    pub const TARGET_PIDS: u64 = 1;
    /// The processes of one cgroup (and not its descendants).
    pub const TARGET_CGROUP: u64 = 2;
}

/// The largest N of "1 walk in N runs" the sampler takes (a larger one
/// is taken as this).
pub const MAX_WALK_EVERY: u64 = 1 << 20;

/// Processes PROFILE_WALK_EVERY holds at most.
pub const MAX_WALK_EVERY_ENTRIES: u32 = 256;

/// Frames kept per stack (the kernel's PERF_MAX_STACK_DEPTH).
pub const MAX_STACK_DEPTH: usize = 127;

/// The stack hash meaning "no stack" (not walked, empty, or not stored).
pub const NO_STACK: u64 = 0;

/// One stack's return addresses, innermost first; the slots after the last
/// frame are 0 (`bpf_get_stack` zeroes the rest of its buffer). The value
/// of STACK_TRACES and of the per-CPU scratch buffer the walk writes into.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackFrames {
    /// Addresses; 0 past the last frame.
    pub ips: [u64; MAX_STACK_DEPTH],
}

impl StackFrames {
    /// The frames actually walked (up to the first 0).
    pub fn walked(&self) -> &[u64] {
        let n = self
            .ips
            .iter()
            .position(|&ip| ip == 0)
            .unwrap_or(MAX_STACK_DEPTH);
        &self.ips[..n]
    }
}

/// Multiplier of the per-frame mixing step (FxHash's, odd).
const MIX: u64 = 0x517c_c1b7_2722_0a95;

/// A 64-bit hash of the first `depth` frames of `frames` (and of `depth`):
/// the key of a stack in STACK_TRACES. Two distinct stacks share a key
/// with probability about n²/2⁶⁵ for n stacks (10⁻¹¹ at 16384), unlike the
/// kernel's stack-trace map, whose ids are buckets of a small table. Never
/// [`NO_STACK`]. Written for the verifier: one bounded loop, no calls.
#[inline(always)]
pub fn stack_hash(frames: &StackFrames, depth: usize) -> u64 {
    let mut h = MIX ^ depth as u64;
    let mut i = 0;
    while i < MAX_STACK_DEPTH {
        if i >= depth {
            break;
        }
        h = (h.rotate_left(5) ^ frames.ips[i]).wrapping_mul(MIX);
        i += 1;
    }
    // splitmix64's finalizer: every input bit reaches every output bit.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    if h == NO_STACK { 1 } else { h }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for StackKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for LiveAlloc {}
#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for PendingAlloc {}
#[cfg(feature = "user")]
// SAFETY: repr(C), an array of integers, no padding.
unsafe impl aya::Pod for StackFrames {}

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
    /// User stack's hash.
    pub stack: u64,
}

/// A sampled fault's address, sent by the fault sampler to
/// RESIDENT_SAMPLES when the `RESIDENT` setting is on: userspace keeps the
/// page and asks /proc/PID/pagemap, pass after pass, whether it is still
/// there; while it is, it weighs `period` pages on the stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResidentSample {
    /// The faulting (user) address, not rounded to its page.
    pub addr: u64,
    /// Faults this sample stands for: the perf event's period, times N
    /// when the sampler walks 1 in N of its runs.
    pub period: u64,
    /// User stack's hash in STACK_TRACES ([`NO_STACK`]: lost).
    pub user_stack: u64,
    /// Kernel stack's hash, or [`NO_STACK`].
    pub kernel_stack: u64,
    /// Process (tgid).
    pub tgid: u32,
    /// Padding.
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for MmapKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no padding.
unsafe impl aya::Pod for MmapCharge {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::HashSet;

    use super::*;

    fn frames(ips: &[u64]) -> StackFrames {
        let mut f = StackFrames {
            ips: [0; MAX_STACK_DEPTH],
        };
        f.ips[..ips.len()].copy_from_slice(ips);
        f
    }

    /// The shape that broke the kernel's stack ids: many stacks that differ
    /// only in which of two return addresses each of 16 levels holds (the
    /// `many-stacks` workload), plus the same paths cut at every depth.
    #[test]
    fn distinct_stacks_get_distinct_hashes_and_equal_ones_the_same() {
        let (a, b, leaf, main) = (
            0x5555_0000_1234u64,
            0x5555_0000_1280,
            0x5555_0000_0100,
            0x5555_0000_9000,
        );
        let mut seen = HashSet::new();
        let mut stacks = 0;
        for path in 0u32..1 << 16 {
            let mut ips = std::vec![leaf];
            ips.extend((0..16).map(|bit| if path >> bit & 1 == 1 { b } else { a }));
            ips.push(main);
            for depth in [ips.len(), ips.len() - 1] {
                let f = frames(&ips[..depth]);
                let h = stack_hash(&f, depth);
                assert_ne!(h, NO_STACK);
                assert_eq!(h, stack_hash(&f, depth), "not deterministic");
                stacks += 1;
                if depth == ips.len() || path < 1 << 15 {
                    assert!(seen.insert(h), "collision at path {path:#x} depth {depth}");
                }
            }
        }
        assert!(stacks > 100_000);
        // A stack is its frames: what lies past `depth` does not count.
        let long = frames(&[1, 2, 3, 4]);
        assert_eq!(stack_hash(&long, 2), stack_hash(&frames(&[1, 2]), 2));
        assert_ne!(stack_hash(&long, 2), stack_hash(&long, 3));
        assert_eq!(frames(&[7, 8, 9]).walked(), &[7, 8, 9]);
        assert_eq!(
            frames(&[0xff; MAX_STACK_DEPTH]).walked().len(),
            MAX_STACK_DEPTH
        );
    }

    #[test]
    fn the_kernel_facing_types_have_no_padding() {
        assert_eq!(core::mem::size_of::<StackKey>(), 24);
        assert_eq!(core::mem::size_of::<LiveAlloc>(), 32);
        assert_eq!(core::mem::size_of::<MmapCharge>(), 16);
        assert_eq!(core::mem::size_of::<ResidentSample>(), 40);
        assert_eq!(core::mem::size_of::<StackFrames>(), 8 * MAX_STACK_DEPTH);
    }
}
