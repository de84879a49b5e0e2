//! The fault sampler's perf events, opened here rather than through aya so
//! that the sampler keeps its program and can change its period: one
//! PERF_COUNT_SW_PAGE_FAULTS event per online CPU, every process, the
//! `stack_faults` program set on each (PERF_EVENT_IOC_SET_BPF). A new
//! period closes the events and opens new ones (the faults in the few
//! microseconds between are not sampled). Not PERF_EVENT_IOC_PERIOD: a
//! software event changed in place fires at its next fault and then runs
//! one interval at the old period while its samples already report the
//! new one (kernel/events/core.c, perf_swevent_set_period uses
//! `last_period`), so each raise of the period credited a whole new
//! period to one fault: measured, a 40 MiB leak read as 50 MiB to 1 GiB
//! under a daemon that re-planned every pass. A new event starts a whole
//! period from its first fault and reports that period. Closing the events
//! (drop) detaches the program; pausing closes them until resumed (the
//! daemon's time slots: `probes::sampler_control`).

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use aya_obj::generated::{
    PERF_EVENT_IOC_SET_BPF, PERF_FLAG_FD_CLOEXEC, perf_event_attr,
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

/// The running events, their period and the program they run.
#[derive(Debug)]
pub struct FaultEvents {
    events: Vec<(u32, OwnedFd)>,
    period: u64,
    /// The program (a duplicate of its descriptor), for new events.
    prog: OwnedFd,
    /// When the events last opened or closed ([`FaultEvents::tick`]).
    phase_since: Instant,
    /// How long they were open before `phase_since`.
    opened: Duration,
    /// When they were first opened.
    created: Instant,
}

/// One time slot of a sampler that runs in slots ([`FaultEvents::tick`]).
pub const SLOT: Duration = Duration::from_millis(100);

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
        let prog = prog
            .try_clone_to_owned()
            .map_err(|source| FaultEventError::Syscall {
                call: "dup(the sampler program)",
                cpu: 0,
                source,
            })?;
        let events = open_events(&prog, period)?;
        Ok(FaultEvents {
            events,
            period,
            prog,
            phase_since: Instant::now(),
            opened: Duration::ZERO,
            created: Instant::now(),
        })
    }

    /// Faults per sample.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Whether the events are open (not paused).
    pub fn is_on(&self) -> bool {
        !self.events.is_empty()
    }

    /// Closes the events until [`FaultEvents::resume`]: a closed
    /// software event costs the faults nothing (the kernel's
    /// `perf_swevent_enabled` key is off again), which an open but
    /// disabled one does not.
    fn pause(&mut self) {
        self.events.clear();
    }

    /// Opens the events again at the period in force (each starts a whole
    /// period from its first fault).
    fn resume(&mut self) -> Result<(), FaultEventError> {
        if self.is_on() {
            return Ok(());
        }
        self.events = open_events(&self.prog, self.period)?;
        Ok(())
    }

    /// Opens or closes the events at the slots' boundaries: open one
    /// [`SLOT`] in `slots` (always, with one slot), so that each sample
    /// stands for `slots` times its period; returns when to call again.
    /// Each phase is timed from when it really began, so a late call
    /// lengthens one phase and the next keeps its length.
    pub fn tick(&mut self, slots: u64, now: Instant) -> Result<Instant, FaultEventError> {
        let on = self.is_on();
        let off = SLOT.saturating_mul(u32::try_from(slots.saturating_sub(1)).unwrap_or(u32::MAX));
        if slots <= 1 || (!on && now >= self.phase_since + off) {
            if !on {
                self.resume()?;
                self.phase_since = now;
            }
            return Ok(now + SLOT);
        }
        if on && now >= self.phase_since + SLOT {
            self.pause();
            self.opened += now.saturating_duration_since(self.phase_since);
            self.phase_since = now;
            return Ok(now + off);
        }
        Ok(self.phase_since + if on { SLOT } else { off })
    }

    /// How long since the events were first opened, as of `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// How long the events have been open since they were first opened,
    /// as of `now` (paused time left out).
    pub fn open_time(&self, now: Instant) -> Duration {
        if self.is_on() {
            self.opened + now.saturating_duration_since(self.phase_since)
        } else {
            self.opened
        }
    }

    /// Samples one fault in `period` from now on, on every CPU: closes the
    /// events and opens new ones at `period` (on failure, tries the old
    /// period again: the sampler keeps running if it can).
    pub fn set_period(&mut self, period: u64) -> Result<(), FaultEventError> {
        if period == 0 {
            return Err(FaultEventError::ZeroPeriod);
        }
        if period == self.period {
            return Ok(());
        }
        if !self.is_on() {
            // Paused: the next resume opens them at the new period.
            self.period = period;
            return Ok(());
        }
        // Closed first: two events on a CPU would both sample.
        self.events.clear();
        match open_events(&self.prog, period) {
            Ok(events) => {
                self.events = events;
                self.period = period;
                Ok(())
            }
            Err(e) => {
                if let Ok(events) = open_events(&self.prog, self.period) {
                    self.events = events;
                }
                Err(e)
            }
        }
    }
}

/// One event per online CPU at `period`, each running `prog`.
fn open_events(prog: &OwnedFd, period: u64) -> Result<Vec<(u32, OwnedFd)>, FaultEventError> {
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
    Ok(events)
}
