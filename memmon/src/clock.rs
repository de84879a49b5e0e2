//! The clocks, read in one place: the collector, the pipeline and the
//! commands read them; the model is handed a [`Now`] with each sample.

pub use crate::sample::Now;

/// Now, on both clocks.
pub fn now() -> Now {
    Now {
        instant: std::time::Instant::now(),
        unix_ms: unix_ms(),
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
