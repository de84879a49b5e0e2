//! Two NUMA nodes (the qemu guest of `cargo xtask vm-test`): a process run
//! on node 1's CPU with its memory bound to node 0 is remote, one bound to
//! node 1 for both is local, and `migratepages` moving a process's pages is
//! counted, page for page, for the process that ran the migration.
//!
//! On a machine with one node these tests skip, unless
//! MEMMON_REQUIRE_NUMA2=1 (set by vm-test inside the guest) makes them fail.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::process::Command;

use common::*;
use kernel_setup::vmstat;

/// Pages the workloads touch (128 MiB): shared-library pages on the other
/// node stay under 2% of the total.
const PAGES: u64 = 32_768;

fn two_nodes(test: &str) -> bool {
    if !require_bpf(test) {
        return false;
    }
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("node"))
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    if nodes >= 2 {
        return true;
    }
    if std::env::var("MEMMON_REQUIRE_NUMA2").as_deref() == Ok("1") {
        panic!("{test}: needs two NUMA nodes, this machine has {nodes}");
    }
    skip(
        test,
        "one NUMA node here (`cargo xtask vm-test` runs it on two)",
    );
    false
}

/// Automatic NUMA balancing off, so only the test moves pages.
fn quiet_balancing() {
    let _ = std::fs::write("/proc/sys/kernel/numa_balancing", "0");
}

/// memmon's numa_local_ratio for a workload run under `numactl BIND...`.
fn local_ratio(bind: &[&str]) -> f64 {
    let mut prefix = vec!["numactl"];
    prefix.extend_from_slice(bind);
    let mut w = Workload::start_under(&prefix, &["touch", &PAGES.to_string()]);
    let pid = w.pid.to_string();
    // The snapshot shows processes with memory events in its window.
    let rows = snapshot_json(&["--duration", "2", "--pid", &pid], || {
        w.go();
    });
    let row = row_for(&rows, w.pid);
    let ratio = row["numa_local_ratio"]
        .as_f64()
        .unwrap_or_else(|| panic!("no numa_local_ratio for {bind:?}: {row}"));
    let pages = &row["numa_pages"];
    eprintln!("{bind:?}: numa_local_ratio {ratio:.4}, pages per node {pages}");
    w.finish();
    ratio
}

#[test]
fn local_ratio_follows_cpu_and_memory_binding() {
    if !two_nodes("local_ratio_follows_cpu_and_memory_binding") {
        return;
    }
    quiet_balancing();
    let remote = local_ratio(&["--cpunodebind=1", "--membind=0"]);
    assert!(remote <= 0.05, "CPU on node 1, memory on node 0: {remote}");
    let local = local_ratio(&["--cpunodebind=1", "--membind=1"]);
    assert!(local >= 0.95, "CPU and memory on node 1: {local}");
}

/// Pages of `pid` on `node` (numa_maps `N<node>=` counts, huge pages in
/// small pages).
fn pages_on_node(pid: u32, node: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).expect("numa_maps");
    let key = format!("N{node}=");
    text.lines()
        .map(|l| {
            let huge = l.contains(" huge ");
            l.split_whitespace()
                .find_map(|f| f.strip_prefix(&key)?.parse::<u64>().ok())
                .map_or(0, |n| if huge { n * 512 } else { n })
        })
        .sum()
}

#[test]
fn migratepages_is_counted_for_the_migrating_process() {
    if !two_nodes("migratepages_is_counted_for_the_migrating_process") {
        return;
    }
    quiet_balancing();
    let mut w = Workload::start_under(
        &["numactl", "--cpunodebind=0", "--preferred=0"],
        &["touch", &PAGES.to_string()],
    );
    w.go();
    let before_node1 = pages_on_node(w.pid, 1);
    let m = Window::start(&["snapshot", "--json", "--duration", "1"]);
    let migrated0 = vmstat("pgmigrate_success");
    let out = Command::new("migratepages")
        .args([&w.pid.to_string(), "0", "1"])
        .spawn()
        .expect("migratepages (Debian package numactl)");
    let migrator = out.id();
    let status = out.wait_with_output().expect("wait migratepages").status;
    assert!(status.success(), "migratepages failed: {status}");
    let moved = vmstat("pgmigrate_success") - migrated0;
    let (stdout, _) = m.output();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("snapshot JSON");
    let after_node1 = pages_on_node(w.pid, 1);
    eprintln!(
        "migratepages moved {moved} pages (vmstat); the workload's node-1 pages {before_node1} -> {after_node1}"
    );
    assert!(
        after_node1 >= before_node1 + PAGES * 9 / 10,
        "the workload's pages did not move: {before_node1} -> {after_node1}"
    );
    let row = row_for(&rows, migrator);
    assert_within(
        "numa_pages_migrated of the migratepages process",
        field(row, "numa_pages_migrated"),
        moved,
        0.05,
    );
    w.finish();
}

#[test]
fn explain_finds_the_memory_remote_to_the_cpus_it_runs_on() {
    if !two_nodes("explain_finds_the_memory_remote_to_the_cpus_it_runs_on") {
        return;
    }
    quiet_balancing();
    let mut w = Workload::start_under(
        &["numactl", "--cpunodebind=0", "--membind=1"],
        &["touch", &PAGES.to_string()],
    );
    w.go();
    let out = Command::new(MEMMON)
        .args(["--log", "error", "explain", &w.pid.to_string()])
        .args(["--duration", "2", "--json"])
        .output()
        .expect("run memmon explain");
    let text = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "explain JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // The kernel's own placement: the share of its pages off node 0.
    let (on0, on1) = (pages_on_node(w.pid, 0), pages_on_node(w.pid, 1));
    let kernel = on1 as f64 / (on0 + on1) as f64;
    let f = r["findings"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["id"] == "numa_remote"))
        .unwrap_or_else(|| panic!("no numa_remote finding: {r:#}"));
    let share = f["evidence"][0]["value"].as_f64().expect("remote share");
    eprintln!("explain: remote share {share:.4}; numa_maps N0={on0} N1={on1} ({kernel:.4})");
    assert!(
        share >= 0.9,
        "CPU on node 0, memory on node 1: remote {share}"
    );
    assert!(
        (share - kernel).abs() <= 0.05,
        "remote share {share:.4} vs numa_maps {kernel:.4}"
    );
    assert!(
        f["next"][0]
            .as_str()
            .is_some_and(|n| n.contains("--membind=1")),
        "{f:#}"
    );
    assert_eq!(out.status.code(), Some(3), "a warning");
    w.finish();
}
