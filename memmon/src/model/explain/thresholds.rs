//! The thresholds `memmon explain` judges by, one declaration each: key,
//! value, unit, what crossing it means and what to do. Every rule reads its
//! limits from here ([`get`] by key, checked at compile time by
//! [`index`]), the findings name the key they crossed, and the README's
//! table is checked against this list (`readme_lists_every_threshold`).

use serde::Serialize;

/// The unit a threshold (and a piece of evidence) is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Bytes per second.
    BytesPerSecond,
    /// Events (or pages) per second.
    PerSecond,
    /// Seconds.
    Seconds,
    /// Seconds of stall per second of wall time (0 to 1 per task).
    SecondsPerSecond,
    /// A share from 0 to 1.
    Ratio,
    /// A count.
    Count,
    /// A score (oom_score, 0-2000).
    Score,
}

impl Unit {
    /// The unit's name in the README table.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::BytesPerSecond => "bytes/s",
            Unit::PerSecond => "1/s",
            Unit::Seconds => "s",
            Unit::SecondsPerSecond => "s/s",
            Unit::Ratio => "ratio",
            Unit::Count => "count",
            Unit::Score => "score",
        }
    }
}

/// One threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    /// Name, as findings and the README cite it.
    pub key: &'static str,
    /// The limit.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// What crossing it means.
    pub means: &'static str,
    /// What to do about it.
    pub todo: &'static str,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Every threshold. Keys are `area.what`.
