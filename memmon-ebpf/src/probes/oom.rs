//! `oom:mark_victim`: the OOM killer chose a victim. Every field of the
//! record goes to userspace through the `EVENTS` ring buffer (an OOM kill
//! must never be lost or merged), with the task that was running when it
//! fired (whose allocation triggered the kill). A failed reservation is
//! counted in `Stat::OomEventsLost`.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str_bytes,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use memmon_common::{
    OomEvent, Stat,
    events::{EVENT_OOM, OOM_VICTIM_IS_CURRENT},
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
        (*e)._pad = 0;
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
