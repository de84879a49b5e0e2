//! A log line that may repeat only so often: up to `burst` lines per
//! window are written, the rest are counted, and the count is handed back
//! once, after the window they fell in (for one summary line). Pure: the
//! caller passes the time.

use std::time::{Duration, Instant};

/// Lines allowed per window, and what was held back.
#[derive(Clone, Debug)]
pub struct LineBudget {
    window: Duration,
    burst: u32,
    start: Option<Instant>,
    used: u32,
    /// Held back in the current window.
    held: u64,
    /// Held back in windows that have ended, not yet summarized.
    pending: u64,
}

impl LineBudget {
    /// `burst` lines per `window`.
    pub const fn new(window: Duration, burst: u32) -> Self {
        LineBudget {
            window,
            burst,
            start: None,
            used: 0,
            held: 0,
            pending: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let ended = self
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window);
        if ended {
            self.pending += std::mem::take(&mut self.held);
            self.used = 0;
            self.start = Some(now);
        }
    }

    /// One occurrence at `now`: true when its line may be written.
    pub fn note(&mut self, now: Instant) -> bool {
        self.roll(now);
        if self.used < self.burst {
            self.used += 1;
            true
        } else {
            self.held += 1;
            false
        }
    }

    /// Lines held back in windows that have ended by `now`, once (None
    /// when there are none): at most one summary per window.
    pub fn summary(&mut self, now: Instant) -> Option<u64> {
        self.roll(now);
        (self.pending > 0).then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_one_summary_of_the_rest() {
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        let mut b = LineBudget::new(min, 2);
        let written = (0..1000)
            .filter(|i| b.note(t0 + Duration::from_millis(*i)))
            .count();
        assert_eq!(written, 2);
        // The window has not ended: no summary yet.
        assert_eq!(b.summary(t0 + Duration::from_secs(30)), None);
        assert_eq!(b.summary(t0 + min), Some(998));
        // Said once.
        assert_eq!(b.summary(t0 + min + Duration::from_secs(1)), None);
        // A new window writes again.
        assert!(b.note(t0 + min + Duration::from_secs(2)));
    }

    #[test]
    fn nothing_held_back_gives_no_summary() {
        let t0 = Instant::now();
        let mut b = LineBudget::new(Duration::from_secs(60), 5);
        for i in 0..5 {
            assert!(b.note(t0 + Duration::from_secs(i)));
        }
        assert_eq!(b.summary(t0 + Duration::from_secs(600)), None);
    }

    #[test]
    fn held_lines_of_an_ended_window_survive_a_new_burst() {
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        let mut b = LineBudget::new(min, 1);
        assert!(b.note(t0));
        assert!(!b.note(t0));
        assert!(!b.note(t0));
        // The next line comes after the window: written, and the two held
        // ones are still summarized.
        assert!(b.note(t0 + min));
        assert_eq!(b.summary(t0 + min), Some(2));
    }
}
