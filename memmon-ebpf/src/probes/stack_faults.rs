//! Perf software event PERF_COUNT_SW_PAGE_FAULTS with a sample period
//! (`memmon profile --event faults`, `memmon leaks`, `daemon --profile`):
//! every Nth fault on a CPU runs this program. For the processes sampled,
//! it walks the (user stack, kernel stack) of 1 in `every` runs (drawn at
//! random; `every` is the process's PROFILE_WALK_EVERY entry, else
//! `setting::WALK_EVERY`, else 1) and adds `every` to that stack, so a
//! walk weighs the runs it stands for; userspace weighs each run by the
//! period. A run that walks nothing costs a map lookup and a random number.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_F_USER_STACK, bpf_perf_event_data},
    helpers::bpf_get_prandom_u32,
    macros::perf_event,
    programs::PerfEventContext,
};
use memmon_common::{
    Stat,
    stacks::{MAX_WALK_EVERY, NO_STACK, ResidentSample, StackKey, setting, stack_event},
};

use crate::maps::{
    PROFILE_WALK_EVERY, add_stack_weight, bump_stat, current_tgid, profile_setting, profile_target,
    send_resident, store_stack,
};

#[perf_event]
pub fn stack_faults(ctx: PerfEventContext) -> u32 {
    let tgid = current_tgid();
    if tgid == 0 || !profile_target(tgid) {
        return 0;
    }
    // SAFETY: plain read of a map value, copied out.
    let every = match unsafe { PROFILE_WALK_EVERY.get(&tgid) } {
        Some(n) => *n,
        None => profile_setting(setting::WALK_EVERY),
    }
    .min(MAX_WALK_EVERY);
    // SAFETY: helper with no arguments.
    if every > 1 && u64::from(unsafe { bpf_get_prandom_u32() }) % every != 0 {
        return 0;
    }
    let every = if every > 1 { every } else { 1 };
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
    add_stack_weight(&key, every as i64);
    if profile_setting(setting::RESIDENT) != 0 {
        let data = ctx.as_ptr() as *const bpf_perf_event_data;
        // SAFETY: a perf_event program's context is bpf_perf_event_data;
        // the verifier rewrites these two reads into the sample's fields.
        let (addr, period) = unsafe { ((*data).addr, (*data).sample_period) };
        if addr != 0 {
            send_resident(&ResidentSample {
                addr,
                // Both bounded (period below 2^32, every at most
                // MAX_WALK_EVERY): no overflow, and no 128-bit multiply,
                // which BPF has not.
                period: period.min(u64::from(u32::MAX)).wrapping_mul(every),
                user_stack,
                kernel_stack,
                tgid,
                _pad: 0,
            });
        }
    }
    0
}
