//! `iter/task`: a BPF task iterator. One read of it walks every task and
//! writes a [`TaskRecord`] for each (what /proc/PID/stat prints: faults,
//! sizes, start time, parent, comm), so the daemon reads 10,000 processes
//! in one read instead of 10,000 preads. Threads other than a group's
//! leader only add their own fault counts (skipped when both are 0).
//! Offsets come from userspace (`TASK_ITER_CONFIG`, from BTF); while they
//! are unknown the program writes nothing.
//!
//! The iterator is also what counts swap: for each process it compares
//! the mm's swap-entry counter (MM_SWAPENTS) with the value it read last
//! (`SWAP_SEEN`) and adds a rise to the process's `swap_out_pages`, a fall
//! to `swap_in_pages`, in `PROC_COUNTERS`, so exits and the per-memcg exit
//! totals carry them like any probe's counts. A swap-out and a swap-in
//! between two reads of the same process cancel out; the exit probe takes
//! the last change ([`final_swap`]) where the kernel still shows the mm
//! at exit.
//!
//! Two programs walk the same fields: `task_iter` loads them directly
//! through the task pointer the iterator hands over (typed by BTF: plain
//! loads the verifier checks against the kernel's struct layout, with the
//! offsets constant because `.rodata` is frozen), and `task_iter_probe`
//! reads them with `bpf_probe_read_kernel` (a helper call each, about five
//! times slower) for kernels whose verifier refuses the first.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_probe_read_kernel, generated::bpf_seq_write},
    macros::map,
    maps::{Array, HashMap},
};
use memmon_common::{
    Stat,
    rss::{RSS_MEMBERS, RSS_SWAPENTS},
    task_iter::{STATE_COUNTING, TASK_HAS_MM, TASK_LEADER, TaskIterOffsets, TaskRecord},
};

use crate::maps::{add, bump_stat, proc_counters};

/// Processes with swap entries → the count last read (pages). An entry is
/// made when a process is first seen with swap, removed at its exit.
#[map]
pub static SWAP_SEEN: HashMap<u32, i64> = HashMap::with_max_entries(32768, 1);

/// `task_iter::STATE_*` slots, written by userspace.
#[map]
pub static TASK_ITER_STATE: Array<u64> = Array::with_max_entries(1, 0);

/// Offsets, written by userspace before loading.
#[unsafe(no_mangle)]
pub static TASK_ITER_CONFIG: TaskIterOffsets = TaskIterOffsets::unknown();

/// `struct bpf_iter__task`: the iterator's context.
#[repr(C)]
struct IterTask {
    /// `struct bpf_iter_meta *`; its first field is the `seq_file *`.
    meta: *const *mut c_void,
    /// `struct task_struct *`, NULL on the call after the last task.
    task: *const u8,
}

/// How a program reads a kernel field.
trait Read {
    /// The `T` at `base + offset` (None: the read failed).
    fn at<T: Copy + Default>(base: *const u8, offset: u32) -> Option<T>;
}

/// Plain loads through BTF-typed pointers (the verifier turns them into
/// exception-protected loads: a bad pointer reads 0).
struct Direct;

impl Read for Direct {
    #[inline(always)]
    fn at<T: Copy + Default>(base: *const u8, offset: u32) -> Option<T> {
        // SAFETY: base is a BTF pointer the verifier tracks; the access is
        // checked against the kernel's type at load.
        Some(unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize) as *const T) })
    }
}

/// `bpf_probe_read_kernel`.
struct Probe;

impl Read for Probe {
    #[inline(always)]
    fn at<T: Copy + Default>(base: *const u8, offset: u32) -> Option<T> {
        // SAFETY: probe_read checks the address; the offset came from BTF.
        unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }.ok()
    }
}

