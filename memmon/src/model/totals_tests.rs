//! Unit tests of the per-cgroup totals: the kernel's exit totals, and the
//! floor that keeps every count from going down.

use std::{collections::HashMap, time::Duration};

use memmon_common::MemcgExits;

use super::*;

fn model() -> Model {
    Model::new(
        Vec::new(),
        Host {
            page_size: 4096,
            ticks_per_second: 100,
        },
    )
}

fn exits(exited: u64, min_flt: u64, swap_out: u64) -> MemcgExits {
    let mut e = MemcgExits {
        exited,
        min_flt,
        maj_flt: 1,
        with_faults: exited,
        ..MemcgExits::default()
    };
    e.counters.swap_out_pages = swap_out;
    e
}

#[test]
fn kernel_exit_totals_are_the_cgroups_exited_part() {
    let mut m = model();
    m.kernel_exits = Some(HashMap::from([("/a".to_string(), exits(201, 5000, 7))]));
    let t = m.cgroup_totals();
    let a = &t["/a"];
    assert_eq!(a.exited_processes, 201);
    assert_eq!(
        a.minor_faults, 5000,
        "task counters without the fault probes"
    );
    assert_eq!(a.major_faults, 1);
    assert_eq!(a.counters.swap_out_pages, 7);
    assert_eq!(a.live_processes, 0);
}

#[test]
fn no_count_goes_below_the_last_published() {
    let mut m = model();
    m.kernel_exits = Some(HashMap::from([("/a".to_string(), exits(10, 900, 3))]));
    let _ = m.cgroup_totals();
    // A read that raced with an exit: the kernel's totals look smaller.
    m.kernel_exits = Some(HashMap::from([("/a".to_string(), exits(9, 800, 2))]));
    let t = m.cgroup_totals();
    assert_eq!(t["/a"].exited_processes, 10);
    assert_eq!(t["/a"].minor_faults, 900);
    assert_eq!(t["/a"].counters.swap_out_pages, 3);
    // And they grow again from there.
    m.kernel_exits = Some(HashMap::from([("/a".to_string(), exits(12, 1000, 4))]));
    let t = m.cgroup_totals();
    assert_eq!(t["/a"].exited_processes, 12);
    assert_eq!(t["/a"].minor_faults, 1000);
}

#[test]
fn without_the_exit_probe_the_folded_totals_count() {
    let mut m = model();
    let folded = Totals {
        exited_processes: 3,
        minor_faults: 30,
        ..Totals::default()
    };
    m.exited_totals.insert("/b".into(), folded);
    let t = m.cgroup_totals();
    assert_eq!(t["/b"].exited_processes, 3);
    assert_eq!(t["/b"].minor_faults, 30);
}

fn cgroup(
    path: &str,
) -> (
    crate::sample::cgroup::CgroupSample,
    crate::sample::cgroup::CgroupNames,
) {
    (
        crate::sample::cgroup::CgroupSample {
            path: path.into(),
            usage: Some(1 << 20),
            ..Default::default()
        },
        Default::default(),
    )
}

/// A removed cgroup keeps its final counters (after the kernel's exit
/// entry of it is gone) until it has been gone for GONE_KEPT; then it is
/// released with what its exited processes left, and is no longer
/// published.
#[test]
fn a_removed_cgroup_keeps_its_final_counters_until_released() {
    let mut m = model();
    let t0 = std::time::Instant::now();
    m.kernel_exits = Some(HashMap::from([("/pod".to_string(), exits(3, 300, 0))]));
    m.exited_totals.insert(
        "/pod".into(),
        Totals {
            exited_processes: 3,
            ..Totals::default()
        },
    );
    m.apply_cgroups(vec![cgroup("/pod")], &[], t0);
    assert_eq!(m.cgroup_totals()["/pod"].exited_processes, 3);
    // Removed: the collector drops its kernel entry 10 s later.
    m.apply_cgroups(Vec::new(), &["/pod".into()], t0 + Duration::from_secs(1));
    m.kernel_exits = Some(HashMap::new());
    let t = m.cgroup_totals();
    assert_eq!(t["/pod"].exited_processes, 3, "final counters still served");
    assert_eq!(t["/pod"].minor_faults, 300);
    assert!(m.cgroups_in_use().is_empty(), "a gone cgroup is not read");
    // Still held just before GONE_KEPT, released after.
    let kept = super::cgroups::GONE_KEPT;
    m.apply_cgroups(Vec::new(), &[], t0 + kept);
    assert!(m.cgroup_totals().contains_key("/pod"));
    m.apply_cgroups(Vec::new(), &[], t0 + kept + Duration::from_secs(2));
    assert!(m.cgroups.get("/pod").is_none());
    assert!(!m.cgroup_totals().contains_key("/pod"), "released");
    assert!(!m.exited_totals.contains_key("/pod"));
}

/// A process moved to another cgroup is rolled up there from then on;
/// the cgroup it left keeps what it published.
#[test]
fn a_moved_process_takes_its_new_cgroup() {
    use crate::sample::{Identity, ProcMeta};
    let mut m = model();
    let t0 = std::time::Instant::now();
    let id = Identity {
        pid: 42,
        comm: "w".into(),
        ppid: 1,
        start_time_ticks: 7,
        minflt: 1000,
        majflt: 0,
        rss_pages: 10,
        vsize_bytes: 1 << 20,
        fresh: true,
        rss_members: None,
    };
    let meta = |cg: &str| ProcMeta {
        cgroup: Some(cg.into()),
        ..ProcMeta::default()
    };
    m.apply_scan_of(vec![id.clone()], HashMap::from([(42, meta("/a"))]));
    m.apply_cgroups(vec![cgroup("/a"), cgroup("/b")], &[], t0);
    let t = m.cgroup_totals();
    assert_eq!((t["/a"].live_processes, t["/a"].minor_faults), (1, 1000));
    m.apply_moves(HashMap::from([(42, meta("/b"))]));
    // A move of a pid the model does not hold, or to an unknown cgroup,
    // changes nothing.
    m.apply_moves(HashMap::from([(43, meta("/c")), (42, ProcMeta::default())]));
    m.apply_scan_of(vec![id], HashMap::new());
    assert!(m.cgroups_in_use().contains("/b"));
    let t = m.cgroup_totals();
    assert_eq!((t["/b"].live_processes, t["/b"].minor_faults), (1, 1000));
    assert_eq!(t["/a"].live_processes, 0);
    assert_eq!(
        t["/a"].minor_faults, 1000,
        "the cgroup it left never goes back"
    );
    assert!(!t.contains_key("/c"));
}
