//! The Prometheus sink's plumbing: the render settings, building metric
//! families and samples, the text exposition, and log2 histograms.

use prometheus::{
    Encoder as _, TextEncoder,
    proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType},
};

use crate::model::fields::Kind;

/// What the renderer needs besides the publication.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// Per-process series for this many processes.
    pub top_k: usize,
    /// Ranking key (see config::TOP_BY_KEYS).
    pub top_by: String,
    /// Cgroups with their own series.
    pub max_cgroups: usize,
    /// Duration of the previous scrape, seconds.
    pub last_scrape_seconds: f64,
}

/// An empty family.
pub(super) fn family(name: &str, help: &str, ty: MetricType) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(ty);
    mf
}

/// One sample with `labels`.
pub(super) fn sample(labels: &[(&str, &str)], ty: MetricType, value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect(),
    );
    if ty == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    m
}

/// A family of one unlabeled sample, added to `out`.
pub(super) fn scalar(
    out: &mut Vec<MetricFamily>,
    name: &str,
    help: &str,
    ty: MetricType,
    value: f64,
) {
    let mut mf = family(name, help, ty);
    mf.mut_metric().push(sample(&[], ty, value));
    out.push(mf);
}

/// The Prometheus type of a catalog kind.
pub(super) fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
    }
}

/// A Prometheus histogram from log2 ns buckets ((lower bound ns, count),
/// slot i holding [2^i, 2^(i+1)) ns); None when empty.
pub(super) fn log2_histogram(name: &str, help: &str, slots: &[(u64, u64)]) -> Option<MetricFamily> {
    // Slot index from its lower bound: 0 → 0, 2^i → i.
    let index = |lo: u64| {
        if lo == 0 {
            0
        } else {
            lo.trailing_zeros() as usize
        }
    };
    let top = index(slots.last()?.0);
    let mut counts = vec![0u64; top + 1];
    let mut sum = 0f64;
    for (lo, n) in slots {
        counts[index(*lo)] += n;
        // Bucket midpoints: the sum is an estimate.
        sum += (*lo as f64 * 1.5).max(1.0) * *n as f64 / 1e9;
    }
    let mut cumulative = 0u64;
    let buckets = counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            cumulative += n;
            let mut b = prometheus::proto::Bucket::default();
            b.set_upper_bound((1u64 << (i + 1)) as f64 / 1e9);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut h = prometheus::proto::Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(cumulative);
    h.set_sample_sum(sum);
    let mut mf = family(name, help, MetricType::HISTOGRAM);
    let mut m = Metric::default();
    m.set_histogram(h);
    mf.mut_metric().push(m);
    Some(mf)
}

/// The families could not be encoded (a 500 with this text).
#[derive(Debug, thiserror::Error)]
#[error("encoding metrics: {0}")]
pub struct EncodeError(#[from] prometheus::Error);

/// The text exposition of `families`.
pub fn encode(families: &[MetricFamily]) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    TextEncoder::new().encode(families, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod log2_histogram_tests {
    use super::*;

    #[test]
    fn log2_slots_become_cumulative_buckets() {
        let mf = log2_histogram("x_seconds", "h", &[(0, 1), (1024, 3), (4096, 2)]).expect("some");
        let h = mf.get_metric()[0].get_histogram();
        let b = h.get_bucket();
        // Slots 0..=12: upper bounds 2 ns .. 8192 ns.
        assert_eq!(b.len(), 13);
        assert_eq!(b[0].cumulative_count(), 1);
        assert_eq!(b[9].cumulative_count(), 1);
        assert_eq!(b[10].cumulative_count(), 4);
        assert!((b[10].upper_bound() - 2048e-9).abs() < 1e-15);
        assert_eq!(b[12].cumulative_count(), 6);
        assert_eq!(h.get_sample_count(), 6);
        assert!(log2_histogram("x", "h", &[]).is_none());
        assert!(encode(&[mf]).is_ok());
    }
}
