//! Pid churn (shortened for CI; `cargo xtask bench` runs 100,000): many
//! short-lived processes leave no entry behind in the kernel map, lose no
//! exit event, and fill nothing.

mod common;

use common::*;

#[test]
fn ten_thousand_short_lived_processes_leave_no_stale_entries() {
    if !require_bpf("ten_thousand_short_lived_processes_leave_no_stale_entries") {
        return;
    }
    const COUNT: u64 = 10_000;
    let mut w = Workload::start(&["spawn", &COUNT.to_string()]);
    let m = Memmon::start(&["snapshot", "--probes", "--json", "--duration", "15"]);
    let report = w.go();
    let spawned = report["pids"].as_array().map_or(0, Vec::len) as u64;
    w.finish();
    let (stdout, _) = m.output();
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("probes JSON");
    let stats = &report["stats"];
    assert_eq!(spawned, COUNT);
    assert_eq!(
        stats["proc_map_stale"], 0,
        "dead pids left in the kernel map: {stats}"
    );
    assert_eq!(stats["events_lost"], 0, "{stats}");
    assert_eq!(stats["proc_map_full"], 0, "{stats}");
    let exits = stats["exit_events"].as_u64().expect("exit_events");
    assert!(
        exits >= COUNT,
        "saw {exits} exits of {COUNT} children: {stats}"
    );
    // Live entries only: this machine's processes, not the 10,000 dead.
    let entries = stats["proc_map_entries"].as_u64().expect("entries");
    let live = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .count() as u64;
    assert!(
        entries <= live,
        "{entries} map entries but only {live} processes alive: {stats}"
    );
}
