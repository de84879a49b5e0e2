//! Pure parsers of the memory controller's files, cgroup v2 and v1, over
//! `&str` (no I/O): single values (`max` / the v1 "no limit" number →
//! `None`), flat keyed files (`memory.stat`, `memory.events`,
//! `memory.oom_control`) and `memory.pressure`. v1 `memory.stat` names are
//! mapped onto the v2 field set (see [`stat_from_v1`]).

use std::collections::BTreeMap;

pub use crate::sample::cgroup::{MemoryEvents, MemoryStat, Pressure};

/// A control file whose text is not what the kernel writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a byte count or \"max\", found {found:?}")]
pub struct BadValue {
    /// The text found (trimmed, at most 40 characters).
    pub found: String,
}

impl BadValue {
    fn of(text: &str) -> Self {
        BadValue {
            found: text.trim().chars().take(40).collect(),
        }
    }
}

/// A v2 single-value file (`memory.current`, `memory.max`, ...): a byte
/// count, or `max` meaning no limit (`None`).
pub fn parse_v2_value(text: &str) -> Result<Option<u64>, BadValue> {
    match text.trim() {
        "max" => Ok(None),
        t => t.parse().map(Some).map_err(|_| BadValue::of(text)),
    }
}

/// Values at or above this are the v1 "no limit" value: `PAGE_COUNTER_MAX`
/// pages shown in bytes, 0x7FFF_FFFF_FFFF_F000 with 4 KiB pages (a little
/// less with larger pages; the margin covers pages up to 2 MiB).
pub const V1_UNLIMITED_FROM: u64 = (i64::MAX as u64) - (2 << 20);

/// A v1 single-value file (`memory.limit_in_bytes`, ...): a byte count;
/// the kernel's "no limit" number (see [`V1_UNLIMITED_FROM`]) is `None`.
pub fn parse_v1_value(text: &str) -> Result<Option<u64>, BadValue> {
    let v: u64 = text.trim().parse().map_err(|_| BadValue::of(text))?;
    Ok((v < V1_UNLIMITED_FROM).then_some(v))
}

/// `name value` lines (memory.stat, memory.events, memory.oom_control);
/// a line that is not two fields with a number is skipped.
pub fn parse_keyed(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            if it.next().is_some() {
                return None;
            }
            Some((k, v.parse().ok()?))
        })
        .collect()
}

