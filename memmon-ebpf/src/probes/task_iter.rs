//! `iter/task`: a BPF task iterator. One read of it walks every task and
//! writes a [`TaskRecord`] for each (what /proc/PID/stat prints: faults,
//! sizes, start time, parent, comm), so the daemon reads 10,000 processes
//! in one read instead of 10,000 preads. Threads other than a group's
//! leader only add their own fault counts (skipped when both are 0).
//! Offsets come from userspace (`TASK_ITER_CONFIG`, from BTF); while they
//! are unknown the program writes nothing.
//!
//! Two programs walk the same fields: `task_iter` loads them directly
//! through the task pointer the iterator hands over (typed by BTF: plain
//! loads the verifier checks against the kernel's struct layout, with the
//! offsets constant because `.rodata` is frozen), and `task_iter_probe`
//! reads them with `bpf_probe_read_kernel` (a helper call each, about five
//! times slower) for kernels whose verifier refuses the first.

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
    const _: () = assert!(RSS_MEMBERS == 4);
    Some(())
}
