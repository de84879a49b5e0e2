//! The system view (seed: free, vmstat, /proc/meminfo): meminfo, vmstat
//! counters (rates come from two samples in the model), swap devices,
//! buddyinfo, the largest slab caches, THP counters, memory PSI and
//! per-node numastat. Each source is optional: a missing file leaves its
//! part empty.

use std::collections::BTreeMap;

use super::{ProcRoot, numa::SysNodeRoot};
pub use crate::sample::system::{BuddyZone, Psi, SlabCache, SwapDevice, SystemSample};

/// Each system file, and what goes unreported without it.
const SOURCES: &[(&str, &str)] = &[
    (
        "meminfo",
        "system memory totals (free, available, cached, huge pages)",
    ),
    (
        "vmstat",
        "system fault, swap, reclaim and migration counters",
    ),
    ("swaps", "swap devices"),
    ("buddyinfo", "free pages per order (buddy allocator)"),
    ("slabinfo", "slab caches (needs root)"),
    (
        "pressure/memory",
        "memory pressure (the kernel has no PSI: CONFIG_PSI off or psi=0)",
    ),
];

/// Slab caches kept in the view.
const TOP_SLABS: usize = 20;

/// Reads everything available; `/proc/slabinfo` (it walks every cache's
/// partial slabs under the slab mutex) only when `slabinfo` is set, else
/// `top_slabs_read` is false and the caller keeps the last reading.
pub fn read(root: &ProcRoot, sys: &SysNodeRoot, slabinfo: bool) -> SystemSample {
    let mut missing = Vec::new();
    // Each file read once; one that does not exist is named in `missing`
    // with what goes unreported without it.
    let mut text = |name: &str| {
        let path = root.path().join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound
                    && let Some((_, what)) = SOURCES.iter().find(|(n, _)| *n == name)
                {
                    missing.push(format!(
                        "{} is missing: not reported: {what}",
                        path.display()
                    ));
                }
                None
            }
        }
    };
    let meminfo = text("meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or_default();
    let vmstat = text("vmstat").map(|t| parse_vmstat(&t)).unwrap_or_default();
    let swaps = text("swaps").map(|t| parse_swaps(&t)).unwrap_or_default();
    let buddyinfo = text("buddyinfo")
        .map(|t| parse_buddyinfo(&t))
        .unwrap_or_default();
    let top_slabs = if slabinfo {
        text("slabinfo")
            .map(|t| top_slabs(&t, TOP_SLABS))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let psi = text("pressure/memory").and_then(|t| parse_psi(&t));
    SystemSample {
        meminfo,
        vmstat,
        swaps,
        buddyinfo,
        top_slabs,
        top_slabs_read: slabinfo,
        psi,
        nodes: read_nodes(sys),
        missing,
    }
}

/// `Key:   123 kB` lines; kB values become bytes.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let mut it = v.split_whitespace();
        let Some(n) = it.next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let scale = if it.next() == Some("kB") { 1024 } else { 1 };
        out.insert(k.trim().to_string(), n.saturating_mul(scale));
    }
    out
}

/// `name value` lines.
pub fn parse_vmstat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// /proc/swaps (sizes in kB become bytes).
pub fn parse_swaps(text: &str) -> Vec<SwapDevice> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 {
                return None;
            }
            Some(SwapDevice {
                name: f[0].to_string(),
                kind: f[1].to_string(),
                size_bytes: f[2].parse::<u64>().ok()?.saturating_mul(1024),
                used_bytes: f[3].parse::<u64>().ok()?.saturating_mul(1024),
                priority: f[4].parse().ok()?,
            })
        })
        .collect()
}

/// `Node 0, zone   Normal   1 2 3 ...` lines.
pub fn parse_buddyinfo(text: &str) -> Vec<BuddyZone> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Node ")?;
            let (node, rest) = rest.split_once(',')?;
            let rest = rest.trim().strip_prefix("zone")?.trim();
            let mut it = rest.split_whitespace();
            let zone = it.next()?.to_string();
            Some(BuddyZone {
                node: node.trim().parse().ok()?,
                zone,
                free_blocks: it.filter_map(|n| n.parse().ok()).collect(),
            })
        })
        .collect()
}

/// The `n` slab caches holding the most memory.
pub fn top_slabs(text: &str, n: usize) -> Vec<SlabCache> {
    let mut caches: Vec<SlabCache> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            let num_objs: u64 = f[2].parse().ok()?;
            let objsize: u64 = f[3].parse().ok()?;
            Some(SlabCache {
                name: f[0].to_string(),
                active_objs: f[1].parse().ok()?,
                num_objs,
                objsize,
                bytes: num_objs.saturating_mul(objsize),
            })
        })
        .collect();
    caches.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    caches.truncate(n);
    caches
}

