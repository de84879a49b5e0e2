//! Hostile input: a process named with quotes, a backslash, a newline, a
//! control byte and invalid UTF-8 yields valid Prometheus exposition
//! (promtool), valid JSON from the API and `snapshot --json`, and a table
//! whose rows stay one line each. A memory cgroup named with quotes, a
//! backslash, a space, a tab and label punctuation the same, through
//! `/metrics`, `/api/v1/snapshot` and `snapshot --cgroups` (table and
//! JSON), with its real usage.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{process::Command, time::Duration};

use common::*;

#[test]
fn hostile_process_names_stay_valid_everywhere() {
    if !require_bpf("hostile_process_names_stay_valid_everywhere") {
        return;
    }
    // 64 MiB resident: in the top K by RSS.
    let mut w = Workload::start(&["hostile", "16384"]);
    w.go();
    let pid = w.pid;
    let comm = std::fs::read(format!("/proc/{pid}/comm")).expect("comm");
    assert!(
        comm.contains(&b'\n') && comm.contains(&0xff),
        "rename failed: {comm:?}"
    );

    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    std::thread::sleep(Duration::from_millis(1200));
    let (_, metrics) = d.get("/metrics");
    let (_, api) = d.get("/api/v1/snapshot");
    d.stop();
    let snap: serde_json::Value = serde_json::from_str(&api).expect("API JSON is valid");
    let row = snap["processes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["pid"].as_u64() == Some(u64::from(pid))))
        .expect("the process is in the API");
    let name = row["comm"].as_str().expect("comm string");
    assert!(
        name.contains('"') && name.contains('\\') && name.contains('\n'),
        "{name:?}"
    );

    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("memmon_process_rss_bytes{") && l.contains(&format!("pid=\"{pid}\""))
        })
        .unwrap_or_else(|| panic!("no series for the hostile process:\n{metrics}"));
    assert!(line.contains(r#"\"b\\n\n"#), "label not escaped: {line}");
    promtool_check_metrics(&metrics);

    // snapshot: JSON parses; the table keeps one line per row.
    let rows = snapshot_json(&["--duration", "0", "--pid", &pid.to_string()], || {});
    let name = row_for(&rows, pid)["comm"].as_str().expect("comm string");
    assert!(
        name.contains('"') && name.contains('\\') && name.contains('\n'),
        "{name:?}"
    );
    let out = Command::new(MEMMON)
        .args(["snapshot", "--duration", "1", "--no-alloc-detail"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(pid.to_string().as_str())),
        "the hostile process has no row:\n{table}"
    );
    for l in table.lines().skip(1) {
        assert!(
            l.split_whitespace()
                .next()
                .is_some_and(|p| p.parse::<u32>().is_ok()),
            "row broken: {l:?}"
        );
    }
    w.finish();
}

#[test]
fn hostile_cgroup_names_stay_valid_everywhere() {
    if !require_bpf("hostile_cgroup_names_stay_valid_everywhere") {
        return;
    }
    let cg = kernel_setup::Memcg::create("q\"b\\s p\tx}{=,", 256 << 20);
    let path = cg.path_in_hierarchy();
    let mut w = Workload::start(&["touch", "12800"]);
    cg.add(w.pid);
    w.go();
    // v1, or v2 where MEMMON_CGROUP_ROOT names a cgroup2 mount.
    let usage_file = if cg.has("memory.usage_in_bytes") {
        "memory.usage_in_bytes"
    } else {
        "memory.current"
    };
    let usage = cg.read_u64(usage_file);
    assert!(
        usage >= 40 << 20,
        "the workload's 50 MiB is charged here: {usage}"
    );

    let d = Daemon::start(&["--no-pin", "--interval", "0.5", "--max-cgroups", "100000"]);
    let mut seen = None;
    for _ in 0..120 {
        let (_, api) = d.get("/api/v1/snapshot");
        let snap: serde_json::Value = serde_json::from_str(&api).expect("API JSON is valid");
        seen = snap["cgroups"].as_array().and_then(|a| {
            a.iter()
                .find(|c| c["cgroup"] == path.as_str() && c["memory_usage_bytes"].is_u64())
                .cloned()
        });
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let c = seen.unwrap_or_else(|| panic!("{path:?} never in /api/v1/snapshot"));
    assert_within(
        "usage of the hostile cgroup",
        c["memory_usage_bytes"].as_u64().expect("usage"),
        cg.read_u64(usage_file),
        0.05,
    );
    let (_, metrics) = d.get("/metrics");
    d.stop();
    promtool_check_metrics(&metrics);
    let escaped = path.replace('\\', "\\\\").replace('"', "\\\"");
    let label = format!("cgroup=\"{escaped}\"");
    assert!(
        metric_value(&metrics, "memmon_cgroup_memory_usage_bytes", &[&label]).is_some(),
        "no usage series labelled {label}"
    );

    let out = Command::new(MEMMON)
        .args([
            "snapshot",
            "--cgroups",
            "--json",
            "-d",
            "0",
            "--no-fault-detail",
            "--no-alloc-detail",
        ])
        .output()
        .expect("run snapshot --cgroups --json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(
        all.as_array()
            .is_some_and(|a| a.iter().any(|c| c["cgroup"] == path.as_str())),
        "{path:?} missing from snapshot --cgroups --json"
    );
    let out = Command::new(MEMMON)
        .args([
            "snapshot",
            "--cgroups",
            "-d",
            "0",
            "--no-fault-detail",
            "--no-alloc-detail",
        ])
        .output()
        .expect("run snapshot --cgroups");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("memmon-test-q"))
        .collect();
    assert_eq!(rows.len(), 1, "one row, on one line:\n{table}");
    assert!(
        !rows[0].contains('\t'),
        "control bytes printed raw: {:?}",
        rows[0]
    );
    w.finish();
}
