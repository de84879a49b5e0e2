//! System families: the system catalog's fields in their families
//! (`memmon_system_memory_bytes{field}`, `memmon_system_vmstat_total{counter}`,
//! per node `memmon_node_numa_events_total`, `memmon_node_memory_free_bytes`),
//! memory PSI, buddy free blocks, the largest slab caches, and the system
//! forecast's gauges.

use prometheus::proto::{MetricFamily, MetricType};

use super::encode::{family, metric_type, sample};
use crate::model::{
    published::Published,
    system::FORECAST_FIELDS,
    system_fields::{Family, SystemId},
};

/// The families of `p`'s system view (none before the first).
pub(super) fn families(p: &Published, out: &mut Vec<MetricFamily>) {
    let Some(v) = &p.system else {
        return;
    };
    let s = &v.sample;
    // One family per catalog family, in the catalog's order.
    let mut catalog: Vec<(&Family, MetricFamily)> = Vec::new();
    for id in SystemId::all() {
        let f = id.field();
        let Some(fam) = f.family else { continue };
        let pos = match catalog.iter().position(|(c, _)| *c == fam) {
            Some(pos) => pos,
            None => {
                catalog.push((fam, family(fam.name, fam.help, metric_type(fam.kind))));
                catalog.len() - 1
            }
        };
        let ty = metric_type(fam.kind);
        let mf = &mut catalog[pos].1;
        let named = |mut labels: Vec<(&'static str, String)>| {
            if let Some(label) = fam.label {
                labels.push((label, f.name.to_string()));
            }
            labels
        };
        if f.source.per_node() {
            for (node, reading) in &s.nodes {
                if let Some(value) = id.in_node(reading) {
                    let labels = named(vec![("node", node.to_string())]);
                    let pairs: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    mf.mut_metric().push(sample(&pairs, ty, value as f64));
                }
            }
        } else if let Some(value) = v.value(id) {
            let labels = named(Vec::new());
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            mf.mut_metric().push(sample(&pairs, ty, value as f64));
        }
    }
    out.extend(catalog.into_iter().map(|(_, mf)| mf));

    let mut psi = family(
        "memmon_system_memory_pressure_seconds_total",
        "Time tasks stalled on memory (PSI), some or full.",
        MetricType::COUNTER,
    );
    if let Some(x) = &s.psi {
        psi.mut_metric().push(sample(
            &[("kind", "some")],
            MetricType::COUNTER,
            x.some_total_us as f64 / 1e6,
        ));
        psi.mut_metric().push(sample(
            &[("kind", "full")],
            MetricType::COUNTER,
            x.full_total_us as f64 / 1e6,
        ));
    }
    let mut buddy = family(
        "memmon_buddy_free_blocks",
        "Free blocks per order in the buddy allocator (/proc/buddyinfo).",
        MetricType::GAUGE,
    );
    for z in &s.buddyinfo {
        let n = z.node.to_string();
        for (order, count) in z.free_blocks.iter().enumerate() {
            let o = order.to_string();
            buddy.mut_metric().push(sample(
                &[("node", &n), ("zone", &z.zone), ("order", &o)],
                MetricType::GAUGE,
                *count as f64,
            ));
        }
    }
    let mut slab = family(
        "memmon_slab_cache_bytes",
        "Memory held by the largest slab caches (/proc/slabinfo).",
        MetricType::GAUGE,
    );
    for c in &s.top_slabs {
        slab.mut_metric().push(sample(
            &[("cache", &c.name)],
            MetricType::GAUGE,
            c.bytes as f64,
        ));
    }
    out.extend([psi, buddy, slab]);
    for f in FORECAST_FIELDS {
        if let Some(value) = (f.read)(v) {
            let mut mf = family(
                &format!("memmon_system_{}", f.key),
                f.help,
                MetricType::GAUGE,
            );
            mf.mut_metric().push(sample(&[], MetricType::GAUGE, value));
            out.push(mf);
        }
    }
}
