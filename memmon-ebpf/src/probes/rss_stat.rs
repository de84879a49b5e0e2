//! `kmem:rss_stat`: every update of an mm's resident-set counters (file,
//! anon, swap entries, shmem). The record names the mm only by `mm_id`, a
//! hash of its pointer, so the owner is learned when `curr == 1` (the
//! current task's own mm) and kept in `MM_STATE`; updates made by other
//! tasks (kswapd, another process's reclaim) are attributed through it.
//!
//! Swap out / swap in are told apart by the sign of the change of the
//! MM_SWAPENTS counter per mm, never by `curr`: under a memcg limit a
//! process reclaims (and swaps out) its own pages with `curr == 1`.
//! The first swap update of an mm only sets the baseline. The last value of
//! every counter is kept, so userspace reads each process's resident set
//! (file, anon, shmem) and swap as of the last update.
//!
//! Two programs feed the same logic: `rss_stat_raw`, a raw tracepoint used
//! on kernels from 6.2 (no record is formatted and no per-CPU sum taken: it
//! reads the counter's `count` through BTF offsets, as /proc/PID/status
//! does), and `rss_stat`, the classic tracepoint, everywhere else.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    macros::{map, raw_tracepoint, tracepoint},
    maps::HashMap,
    programs::{RawTracePointContext, TracePointContext},
};
use memmon_common::{
    MmState, RssOffsets, Stat,
    rss::{RSS_SWAPENTS, RSS_UNKNOWN},
};

use crate::maps::{add, bump_stat, current_tgid, proc_counters};

const MM_ID_OFFSET: usize = memmon_common::layouts::rss_stat::MM_ID as usize;
const CURR_OFFSET: usize = memmon_common::layouts::rss_stat::CURR as usize;
const MEMBER_OFFSET: usize = memmon_common::layouts::rss_stat::MEMBER as usize;
const SIZE_OFFSET: usize = memmon_common::layouts::rss_stat::SIZE as usize;
const PAGE_SHIFT: u32 = 12;

/// mm_id → owner and last swap size. Entries are removed when the owner
/// exits ([`forget_process`]) or moves to another mm (exec).
#[map]
pub static MM_STATE: HashMap<u32, MmState> = HashMap::with_max_entries(32768, 0);

/// tgid → mm_id of its current mm, to find the entry at exit.
#[map]
pub static TGID_MM: HashMap<u32, u32> = HashMap::with_max_entries(32768, 0);

/// Offsets for `rss_stat_raw`, written by userspace before loading.
#[unsafe(no_mangle)]
pub static RSS_CONFIG: RssOffsets = RssOffsets::unknown();

#[tracepoint]
pub fn rss_stat(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::RssEvents);
    // SAFETY: offsets from this kernel's kmem/rss_stat format.
    let (Ok(mm_id), Ok(curr), Ok(member), Ok(size)) = (unsafe {
        (
            ctx.read_at::<u32>(MM_ID_OFFSET),
            ctx.read_at::<u32>(CURR_OFFSET),
            ctx.read_at::<i32>(MEMBER_OFFSET),
            ctx.read_at::<i64>(SIZE_OFFSET),
        )
    }) else {
        return 0;
    };
    update(mm_id, curr != 0, member, size)
}

/// `trace_rss_stat(struct mm_struct *mm, int member)` (6.2+).
#[raw_tracepoint(tracepoint = "rss_stat")]
pub fn rss_stat_raw(ctx: RawTracePointContext) -> u32 {
    bump_stat(Stat::RssEvents);
    // SAFETY: CONFIG-like plain static in .rodata.
    let off = unsafe { core::ptr::read_volatile(&RSS_CONFIG) };
    if off.valid == 0 {
        return 0;
    }
    let mm: u64 = ctx.arg(0);
    let member: u64 = ctx.arg(1);
    let member = member as u32;
    if member >= off.counters || mm == 0 {
        return 0;
    }
    let counter = mm + off.mm_rss_stat as u64 + member as u64 * off.counter_size as u64;
    // SAFETY: probe_read checks the address; offsets came from BTF.
    let Ok(pages) =
        (unsafe { bpf_probe_read_kernel((counter + off.counter_count as u64) as *const i64) })
    else {
        return 0;
    };
    // SAFETY: as above.
    let task = unsafe { bpf_get_current_task() };
    let current_mm =
        unsafe { bpf_probe_read_kernel((task + off.task_mm as u64) as *const u64).unwrap_or(0) };
    // The record's `mm_id` is a 32-bit hash of the pointer; any stable
    // 32-bit key does (mm_structs are cache-line aligned).
    let mm_id = ((mm >> 6) ^ (mm >> 38)) as u32;
    update(
        mm_id,
        current_mm == mm,
        member as i32,
        pages.max(0) << PAGE_SHIFT,
    )
}

