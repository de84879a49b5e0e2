//! Keys and values of the allocator probes: slab caches by name, kmalloc
//! size classes, buddy allocations by order and migrate type, and the
//! in-flight mmap calls.

/// Bytes of a slab cache name kept (longer names are cut).
pub const SLAB_NAME_LEN: usize = 32;

/// A slab cache, by name (NUL padded).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlabKey {
    /// Cache name.
    pub name: [u8; SLAB_NAME_LEN],
}

/// Allocation counts of one cache or size class.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Allocations.
    pub allocs: u64,
    /// Frees (slab caches only: kfree has no size class).
    pub frees: u64,
    /// Bytes requested.
    pub bytes_req: u64,
    /// Bytes allocated (object size or size class).
    pub bytes_alloc: u64,
}

/// An mmap between syscall entry and exit, keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmapInflight {
    /// Length asked for.
    pub len: u64,
    /// 1 when MAP_ANONYMOUS.
    pub anon: u32,
    /// Padding.
    pub _pad: u32,
}

/// Buddy orders tracked (0..=10, MAX_PAGE_ORDER on x86).
pub const PAGE_ORDERS: u32 = 11;
/// Migrate types tracked (unmovable, movable, reclaimable, highatomic,
/// CMA, isolate, ...).
pub const MIGRATE_TYPES: u32 = 8;
/// Slots of `PAGE_ALLOCS`: order × migrate type.
pub const PAGE_ALLOC_SLOTS: u32 = PAGE_ORDERS * MIGRATE_TYPES;

/// Slot of (order, migrate type) in `PAGE_ALLOCS`, or None out of range.
pub const fn page_alloc_slot(order: u32, migratetype: u32) -> Option<u32> {
    if order < PAGE_ORDERS && migratetype < MIGRATE_TYPES {
        Some(order * MIGRATE_TYPES + migratetype)
    } else {
        None
    }
}

/// Names of the migrate types, by number (include/linux/mmzone.h).
pub const MIGRATE_TYPE_NAMES: [&str; MIGRATE_TYPES as usize] = [
    "unmovable",
    "movable",
    "reclaimable",
    "highatomic",
    "cma",
    "isolate",
    "type6",
    "type7",
];

#[cfg(feature = "user")]
// SAFETY: repr(C), a byte array: no padding.
unsafe impl aya::Pod for SlabKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), only u64 fields.
unsafe impl aya::Pod for AllocStats {}
#[cfg(feature = "user")]
// SAFETY: repr(C), u64 then two u32: no padding.
unsafe impl aya::Pod for MmapInflight {}
