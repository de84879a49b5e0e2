//! The system's memory as read now: meminfo, vmstat, swap devices,
//! buddyinfo, the largest slab caches, memory PSI, per-node numastat.

use std::collections::BTreeMap;

use serde::Serialize;

/// One swap device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwapDevice {
    /// Path.
    pub name: String,
    /// partition / file.
    pub kind: String,
    /// Size, bytes.
    pub size_bytes: u64,
    /// Used, bytes.
    pub used_bytes: u64,
    /// Priority.
    pub priority: i64,
}

/// Free blocks per order in one zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuddyZone {
    /// NUMA node.
    pub node: u32,
    /// Zone name (DMA, DMA32, Normal, ...).
    pub zone: String,
    /// Free blocks of order 0, 1, ...
    pub free_blocks: Vec<u64>,
}

/// One slab cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlabCache {
    /// Cache name.
    pub name: String,
    /// Active objects.
    pub active_objs: u64,
    /// All objects.
    pub num_objs: u64,
    /// Object size, bytes.
    pub objsize: u64,
    /// Memory the cache holds (num_objs × objsize), bytes.
    pub bytes: u64,
}

/// Memory pressure stall information.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Psi {
    /// `some avg10`, percent.
    pub some_avg10: f64,
    /// `some avg60`.
    pub some_avg60: f64,
    /// `some total`, microseconds.
    pub some_total_us: u64,
    /// `full avg10`.
    pub full_avg10: f64,
    /// `full total`, microseconds.
    pub full_total_us: u64,
}

/// The system's memory as read now.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SystemSample {
    /// /proc/meminfo, bytes (fields in kB converted; counts kept as is).
    pub meminfo: BTreeMap<String, u64>,
    /// /proc/vmstat counters.
    pub vmstat: BTreeMap<String, u64>,
    /// /proc/swaps.
    pub swaps: Vec<SwapDevice>,
    /// /proc/buddyinfo.
    pub buddyinfo: Vec<BuddyZone>,
    /// The largest slab caches by memory (needs root; empty otherwise).
    pub top_slabs: Vec<SlabCache>,
    /// `top_slabs` was read in this sample (false: not due this pass; the
    /// model keeps the previous reading). Bookkeeping, not an output.
    #[serde(skip)]
    pub top_slabs_read: bool,
    /// /proc/pressure/memory, when the kernel has PSI.
    pub psi: Option<Psi>,
    /// Per node: numastat counters and meminfo (bytes).
    pub nodes: BTreeMap<u32, BTreeMap<String, u64>>,
    /// Sources that could not be read, each with what goes unreported.
    #[serde(skip)]
    pub missing: Vec<String>,
}