pub const THRESHOLDS: &[Threshold] = &[
    Threshold {
        key: "growth.steady_warn",
        value: 0.1 * MIB,
        unit: Unit::BytesPerSecond,
        means: "memory grows steadily at least this fast over the window: a leak or an unbounded cache",
        todo: "find what grows: `memmon leaks --pid N`, `memmon profile --pid N --event all`",
    },
    Threshold {
        key: "growth.min_bytes",
        value: MIB,
        unit: Unit::Bytes,
        means: "changes smaller than this over the window (and under 1% of the size) count as flat",
        todo: "nothing: a flat series is not a finding",
    },
    Threshold {
        key: "growth.step_share",
        value: 0.6,
        unit: Unit::Ratio,
        means: "one interval holds at least this share of the window's growth: a step, not a trend",
        todo: "look at what the process did at that moment (a load, a cache fill, a request burst)",
    },
    Threshold {
        key: "growth.sawtooth_drop",
        value: 0.25,
        unit: Unit::Ratio,
        means: "falls of at least this share of the range, twice or more: grow-and-free cycles (GC, caches)",
        todo: "size the limit for the peaks, not the mean",
    },
    Threshold {
        key: "limit.working_set_warn",
        value: 0.85,
        unit: Unit::Ratio,
        means: "the working set (usage minus inactive file pages) is this close to the hard limit",
        todo: "raise memory.max (v1 memory.limit_in_bytes) or shrink the workload",
    },
    Threshold {
        key: "limit.working_set_critical",
        value: 0.95,
        unit: Unit::Ratio,
        means: "the working set is at the hard limit: reclaim runs on every charge, an OOM kill is near",
        todo: "raise memory.max (v1 memory.limit_in_bytes) now, or stop the grower",
    },
    Threshold {
        key: "limit.forecast_warn",
        value: 3600.0,
        unit: Unit::Seconds,
        means: "at its current growth the cgroup's unreclaimable memory reaches the hard limit within this time",
        todo: "find the growth before it is killed (`memmon leaks --pid N`); raise the limit if the growth is legitimate",
    },
    Threshold {
        key: "limit.forecast_critical",
        value: 300.0,
        unit: Unit::Seconds,
        means: "an OOM kill is minutes away at the current growth",
        todo: "raise memory.max (v1 memory.limit_in_bytes) or stop the grower now",
    },
    Threshold {
        key: "limit.hits_per_second",
        value: 0.0,
        unit: Unit::PerSecond,
        means: "charges failed at the limit (v2 memory.events max, v1 memory.failcnt) more often than this: reclaim forced on every failed charge",
        todo: "raise the limit, or set memory.high a little below memory.max to throttle before reclaim",
    },
    Threshold {
        key: "limit.oom_kills",
        value: 0.0,
        unit: Unit::Count,
        means: "the cgroup had more OOM kills than this in the window (memory.events oom_kill)",
        todo: "`memmon incidents` for the post-mortem; raise the limit or fix the grower",
    },
    Threshold {
        key: "pressure.high_throttle_per_second",
        value: 0.0,
        unit: Unit::PerSecond,
        means: "the cgroup was throttled over memory.high (memory.events high) more often than this",
        todo: "raise memory.high, or accept the slowdown: it is memory.high doing its job",
    },
    Threshold {
        key: "pressure.major_faults_per_second",
        value: 100.0,
        unit: Unit::PerSecond,
        means: "major faults (waits for disk or swap) at least this often",
        todo: "give it more memory (the limit or the machine); check what it re-reads with `memmon profile --pid N`",
    },
    Threshold {
        key: "pressure.swap_in_pages_per_second",
        value: 256.0,
        unit: Unit::PerSecond,
        means: "pages swapped back in at least this fast (1 MiB/s): the working set does not fit in memory",
        todo: "raise the memory limit, lower vm.swappiness (v1 memory.swappiness), or shrink the working set",
    },
    Threshold {
        key: "pressure.swap_out_pages_per_second",
        value: 256.0,
        unit: Unit::PerSecond,
        means: "pages swapped out at least this fast (1 MiB/s)",
        todo: "raise the memory limit or lower vm.swappiness if the pages come back (swap-in)",
    },
    Threshold {
        key: "pressure.reclaim_stall_warn",
        value: 0.05,
        unit: Unit::SecondsPerSecond,
        means: "the target's tasks spent at least this share of the time stalled in direct or memcg reclaim",
        todo: "raise the limit (or memory.high), or free page cache it does not need",
    },
    Threshold {
        key: "pressure.reclaim_stall_critical",
        value: 0.25,
        unit: Unit::SecondsPerSecond,
        means: "a quarter of the time or more stalled in reclaim: the workload runs at a fraction of its speed",
        todo: "raise the memory limit now; the working set does not fit",
    },
    Threshold {
        key: "pressure.psi_some_warn",
        value: 0.10,
        unit: Unit::Ratio,
        means: "some task stalled on memory at least this share of the time (PSI memory some)",
        todo: "see the pressure findings' causes (reclaim, swap-in, refaults); give the workload more memory",
    },
    Threshold {
        key: "pressure.psi_full_warn",
        value: 0.05,
        unit: Unit::Ratio,
        means: "all non-idle tasks stalled on memory at once at least this share of the time (PSI memory full)",
        todo: "give the workload more memory: it makes no progress while full",
    },
    Threshold {
        key: "pressure.refaults_per_second",
        value: 1000.0,
        unit: Unit::PerSecond,
        means: "evicted pages read back soon after eviction at least this often (memory.stat workingset_refault_*): thrashing",
        todo: "the working set does not fit its limit: raise it, or shrink the working set",
    },
    Threshold {
        key: "layout.numa_remote_warn",
        value: 0.5,
        unit: Unit::Ratio,
        means: "at least this share of the resident pages sit on NUMA nodes other than those the process's CPUs are on",
        todo: "bind CPUs and memory together: `numactl --cpunodebind=N --membind=N`, or `migratepages PID FROM TO`; or enable kernel.numa_balancing",
    },
    Threshold {
        key: "layout.numa_min_rss",
        value: 16.0 * MIB,
        unit: Unit::Bytes,
        means: "processes smaller than this are not judged for NUMA placement",
        todo: "nothing",
    },
    Threshold {
        key: "layout.cow_faults_per_second",
        value: 1000.0,
        unit: Unit::PerSecond,
        means: "copy-on-write faults at least this often: pages shared after fork() are copied as they are written",
        todo: "fork less (posix_spawn, a pre-forked worker pool), or MADV_DONTFORK/MADV_WIPEONFORK the large buffers",
    },
    Threshold {
        key: "layout.thp_min_anon",
        value: 1024.0 * MIB,
        unit: Unit::Bytes,
        means: "anonymous memory at least this large is judged for its huge-page share",
        todo: "nothing",
    },
    Threshold {
        key: "layout.thp_low_share",
        value: 0.1,
        unit: Unit::Ratio,
        means: "under this share of a large anonymous heap is in transparent huge pages: TLB misses cost",
        todo: "madvise(MADV_HUGEPAGE) the heap, or /sys/kernel/mm/transparent_hugepage/enabled = always",
    },
];

/// The position of `key` in [`THRESHOLDS`], at compile time (a wrong key
/// fails to build).
pub const fn index(key: &str) -> usize {
    let mut i = 0;
    while i < THRESHOLDS.len() {
        if crate::model::view::str_eq(THRESHOLDS[i].key, key) {
            return i;
        }
        i += 1;
    }
    panic!("no such threshold")
}

/// The threshold at `i` (from [`index`]).
pub fn at(i: usize) -> &'static Threshold {
    &THRESHOLDS[i]
}

