//! The clocks, read in one place: the collector, the pipeline and the
//! commands read them; the model is handed a [`Now`] with each sample.

pub use crate::sample::Now;

/// Now, on both clocks.
pub fn now() -> Now {
    Now {
        instant: std::time::Instant::now(),
        unix_ms: unix_ms(),
        boot_ns: boottime_ns(),
    }
}

/// CLOCK_BOOTTIME now, ns (the clock of the kernel's event timestamps);
/// 0 when it cannot be read.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
