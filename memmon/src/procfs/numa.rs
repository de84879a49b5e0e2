//! NUMA locality of a process: pages per node from /proc/PID/numa_maps, the
//! nodes its threads last ran on (/proc/PID/task/*/stat `processor` mapped
//! through /sys/devices/system/node/node*/cpulist), and their ratio.
//! numa_maps is parsed here (the procfs crate does not).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use super::{ProcRoot, ReadFailure};
pub use crate::sample::numa::{NodePages, NumaUsage};

/// Where sysfs keeps the NUMA topology (swappable for tests).
#[derive(Clone, Debug)]
pub struct SysNodeRoot(pub PathBuf);

impl Default for SysNodeRoot {
    fn default() -> Self {
        SysNodeRoot(PathBuf::from("/sys/devices/system/node"))
    }
}

/// Parses numa_maps text: sums `N<node>=<pages>` of every mapping, scaled by
/// its `kernelpagesize_kB` to 4 KiB pages.
pub fn parse_numa_maps(text: &str) -> NodePages {
    let mut out = NodePages::new();
    for line in text.lines() {
        let mut scale = 1u64;
        let mut counts: Vec<(u32, u64)> = Vec::new();
        for tok in line.split_whitespace().skip(1) {
            if let Some(kb) = tok.strip_prefix("kernelpagesize_kB=") {
                scale = kb.parse::<u64>().map(|k| (k / 4).max(1)).unwrap_or(1);
            } else if let Some(rest) = tok.strip_prefix('N')
                && let Some((node, pages)) = rest.split_once('=')
                && let (Ok(node), Ok(pages)) = (node.parse::<u32>(), pages.parse::<u64>())
            {
                counts.push((node, pages));
            }
        }
        for (node, pages) in counts {
            let e = out.entry(node).or_default();
            *e = e.saturating_add(pages.saturating_mul(scale));
        }
    }
    out
}

/// Parses a cpulist such as `0-3,8,10-11`.
pub fn parse_cpulist(text: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(65_535)));
                }
            }
            None => {
                if let Ok(c) = part.parse() {
                    out.insert(c);
                }
            }
        }
    }
    out
}

/// The `nodeN` directories under `sys`: (N, path).
pub fn node_dirs(sys: &SysNodeRoot) -> Vec<(u32, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(&sys.0) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let node = name.strip_prefix("node")?.parse::<u32>().ok()?;
            Some((node, e.path()))
        })
        .collect()
}

/// CPU → node, from sysfs.
pub fn cpu_nodes(sys: &SysNodeRoot) -> BTreeMap<u32, u32> {
    let mut out = BTreeMap::new();
    for (node, path) in node_dirs(sys) {
        if let Ok(list) = std::fs::read_to_string(path.join("cpulist")) {
            for cpu in parse_cpulist(&list) {
                out.insert(cpu, node);
            }
        }
    }
    out
}

/// The nodes whose CPUs the process's threads last ran on.
pub fn thread_nodes(root: &ProcRoot, pid: u32, cpu_node: &BTreeMap<u32, u32>) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(tasks) = std::fs::read_dir(root.pid_dir(pid).join("task")) else {
        return out;
    };
    for t in tasks.flatten() {
        // Bytes, not a String: comm may hold invalid UTF-8.
        if let Ok(raw) = std::fs::read(t.path().join("stat"))
            && let Some(cpu) = processor_field(&String::from_utf8_lossy(&raw))
            && let Some(node) = cpu_node.get(&cpu)
        {
            out.insert(*node);
        }
    }
    out
}

/// Field 39 (`processor`) of a stat line.
fn processor_field(stat: &str) -> Option<u32> {
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
}

/// Local ratio: pages on `run` nodes over all pages.
pub fn local_ratio(pages: &NodePages, run: &BTreeSet<u32>) -> Option<f64> {
    let total: u64 = pages.values().fold(0u64, |a, p| a.saturating_add(*p));
    if total == 0 || run.is_empty() {
        return None;
    }
    let local: u64 = pages
        .iter()
        .filter(|(n, _)| run.contains(n))
        .fold(0u64, |a, (_, p)| a.saturating_add(*p));
    Some(local as f64 / total as f64)
}

/// Reads numa_maps and thread placement of `pid`.
pub fn read(
    root: &ProcRoot,
    pid: u32,
    cpu_node: &BTreeMap<u32, u32>,
) -> Result<NumaUsage, ReadFailure> {
    let path = root.pid_dir(pid).join("numa_maps");
    let text = read_file(&path, pid)?;
    let pages = parse_numa_maps(&text);
    let nodes_run = thread_nodes(root, pid, cpu_node);
    let local_ratio = local_ratio(&pages, &nodes_run);
    Ok(NumaUsage {
        pages,
        nodes_run,
        local_ratio,
    })
}

/// Reads a /proc file, mapping errors the usual way.
pub fn read_file(path: &Path, pid: u32) -> Result<String, ReadFailure> {
    std::fs::read_to_string(path).map_err(|e| ReadFailure::from_io(pid, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_NODES: &str = include_str!("../../tests/fixtures/proc/numa_maps.two-nodes");

    #[test]
    fn two_node_numa_maps() {
        let pages = parse_numa_maps(TWO_NODES);
        // 2 MiB huge pages count as 512 small pages each.
        assert_eq!(pages.get(&0), Some(&(3 + 100 + 2 * 512)));
        assert_eq!(pages.get(&1), Some(&(25_600 + 7)));
        let run: BTreeSet<u32> = [1].into();
        let r = local_ratio(&pages, &run).expect("ratio");
        assert!((r - 25_607.0 / (25_607.0 + 1_127.0)).abs() < 1e-9, "{r}");
        assert_eq!(local_ratio(&pages, &BTreeSet::new()), None);
        assert_eq!(local_ratio(&NodePages::new(), &run), None);
    }

    #[test]
    fn cpulists() {
        assert_eq!(
            parse_cpulist("0-3,8,10-11\n"),
            [0, 1, 2, 3, 8, 10, 11].into()
        );
        assert_eq!(parse_cpulist(""), BTreeSet::new());
        assert_eq!(parse_cpulist("x,2"), [2].into());
    }

    #[test]
    fn processor_is_field_39() {
        let stat = include_str!("../../tests/fixtures/proc/4242/stat");
        assert_eq!(processor_field(stat), Some(0));
    }
}
