//! Hostile input: a process named with quotes, a backslash, a newline, a
//! control byte and invalid UTF-8 yields valid Prometheus exposition
//! (promtool), valid JSON from the API and `snapshot --json`, and a table
//! whose rows stay one line each.

mod common;

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
