//! Math over one value's samples (pure): its robust growth rate (the
//! forecast's Theil–Sen slope), a counter's rate over the window, and the
//! shape of a size series (flat, steady growth, a step, a sawtooth,
//! shrinking).

use serde::{Deserialize, Serialize};

use super::thresholds::{self, key};
use crate::model::forecast::theil_sen;

/// `(seconds since the first sample, value)` for the samples that have one.
pub fn points(samples: impl Iterator<Item = (u64, Option<f64>)>) -> Vec<(f64, f64)> {
    let mut first = None;
    samples
        .filter_map(|(ms, v)| {
            let v = v?;
            let t0 = *first.get_or_insert(ms);
            Some((ms.saturating_sub(t0) as f64 / 1000.0, v))
        })
        .collect()
}

/// Growth per second (Theil–Sen); None with fewer than 3 samples.
pub fn slope(pts: &[(f64, f64)]) -> Option<f64> {
    if pts.len() < 3 {
        return None;
    }
    theil_sen(pts)
}

/// A counter's mean rate per second between its first and last sample;
/// None with fewer than 2 samples, no time between them, or a counter that
/// went back (it was reset: the rate is unknown, not negative).
pub fn rate(pts: &[(f64, f64)]) -> Option<f64> {
    let (&(t0, a), &(t1, b)) = (pts.first()?, pts.last()?);
    (t1 > t0 && b >= a).then(|| (b - a) / (t1 - t0))
}

/// The change from the first sample to the last.
pub fn change(pts: &[(f64, f64)]) -> Option<f64> {
    Some(pts.last()?.1 - pts.first()?.1)
}

/// What a size series looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Too few samples to tell.
    Unknown,
    /// No change worth the name.
    Flat,
    /// Growing at a steady pace.
    Steady,
    /// Most of the growth in one interval.
    Step,
    /// Grows and falls back, repeatedly.
    Sawtooth,
    /// Falling.
    Shrinking,
}

impl Shape {
    /// How the text names it.
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Unknown => "unknown (too few samples)",
            Shape::Flat => "flat",
            Shape::Steady => "steady growth",
            Shape::Step => "a step",
            Shape::Sawtooth => "sawtooth (grows and frees)",
            Shape::Shrinking => "shrinking",
        }
    }
}

/// The shape of a size series (bytes).
pub fn shape(pts: &[(f64, f64)]) -> Shape {
    if pts.len() < 3 {
        return Shape::Unknown;
    }
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let flat = thresholds::value(key::GROWTH_MIN).max(0.01 * mean.abs());
    if range < flat {
        return Shape::Flat;
    }
    // Falls of a good share of the range, each after a rise as large:
    // count them (a steady decline has none).
    let drop = thresholds::value(key::SAWTOOTH_DROP) * range;
    let mut drops = 0;
    let (mut trough, mut peak) = (pts[0].1, pts[0].1);
    for &(_, v) in &pts[1..] {
        peak = peak.max(v);
        if peak - v >= drop && peak - trough >= drop {
            drops += 1;
            (trough, peak) = (v, v);
        } else if v < trough {
            (trough, peak) = (v, v);
        }
    }
    let net = pts[pts.len() - 1].1 - pts[0].1;
    let rises: f64 = pts.windows(2).map(|w| (w[1].1 - w[0].1).max(0.0)).sum();
    if drops >= 2 {
        return Shape::Sawtooth;
    }
    if net <= -flat {
        return Shape::Shrinking;
    }
    if net < flat {
        // Up and back down once: a bump, no trend.
        return if drops == 1 {
            Shape::Sawtooth
        } else {
            Shape::Flat
        };
    }
    let biggest = pts
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .fold(0.0f64, f64::max);
    if rises > 0.0 && biggest / rises >= thresholds::value(key::STEP_SHARE) && pts.len() >= 4 {
        return Shape::Step;
    }
    Shape::Steady
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn series(f: impl Fn(f64) -> f64, n: usize) -> Vec<(f64, f64)> {
        (0..n).map(|i| (i as f64, f(i as f64))).collect()
    }

    #[test]
    fn shapes_are_told_apart() {
        assert_eq!(
            shape(&series(|t| 100.0 * MIB + t * 3.0 * MIB, 12)),
            Shape::Steady
        );
        assert_eq!(shape(&series(|_| 100.0 * MIB, 12)), Shape::Flat);
        // 100 KiB of noise on 500 MiB is flat.
        assert_eq!(
            shape(&series(|t| 500.0 * MIB + (t % 2.0) * 100_000.0, 12)),
            Shape::Flat
        );
        assert_eq!(
            shape(&series(
                |t| if t < 6.0 { 100.0 * MIB } else { 300.0 * MIB },
                12
            )),
            Shape::Step
        );
        assert_eq!(
            shape(&series(|t| 100.0 * MIB + (t % 4.0) * 20.0 * MIB, 16)),
            Shape::Sawtooth
        );
        assert_eq!(
            shape(&series(|t| 300.0 * MIB - t * 5.0 * MIB, 12)),
            Shape::Shrinking
        );
        assert_eq!(shape(&series(|t| t, 2)), Shape::Unknown);
    }

    #[test]
    fn rates_and_slopes() {
        let s = series(|t| 10.0 + 4.0 * t, 10);
        assert_eq!(rate(&s), Some(4.0));
        assert_eq!(slope(&s), Some(4.0));
        // A counter that went back has no rate.
        assert_eq!(rate(&[(0.0, 10.0), (1.0, 5.0)]), None);
        assert_eq!(rate(&[(0.0, 10.0)]), None);
        let pts = points([(1000, Some(1.0)), (2000, None), (3000, Some(3.0))].into_iter());
        assert_eq!(pts, vec![(0.0, 1.0), (2.0, 3.0)]);
    }
}
