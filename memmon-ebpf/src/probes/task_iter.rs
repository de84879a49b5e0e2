//! `iter/task`: a BPF task iterator. One read of it walks every task and
//! writes a [`TaskRecord`] for each (what /proc/PID/stat prints: faults,
//! sizes, start time, parent, comm), so the daemon reads 10,000 processes
//! in one read instead of 10,000 preads. Threads other than a group's
//! leader only add their own fault counts (skipped when both are 0).
//! Offsets come from userspace (`TASK_ITER_CONFIG`, from BTF); while they
//! are unknown the program writes nothing.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_seq_write};
use memmon_common::{
    rss::RSS_MEMBERS,
    task_iter::{TASK_HAS_MM, TASK_LEADER, TaskIterOffsets, TaskRecord},
};

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

#[inline(always)]
fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    // SAFETY: probe_read checks the address; the offset came from BTF.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }.ok()
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn task_iter(ctx: *mut c_void) -> i32 {
    // SAFETY: the verifier types the context as bpf_iter__task.
    let ctx = unsafe { &*(ctx as *const IterTask) };
    if ctx.task.is_null() {
        return 0;
    }
    // SAFETY: a plain static in .rodata.
    let off = unsafe { core::ptr::read_volatile(&TASK_ITER_CONFIG) };
    if off.valid == 0 {
        return 0;
    }
    let mut rec = TaskRecord::default();
    if fill(ctx.task, &off, &mut rec).is_none() {
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
/// Fields the kernel keeps side by side are read together (userspace
/// checked that they are: pid/tgid, min_flt/maj_flt in both structs).
#[inline(always)]
fn fill(task: *const u8, off: &TaskIterOffsets, rec: &mut TaskRecord) -> Option<()> {
    let [pid, tgid] = read::<[i32; 2]>(task, off.pid)?;
    (rec.pid, rec.tgid) = (pid as u32, tgid as u32);
    [rec.min_flt, rec.maj_flt] = read::<[u64; 2]>(task, off.min_flt)?;
    if rec.pid != rec.tgid {
        return Some(());
    }
    rec.flags |= TASK_LEADER;
    let signal = read::<*const u8>(task, off.signal)?;
    let [min, maj] = read::<[u64; 2]>(signal, off.signal_min_flt)?;
    rec.min_flt += min;
    rec.maj_flt += maj;
    rec.start_boottime_ns = read::<u64>(task, off.start_boottime)?;
    rec.comm = read::<[u8; 16]>(task, off.comm)?;
    let parent = read::<*const u8>(task, off.real_parent)?;
    if !parent.is_null() {
        rec.ppid = read::<i32>(parent, off.tgid).unwrap_or(0) as u32;
    }
    let mm = read::<*const u8>(task, off.mm)?;
    if mm.is_null() {
        return Some(());
    }
    rec.flags |= TASK_HAS_MM;
    rec.total_vm_pages = read::<u64>(mm, off.mm_total_vm)?;
    // The counters in one read where their stride is one of the two
    // layouts the kernel has had (atomic_long_t before 6.2, a 40-byte
    // percpu_counter after); one read each otherwise.
    match off.rss_stride {
        8 => {
            rec.rss_pages = read::<[i64; RSS_MEMBERS]>(mm, off.mm_rss_first).unwrap_or_default();
        }
        40 => {
            if let Some(block) = read::<[i64; 16]>(mm, off.mm_rss_first) {
                rec.rss_pages = [block[0], block[5], block[10], block[15]];
            }
        }
        _ => {
            let mut i = 0;
            while i < RSS_MEMBERS {
                let at = off.mm_rss_first + i as u32 * off.rss_stride;
                rec.rss_pages[i] = read::<i64>(mm, at).unwrap_or(0);
                i += 1;
            }
        }
    }
    Some(())
}
