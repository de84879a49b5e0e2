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

#[cfg(test)]
mod tests {
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
