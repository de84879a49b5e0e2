//! Unit tests of the per-cgroup totals: the kernel's exit totals, and the
//! floor that keeps every count from going down.

use std::collections::HashMap;

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
