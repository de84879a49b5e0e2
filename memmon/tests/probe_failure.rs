//! A probe pointed at a tracepoint that does not exist (test-only switch
//! MEMMON_TEST_TRACEPOINT_OVERRIDE) is reported unavailable with the
//! reason, and every probe that attaches without the switch still attaches
//! and counts: the fault probes see a child's faults, process_exit its exit.

mod common;

use common::{Window, Workload, field, require_bpf, row_for};

/// `snapshot --probes --json` states by probe name, optionally with env.
const OVERRIDE: (&str, &str) = (
    "MEMMON_TEST_TRACEPOINT_OVERRIDE",
    "migrate_pages=migrate:does_not_exist,oom_kill=oom:does_not_exist",
);

fn probe_report(env: &[(&str, &str)], during: impl FnOnce()) -> serde_json::Value {
    let m = Window::start_with_env(&["snapshot", "--probes", "--json", "-d", "2"], env);
    during();
    let (stdout, stderr) = m.output();
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--probes JSON did not parse: {e}\n{stdout}\n{stderr}"))
}

fn probe<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["probes"]
        .as_array()
        .expect("probes array")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("probe {name} missing: {report:#}"))
}

#[test]
fn a_failing_probe_leaves_the_others_working() {
    if !require_bpf("probe_failure") {
        return;
    }
    let baseline = probe_report(&[], || {});
    let broken = probe_report(&[OVERRIDE], || {
        Workload::start(&["--no-wait", "touch", "2000"]).finish();
    });
    for name in ["migrate_pages", "oom_kill"] {
        let p = probe(&broken, name);
        assert_eq!(p["state"], "unavailable", "{name}: {p}");
        assert!(
            p["reason"]
                .as_str()
                .unwrap_or("")
                .contains("does_not_exist"),
            "{name}: reason does not name the missing tracepoint: {p}"
        );
    }
    for p in baseline["probes"].as_array().expect("probes") {
        let name = p["name"].as_str().expect("name");
        if name == "migrate_pages" || name == "oom_kill" || p["state"] != "attached" {
            continue;
        }
        assert_eq!(
            probe(&broken, name)["state"],
            "attached",
            "{name} attached without the override but not with it"
        );
    }
    assert!(
        field(probe(&broken, "page_fault_user"), "events") >= 2000,
        "fault probe did not count the child's 2000 faults: {broken:#}"
    );
    assert!(
        field(probe(&broken, "process_exit"), "events") >= 1,
        "exit probe saw no exit: {broken:#}"
    );

    // The per-process path still works too, with the override on.
    let m = Window::start_with_env(&["snapshot", "--json", "-d", "2"], &[OVERRIDE]);
    let mut w = Workload::start(&["touch", "3000"]);
    let pid = w.pid;
    let report = w.go();
    assert_eq!(report["pages"], 3000);
    w.finish();
    let (stdout, _) = m.output();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("snapshot JSON: {e}\n{stdout}"));
    assert!(field(row_for(&rows, pid), "minor_faults") >= 3000);
}