/// One offset of the configuration, read where it is used (so the
/// verifier sees a constant from the frozen `.rodata`, not a stack slot).
macro_rules! off {
    ($field:ident) => {
        // SAFETY: a plain static in .rodata.
        unsafe { core::ptr::read_volatile(&TASK_ITER_CONFIG.$field) }
    };
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn task_iter(ctx: *mut c_void) -> i32 {
    walk::<Direct>(ctx)
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn task_iter_probe(ctx: *mut c_void) -> i32 {
    walk::<Probe>(ctx)
}

#[inline(always)]
fn walk<R: Read>(ctx: *mut c_void) -> i32 {
    // SAFETY: the verifier types the context as bpf_iter__task.
    let ctx = unsafe { &*(ctx as *const IterTask) };
    if ctx.task.is_null() || off!(valid) == 0 {
        return 0;
    }
    let mut rec = TaskRecord::default();
    if fill::<R>(ctx.task, &mut rec).is_none() {
        return 0;
    }
    if rec.flags & TASK_LEADER == 0 && rec.min_flt == 0 && rec.maj_flt == 0 {
        return 0;
    }
    // SAFETY: the first field of bpf_iter_meta is the seq_file.
    unsafe {
        let seq = *ctx.meta;
        bpf_seq_write(
            seq.cast(),
            (&rec as *const TaskRecord).cast_mut().cast(),
            core::mem::size_of::<TaskRecord>() as u32,
        );
    }
    0
}

/// Reads one task into `rec` (None: a read failed; nothing is written).
#[inline(always)]
fn fill<R: Read>(task: *const u8, rec: &mut TaskRecord) -> Option<()> {
    rec.pid = R::at::<i32>(task, off!(pid))? as u32;
    rec.tgid = R::at::<i32>(task, off!(tgid))? as u32;
    rec.min_flt = R::at::<u64>(task, off!(min_flt))?;
    rec.maj_flt = R::at::<u64>(task, off!(maj_flt))?;
    if rec.pid != rec.tgid {
        return Some(());
    }
    rec.flags |= TASK_LEADER;
    let signal = R::at::<u64>(task, off!(signal))? as *const u8;
    if !signal.is_null() {
        rec.min_flt += R::at::<u64>(signal, off!(signal_min_flt))?;
        rec.maj_flt += R::at::<u64>(signal, off!(signal_maj_flt))?;
    }
    rec.start_boottime_ns = R::at::<u64>(task, off!(start_boottime))?;
    // A char array: one helper read either way (a direct load may not
    // span array elements).
    rec.comm = Probe::at::<[u8; 16]>(task, off!(comm))?;
    let parent = R::at::<u64>(task, off!(real_parent))? as *const u8;
    if !parent.is_null() {
        rec.ppid = R::at::<i32>(parent, off!(tgid)).unwrap_or(0) as u32;
    }
    let mm = R::at::<u64>(task, off!(mm))? as *const u8;
    if mm.is_null() {
        return Some(());
    }
    rec.flags |= TASK_HAS_MM;
    rec.total_vm_pages = R::at::<u64>(mm, off!(mm_total_vm))?;
    // Written out: each offset must be a constant for the verifier.
    let (first, stride) = (off!(mm_rss_first), off!(rss_stride));
    rec.rss_pages = [
        R::at::<i64>(mm, first).unwrap_or(0),
        R::at::<i64>(mm, first + stride).unwrap_or(0),
        R::at::<i64>(mm, first + 2 * stride).unwrap_or(0),
        R::at::<i64>(mm, first + 3 * stride).unwrap_or(0),
    ];
    const _: () = assert!(RSS_MEMBERS == 4 && RSS_SWAPENTS == 2);
    count_swap(rec.tgid, rec.rss_pages[RSS_SWAPENTS]);
    Some(())
}

/// Adds the change of process `tgid`'s swap entries since its last read
/// to its counters. A process first seen with swap entries counts them as
/// swapped out, except in userspace's first walk (they are then its
/// baseline: memmon did not see them go out).
#[inline(always)]
fn count_swap(tgid: u32, pages: i64) {
    let pages = if pages < 0 { 0 } else { pages };
    let last = match SWAP_SEEN.get_ptr_mut(&tgid) {
        Some(last) => {
            // SAFETY: a live map value.
            let was = unsafe { *last };
            if was == pages {
                return;
            }
            // SAFETY: as above.
            unsafe { *last = pages };
            was
        }
        None if pages == 0 => return,
        None => {
            if SWAP_SEEN.insert(&tgid, &pages, BPF_NOEXIST as u64).is_err() {
                bump_stat(Stat::SwapMapFull);
                return;
            }
            let counting = TASK_ITER_STATE.get(STATE_COUNTING).is_some_and(|v| *v != 0);
            if !counting {
                return;
            }
            0
        }
    };
    add_swap(tgid, pages - last);
}

/// Adds `delta` swap entries (rise: out, fall: in) to `tgid`'s counters.
#[inline(always)]
fn add_swap(tgid: u32, delta: i64) {
    let Some(c) = proc_counters(tgid) else {
        return;
    };
    // SAFETY: a live map value.
    unsafe {
        if delta > 0 {
            add(&raw mut (*c).swap_out_pages, delta as u64);
        } else if delta < 0 {
            add(&raw mut (*c).swap_in_pages, delta.unsigned_abs());
        }
    }
}

/// At the exit of process `tgid` (`task` exiting): the change of its swap
/// entries since the last read, where the kernel still has its mm (6.16+
/// runs the exit tracepoint before the mm is released), then its entry is
/// dropped.
#[inline(always)]
pub fn final_swap(task: *const u8, tgid: u32) {
    let Some(last) = SWAP_SEEN.get_ptr(&tgid) else {
        return;
    };
    // SAFETY: a live map value.
    let last = unsafe { *last };
    if off!(valid) != 0
        && let Some(mm) = Probe::at::<u64>(task, off!(mm))
        && mm != 0
        && let Some(pages) =
            Probe::at::<i64>(mm as *const u8, off!(mm_rss_first) + 2 * off!(rss_stride))
    {
        add_swap(tgid, (if pages < 0 { 0 } else { pages }) - last);
    }
    let _ = SWAP_SEEN.remove(&tgid);
}
