//! `iter/task`: a BPF task iterator, loaded only to probe whether this
//! kernel lets memmon walk every task in one read (instead of one pread
//! of /proc/PID/stat per process). For each task it writes the task's
//! pointer (8 bytes), so userspace can count the tasks it saw; on a
//! kernel that refuses it, memmon keeps reading /proc.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_seq_write;

/// `struct bpf_iter__task`: the iterator's context.
#[repr(C)]
struct IterTask {
    /// `struct bpf_iter_meta *`; its first field is the `seq_file *`.
    meta: *const *mut c_void,
    /// `struct task_struct *`, NULL on the call after the last task.
    task: *const c_void,
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn task_iter(ctx: *mut c_void) -> i32 {
    // SAFETY: the verifier types the context as bpf_iter__task; both
    // pointers are BTF pointers it checks on load.
    unsafe {
        let ctx = &*(ctx as *const IterTask);
        if ctx.task.is_null() {
            return 0;
        }
        let seq = *ctx.meta;
        let task = ctx.task as u64;
        bpf_seq_write(seq.cast(), (&task as *const u64).cast_mut().cast(), 8);
    }
    0
}
