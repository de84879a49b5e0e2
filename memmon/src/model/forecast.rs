//! The time-to-limit forecast, pure math (std only, no I/O): a sliding
//! window of `(t, bytes)` samples, its growth rate as a Theil–Sen slope
//! (the median of all pairwise slopes, so one spike or one dropped sample
//! does not move it; at most [`MAX_SAMPLES`] samples keep the pairwise
//! cost bounded at 1,770 slopes), and the seconds until the fitted level
//! reaches a limit — absent when the level is flat or shrinking (slope at
//! or below [`MIN_GROWTH`]) or when there is no limit.

use std::collections::VecDeque;

/// Most samples a window holds (pairwise slopes: n·(n−1)/2).
pub const MAX_SAMPLES: usize = 60;
/// Fewest samples a slope is computed from.
pub const MIN_SAMPLES: usize = 3;
/// Growth at or below this (bytes/s: one 4 KiB page a second) is flat.
pub const MIN_GROWTH: f64 = 4096.0;

/// Samples of one quantity over time, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    samples: VecDeque<(f64, f64)>,
    capacity: usize,
    span: f64,
}

impl Window {
    /// A window of at most `capacity` samples (capped at [`MAX_SAMPLES`])
    /// no older than `span_secs` before the newest.
    pub fn new(capacity: usize, span_secs: f64) -> Self {
        let capacity = capacity.clamp(MIN_SAMPLES, MAX_SAMPLES);
        Window {
            samples: VecDeque::with_capacity(capacity),
            capacity,
            span: span_secs.max(0.0),
        }
    }

    /// Adds `bytes` at `t_secs` (any monotonic clock). A time before the
    /// newest sample (a clock reset) starts the window over; the same time
    /// replaces the newest sample.
    pub fn push(&mut self, t_secs: f64, bytes: u64) {
        if !t_secs.is_finite() {
            return;
        }
        match self.samples.back() {
            Some(&(t, _)) if t_secs < t => self.samples.clear(),
            Some(&(t, _)) if t_secs == t => {
                self.samples.pop_back();
            }
            _ => {}
        }
        self.samples.push_back((t_secs, bytes as f64));
        while self.samples.len() > self.capacity
            || self
                .samples
                .front()
                .is_some_and(|&(t, _)| t_secs - t > self.span)
        {
            self.samples.pop_front();
        }
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Seconds between the oldest and the newest sample.
    pub fn span_secs(&self) -> Option<f64> {
        Some(self.samples.back()?.0 - self.samples.front()?.0)
    }

    /// Growth rate, bytes per second (Theil–Sen); `None` below
    /// [`MIN_SAMPLES`] samples.
    pub fn slope(&self) -> Option<f64> {
        if self.samples.len() < MIN_SAMPLES {
            return None;
        }
        let (a, b) = self.samples.as_slices();
        let all: Vec<(f64, f64)> = a.iter().chain(b).copied().collect();
        theil_sen(&all)
    }

    /// The robust level at the newest sample: the median of
    /// `y − slope·t` (the Theil–Sen intercept) evaluated at the newest t.
    pub fn level(&self) -> Option<f64> {
        let slope = self.slope()?;
        let mut residuals: Vec<f64> = self.samples.iter().map(|&(t, y)| y - slope * t).collect();
        let t_last = self.samples.back()?.0;
        Some(median(&mut residuals)? + slope * t_last)
    }

    /// Seconds until the fitted level reaches `limit` at the current
    /// slope (see [`seconds_to_limit`]).
    pub fn seconds_to_limit(&self, limit: Option<u64>) -> Option<f64> {
        let level = self.level()?.max(0.0) as u64;
        seconds_to_limit(self.slope(), limit, level)
    }
}

/// Seconds until `current` bytes growing at `slope` bytes/s reach `limit`:
/// `None` without a limit or a slope, or when the slope is at most
/// [`MIN_GROWTH`] (flat or shrinking); `Some(0.0)` at or over the limit.
pub fn seconds_to_limit(slope: Option<f64>, limit: Option<u64>, current: u64) -> Option<f64> {
    let (slope, limit) = (slope?, limit?);
    if slope.is_nan() || slope <= MIN_GROWTH {
        return None;
    }
    Some(limit.saturating_sub(current) as f64 / slope)
}

/// The Theil–Sen slope of `points` (`(x, y)`): the median of the slopes of
/// every pair with distinct x. `None` when no such pair exists.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, &(x0, y0)) in points.iter().enumerate() {
        for &(x1, y1) in &points[i + 1..] {
            if x1 != x0 {
                slopes.push((y1 - y0) / (x1 - x0));
            }
        }
    }
    median(&mut slopes)
}

