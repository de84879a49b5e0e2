//! Perf software event PERF_COUNT_SW_PAGE_FAULTS with a sample period
//! (`memmon profile --event faults`): every Nth fault on a CPU runs this
//! program, which adds one sample to the faulting process's (user stack,
//! kernel stack); userspace weighs each sample by the period. Attached only
//! by `memmon profile`.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_F_USER_STACK, bpf_perf_event_data},
    macros::perf_event,
    programs::PerfEventContext,
};
use memmon_common::{
    Stat,
    stacks::{NO_STACK, ResidentSample, StackKey, setting, stack_event},
};

use crate::maps::{
    add_stack_weight, bump_stat, current_tgid, profile_setting, profile_target, send_resident,
    store_stack,
};

#[perf_event]
pub fn stack_faults(ctx: PerfEventContext) -> u32 {
    let tgid = current_tgid();
    if tgid == 0 || !profile_target(tgid) {
        return 0;
    }
    bump_stat(Stat::StackSamples);
    let user_stack = store_stack(&ctx, BPF_F_USER_STACK as u64).unwrap_or_else(|()| {
        bump_stat(Stat::StackLost);
        NO_STACK
    });
    // A fault taken in user mode is sampled with the user's registers:
    // there is no kernel stack to walk (only faults in copy_to_user and
    // the like have one), so a failure here is not a loss.
    let kernel_stack = store_stack(&ctx, 0).unwrap_or(NO_STACK);
    let key = StackKey {
        tgid,
        event: stack_event::FAULTS,
        user_stack,
        kernel_stack,
    };
    add_stack_weight(&key, 1);
    if profile_setting(setting::RESIDENT) != 0 {
        let data = ctx.as_ptr() as *const bpf_perf_event_data;
        // SAFETY: a perf_event program's context is bpf_perf_event_data;
        // the verifier rewrites these two reads into the sample's fields.
        let (addr, period) = unsafe { ((*data).addr, (*data).sample_period) };
        if addr != 0 {
            send_resident(&ResidentSample {
                addr,
                period,
                user_stack,
                kernel_stack,
                tgid,
                _pad: 0,
            });
        }
    }
    0
}
