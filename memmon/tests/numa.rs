//! Page migration: a child that asks the kernel to compact memory runs the
//! migrations itself (`migrate:mm_migrate_pages` fires in its context), so
//! memmon's pages_migrated for it must match /proc/vmstat's
//! pgmigrate_success delta (bounded by it: other tasks may migrate too).
//! Compaction is not NUMA placement: numa_pages_migrated is bounded by
//! vmstat's numa_pages_migrated delta (0 on one node); and where the
//! kernel balances nothing (one node, or numa_balancing off) the child's
//! numa_task_moves is 0.

mod common;

use common::{Workload, field, require_bpf, row_for, snapshot_json};

fn vmstat(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/vmstat").expect("read /proc/vmstat");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("/proc/vmstat has no {key}"))
}

#[test]
fn compaction_migrations_are_charged_to_the_compacting_task() {
    if !require_bpf("numa") {
        return;
    }
    let mut pid = 0;
    let (mut ok0, mut ok1, mut fail0, mut fail1) = (0, 0, 0, 0);
    let (mut numa0, mut numa1) = (0, 0);
    let rows = snapshot_json(&["-d", "5"], || {
        let mut w = Workload::start(&["compact"]);
        pid = w.pid;
        ok0 = vmstat("pgmigrate_success");
        fail0 = vmstat("pgmigrate_fail");
        numa0 = vmstat_or_zero("numa_pages_migrated");
        let report = w.go();
        ok1 = vmstat("pgmigrate_success");
        fail1 = vmstat("pgmigrate_fail");
        numa1 = vmstat_or_zero("numa_pages_migrated");
        assert_eq!(report["compacted"], true);
        w.finish();
    });
    let row = row_for(&rows, pid);
    let migrated = field(row, "pages_migrated");
    let failed = field(row, "pages_migrate_failed");
    let (ok, fail) = (ok1 - ok0, fail1 - fail0);
    eprintln!("pages_migrated {migrated} (vmstat +{ok}), failed {failed} (vmstat +{fail})");
    assert!(
        ok > 0,
        "compaction migrated nothing on this machine: nothing to check"
    );
    assert!(
        migrated > 0,
        "memmon saw no migration by the compacting child"
    );
    assert!(
        migrated <= ok,
        "pages_migrated {migrated} > pgmigrate_success delta {ok}"
    );
    common::assert_within("pages_migrated vs pgmigrate_success", migrated, ok, 0.05);
    assert!(
        failed <= fail,
        "pages_migrate_failed {failed} > pgmigrate_fail delta {fail}"
    );
    let numa = field(row, "numa_pages_migrated");
    assert!(
        numa <= numa1 - numa0,
        "numa_pages_migrated {numa} > vmstat numa_pages_migrated delta {}",
        numa1 - numa0
    );
    assert_eq!(numa, 0, "compaction is not NUMA placement");
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
                .count()
        })
        .unwrap_or(1);
    let balancing = std::fs::read_to_string("/proc/sys/kernel/numa_balancing")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    if nodes < 2 || !balancing {
        assert_eq!(
            field(row, "numa_task_moves"),
            0,
            "no NUMA balancing here ({nodes} node(s), balancing {balancing}), yet task moves"
        );
    }
}

/// A /proc/vmstat counter, 0 where this kernel has none (no CONFIG_NUMA).
fn vmstat_or_zero(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/vmstat").expect("read /proc/vmstat");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
