//! The fault sampler's perf events, opened here rather than through aya so
//! that their period can change in place: one PERF_COUNT_SW_PAGE_FAULTS
//! event per online CPU, every process, the `stack_faults` program set on
//! each (PERF_EVENT_IOC_SET_BPF), and PERF_EVENT_IOC_PERIOD to change the
//! period without closing them (no fault goes unsampled in between).
//! Closing the events (drop) detaches the program.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use aya_obj::generated::{
    PERF_EVENT_IOC_PERIOD, PERF_EVENT_IOC_SET_BPF, PERF_FLAG_FD_CLOEXEC, perf_event_attr,
    perf_sw_ids::PERF_COUNT_SW_PAGE_FAULTS, perf_type_id::PERF_TYPE_SOFTWARE,
};

/// Opening, attaching or re-periodizing an event failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultEventError {
    /// The online CPUs could not be read.
    #[error("cannot read the online CPUs from {path}: {source}")]
    Cpus {
        /// The file read.
        path: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{call} on cpu {cpu}: {source}")]
    Syscall {
        /// The call (perf_event_open, an ioctl).
        call: &'static str,
        /// The CPU whose event it was.
        cpu: u32,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A period of 0 was asked for.
    #[error("a period of 0 page faults per sample is not a period; give 1 or more")]
    ZeroPeriod,
}

/// The running events and their period.
#[derive(Debug)]
pub struct FaultEvents {
    events: Vec<(u32, OwnedFd)>,
    period: u64,
}

fn sys(call: &'static str, cpu: u32, ret: libc::c_long) -> Result<libc::c_long, FaultEventError> {
    if ret < 0 {
        Err(FaultEventError::Syscall {
            call,
            cpu,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

impl FaultEvents {
    /// Opens one event per online CPU sampling every `period` page faults
    /// of any process and sets program `prog` on each.
    pub fn open(prog: BorrowedFd<'_>, period: u64) -> Result<FaultEvents, FaultEventError> {
        if period == 0 {
            return Err(FaultEventError::ZeroPeriod);
        }
        let cpus = aya::util::online_cpus().map_err(|(path, source)| FaultEventError::Cpus {
            path: path.to_string(),
            source,
        })?;
        let mut events = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            // SAFETY: perf_event_attr is plain data; zero is every field's
            // "unset".
            let mut attr: perf_event_attr = unsafe { std::mem::zeroed() };
            attr.size = std::mem::size_of::<perf_event_attr>() as u32;
            attr.type_ = PERF_TYPE_SOFTWARE as u32;
            attr.config = PERF_COUNT_SW_PAGE_FAULTS as u64;
            attr.__bindgen_anon_1.sample_period = period;
            attr.__bindgen_anon_2.wakeup_events = 1;
            // SAFETY: perf_event_open with a valid attr; pid -1 and a CPU:
            // every process on that CPU; no group.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const perf_event_attr,
                    -1 as libc::pid_t,
                    cpu as libc::c_int,
                    -1 as libc::c_int,
                    PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
                )
            };
            let fd = sys("perf_event_open(page-faults)", cpu, fd)?;
            // SAFETY: perf_event_open returned a new descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            // SAFETY: ioctl on our event with the program's descriptor.
            let r = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    PERF_EVENT_IOC_SET_BPF as _,
                    prog.as_raw_fd() as libc::c_int,
                )
            };
            sys("PERF_EVENT_IOC_SET_BPF", cpu, r.into())?;
            events.push((cpu, fd));
        }
        Ok(FaultEvents { events, period })
    }

    /// Faults per sample.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Samples one fault in `period` from now on, on every CPU (the
    /// count toward the next sample starts again).
    pub fn set_period(&mut self, period: u64) -> Result<(), FaultEventError> {
        if period == 0 {
            return Err(FaultEventError::ZeroPeriod);
        }
        if period == self.period {
            return Ok(());
        }
        for (cpu, fd) in &self.events {
            // SAFETY: ioctl on our event; the kernel reads a u64.
            let r = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    PERF_EVENT_IOC_PERIOD as _,
                    &period as *const u64,
                )
            };
            sys("PERF_EVENT_IOC_PERIOD", *cpu, r.into())?;
        }
        self.period = period;
        Ok(())
    }
}