/// The median (the mean of the two middle values for an even count).
fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (_, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(upper);
    Some((lower + upper) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn window(points: impl IntoIterator<Item = (f64, u64)>) -> Window {
        let mut w = Window::new(MAX_SAMPLES, 60.0);
        for (t, y) in points {
            w.push(t, y);
        }
        w
    }

    #[test]
    fn steady_growth_of_8_mib_per_second_into_256_mib() {
        // 10 s of samples, one a second, from 40 MiB.
        let w = window((0..=10).map(|i| (100.0 + i as f64, 40 * MIB + i * 8 * MIB)));
        let slope = w.slope().expect("slope");
        assert!((slope - 8.0 * MIB as f64).abs() < 1.0, "{slope}");
        // Level at t=110 is 120 MiB: (256 - 120) / 8 = 17 s.
        let eta = w.seconds_to_limit(Some(256 * MIB)).expect("eta");
        assert!((eta - 17.0).abs() < 1e-6, "{eta}");
        assert_eq!(w.seconds_to_limit(None), None, "no limit, no forecast");
        assert_eq!(w.span_secs(), Some(10.0));
    }

    #[test]
    fn a_spike_moves_neither_slope_nor_forecast() {
        let mut points: Vec<(f64, u64)> = (0..=10).map(|i| (i as f64, i * 8 * MIB)).collect();
        points[6].1 += 150 * MIB; // a burst of page cache read and dropped
        points[3].1 = 0; // a sample read while the counter was reset
        let w = window(points);
        let slope = w.slope().expect("slope");
        assert!(
            (slope - 8.0 * MIB as f64).abs() < 0.05 * 8.0 * MIB as f64,
            "{slope}"
        );
        let eta = w.seconds_to_limit(Some(256 * MIB)).expect("eta");
        assert!((eta - 22.0).abs() < 1.5, "{eta}");
    }

    #[test]
    fn flat_or_shrinking_has_no_forecast() {
        let flat = window((0..20).map(|i| (i as f64, 100 * MIB)));
        assert_eq!(flat.slope(), Some(0.0));
        assert_eq!(flat.seconds_to_limit(Some(256 * MIB)), None);
        let shrinking = window((0..20).map(|i| (i as f64, 200 * MIB - i * MIB)));
        assert_eq!(shrinking.seconds_to_limit(Some(256 * MIB)), None);
        // Slow noise around a flat level (less than a page a second).
        let noisy = window((0..20).map(|i| (i as f64, 100 * MIB + (i % 3) * 1000)));
        assert_eq!(noisy.seconds_to_limit(Some(256 * MIB)), None);
    }

    #[test]
    fn too_few_samples_and_over_the_limit() {
        let w = window([(0.0, 0), (1.0, MIB)]);
        assert_eq!(w.slope(), None);
        assert_eq!(w.seconds_to_limit(Some(256 * MIB)), None);
        assert_eq!(seconds_to_limit(Some(1e6), Some(100), 200), Some(0.0));
        assert_eq!(seconds_to_limit(Some(f64::NAN), Some(100), 0), None);
        assert_eq!(seconds_to_limit(None, Some(100), 0), None);
        assert_eq!(theil_sen(&[(1.0, 1.0), (1.0, 5.0)]), None);
    }

    #[test]
    fn window_is_bounded_in_samples_and_time() {
        let mut w = Window::new(10_000, 30.0);
        for i in 0..1000 {
            w.push(i as f64 * 0.1, i);
        }
        assert_eq!(w.len(), MAX_SAMPLES);
        let mut w = Window::new(60, 5.0);
        for i in 0..20 {
            w.push(i as f64, i);
        }
        assert_eq!(w.span_secs(), Some(5.0));
        assert_eq!(w.len(), 6);
        // A clock reset starts over; the same time replaces the sample.
        w.push(3.0, 7);
        assert_eq!(w.len(), 1);
        w.push(3.0, 9);
        assert_eq!(w.len(), 1);
        w.push(f64::NAN, 1);
        assert_eq!(w.len(), 1);
        assert!(!w.is_empty());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
