//! What processes hold, from procfs through memmon (root, real processes):
//! USS of a private 100 MiB, PSS of a shared 64 MiB split between two
//! processes, and PSS equal to smem's (Debian package smem) within 1%.

mod common;

use std::{process::Command, time::Duration};

use common::*;

const MIB: u64 = 1 << 20;

/// The daemon's JSON row for `pid` once it has memory readings.
fn row(d: &Daemon, pid: u32) -> serde_json::Value {
    for _ in 0..40 {
        let (_, body) = d.get("/api/v1/snapshot");
        let snap: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if let Some(r) = snap["processes"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["pid"].as_u64() == Some(u64::from(pid))))
            && r["pss_bytes"].is_u64()
        {
            return r.clone();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("pid {pid} never got memory readings in /api/v1/snapshot");
}

#[test]
fn private_memory_is_unique_set_size() {
    if !require_bpf("private_memory_is_unique_set_size") {
        return;
    }
    let mut w = Workload::start(&["touch", "25600"]);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    let r = row(&d, w.pid);
    let uss = r["uss_bytes"].as_u64().expect("uss");
    assert_within("uss_bytes vs 100 MiB", uss, 100 * MIB, 0.02);
    // And exactly what the kernel's smaps_rollup says (private clean+dirty).
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", w.pid)).expect("rollup");
    let kb = |k: &str| -> u64 {
        rollup
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("field")
    };
    assert_eq!(uss, (kb("Private_Clean:") + kb("Private_Dirty:")) * 1024);
    assert!(
        r["oom_score"].is_i64() && r["rss_peak_bytes"].as_u64().unwrap_or(0) >= 100 * MIB,
        "{r}"
    );
    d.stop();
    w.finish();
}

#[test]
fn shared_memory_is_split_in_pss() {
    if !require_bpf("shared_memory_is_split_in_pss") {
        return;
    }
    let mut w = Workload::start(&["share", "64"]);
    // Two lines: the child has mapped every page, then the parent's report.
    let first = w.go();
    let second = w.read_json_line();
    let report = if first["child"].is_u64() {
        &first
    } else {
        &second
    };
    let child = report["child"].as_u64().expect("child pid") as u32;
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    for pid in [w.pid, child] {
        let r = row(&d, pid);
        let shmem = r["pss_shmem_bytes"].as_u64().expect("pss_shmem");
        assert_within(&format!("pss_shmem_bytes of {pid}"), shmem, 32 * MIB, 0.02);
    }
    d.stop();
    w.finish();
}

#[test]
fn pss_matches_smem() {
    if !require_bpf("pss_matches_smem") {
        return;
    }
    let mut w = Workload::start(&["touch", "12800"]);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    let pss = row(&d, w.pid)["pss_bytes"].as_u64().expect("pss");
    let out = Command::new("smem")
        .args(["-H", "-c", "pid pss"])
        .output()
        .expect("smem (Debian package smem)");
    let text = String::from_utf8_lossy(&out.stdout);
    let smem_kb: u64 = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.parse::<u32>().ok()?,
                it.next()?.parse::<u64>().ok()?,
            ))
        })
        .find(|(pid, _)| *pid == w.pid)
        .map(|(_, kb)| kb)
        .unwrap_or_else(|| panic!("smem did not list pid {}:\n{text}", w.pid));
    assert_within("pss_bytes vs smem", pss, smem_kb * 1024, 0.01);
    d.stop();
    w.finish();
}
