//! `oom:mark_victim`: the OOM killer chose a victim. Every field of the
//! record goes to userspace through the `EVENTS` ring buffer (an OOM kill
//! must never be lost or merged), with the task that was running when it
//! fired (whose allocation triggered the kill). A failed reservation is
//! counted in `Stat::OomEventsLost`.
//!
//! What limit was hit comes from the kernel at the kill, at offsets
//! userspace resolved from BTF (`OOM_CONFIG`): `oom_mark_victim` reads the
//! page counters (usage, limit) of the running task's memory cgroup and of
//! its ancestors (a memcg OOM happens with the memcg at its limit), and,
//! where kprobes exist, the kernel's own decision: `oom_out_of_memory`, a
//! kprobe on `out_of_memory(struct oom_control *oc)` (every OOM kill,
//! global or memcg, runs inside it, on the task that marks the victim),
//! keeps `oc` per thread, and `oom_mark_victim` reads `oc->constraint` and
//! `oc->memcg` (set only for a memcg OOM) with that memcg's id and
//! counters.

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_ANY,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str_bytes,
    },
    macros::{kprobe, map, tracepoint},
    maps::LruHashMap,
    programs::{ProbeContext, TracePointContext},
};
use memmon_common::{
    CgroupOffsets, OomEvent, OomOffsets, Stat,
    events::{
        EVENT_OOM, MEMCG_LEVELS, OOM_CONTROL_READ, OOM_MEMCG, OOM_MEMCG_ID, OOM_MEMSW,
        OOM_PATH_MEMSW, OOM_PATH_READ, OOM_VICTIM_IS_CURRENT,
    },
};

use crate::{
    maps::{EVENTS, bump_stat, config},
    task::Task,
};

use memmon_common::layouts::oom as layout;
const PID: usize = layout::PID as usize;
const COMM_LOC: usize = layout::COMM_LOC as usize;
const TOTAL_VM: usize = layout::TOTAL_VM as usize;
const ANON_RSS: usize = layout::ANON_RSS as usize;
const FILE_RSS: usize = layout::FILE_RSS as usize;
const SHMEM_RSS: usize = layout::SHMEM_RSS as usize;
const UID: usize = layout::UID as usize;
const PGTABLES: usize = layout::PGTABLES as usize;
const OOM_SCORE_ADJ: usize = layout::OOM_SCORE_ADJ as usize;

/// Offsets for the OOM programs, written by userspace before loading.
#[unsafe(no_mangle)]
pub static OOM_CONFIG: OomOffsets = OomOffsets::unknown();

/// Thread id → the `struct oom_control *` of the `out_of_memory()` call it
/// runs (the latest; an entry outlives its call, but the victim is always
/// marked inside one, so the entry read then is that call's).
#[map]
pub static OOM_CONTROLS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);

#[kprobe]
pub fn oom_out_of_memory(ctx: ProbeContext) -> u32 {
    if let Some(oc) = ctx.arg::<u64>(0) {
        let tid = bpf_get_current_pid_tgid() as u32;
        let _ = OOM_CONTROLS.insert(&tid, &oc, BPF_ANY as u64);
    }
    0
}

/// The load-time OOM offsets (a volatile read, as `maps::config`).
#[inline(always)]
fn oom_config() -> OomOffsets {
    // SAFETY: OOM_CONFIG is a plain static in .rodata.
    unsafe { core::ptr::read_volatile(&OOM_CONFIG) }
}

/// Fills the kernel's account of this OOM kill into `e`: the
/// `oom_control` saved for thread `tid` (where the kprobe runs), and the
/// page counters of the running task's memory cgroup and its ancestors.
///
/// # Safety
/// `e` points at reserved ring-buffer memory.
#[inline(always)]
unsafe fn read_control(e: *mut OomEvent, tid: u32, cg: &CgroupOffsets) {
    // SAFETY: caller's contract; every kernel read is a probe_read.
    unsafe {
        (*e).constraint = 0;
        (*e).oom_memcg_id = 0;
        (*e).memory_usage_pages = 0;
        (*e).memory_max_pages = 0;
        (*e).memsw_usage_pages = 0;
        (*e).memsw_max_pages = 0;
        (*e).path_levels = 0;
        (*e)._pad = 0;
        // Field by field: a whole-array store would go through the
        // 512-byte BPF stack.
        for i in 0..MEMCG_LEVELS {
            let level = &mut (*e).path[i];
            level.id = 0;
            level.usage_pages = 0;
            level.max_pages = 0;
            level.memsw_usage_pages = 0;
            level.memsw_max_pages = 0;
        }
        let off = oom_config();
        if off.valid == 0 {
            return;
        }
        read_path(e, &off, cg);
        if off.oc_valid == 0 {
            return;
        }
        let Some(oc) = OOM_CONTROLS.get(&tid).copied() else {
            return;
        };
        let oc = oc as *const u8;
        let (Some(memcg), Some(constraint)) = (
            Task::read_u64_at(oc, off.oc_memcg),
            Task::read_u32_at(oc, off.oc_constraint),
        ) else {
            return;
        };
        (*e).constraint = constraint;
        (*e).flags |= OOM_CONTROL_READ;
        if memcg == 0 {
            return;
        }
        let memcg = memcg as *const u8;
        if let (Some(usage), Some(max)) = (
            Task::read_u64_at(memcg, off.memcg_memory + off.counter_usage),
            Task::read_u64_at(memcg, off.memcg_memory + off.counter_max),
        ) {
            (*e).memory_usage_pages = usage;
            (*e).memory_max_pages = max;
            (*e).flags |= OOM_MEMCG;
        }
        if off.memsw_valid != 0
            && let (Some(usage), Some(max)) = (
                Task::read_u64_at(memcg, off.memcg_memsw + off.counter_usage),
                Task::read_u64_at(memcg, off.memcg_memsw + off.counter_max),
            )
        {
            (*e).memsw_usage_pages = usage;
            (*e).memsw_max_pages = max;
            (*e).flags |= OOM_MEMSW;
        }
        if let Some(id) = Task::css_cgroup_id(memcg.add(off.memcg_css as usize), cg) {
            (*e).oom_memcg_id = id;
            (*e).flags |= OOM_MEMCG_ID;
        }
    }
}

