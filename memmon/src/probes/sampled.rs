//! Probes that run part of the time: a program on a hook that fires for
//! every page the kernel allocates costs a few percent of a fault storm by
//! its mere invocation, however little it does, so `page_alloc` is
//! attached for a fixed window of every period ([`Duty`]) by a thread of
//! its own, which opens and closes the raw tracepoint link on a clock
//! (`BPF_RAW_TRACEPOINT_OPEN`; the program stays loaded, its counts and
//! run-time statistics go on). Its counts are scaled by the period over
//! the window ([`Duty::scale`]): an estimate, exact for steady allocation,
//! that misses bursts shorter than the period falling between windows.

use std::{
    ffi::CString,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use memmon_common::names::{Probe, probe};

/// How much of the time a sampled probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duty {
    /// Attached this long ...
    pub on: Duration,
    /// ... in every period this long.
    pub every: Duration,
}

impl Duty {
    /// What its counts are multiplied by: the period over the window.
    pub fn scale(self) -> u64 {
        (self.every.as_nanos() / self.on.as_nanos().max(1)) as u64
    }

    /// For status lines: "100 ms in every 1 s".
    pub fn describe(self) -> String {
        format!(
            "{} ms in every {} ms, counts x{}",
            self.on.as_millis(),
            self.every.as_millis(),
            self.scale()
        )
    }
}

/// The sampled probes and their duty: none for now. `page_alloc` was
/// attached 100 ms in every second, but opening and closing a tracepoint's
/// first link flips its static key, which rewrites kernel text (int3
/// patching) twice a second; in the 6.12 qemu guest (TCG) a fault took an
/// `Oops: int3` in `__alloc_pages` at such a rewrite and the kernel
/// panicked. Until the window is kept by a flag the program reads (its link
/// left open), `page_alloc` is attached whole and counts exactly.
pub const SAMPLED: &[(&Probe, Duty)] = &[];

/// The duty of probe `name`, if it is sampled.
pub fn duty(name: &str) -> Option<Duty> {
    SAMPLED
        .iter()
        .find(|(p, _)| p.name() == name)
        .map(|(_, d)| *d)
}

/// What the page allocator's counts are multiplied by (1: not sampled).
pub fn page_alloc_scale() -> u64 {
    duty(probe::PAGE_ALLOC).map_or(1, Duty::scale)
}

/// A process's kernel counters with the sampled probes' counts scaled to
/// estimates of the whole time (what every reader of the maps returns).
pub fn scaled(mut c: memmon_common::ProcCounters) -> memmon_common::ProcCounters {
    c.page_allocs = c.page_allocs.saturating_mul(page_alloc_scale());
    c
}

/// Why a sampled probe could not start.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Only raw tracepoints are sampled.
    #[error("{0} cannot be sampled: not a raw tracepoint")]
    NotRaw(&'static Probe),
    /// Its program could not be loaded, or its tracepoint is missing.
    #[error(transparent)]
    Attach(#[from] super::attach::AttachError),
    /// Its program's descriptor could not be shared with the thread.
    #[error("sharing the program with its sampler: {0}")]
    Fd(#[source] std::io::Error),
    /// The kernel refused the trial attach.
    #[error("attach to raw tracepoint {name} failed: {source}")]
    Open {
        /// The tracepoint.
        name: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// The thread could not start.
    #[error("starting the {probe} sampler: {source}")]
    Thread {
        /// The probe.
        probe: &'static Probe,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A sampled probe's thread.
#[derive(Debug)]
pub(super) struct Sampler {
    pub(super) probe: &'static Probe,
    stop: Arc<AtomicBool>,
    /// Nanoseconds the link was open, in all.
    on_ns: Arc<AtomicU64>,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Share of the time since it started that the probe was attached.
    pub fn measured_duty(&self) -> f64 {
        let elapsed = self.started.elapsed().as_nanos().max(1) as f64;
        self.on_ns.load(Ordering::Relaxed) as f64 / elapsed
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `BPF_RAW_TRACEPOINT_OPEN`.
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

#[repr(C)]
struct RawTracepointOpen {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// Attaches program `prog` to raw tracepoint `name` until the returned
/// link is closed.
fn open(name: &std::ffi::CStr, prog: &OwnedFd) -> std::io::Result<OwnedFd> {
    let mut attr = RawTracepointOpen {
        name: name.as_ptr() as u64,
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        _pad: 0,
    };
    // SAFETY: the attr is the raw_tracepoint member of bpf_attr; `name`
    // outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_RAW_TRACEPOINT_OPEN,
            (&raw mut attr).cast::<libc::c_void>(),
            std::mem::size_of::<RawTracepointOpen>() as u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sleeps until `at` unless stopped first (true: stopped).
fn sleep_until(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= at {
            return false;
        }
        std::thread::park_timeout(at - now);
    }
}

impl Sampler {
    /// Starts probe `probe`'s thread: program `prog` (loaded) attached to
    /// raw tracepoint `name` for `duty.on` of every `duty.every`, after
    /// one trial attach (the kernel's refusal is reported now, not lost in
    /// the thread).
    pub(super) fn start(
        probe: &'static Probe,
        name: &str,
        prog: OwnedFd,
        duty: Duty,
    ) -> Result<Sampler, SampleError> {
        let open_error = |source| SampleError::Open {
            name: name.to_string(),
            source,
        };
        let tracepoint = CString::new(name)
            .map_err(|e| open_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        drop(open(&tracepoint, &prog).map_err(open_error)?);
        let stop = Arc::new(AtomicBool::new(false));
        let on_ns = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let thread = {
            let (stop, on_ns) = (Arc::clone(&stop), Arc::clone(&on_ns));
            std::thread::Builder::new()
                .name(format!("memmon-{probe}"))
                .spawn(move || {
                    // Windows start half a period after start: away from
                    // the sampler's pass, which begins on the period.
                    let mut window = started + duty.every / 2;
                    loop {
                        if sleep_until(window, &stop) {
                            return;
                        }
                        let opened = Instant::now();
                        let link = open(&tracepoint, &prog);
                        if let Err(e) = &link {
                            tracing::debug!("sampled probe: attach failed: {e}");
                        }
                        let stopped = sleep_until(opened + duty.on, &stop);
                        drop(link);
                        on_ns.fetch_add(opened.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        if stopped {
                            return;
                        }
                        window += duty.every;
                        // Fell behind (a suspended VM): skip to the next.
                        while window < Instant::now() {
                            window += duty.every;
                        }
                    }
                })
                .map_err(|source| SampleError::Thread { probe, source })?
        };
        Ok(Sampler {
            probe,
            stop,
            on_ns,
            started,
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_sampled_and_a_duty_scales_by_its_period() {
        assert_eq!(duty(probe::PAGE_ALLOC.name()), None);
        assert_eq!(page_alloc_scale(), 1);
        let d = Duty {
            on: Duration::from_millis(100),
            every: Duration::from_secs(1),
        };
        assert_eq!(d.scale(), 10);
        assert_eq!(d.describe(), "100 ms in every 1000 ms, counts x10");
    }
}