/// The named thresholds the rules use.
pub mod key {
    use super::index;
    /// growth.steady_warn
    pub const GROWTH_STEADY: usize = index("growth.steady_warn");
    /// growth.min_bytes
    pub const GROWTH_MIN: usize = index("growth.min_bytes");
    /// growth.step_share
    pub const STEP_SHARE: usize = index("growth.step_share");
    /// growth.sawtooth_drop
    pub const SAWTOOTH_DROP: usize = index("growth.sawtooth_drop");
    /// limit.working_set_warn
    pub const WS_WARN: usize = index("limit.working_set_warn");
    /// limit.working_set_critical
    pub const WS_CRIT: usize = index("limit.working_set_critical");
    /// limit.forecast_warn
    pub const FORECAST_WARN: usize = index("limit.forecast_warn");
    /// limit.forecast_critical
    pub const FORECAST_CRIT: usize = index("limit.forecast_critical");
    /// limit.hits_per_second
    pub const LIMIT_HITS: usize = index("limit.hits_per_second");
    /// limit.oom_kills
    pub const OOM_KILLS: usize = index("limit.oom_kills");
    /// pressure.high_throttle_per_second
    pub const HIGH_THROTTLE: usize = index("pressure.high_throttle_per_second");
    /// pressure.major_faults_per_second
    pub const MAJOR_FAULTS: usize = index("pressure.major_faults_per_second");
    /// pressure.swap_in_pages_per_second
    pub const SWAP_IN: usize = index("pressure.swap_in_pages_per_second");
    /// pressure.swap_out_pages_per_second
    pub const SWAP_OUT: usize = index("pressure.swap_out_pages_per_second");
    /// pressure.reclaim_stall_warn
    pub const STALL_WARN: usize = index("pressure.reclaim_stall_warn");
    /// pressure.reclaim_stall_critical
    pub const STALL_CRIT: usize = index("pressure.reclaim_stall_critical");
    /// pressure.psi_some_warn
    pub const PSI_SOME: usize = index("pressure.psi_some_warn");
    /// pressure.psi_full_warn
    pub const PSI_FULL: usize = index("pressure.psi_full_warn");
    /// pressure.refaults_per_second
    pub const REFAULTS: usize = index("pressure.refaults_per_second");
    /// layout.numa_remote_warn
    pub const NUMA_REMOTE: usize = index("layout.numa_remote_warn");
    /// layout.numa_min_rss
    pub const NUMA_MIN_RSS: usize = index("layout.numa_min_rss");
    /// layout.cow_faults_per_second
    pub const COW: usize = index("layout.cow_faults_per_second");
    /// layout.thp_min_anon
    pub const THP_MIN_ANON: usize = index("layout.thp_min_anon");
    /// layout.thp_low_share
    pub const THP_LOW: usize = index("layout.thp_low_share");
}

/// The value of threshold `i`.
pub fn value(i: usize) -> f64 {
    THRESHOLDS[i].value
}

/// The README table's rows, as the README prints them (`| key | value unit
/// | means | todo |`): `memmon explain --thresholds` prints the same.
pub fn markdown_table() -> String {
    let mut out = String::from("| threshold | value | means | what to do |\n|---|---|---|---|\n");
    for t in THRESHOLDS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            t.key,
            display_value(t),
            t.means,
            t.todo
        ));
    }
    out
}

/// A threshold's value with its unit, for people (`0.1 MiB/s`, `85%`).
pub fn display_value(t: &Threshold) -> String {
    let num = |x: f64| {
        if x.fract() == 0.0 {
            format!("{x:.0}")
        } else {
            format!("{x}")
        }
    };
    match t.unit {
        Unit::Bytes => format!("{} MiB", num(t.value / MIB)),
        Unit::BytesPerSecond => format!("{} MiB/s", num(t.value / MIB)),
        Unit::PerSecond => format!("{}/s", num(t.value)),
        Unit::Seconds => format!("{} s", num(t.value)),
        Unit::SecondsPerSecond => format!("{} s/s", num(t.value)),
        Unit::Ratio => format!("{}%", num(t.value * 100.0)),
        Unit::Count => num(t.value),
        Unit::Score => num(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for t in THRESHOLDS {
            assert!(seen.insert(t.key), "{} declared twice", t.key);
            assert!(
                t.key.contains('.')
                    && t.key
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'),
                "{}: keys are area.what",
                t.key
            );
            assert!(!t.means.is_empty() && !t.todo.is_empty(), "{}", t.key);
            assert!(t.value.is_finite() && t.value >= 0.0, "{}", t.key);
        }
    }

    /// The README's thresholds table is this list, row for row.
    #[test]
    fn readme_lists_every_threshold() {
        let readme = include_str!("../../../../README.md");
        for line in markdown_table().lines() {
            assert!(
                readme.contains(line),
                "README.md lacks this thresholds row (paste `memmon explain --thresholds`):\n{line}"
            );
        }
    }
}