/// v2 `memory.stat`: the names are the fields'.
pub fn stat_from_v2(text: &str) -> MemoryStat {
    let m = parse_keyed(text);
    let g = |k: &str| m.get(k).copied();
    MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel: g("kernel"),
        kernel_stack: g("kernel_stack"),
        pagetables: g("pagetables"),
        sec_pagetables: g("sec_pagetables"),
        percpu: g("percpu"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        shmem: g("shmem"),
        sock: g("sock"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        active_anon: g("active_anon"),
        inactive_anon: g("inactive_anon"),
        active_file: g("active_file"),
        inactive_file: g("inactive_file"),
        unevictable: g("unevictable"),
        swapcached: g("swapcached"),
        workingset_refault_anon: g("workingset_refault_anon"),
        workingset_refault_file: g("workingset_refault_file"),
        pgscan: g("pgscan"),
        pgsteal: g("pgsteal"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
    }
}

/// v1 `memory.stat` mapped onto the v2 fields, hierarchically: each field
/// comes from the `total_<name>` line (this cgroup and its descendants, as
/// v2's memory.stat and v1's `memory.usage_in_bytes` count), falling back
/// to the local `<name>` line on kernels without `total_*`. Names:
/// `rss`→anon, `cache`→file, `mapped_file`→file_mapped, `dirty`→file_dirty,
/// `writeback`→file_writeback, `rss_huge`→anon_thp; shmem, the LRU lists,
/// swapcached, workingset refaults, pgfault and pgmajfault keep their
/// names. v1 has no
/// kernel breakdown, sock, pgscan or pgsteal: those stay `None` (`kernel`
/// is filled by the reader from `memory.kmem.usage_in_bytes`).
pub fn stat_from_v1(text: &str) -> MemoryStat {
    let m = parse_keyed(text);
    let g = |k: &str| {
        m.get(format!("total_{k}").as_str())
            .or_else(|| m.get(k))
            .copied()
    };
    MemoryStat {
        anon: g("rss"),
        file: g("cache"),
        shmem: g("shmem"),
        file_mapped: g("mapped_file"),
        file_dirty: g("dirty"),
        file_writeback: g("writeback"),
        anon_thp: g("rss_huge"),
        active_anon: g("active_anon"),
        inactive_anon: g("inactive_anon"),
        active_file: g("active_file"),
        inactive_file: g("inactive_file"),
        unevictable: g("unevictable"),
        swapcached: g("swapcached"),
        workingset_refault_anon: g("workingset_refault_anon"),
        workingset_refault_file: g("workingset_refault_file"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        ..MemoryStat::default()
    }
}

/// v1 `hierarchical_memory_limit` from memory.stat: the smallest
/// `limit_in_bytes` on the path to the root (`None`: unlimited).
pub fn v1_hierarchical_limit(text: &str) -> Option<u64> {
    parse_keyed(text)
        .get("hierarchical_memory_limit")
        .copied()
        .filter(|v| *v < V1_UNLIMITED_FROM)
}

/// v2 `memory.events` / `memory.events.local`.
pub fn events_from_v2(text: &str) -> MemoryEvents {
    let m = parse_keyed(text);
    let g = |k: &str| m.get(k).copied();
    MemoryEvents {
        low: g("low"),
        high: g("high"),
        max: g("max"),
        oom: g("oom"),
        oom_kill: g("oom_kill"),
        oom_group_kill: g("oom_group_kill"),
        ..MemoryEvents::default()
    }
}

/// v1 events: `memory.failcnt` and `memory.oom_control` (`oom_kill`,
/// `under_oom`); either may be missing.
pub fn events_from_v1(failcnt: Option<u64>, oom_control: Option<&str>) -> MemoryEvents {
    let m = oom_control.map(parse_keyed).unwrap_or_default();
    MemoryEvents {
        oom_kill: m.get("oom_kill").copied(),
        under_oom: m.get("under_oom").copied(),
        failcnt,
        ..MemoryEvents::default()
    }
}

/// `some avg10=.. avg60=.. avg300=.. total=N` and the `full` line.
pub fn parse_pressure(text: &str) -> Option<Pressure> {
    let total = |kind: &str| {
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == kind).then_some(())?;
            it.find_map(|kv| kv.strip_prefix("total=")?.parse::<u64>().ok())
        })
    };
    Some(Pressure {
        some_total_us: total("some")?,
        full_total_us: total("full"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> String {
        let p = format!("{}/tests/fixtures/cgroup/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn values_and_no_limit() {
        assert_eq!(parse_v2_value("max\n"), Ok(None));
        assert_eq!(parse_v2_value("268435456\n"), Ok(Some(268_435_456)));
        assert_eq!(parse_v2_value("0\n"), Ok(Some(0)));
        assert!(parse_v2_value("lots").is_err());
        assert_eq!(
            parse_v2_value("-1").map_err(|e| e.to_string()),
            Err("expected a byte count or \"max\", found \"-1\"".into())
        );
        assert_eq!(parse_v1_value("9223372036854771712\n"), Ok(None));
        // 64 KiB pages.
        assert_eq!(parse_v1_value("9223372036854710272\n"), Ok(None));
        assert_eq!(parse_v1_value("268435456\n"), Ok(Some(268_435_456)));
        assert!(parse_v1_value("max").is_err());
    }

    #[test]
    fn v1_recorded_files() {
        let d = "v1/memmon-fixture/child";
        assert_eq!(
            parse_v1_value(&fixture(&format!("{d}/memory.usage_in_bytes"))),
            Ok(Some(169_836_544))
        );
        // The child has no limit of its own; its parent has 256 MiB.
        assert_eq!(
            parse_v1_value(&fixture(&format!("{d}/memory.limit_in_bytes"))),
            Ok(None)
        );
        assert_eq!(
            parse_v1_value(&fixture("v1/memmon-fixture/memory.limit_in_bytes")),
            Ok(Some(256 << 20))
        );
        let text = fixture(&format!("{d}/memory.stat"));
        let s = stat_from_v1(&text);
        assert_eq!(s.anon, Some(107_696_128));
        assert_eq!(s.file, Some(60_141_568));
        assert_eq!(s.shmem, Some(0));
        assert_eq!(s.file_mapped, Some(3_256_320));
        assert_eq!(s.file_dirty, Some(52_469_760));
        assert_eq!(s.inactive_file, Some(59_293_696));
        assert_eq!(s.pgfault, Some(52_022));
        assert_eq!(s.pgmajfault, Some(2));
        assert_eq!(s.workingset_refault_file, Some(131));
        assert_eq!(s.anon_thp, Some(0));
        assert_eq!(
            (s.kernel, s.sock, s.pgscan, s.pgsteal),
            (None, None, None, None)
        );
        assert_eq!(v1_hierarchical_limit(&text), Some(256 << 20));
        let ev = events_from_v1(
            parse_v1_value(&fixture(&format!("{d}/memory.failcnt")))
                .ok()
                .flatten(),
            Some(&fixture(&format!("{d}/memory.oom_control"))),
        );
        assert_eq!(ev.oom_kill, Some(0));
        assert_eq!(ev.under_oom, Some(0));
        assert_eq!(ev.failcnt, Some(0));
        assert_eq!(ev.high, None);
    }

    #[test]
    fn v1_total_lines_win_over_local_ones() {
        let s = stat_from_v1("rss 10\ncache 20\ntotal_rss 110\ntotal_cache 220\n");
        assert_eq!((s.anon, s.file), (Some(110), Some(220)));
        // An old kernel without total_* lines: the local ones.
        let s = stat_from_v1("rss 10\ncache 20\n");
        assert_eq!((s.anon, s.file), (Some(10), Some(20)));
        let s = stat_from_v1("swapcached 4096\ntotal_swapcached 8192\n");
        assert_eq!(s.swapcached, Some(8192));
    }

    #[test]
    fn v2_swapcached_is_read_where_the_kernel_has_it() {
        assert_eq!(
            stat_from_v2("anon 1\nswapcached 12288\n").swapcached,
            Some(12288)
        );
        // Before Linux 6.6 v2's memory.stat has no such line.
        assert_eq!(stat_from_v2("anon 1\n").swapcached, None);
    }

    #[test]
    fn keyed_lines_skip_garbage() {
        let m = parse_keyed("a 1\nb x\nc 3 4\n\nd 5\n");
        assert_eq!(m.into_iter().collect::<Vec<_>>(), vec![("a", 1), ("d", 5)]);
    }

    #[test]
    fn pressure_totals() {
        let p = parse_pressure(
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=567\n",
        );
        assert_eq!(
            p,
            Some(Pressure {
                some_total_us: 1234,
                full_total_us: Some(567)
            })
        );
        assert_eq!(parse_pressure(""), None);
        assert_eq!(parse_pressure("full avg10=0 total=5\n"), None);
    }

    #[test]
    fn v2_events() {
        let e = events_from_v2("low 0\nhigh 17\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
        assert_eq!(e.high, Some(17));
        assert_eq!(e.oom_kill, Some(1));
        assert_eq!(e.oom_group_kill, Some(0));
        assert_eq!(e.failcnt, None);
        // 5.x kernels before oom_group_kill.
        assert_eq!(events_from_v2("low 0\nhigh 0\n").oom_group_kill, None);
    }
}
