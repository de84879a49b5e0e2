//! Per-process families: `memmon_process_<field>[_total]` for the top K
//! processes by the configured key, and the count of live processes.

use prometheus::proto::{MetricFamily, MetricType};

use super::encode::{RenderSettings, family, metric_type, sample, scalar};
use crate::model::{ProcessView, fields::PROCESS_FIELDS, published::Published, view::idx};

/// The ranking value of a process for `top_by` (unknown ranks last).
fn rank(v: &ProcessView, top_by: &str) -> f64 {
    let value = match top_by {
        "fault_rate" => v.rate(idx::FAULTS),
        "swap" => v.value(idx::SWAP),
        "pss" => v.value(idx::PSS),
        "major_faults" => v.value(idx::MAJOR),
        _ => v.value(idx::RSS),
    };
    value.unwrap_or(-1.0)
}

/// The top `k` processes by `top_by`, largest first (ties by pid). Kernel
/// threads (no address space) never take a slot. Each rank is read once
/// and only the top `k` are sorted (a scrape of 10,000 processes sorts
/// `k` rows, not all of them).
pub fn top_processes<'a, V: std::ops::Deref<Target = ProcessView>>(
    procs: &'a [V],
    top_by: &str,
    k: usize,
) -> Vec<&'a ProcessView> {
    let mut v: Vec<(f64, &ProcessView)> = procs
        .iter()
        .map(|p| &**p)
        .filter(|p| !p.is_kernel_thread())
        .map(|p| (rank(p, top_by), p))
        .collect();
    let order = |a: &(f64, &ProcessView), b: &(f64, &ProcessView)| {
        b.0.total_cmp(&a.0).then(a.1.pid.cmp(&b.1.pid))
    };
    if k < v.len() {
        if k > 0 {
            v.select_nth_unstable_by(k - 1, order);
        }
        v.truncate(k);
    }
    v.sort_by(order);
    v.into_iter().map(|(_, p)| p).collect()
}

/// The top K processes' series, one family per exported field, and
/// `memmon_processes`.
pub(super) fn families(p: &Published, s: &RenderSettings, out: &mut Vec<MetricFamily>) {
    // By RSS (the default), the publication holds the ranking already
    // when it is long enough: no pass over every row per scrape.
    let top = if s.top_by == "rss" && s.top_k <= p.by_rss.len() {
        p.by_rss[..s.top_k].iter().map(|v| &**v).collect()
    } else {
        top_processes(&p.processes, &s.top_by, s.top_k)
    };
    for (i, f) in PROCESS_FIELDS.iter().enumerate().filter(|(_, f)| f.metric) {
        let ty = metric_type(f.kind);
        let mut mf = family(&f.metric_name("process"), f.help, ty);
        for v in &top {
            if let Some(value) = v.value(i) {
                let pid = v.pid.to_string();
                let cgroup = v.cgroup.as_deref().unwrap_or("");
                mf.mut_metric().push(sample(
                    &[("pid", &pid), ("comm", &v.comm), ("cgroup", cgroup)],
                    ty,
                    value,
                ));
            }
        }
        out.push(mf);
    }
    scalar(
        out,
        "memmon_processes",
        "Live processes.",
        MetricType::GAUGE,
        p.processes.len() as f64,
    );
}
