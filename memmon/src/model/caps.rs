//! Where a count of processes or cgroups grows past one of memmon's caps
//! (a kernel map's size, the bitmap of processes that ran), memmon keeps
//! running on what fits and says so: each full map counts what it dropped
//! (`memmon_kernel_map_full_total{map}`), and each time a count grows a
//! notice names the cap, what is lost and the setting that moves it.

use crate::sample::stats::StatsSnapshot;

/// One cap: the statistic that counts what it dropped, and what to say.
struct Cap {
    dropped: fn(&StatsSnapshot) -> u64,
    what: &'static str,
    lost: &'static str,
    fix: &'static str,
}

const CAPS: &[Cap] = &[
    Cap {
        dropped: |s| s.proc_map_full,
        what: "the per-process counters map (PROC_COUNTERS) is full",
        lost: "probe counts (major faults, reclaim stalls, migrations, detail) of processes past it are dropped",
        fix: "raise max_processes",
    },
    Cap {
        dropped: |s| s.swap_map_full,
        what: "the map of processes with swap (SWAP_SEEN) is full",
        lost: "swap-out/swap-in counts of processes past it are not followed",
        fix: "raise max_processes",
    },
    Cap {
        dropped: |s| s.memcg_exits_map_full,
        what: "the per-memory-cgroup exit totals map (MEMCG_EXITS) is full",
        lost: "exits in cgroups past it are missing from their cgroup's totals after a restart",
        fix: "fewer memory cgroups, or a larger MEMCG_EXITS",
    },
    Cap {
        dropped: |s| s.ran_map_full,
        what: "a process ran with a pid past the RAN bitmap (sized for pid_max and the highest live pid when memmon loaded: pid_max was raised since)",
        lost: "nothing: each such pass walks every task, at the cost of a full walk",
        fix: "restart memmon to size the bitmap for the new pid_max",
    },
    Cap {
        dropped: |s| s.moved_tasks_map_full,
        what: "the map of tasks moved between cgroups (MOVED_TASKS) is full",
        lost: "moves past it are seen when the process's memory is next read",
        fix: "none needed; moves are caught up under the cost guard",
    },
];

/// A notice for each cap whose dropped count grew from `before` to `now`.
pub fn cap_notices(before: &StatsSnapshot, now: &StatsSnapshot) -> Vec<String> {
    CAPS.iter()
        .filter_map(|cap| {
            let (a, b) = ((cap.dropped)(before), (cap.dropped)(now));
            (b > a).then(|| {
                format!(
                    "{}: {} ({} more, {b} in all); {}",
                    cap.what,
                    cap.lost,
                    b - a,
                    cap.fix
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_that_drops_more_is_said_with_its_fix() {
        let before = StatsSnapshot {
            proc_map_full: 3,
            ..Default::default()
        };
        let now = StatsSnapshot {
            proc_map_full: 10,
            swap_map_full: 0,
            ..Default::default()
        };
        let n = cap_notices(&before, &now);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("(PROC_COUNTERS) is full"), "{}", n[0]);
        assert!(n[0].contains("7 more, 10 in all"), "{}", n[0]);
        assert!(n[0].contains("raise max_processes"), "{}", n[0]);
        assert!(cap_notices(&now, &now).is_empty(), "no growth, no notice");
    }
}
