//! Medians, ranges and slowdowns of repeated measurements.

/// Median and range of one configuration's measurements.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// Summarises `values` (None when empty).
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// Slowdown of `with` over `base` in percent (positive: slower).
pub fn slowdown_pct(with: f64, base: f64) -> f64 {
    if base <= 0.0 {
        return 0.0;
    }
    (with / base - 1.0) * 100.0
}

/// The mean of paired per-round differences in percent (`with[i]` over
/// `base[i]`, rounds interleaved) and the half-width of its 95% confidence
/// interval (Student's t), over `n` rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Mean difference, percent.
    pub mean: f64,
    /// Half-width of the 95% interval, percent.
    pub half: f64,
    /// Standard deviation of the rounds' differences (their spread),
    /// percent.
    pub sd: f64,
    /// Rounds.
    pub n: usize,
}

/// Two-sided 95% Student's t quantiles for 1 to 30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The paired difference of `with` over `base` (None below two rounds).
pub fn paired(with: &[f64], base: &[f64]) -> Option<Paired> {
    let d: Vec<f64> = with
        .iter()
        .zip(base)
        .filter(|(_, b)| **b > 0.0)
        .map(|(w, b)| (w / b - 1.0) * 100.0)
        .collect();
    let n = d.len();
    if n < 2 {
        return None;
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    Some(Paired {
        mean,
        half: t * (var / n as f64).sqrt(),
        sd: var.sqrt(),
        n,
    })
}

impl std::fmt::Display for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:+.2}% ± {:.2} (95%, {} rounds, sd {:.2})",
            self.mean, self.half, self.n, self.sd
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paired_differences_and_their_interval() {
        let p = paired(&[110.0, 112.0, 108.0], &[100.0, 100.0, 100.0]).expect("3 rounds");
        assert!((p.mean - 10.0).abs() < 1e-9);
        // sd 2, n 3: t(2) 4.303 x 2/sqrt(3).
        assert!((p.half - 4.303 * 2.0 / 3f64.sqrt()).abs() < 1e-9);
        assert!((p.sd - 2.0).abs() < 1e-9);
        assert!(paired(&[1.0], &[1.0]).is_none());
    }

    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        let s = summarize(&[3.0, 1.0, 2.0]).expect("some");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(summarize(&[4.0, 1.0, 2.0, 3.0]).expect("some").median, 2.5);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn slowdown() {
        assert!((slowdown_pct(110.0, 100.0) - 10.0).abs() < 1e-9);
        assert_eq!(slowdown_pct(1.0, 0.0), 0.0);
    }
}
