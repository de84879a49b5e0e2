//! `kmem:kmem_cache_alloc`, `kmem:kmem_cache_free`, `kmem:kmalloc` (seed:
//! SLUB): allocations per slab cache (by name) and per kmalloc size class
//! (bytes requested vs allocated: internal waste), and per process in
//! whose context they happened. These fire on every kernel object
//! allocation, so they are allocation-detail probes (off in the daemon's
//! defaults).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_probe_read_kernel_str_bytes,
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use memmon_common::{
    Stat,
    alloc::{AllocStats, SLAB_NAME_LEN, SlabKey},
};

use crate::maps::{EbpfContextExt as _, add, bump_stat, current_tgid, proc_counters};

/// Per cache name.
#[map]
pub static SLAB_CACHES: HashMap<SlabKey, AllocStats> = HashMap::with_max_entries(4096, 0);

/// Per kmalloc size class (bytes_alloc).
#[map]
pub static KMALLOC_CLASSES: HashMap<u64, AllocStats> = HashMap::with_max_entries(512, 0);

/// kmalloc: bytes_req, bytes_alloc (kmem_cache_alloc's come from the
/// kernel config: its record changed in 6.2).
const KMALLOC_REQ: usize = memmon_common::layouts::kmalloc::REQ as usize;
const KMALLOC_ALLOC: usize = memmon_common::layouts::kmalloc::ALLOC as usize;

#[inline(always)]
fn read_u64(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: offsets from this kernel's kmem formats.
    unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0)
}

/// The cache name of a kmem_cache_* record.
#[inline(always)]
fn cache_key(ctx: &TracePointContext) -> SlabKey {
    let mut key = SlabKey {
        name: [0; SLAB_NAME_LEN],
    };
    let at = crate::maps::config().tp.slab_name as usize;
    if at == 0 {
        // Before 6.2 the record carries no cache name.
        key.name[0] = b'?';
        return key;
    }
    // SAFETY: __data_loc: low 16 bits offset, high 16 bits length.
    let loc: u32 = unsafe { ctx.read_at::<u32>(at) }.unwrap_or(0);
    let off = (loc & 0xffff) as usize;
    let src = ctx.base().wrapping_add(off);
    // SAFETY: reads at most SLAB_NAME_LEN bytes of the record.
    let _ = unsafe { bpf_probe_read_kernel_str_bytes(src, &mut key.name) };
    key
}

#[inline(always)]
fn stats_for<K>(map: &HashMap<K, AllocStats>, key: &K) -> Option<*mut AllocStats> {
    if let Some(p) = map.get_ptr_mut(key) {
        return Some(p);
    }
    if map
        .insert(key, AllocStats::default(), BPF_NOEXIST as u64)
        .is_err()
        && map.get_ptr_mut(key).is_none()
    {
        bump_stat(Stat::SlabMapFull);
        return None;
    }
    map.get_ptr_mut(key)
}

#[tracepoint]
pub fn kmem_cache_alloc(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::SlabEvents);
    let tp = crate::maps::config().tp;
    let req = read_u64(&ctx, tp.slab_req as usize);
    let alloc = read_u64(&ctx, tp.slab_alloc as usize);
    let key = cache_key(&ctx);
    if let Some(s) = stats_for(&SLAB_CACHES, &key) {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*s).allocs, 1);
            add(&raw mut (*s).bytes_req, req);
            add(&raw mut (*s).bytes_alloc, alloc);
        }
    }
    let tgid = current_tgid();
    if tgid != 0
        && let Some(c) = proc_counters(tgid)
    {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*c).slab_allocs, 1);
            add(&raw mut (*c).slab_alloc_bytes, alloc);
        }
    }
    0
}

#[tracepoint]
pub fn kmem_cache_free(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::SlabEvents);
    let key = cache_key(&ctx);
    if let Some(s) = SLAB_CACHES.get_ptr_mut(&key) {
        // SAFETY: live map value.
        unsafe { add(&raw mut (*s).frees, 1) };
    }
    0
}

#[tracepoint]
pub fn kmalloc(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::SlabEvents);
    let req = read_u64(&ctx, KMALLOC_REQ);
    let alloc = read_u64(&ctx, KMALLOC_ALLOC);
    if let Some(s) = stats_for(&KMALLOC_CLASSES, &alloc) {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*s).allocs, 1);
            add(&raw mut (*s).bytes_req, req);
            add(&raw mut (*s).bytes_alloc, alloc);
        }
    }
    let tgid = current_tgid();
    if tgid != 0
        && let Some(c) = proc_counters(tgid)
    {
        // SAFETY: live map value.
        unsafe {
            add(&raw mut (*c).kmalloc_allocs, 1);
            add(&raw mut (*c).kmalloc_req_bytes, req);
            add(&raw mut (*c).kmalloc_alloc_bytes, alloc);
        }
    }
    0
}