/// One counter update: `size` bytes now in counter `member` of the mm
/// `mm_id`; `curr`: the mm is the current task's.
#[inline(always)]
fn update(mm_id: u32, curr: bool, member: i32, size: i64) -> u32 {
    // Fast path (every fault that maps a page lands here): one lookup when
    // the mm is already known to belong to the current process.
    let mut state = MM_STATE.get_ptr_mut(mm_id);
    if curr {
        let tgid = current_tgid();
        if tgid == 0 {
            return 0;
        }
        // SAFETY: live map value.
        let known = state.is_some_and(|s| unsafe { (*s).tgid } == tgid);
        if !known {
            learn_owner(mm_id, tgid);
            state = MM_STATE.get_ptr_mut(mm_id);
        }
    }
    let Some(state) = state else {
        // curr == 0 for an mm whose owner we never saw (or that exited).
        return 0;
    };
    // Constant offsets per member: the verifier needs no bounds proof.
    // SAFETY: `state` is a live map value.
    let field: *mut i64 = unsafe {
        match member {
            0 => &raw mut (*state).bytes[0],
            1 => &raw mut (*state).bytes[1],
            2 => &raw mut (*state).bytes[RSS_SWAPENTS],
            3 => &raw mut (*state).bytes[3],
            _ => return 0,
        }
    };
    // SAFETY: as above; a racing update of the same mm on another CPU at
    // worst attributes one change twice or not at all.
    let (tgid, last) = unsafe { ((*state).tgid, *field) };
    unsafe { *field = size };
    if member as usize != RSS_SWAPENTS || last == RSS_UNKNOWN {
        return 0;
    }
    let delta = (size - last) >> PAGE_SHIFT;
    if delta == 0 {
        return 0;
    }
    let Some(c) = proc_counters(tgid) else {
        return 0;
    };
    // SAFETY: live map value.
    unsafe {
        if delta > 0 {
            add(&raw mut (*c).swap_out_pages, delta as u64);
        } else {
            add(&raw mut (*c).swap_in_pages, (-delta) as u64);
        }
    }
    0
}

/// Records `mm_id` as `tgid`'s mm, dropping the entry of its previous mm.
#[inline(always)]
fn learn_owner(mm_id: u32, tgid: u32) {
    let previous = TGID_MM.get_ptr(tgid).map(|p| {
        // SAFETY: live map value.
        unsafe { *p }
    });
    if previous != Some(mm_id) {
        if let Some(old) = previous {
            // exec gave the process a new mm: drop the old one's entry.
            let _ = MM_STATE.remove(old);
        }
        if TGID_MM.insert(tgid, mm_id, BPF_ANY as u64).is_err() {
            bump_stat(Stat::RssMapFull);
            return;
        }
    }
    if let Some(state) = MM_STATE.get_ptr_mut(mm_id) {
        // Shared mm (vfork child, CLONE_VM): the latest user owns it.
        // SAFETY: live map value.
        unsafe { (*state).tgid = tgid };
        return;
    }
    let state = MmState::new(tgid);
    if MM_STATE.insert(mm_id, state, BPF_ANY as u64).is_err() {
        bump_stat(Stat::RssMapFull);
    }
}

/// Removes `tgid`'s mm entries (called at process exit).
#[inline(always)]
pub fn forget_process(tgid: u32) {
    if let Some(mm) = TGID_MM.get_ptr(tgid) {
        // SAFETY: live map value.
        let mm_id = unsafe { *mm };
        let _ = MM_STATE.remove(mm_id);
        let _ = TGID_MM.remove(tgid);
    }
}