/// /proc/pressure/memory.
pub fn parse_psi(text: &str) -> Option<Psi> {
    let mut psi = Psi::default();
    let mut seen = false;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let kind = it.next()?;
        let mut avg10 = 0.0;
        let mut avg60 = 0.0;
        let mut total = 0;
        for kv in it {
            match kv.split_once('=') {
                Some(("avg10", v)) => avg10 = v.parse().unwrap_or(0.0),
                Some(("avg60", v)) => avg60 = v.parse().unwrap_or(0.0),
                Some(("total", v)) => total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        match kind {
            "some" => {
                (psi.some_avg10, psi.some_avg60, psi.some_total_us) = (avg10, avg60, total);
                seen = true;
            }
            "full" => (psi.full_avg10, psi.full_total_us) = (avg10, total),
            _ => {}
        }
    }
    seen.then_some(psi)
}

/// Per node: numastat counters and meminfo (`Node N Key: V kB`).
fn read_nodes(sys: &SysNodeRoot) -> BTreeMap<u32, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (node, path) in super::numa::node_dirs(sys) {
        let mut m = BTreeMap::new();
        if let Ok(t) = std::fs::read_to_string(path.join("numastat")) {
            m.extend(parse_vmstat(&t));
        }
        if let Ok(t) = std::fs::read_to_string(path.join("meminfo")) {
            // "Node 0 MemTotal:  123 kB": drop the "Node 0" prefix.
            let stripped: String = t
                .lines()
                .filter_map(|l| l.splitn(3, ' ').nth(2))
                .collect::<Vec<_>>()
                .join("\n");
            m.extend(parse_meminfo(&stripped));
        }
        out.insert(node, m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc/system");

    fn sample() -> SystemSample {
        read(
            &ProcRoot::new(DIR),
            &SysNodeRoot(format!("{DIR}/node").into()),
            true,
        )
    }

    #[test]
    fn missing_files_are_named_with_what_they_cost() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("meminfo"), "MemTotal: 1 kB\n").expect("write");
        let s = read(
            &ProcRoot::new(dir.path()),
            &SysNodeRoot(dir.path().join("node")),
            true,
        );
        assert_eq!(s.meminfo.get("MemTotal"), Some(&1024));
        assert_eq!(s.missing.len(), SOURCES.len() - 1, "{:?}", s.missing);
        assert!(
            s.missing
                .iter()
                .any(|m| m.contains("pressure/memory") && m.contains("PSI"))
        );
        assert!(s.swaps.is_empty() && s.psi.is_none());
        assert!(sample().missing.is_empty(), "{:?}", sample().missing);
    }

    #[test]
    fn reads_recorded_system_files() {
        let s = sample();
        assert_eq!(s.meminfo.get("MemTotal"), Some(&(24_600_000 * 1024)));
        assert_eq!(s.meminfo.get("HugePages_Total"), Some(&0));
        assert_eq!(s.vmstat.get("pgmajfault"), Some(&1234));
        assert_eq!(s.vmstat.get("thp_fault_alloc"), Some(&5));
        assert_eq!(s.swaps.len(), 1);
        assert_eq!(s.swaps[0].size_bytes, 393_212 * 1024);
        assert_eq!(s.buddyinfo.len(), 3);
        assert_eq!(s.buddyinfo[2].zone, "Normal");
        assert_eq!(s.buddyinfo[2].free_blocks.len(), 11);
        assert_eq!(s.top_slabs.first().map(|c| c.name.as_str()), Some("dentry"));
        let psi = s.psi.expect("psi");
        assert_eq!(psi.some_total_us, 2521326);
        assert_eq!(
            s.nodes.get(&0).and_then(|n| n.get("numa_hit")),
            Some(&77049189)
        );
        assert_eq!(
            s.nodes.get(&0).and_then(|n| n.get("MemFree")),
            Some(&(1000 * 1024))
        );
    }

    #[test]
    fn missing_sources_are_empty_not_errors() {
        let s = read(
            &ProcRoot::new("/nonexistent"),
            &SysNodeRoot("/nonexistent".into()),
            true,
        );
        assert!(s.meminfo.is_empty() && s.psi.is_none() && s.nodes.is_empty());
    }

    #[test]
    fn slabinfo_is_read_only_when_asked() {
        let s = read(
            &ProcRoot::new(DIR),
            &SysNodeRoot(format!("{DIR}/node").into()),
            false,
        );
        assert!(s.top_slabs.is_empty() && !s.top_slabs_read);
        assert!(s.missing.is_empty(), "{:?}", s.missing);
        assert!(sample().top_slabs_read);
    }
}
