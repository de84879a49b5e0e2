//! Perf software event PERF_COUNT_SW_PAGE_FAULTS with a sample period
//! (`memmon profile --event faults`): every Nth fault on a CPU runs this
//! program, which adds one sample to the faulting process's (user stack,
//! kernel stack); userspace weighs each sample by the period. Attached only
//! by `memmon profile`.

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    macros::perf_event,
    programs::{PerfEventContext, tracing::StackIdContext as _},
};
use memmon_common::{
    Stat,
    stacks::{StackKey, stack_event},
};

use crate::maps::{STACK_TRACES, add_stack_weight, bump_stat, current_tgid, profile_target};

#[perf_event]
pub fn stack_faults(ctx: PerfEventContext) -> u32 {
    let tgid = current_tgid();
    if tgid == 0 || !profile_target(tgid) {
        return 0;
    }
    bump_stat(Stat::StackSamples);
    let user_stack = match ctx.get_stackid(&STACK_TRACES, BPF_F_USER_STACK as u64) {
        Ok(id) => id as i32,
        Err(_) => {
            bump_stat(Stat::StackLost);
            -1
        }
    };
    // A fault taken in user mode is sampled with the user's registers:
    // there is no kernel stack to walk (only faults in copy_to_user and
    // the like have one), so a failure here is not a loss.
    let kernel_stack = ctx
        .get_stackid(&STACK_TRACES, 0)
        .map(|id| id as i32)
        .unwrap_or(-1);
    let key = StackKey {
        tgid,
        event: stack_event::FAULTS,
        user_stack,
        kernel_stack,
    };
    add_stack_weight(&key, 1);
    0
}
