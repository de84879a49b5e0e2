//! `snapshot --system` as text: free(1)-style totals, vmstat rates, swap
//! devices, buddy free blocks, the largest slab caches, THP, PSI and NUMA.

use std::fmt::Write as _;

use crate::model::{
    system::SystemView,
    system_fields::{SystemId, sys},
};

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Renders the view.
pub fn render(v: &SystemView) -> String {
    let s = &v.sample;
    let m = |id: SystemId| v.value(id).unwrap_or(0);
    let mut out = String::new();
    let total = m(sys::MEM_TOTAL);
    let avail = m(sys::MEM_AVAILABLE);
    let _ = writeln!(
        out,
        "memory: total {}  used {}  free {}  available {}  buffers/cache {}",
        mib(total),
        mib(total.saturating_sub(avail)),
        mib(m(sys::MEM_FREE)),
        mib(avail),
        mib(m(sys::BUFFERS) + m(sys::CACHED) + m(sys::S_RECLAIMABLE))
    );
    let _ = writeln!(
        out,
        "swap:   total {}  free {}   slab {} (unreclaimable {})   anon THP {}   hugetlb {}",
        mib(m(sys::SWAP_TOTAL)),
        mib(m(sys::SWAP_FREE)),
        mib(m(sys::SLAB)),
        mib(m(sys::S_UNRECLAIM)),
        mib(m(sys::ANON_HUGE_PAGES)),
        mib(m(sys::HUGETLB))
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
        let g = |id: SystemId| id.in_node(n).unwrap_or(0);
        let _ = write!(out, "node {node}: free {}", mib(g(sys::NODE_MEM_FREE)));
        for id in [
            sys::NODE_NUMA_HIT,
            sys::NODE_NUMA_MISS,
            sys::NODE_NUMA_FOREIGN,
            sys::NODE_LOCAL,
            sys::NODE_OTHER,
        ] {
            let _ = write!(out, "  {} {}", id.name(), g(id));
        }
        out.push('\n');
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
