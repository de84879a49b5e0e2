//! What a process holds: smaps_rollup (RSS, PSS split by anon/file/shmem,
//! USS, swap, huge pages), status (peak RSS, hugetlb) and its OOM score.
//! Every field is an Option: a kernel without a field leaves it unknown,
//! never 0.

use std::collections::HashMap;

use super::{ProcRoot, ReadFailure};
pub use crate::sample::memory::ProcessMemory;

/// Reads smaps_rollup, status and the OOM files of `pid`.
pub fn read(root: &ProcRoot, pid: u32) -> Result<ProcessMemory, ReadFailure> {
    let dir = root.pid_dir(pid);
    let process = ::procfs::process::Process::new_with_root(dir.clone())
        .map_err(|e| ReadFailure::from_procfs(pid, &dir, e))?;
    let rollup = match process.smaps_rollup() {
        Ok(r) => Some(r),
        // No smaps_rollup entry in a live process's directory: a kernel
        // before 4.14 (or a trimmed /proc). RSS and swap then come from
        // status. An entry that exists but cannot be read belongs to a
        // process on its way out (its mm is gone): that is one process,
        // not the kernel lacking the file.
        Err(::procfs::ProcError::NotFound(_))
            if dir.join("stat").exists() && !dir.join("smaps_rollup").exists() =>
        {
            None
        }
        Err(::procfs::ProcError::NotFound(_)) => {
            return Err(ReadFailure::Gone(pid));
        }
        Err(e) => return Err(ReadFailure::from_procfs(pid, &dir, e)),
    };
    let mut m = rollup
        .as_ref()
        .and_then(|r| r.memory_map_rollup.iter().next())
        .map(|map| from_rollup(&map.extension.map))
        .unwrap_or_default();
    if let Ok(status) = process.status() {
        m.rss_peak = status.vmhwm.map(|kb| kb.saturating_mul(1024));
        m.hugetlb = status.hugetlbpages.map(|kb| kb.saturating_mul(1024));
        if rollup.is_none() {
            m.rss = status.vmrss.map(|kb| kb.saturating_mul(1024));
            m.swap = status.vmswap.map(|kb| kb.saturating_mul(1024));
        }
    }
    if rollup.is_none() {
        m.missing = Some((
            crate::sources::ProcFile::SmapsRollup,
            format!(
                "{} is missing: not reported: PSS, USS and their anon/file/shmem split \
             (RSS and swap come from status)",
                root.path().join("PID/smaps_rollup").display()
            ),
        ));
    }
    m.oom_score = process.oom_score().ok().map(i64::from);
    m.oom_score_adj = process.oom_score_adj().ok().map(i64::from);
    Ok(m)
}

/// The smaps_rollup fields (bytes, as the procfs crate gives them).
pub fn from_rollup(map: &HashMap<String, u64>) -> ProcessMemory {
    let get = |k: &str| map.get(k).copied();
    let uss = match (get("Private_Clean"), get("Private_Dirty")) {
        (Some(c), Some(d)) => Some(c.saturating_add(d)),
        _ => None,
    };
    ProcessMemory {
        rss: get("Rss"),
        pss: get("Pss"),
        pss_anon: get("Pss_Anon"),
        pss_file: get("Pss_File"),
        pss_shmem: get("Pss_Shmem"),
        uss,
        swap: get("Swap"),
        swap_pss: get("SwapPss"),
        anon_huge: get("AnonHugePages"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(pid: u32) -> ProcessMemory {
        let root = ProcRoot::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc"));
        read(&root, pid).expect("fixture reads")
    }

    #[test]
    fn reads_a_full_rollup() {
        let m = fixture(4242);
        assert_eq!(m.rss, Some(104_448 * 1024));
        assert_eq!(m.pss, Some(102_912 * 1024));
        assert_eq!(m.pss_anon, Some(102_500 * 1024));
        assert_eq!(m.pss_file, Some(412 * 1024));
        assert_eq!(m.pss_shmem, Some(0));
        assert_eq!(m.uss, Some((40 + 102_540) * 1024));
        assert_eq!(m.swap, Some(0));
        assert_eq!(m.rss_peak, Some(104_600 * 1024));
        assert_eq!(m.oom_score, Some(678));
        assert_eq!(m.oom_score_adj, Some(0));
    }

    #[test]
    fn huge_pages_are_counted() {
        let m = fixture(4343);
        assert_eq!(m.anon_huge, Some(2_097_152 * 1024));
        assert_eq!(m.hugetlb, Some(1_048_576 * 1024));
    }

    #[test]
    fn old_kernel_without_pss_split_leaves_it_unknown() {
        let m = fixture(4444);
        assert_eq!(m.pss, Some(5_000 * 1024));
        assert_eq!((m.pss_anon, m.pss_file, m.pss_shmem), (None, None, None));
        assert_eq!(m.swap_pss, None);
    }
}
