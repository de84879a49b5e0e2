//! Graceful degradation: the daemon on a fake proc root (recorded files, no
//! swaps, no buddyinfo, no slabinfo, no PSI, one process without
//! smaps_rollup, cgroup v1 and v2-only processes) with named probes
//! disabled starts, says once what is missing, and serves the rest with
//! the recorded values.

mod common;

use std::{path::Path, time::Duration};

use common::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc");

fn copy(from: &str, to: &Path) {
    std::fs::copy(Path::new(FIXTURES).join(from), to)
        .unwrap_or_else(|e| panic!("copy {from}: {e}"));
}

/// A proc root with processes 4242 (everything, cgroup v1 memory line) and
/// 4343 (no smaps_rollup, cgroup v2 only), and only meminfo and vmstat.
fn fake_proc(dir: &Path) {
    for pid in ["4242", "4343"] {
        let d = dir.join(pid);
        std::fs::create_dir_all(&d).expect("mkdir");
        for f in ["stat", "status", "oom_score", "oom_score_adj"] {
            copy(&format!("{pid}/{f}"), &d.join(f));
        }
    }
    copy("4242/smaps_rollup", &dir.join("4242/smaps_rollup"));
    copy("4242/cgroup", &dir.join("4242/cgroup"));
    std::fs::write(
        dir.join("4343/cgroup"),
        "0::/system.slice/v2-only.service\n",
    )
    .expect("cgroup");
    copy("system/meminfo", &dir.join("meminfo"));
    copy("system/vmstat", &dir.join("vmstat"));
}

#[test]
fn daemon_on_a_sparse_proc_with_probes_disabled_serves_the_rest() {
    if !require_bpf("daemon_on_a_sparse_proc_with_probes_disabled_serves_the_rest") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    fake_proc(dir.path());
    let root = dir.path().to_str().expect("utf-8");
    let d = Daemon::start(&[
        "--no-pin",
        "--interval",
        "1",
        "--proc-root",
        root,
        "--disable-probe",
        "oom_kill",
        "--disable-probe",
        "major_faults",
    ]);
    // Several passes: what is missing must be said once, not each pass.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(d.get("/healthz").0, 200);
    let (status, metrics) = d.get("/metrics");
    assert_eq!(status, 200);
    promtool_check_metrics(&metrics);

    // The recorded values come through: RSS from stat (384 pages) for both;
    // PSS only where smaps_rollup is.
    let page = 4096.0;
    for pid in ["4242", "4343"] {
        let rss = metric_value(
            &metrics,
            "memmon_process_rss_bytes",
            &[&format!("pid=\"{pid}\"")],
        )
        .unwrap_or_else(|| panic!("no resident series for {pid}:\n{metrics}"));
        assert_eq!(rss, 384.0 * page, "pid {pid}");
    }
    let pss = |pid: &str| {
        metric_value(
            &metrics,
            "memmon_process_pss_bytes",
            &[&format!("pid=\"{pid}\"")],
        )
    };
    assert_eq!(pss("4242"), Some(102_912.0 * 1024.0));
    assert_eq!(
        pss("4343"),
        None,
        "no smaps_rollup, no PSS (never a made-up 0)"
    );
    assert!(
        metrics.contains("pid=\"4343\"")
            && metrics.contains("cgroup=\"/system.slice/v2-only.service\""),
        "the v2-only process keeps its unified cgroup:\n{metrics}"
    );
    assert!(metrics.contains("cgroup=\"/memmon-oom-test\""));
    for probe in ["oom_kill", "major_faults"] {
        assert_eq!(
            metric_value(
                &metrics,
                "memmon_probe_attached",
                &[&format!("probe=\"{probe}\"")]
            ),
            Some(0.0),
            "{probe} disabled"
        );
    }
    assert_eq!(
        metric_value(
            &metrics,
            "memmon_probe_attached",
            &["probe=\"process_exit\""]
        ),
        Some(1.0),
        "the other probes attach"
    );

    // Each missing source is said once: in /api/v1/events and in the log.
    let (_, events) = d.get("/api/v1/events");
    let v: serde_json::Value = serde_json::from_str(&events).expect("events JSON");
    let missing: Vec<String> = v["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .filter(|n| n["type"] == "source_missing")
        .filter_map(|n| n["message"].as_str().map(str::to_string))
        .collect();
    for source in [
        "swaps",
        "buddyinfo",
        "slabinfo",
        "pressure/memory",
        "PID/smaps_rollup",
    ] {
        let n = missing
            .iter()
            .filter(|m| m.contains(&format!("/{source} is missing")))
            .count();
        assert_eq!(n, 1, "{source} said {n} times: {missing:#?}");
    }
    assert!(
        !missing
            .iter()
            .any(|m| m.contains("meminfo") || m.contains("vmstat"))
    );
    let stderr = d.stop();
    for source in ["swaps", "pressure/memory", "PID/smaps_rollup"] {
        let n = stderr.matches(&format!("/{source} is missing")).count();
        assert_eq!(n, 1, "{source} logged {n} times:\n{stderr}");
    }
}

#[test]
fn a_proc_root_without_processes_is_refused_before_probes() {
    if !require_bpf("a_proc_root_without_processes_is_refused_before_probes") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(MEMMON)
        .args([
            "daemon",
            "--no-pin",
            "--listen",
            "127.0.0.1:0",
            "--proc-root",
        ])
        .arg(dir.path())
        .output()
        .expect("run memmon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holds no process directories") && stderr.contains("--proc-root"),
        "{stderr}"
    );
    assert!(!stderr.contains("probe"), "{stderr}");
}
