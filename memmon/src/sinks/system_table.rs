//! `snapshot --system` as text: free(1)-style totals, vmstat rates, swap
//! devices, buddy free blocks, the largest slab caches, THP, PSI and NUMA.

use std::fmt::Write as _;

use crate::model::system::SystemView;

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Renders the view.
pub fn render(v: &SystemView) -> String {
    let s = &v.sample;
    let m = |k: &str| s.meminfo.get(k).copied().unwrap_or(0);
    let mut out = String::new();
    let total = m("MemTotal");
    let avail = m("MemAvailable");
    let _ = writeln!(
        out,
        "memory: total {}  used {}  free {}  available {}  buffers/cache {}",
        mib(total),
        mib(total.saturating_sub(avail)),
        mib(m("MemFree")),
        mib(avail),
        mib(m("Buffers") + m("Cached") + m("SReclaimable"))
    );
    let _ = writeln!(
        out,
        "swap:   total {}  free {}   slab {} (unreclaimable {})   anon THP {}   hugetlb {}",
        mib(m("SwapTotal")),
        mib(m("SwapFree")),
        mib(m("Slab")),
        mib(m("SUnreclaim")),
        mib(m("AnonHugePages")),
        mib(m("Hugetlb"))
    );
    if let Some(p) = &s.psi {
        let _ = writeln!(
            out,
            "pressure: some avg10 {:.2}% avg60 {:.2}%  full avg10 {:.2}%",
            p.some_avg10, p.some_avg60, p.full_avg10
        );
    }
    if !v.rates.is_empty() {
        let _ = write!(out, "rates/s:");
        for (k, r) in &v.rates {
            if *r > 0.0 {
                let _ = write!(out, " {k}={r:.1}");
            }
        }
        out.push('\n');
    }
    for d in &s.swaps {
        let _ = writeln!(
            out,
            "swap device {} ({}): {} of {} used, priority {}",
            d.name,
            d.kind,
            mib(d.used_bytes),
            mib(d.size_bytes),
            d.priority
        );
    }
    if !s.buddyinfo.is_empty() {
        let _ = writeln!(out, "\nbuddy free blocks per order:");
        for z in &s.buddyinfo {
            let blocks: Vec<String> = z.free_blocks.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "  node {} {:<8} {}", z.node, z.zone, blocks.join(" "));
        }
    }
    if !s.top_slabs.is_empty() {
        let _ = writeln!(out, "\nlargest slab caches:");
        for c in &s.top_slabs {
            let _ = writeln!(
                out,
                "  {:<24} {:>10} objs x {:>5} B = {}",
                c.name,
                c.num_objs,
                c.objsize,
                mib(c.bytes)
            );
        }
    }
    for (node, n) in &s.nodes {
        let g = |k: &str| n.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "node {node}: free {}  numa_hit {}  numa_miss {}  numa_foreign {}  local_node {}  other_node {}",
            mib(g("MemFree")),
            g("numa_hit"),
            g("numa_miss"),
            g("numa_foreign"),
            g("local_node"),
            g("other_node")
        );
    }
    let thp: Vec<String> = s
        .vmstat
        .iter()
        .filter(|(k, v)| k.starts_with("thp_") && **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !thp.is_empty() {
        let _ = writeln!(out, "THP: {}", thp.join(" "));
    }
    out
}