/// The running task's memory cgroup and its ancestors (up to
/// `MEMCG_LEVELS`), each with its id and page counters, into `e.path`.
///
/// # Safety
/// `e` points at reserved ring-buffer memory.
#[inline(always)]
unsafe fn read_path(e: *mut OomEvent, off: &OomOffsets, cg: &CgroupOffsets) {
    let Some(mut css) = Task::current().memory_css(cg) else {
        return;
    };
    // SAFETY: caller's contract; every kernel read is a probe_read.
    unsafe {
        (*e).flags |= OOM_PATH_READ;
        if off.memsw_valid != 0 {
            (*e).flags |= OOM_PATH_MEMSW;
        }
        for i in 0..MEMCG_LEVELS {
            if css.is_null() {
                break;
            }
            let memcg = css.sub(off.memcg_css as usize);
            let level = &mut (*e).path[i];
            level.id = Task::css_cgroup_id(css, cg).unwrap_or(0);
            level.usage_pages =
                Task::read_u64_at(memcg, off.memcg_memory + off.counter_usage).unwrap_or(0);
            level.max_pages =
                Task::read_u64_at(memcg, off.memcg_memory + off.counter_max).unwrap_or(0);
            if off.memsw_valid != 0 {
                level.memsw_usage_pages =
                    Task::read_u64_at(memcg, off.memcg_memsw + off.counter_usage).unwrap_or(0);
                level.memsw_max_pages =
                    Task::read_u64_at(memcg, off.memcg_memsw + off.counter_max).unwrap_or(0);
            }
            (*e).path_levels = i as u32 + 1;
            css = Task::read_u64_at(css, off.css_parent).unwrap_or(0) as *const u8;
        }
    }
}

#[tracepoint]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    bump_stat(Stat::OomEvents);
    let Some(mut slot) = EVENTS.reserve::<OomEvent>(0) else {
        bump_stat(Stat::OomEventsLost);
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let e = slot.as_mut_ptr();
    // SAFETY: `e` is reserved ring-buffer memory, filled completely before
    // submit; record offsets from this kernel's oom/mark_victim format.
    unsafe {
        let victim: i32 = ctx.read_at(PID).unwrap_or(0);
        (*e).kind = EVENT_OOM;
        (*e).flags = 0;
        (*e).victim_pid = victim as u32;
        (*e).uid = ctx.read_at(UID).unwrap_or(0);
        (*e).oom_score_adj = i32::from(ctx.read_at::<i16>(OOM_SCORE_ADJ).unwrap_or(0));
        (*e).killer_tid = pid_tgid as u32;
        (*e).killer_tgid = (pid_tgid >> 32) as u32;
        (*e).total_vm_kb = ctx.read_at(TOTAL_VM).unwrap_or(0);
        (*e).anon_rss_kb = ctx.read_at(ANON_RSS).unwrap_or(0);
        (*e).file_rss_kb = ctx.read_at(FILE_RSS).unwrap_or(0);
        (*e).shmem_rss_kb = ctx.read_at(SHMEM_RSS).unwrap_or(0);
        (*e).pgtables_kb = ctx.read_at(PGTABLES).unwrap_or(0);
        (*e).killer_cgroup_id = bpf_get_current_cgroup_id();
        (*e).boot_ns = bpf_ktime_get_boot_ns();
        (*e).killer_comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if (*e).killer_tgid == (*e).victim_pid {
            (*e).flags |= OOM_VICTIM_IS_CURRENT;
        }
        // __data_loc: low 16 bits offset in the record, high 16 length.
        (*e).killer_memcg = [0; 64];
        let cfg = config();
        let _ = Task::current().memory_cgroup_name(&cfg.cgroup, &mut (*e).killer_memcg);
        read_control(e, pid_tgid as u32, &cfg.cgroup);
        (*e).victim_comm = [0; 16];
        let loc: u32 = ctx.read_at(COMM_LOC).unwrap_or(0);
        let off = (loc & 0xffff) as usize;
        if off != 0 {
            let src = (ctx.as_ptr() as *const u8).add(off);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*e).victim_comm);
        }
    }
    slot.submit(0);
    0
}
