//! Pid churn (shortened for CI; `cargo xtask bench` runs 100,000): many
//! short-lived processes leave no entry behind in the kernel map, lose no
//! exit event, and fill nothing.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use common::*;

#[test]
fn ten_thousand_short_lived_processes_leave_no_stale_entries() {
    if !require_bpf("ten_thousand_short_lived_processes_leave_no_stale_entries") {
        return;
    }
    const COUNT: u64 = 10_000;
    let mut w = Workload::start(&["spawn", &COUNT.to_string()]);
    let m = Window::start(&["snapshot", "--probes", "--json", "--duration", "2"]);
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

/// The memcg's fault total in memmon's rollup, from the daemon's JSON
/// (0 while the cgroup has no series yet).
fn rollup_faults(d: &Daemon, cgroup: &str) -> u64 {
    let (status, body) = d.get("/api/v1/snapshot");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
    v["cgroups"]
        .as_array()
        .expect("cgroups")
        .iter()
        .find(|c| c["cgroup"] == cgroup)
        .map_or(0, |c| {
            c["minor_faults"].as_u64().unwrap_or(0) + c["major_faults"].as_u64().unwrap_or(0)
        })
}

#[test]
fn churned_processes_are_conserved_in_their_cgroup_rollup() {
    if !require_bpf("churned_processes_are_conserved_in_their_cgroup_rollup") {
        return;
    }
    const COUNT: u64 = 10_000;
    let cg = kernel_setup::Memcg::create("churn", 4 << 30);
    let mut w = Workload::start(&["spawn", &COUNT.to_string()]);
    cg.add(w.pid);
    // Started after the move, so the workload is first seen in the memcg.
    let d = Daemon::start(&["--no-pin", "--interval", "1"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let cgroup = cg.path_in_hierarchy();
    let (memmon0, kernel0) = (rollup_faults(&d, &cgroup), cg.stat("pgfault"));
    let report = w.go();
    assert_eq!(report["pids"].as_array().map_or(0, Vec::len) as u64, COUNT);
    // Every exit event folded in (two passes at least).
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (memmon1, kernel1) = (rollup_faults(&d, &cgroup), cg.stat("pgfault"));
    let (got, want) = (memmon1 - memmon0, kernel1 - kernel0);
    eprintln!("churn faults in {cgroup}: memmon {got}, memcg pgfault {want}");
    assert!(
        want > COUNT,
        "the churn should fault at least once per child: {want}"
    );
    // The memcg's own counter (every fault charged to it, minor and major)
    // against memmon's rollup (live and exited processes of that cgroup).
    assert_within("faults in the churn's cgroup", got, want, 0.01);
    let (_, body) = d.get("/api/v1/snapshot");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let unknown = v["cgroups"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["cgroup"] == ""))
        .map_or(0, |c| c["exited_processes"].as_u64().unwrap_or(0));
    assert!(
        unknown < COUNT / 100,
        "{unknown} exited processes landed in no cgroup"
    );
    w.finish();
    d.stop();
}
