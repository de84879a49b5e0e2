//! Types that cross the kernel/userspace boundary: map keys and values,
//! ring-buffer events, statistics slots and load-time configuration.
//!
//! Every type is `#[repr(C)]`, has no implicit padding (flags are `u32`, not
//! `bool`), and is `aya::Pod` on the userspace side (feature `user`).
#![no_std]

pub mod alloc;
pub mod config;
pub mod counters;
pub mod events;
pub mod layouts;
pub mod names;
pub mod rss;
pub mod stacks;
pub mod stats;
pub mod task_iter;

pub use config::{CgroupOffsets, KernelConfig, OomOffsets, TaskOffsets};
pub use counters::{MemcgExits, ProcCounters};
pub use events::{ExitEvent, KillEvent, OomEvent};
pub use stats::Stat;

/// Length of `task_struct.comm`.
pub const COMM_LEN: usize = 16;

/// Bumped whenever a pinned map's meaning changes without its size
/// changing; part of the pin directory name (see memmon's probes::pins).
pub const LAYOUT_VERSION: u32 = 1;
