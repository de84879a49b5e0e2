//! /metrics: the published model as Prometheus metric families, encoded by
//! the prometheus crate's text encoder. One file per part of the model:
//! `process` (top K), `cgroup` (admitted cgroups and `other`), `system`
//! (the system catalog, PSI, buddy, slab, forecast), `kernel` (probes,
//! programs, kernel statistics, kills); `encode` has the settings and the
//! plumbing; `counter_floor` keeps counter series from going lower across
//! a restart; memmon's own figures are here.
//!
//! Cardinality is bounded: per-process series only for the top K processes
//! (by a configurable key); every process, top or not, live or exited, is
//! summed into its cgroup's series, so those never go backwards; cgroups
//! past `max_cgroups` (admitted in order of appearance, and held until the
//! model releases them, some minutes after their removal) are summed into
//! `cgroup="other"`.

mod cgroup;
pub mod counter_floor;
mod encode;
mod kernel;
mod process;
mod system;
#[cfg(test)]
mod tests;

use prometheus::proto::{MetricFamily, MetricType};

pub use cgroup::CgroupAdmission;
pub use encode::{EncodeError, RenderSettings, encode};
use encode::{family, sample, scalar};
pub use process::top_processes;

use crate::model::published::Published;

/// Builds every metric family. A field none of whose sources is live has
/// no value, so its family is absent (never a constant 0).
pub fn families(
    p: &Published,
    s: &RenderSettings,
    admission: &mut CgroupAdmission,
) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    process::families(p, s, &mut out);
    cgroup::families(p, s, admission, &mut out);
    kernel::families(p, &mut out);
    system::families(p, &mut out);
    own_families(p, s, &mut out);
    // The text encoder rejects empty families (e.g. no cgroups yet).
    out.retain(|f| !f.get_metric().is_empty());
    out
}

/// memmon's own cost: its /proc reads, passes, scrapes, memory, CPU and
/// version.
fn own_families(p: &Published, s: &RenderSettings, out: &mut Vec<MetricFamily>) {
    scalar(
        out,
        "memmon_procfs_read_seconds",
        "Time the last per-process memory pass spent reading /proc (the cost guard caps it).",
        MetricType::GAUGE,
        p.memory_cost.seconds,
    );
    scalar(
        out,
        "memmon_procfs_read_budget_seconds",
        "The cost guard's budget per pass.",
        MetricType::GAUGE,
        p.memory_cost.budget_seconds,
    );
    scalar(
        out,
        "memmon_procfs_processes_read",
        "Processes whose memory the last pass read.",
        MetricType::GAUGE,
        p.memory_cost.read as f64,
    );
    scalar(
        out,
        "memmon_procfs_processes_deferred",
        "Processes due but left for a later pass (budget spent).",
        MetricType::GAUGE,
        p.memory_cost.deferred as f64,
    );
    scalar(
        out,
        "memmon_sample_duration_seconds",
        "Duration of the last sampling pass.",
        MetricType::GAUGE,
        p.sample_seconds,
    );
    scalar(
        out,
        "memmon_samples_total",
        "Sampling passes.",
        MetricType::COUNTER,
        p.samples_total as f64,
    );
    scalar(
        out,
        "memmon_scrape_duration_seconds",
        "Duration of the previous /metrics render.",
        MetricType::GAUGE,
        s.last_scrape_seconds,
    );
    scalar(
        out,
        "memmon_resident_bytes",
        "memmon's own resident set.",
        MetricType::GAUGE,
        p.self_rss_bytes as f64,
    );
    scalar(
        out,
        "memmon_cpu_seconds_total",
        "memmon's own CPU time.",
        MetricType::COUNTER,
        p.self_cpu_seconds,
    );
    let mut info = family("memmon_build_info", "memmon version.", MetricType::GAUGE);
    info.mut_metric().push(sample(
        &[("version", env!("CARGO_PKG_VERSION"))],
        MetricType::GAUGE,
        1.0,
    ));
    out.push(info);
}
