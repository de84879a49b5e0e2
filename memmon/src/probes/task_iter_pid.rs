//! The task iterator scoped to one process: a BPF iterator link created
//! with `bpf_iter_link_info.task.pid` (Linux 6.1+) walks only that
//! process's threads, so a pass can read the few processes that changed
//! without the kernel walking every task. aya 0.14 creates iterator links
//! without link info, so the link is made here with the `bpf(2)` syscall.

use std::{
    io::Read as _,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

/// `BPF_LINK_CREATE`.
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_ITER_CREATE`.
const BPF_ITER_CREATE: libc::c_long = 33;
/// `BPF_TRACE_ITER`.
const BPF_TRACE_ITER: u32 = 28;

/// `bpf_attr.link_create` with `iter_info` (the fields memmon sets).
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    _pad: [u32; 11],
}

/// `union bpf_iter_link_info` (16 bytes: its cgroup member is the
/// largest), with the task member set.
#[repr(C)]
#[derive(Default)]
struct IterLinkInfo {
    tid: u32,
    pid: u32,
    pid_fd: u32,
    _pad: u32,
}

/// `bpf_attr.iter_create`.
#[repr(C)]
#[derive(Default)]
struct IterCreate {
    link_fd: u32,
    flags: u32,
    _pad: [u32; 14],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a bpf_attr prefix of its full size for `cmd`; the
    // kernel checks the rest is zero.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs iterator program `prog` over the threads of process `pid` only,
/// appending what it writes to `buf`. `ENOENT`/`ESRCH`: no such process.
pub fn read_process(prog: BorrowedFd<'_>, pid: u32, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut info = IterLinkInfo {
        pid,
        ..Default::default()
    };
    let mut link = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_TRACE_ITER,
        iter_info: (&raw mut info) as u64,
        iter_info_len: std::mem::size_of::<IterLinkInfo>() as u32,
        ..Default::default()
    };
    let link = bpf(BPF_LINK_CREATE, &mut link)?;
    let mut create = IterCreate {
        link_fd: link.as_fd().as_raw_fd() as u32,
        ..Default::default()
    };
    let iter = bpf(BPF_ITER_CREATE, &mut create)?;
    std::fs::File::from(iter).read_to_end(buf)?;
    Ok(())
}

/// Why one process could not be read alone.
#[derive(Debug, thiserror::Error)]
pub enum ProcessReadError {
    /// The task iterator is not loaded.
    #[error(transparent)]
    Unavailable(#[from] super::set::TaskIterUnavailable),
    /// Its program is not in the object, or not an iterator.
    #[error("the task iterator program {0} cannot be used: {1}")]
    Program(&'static str, String),
    /// The kernel refused the iterator link or its read.
    #[error("reading process {pid} with the task iterator: {source}")]
    Kernel {
        /// The process.
        pid: u32,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// Why a pass cannot read only the processes that ran.
#[derive(Debug, thiserror::Error)]
pub enum PerProcessUnavailable {
    /// A marking probe is not attached.
    #[error("probe {0} is not attached")]
    NotAttached(&'static memmon_common::names::Probe),
    /// The bitmap could not be mapped.
    #[error("the RAN bitmap could not be mapped")]
    NoBitmap,
    /// Reading memmon itself alone failed.
    #[error(transparent)]
    Read(#[from] ProcessReadError),
    /// The kernel ignores the process of the link (before Linux 6.1).
    #[error(
        "this kernel's task iterator does not walk one process alone (Linux 6.1+; \
         {mine} of memmon's tasks and {others} others came back)"
    )]
    Ignored {
        /// memmon's own tasks read.
        mine: usize,
        /// Other tasks read.
        others: usize,
    },
}

impl super::ProbeSet {
    /// The task records of process `pid` alone, appended to `buf`
    /// (nothing when it is gone).
    pub fn read_process_tasks(
        &mut self,
        pid: u32,
        buf: &mut Vec<u8>,
    ) -> Result<(), ProcessReadError> {
        let name = self.task_iter_loaded.clone()?;
        let program: &mut aya::programs::Iter = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| ProcessReadError::Program(name, "not in the object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| {
                ProcessReadError::Program(name, e.to_string())
            })?;
        let fd = program
            .fd()
            .map_err(|e| ProcessReadError::Program(name, e.to_string()))?;
        match read_process(fd.as_fd(), pid, buf) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(()),
            Err(source) => Err(ProcessReadError::Kernel { pid, source }),
        }
    }

    /// True when a process that ran could not be marked since the last
    /// call (its pid past the bitmap: pid_max was raised after load): the
    /// next pass must walk every task.
    pub fn ran_overflowed(&mut self) -> bool {
        let Some(map) = self.ebpf.map(memmon_common::names::STATS) else {
            return false;
        };
        let Ok(stats) = aya::maps::PerCpuArray::<&aya::maps::MapData, u64>::try_from(map) else {
            return false;
        };
        let now: u64 = stats
            .get(&(memmon_common::Stat::RanOverflow as u32), 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0);
        let grew = now > self.ran_overflows;
        self.ran_overflows = now;
        grew
    }

    /// Detaches the marking probes (a pass cannot use their marks here),
    /// saying why.
    pub fn drop_ran_probes(&mut self, why: &str) {
        use memmon_common::names::probe;
        for p in [probe::RAN_SWITCH, probe::RAN_TICK] {
            self.suspend(
                p,
                &format!("not needed: {why}; every pass walks every task"),
            );
        }
    }

    /// Appends the tgids that ran since the last call to `out`; false when
    /// there is no bitmap.
    pub fn take_ran(&self, out: &mut Vec<u32>) -> bool {
        match &self.ran {
            Some(bitmap) => {
                bitmap.take(out);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernels() {
        // link_create: prog_fd, target_fd, attach_type, flags, then the
        // iter_info pointer at 16 and its length at 24.
        assert_eq!(std::mem::offset_of!(LinkCreate, iter_info), 16);
        assert_eq!(std::mem::offset_of!(LinkCreate, iter_info_len), 24);
        assert_eq!(std::mem::size_of::<IterLinkInfo>(), 16);
    }
}
