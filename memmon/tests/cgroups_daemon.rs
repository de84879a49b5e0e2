//! Cgroups through the daemon, as users see them: a memcg with a 256 MiB
//! limit holding a 100 MiB child shows usage within 1% of the kernel's
//! memory.usage_in_bytes (v2: memory.current, where `MEMMON_CGROUP_ROOT`
//! names a cgroup2 mount, as in `cargo xtask vm-test`), its limit exact
//! and working set within 2% of usage − inactive_file, in `/api/v1/snapshot` and `/metrics`; a flat
//! child has no forecast; a child growing 8 MiB/s into its limit gets an
//! `oom_forecast_seconds` within 25% of when the kernel really kills it,
//! and the kill shows in the cgroup's `memory_events{event="oom_kill"}`,
//! which stays (the cgroup marked gone) after the cgroup is removed.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{
    os::unix::process::ExitStatusExt as _,
    time::{Duration, Instant},
};

use common::*;
use kernel_setup::Memcg;

const MIB: u64 = 1 << 20;

/// The cgroup object of `path` in the daemon's snapshot, once it is there
/// with a usage reading.
fn cgroup_of(d: &Daemon, path: &str) -> Option<serde_json::Value> {
    let (status, body) = d.get("/api/v1/snapshot");
    assert_eq!(status, 200);
    let snap: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
    snap["cgroups"]
        .as_array()?
        .iter()
        .find(|c| c["cgroup"] == path && c["memory_usage_bytes"].is_u64())
        .cloned()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "{what}: not seen within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_daemon_serves_cgroup_usage_limits_working_set_and_the_forecast() {
    if !require_bpf("the_daemon_serves_cgroup_usage_limits_working_set_and_the_forecast") {
        return;
    }
    let flat_cg = Memcg::create("d-flat", 256 * MIB);
    let mut flat = Workload::start(&["touch", "25600"]);
    flat_cg.add(flat.pid);
    flat.go();
    // Every cgroup gets its own series (other tests' cgroups may be many).
    let d = Daemon::start(&["--no-pin", "--interval", "0.5", "--max-cgroups", "100000"]);
    let path = flat_cg.path_in_hierarchy();
    let cg = wait_for(
        "the flat cgroup in the API",
        Duration::from_secs(60),
        || {
            cgroup_of(&d, &path).filter(|c| {
                c["memory_stat_bytes"]["inactive_file"].is_u64() && c["oom_candidate"].is_object()
            })
        },
    );
    // The child is idle: the daemon's reading and the kernel's file agree.
    let usage = flat_cg.usage();
    let inactive_file = flat_cg.stat("inactive_file");
    eprintln!("flat: {cg}");
    assert_within(
        "memory_usage_bytes",
        cg["memory_usage_bytes"].as_u64().expect("usage"),
        usage,
        0.01,
    );
    assert!(usage >= 100 * MIB, "the child holds {usage} B");
    assert_eq!(cg["memory_limit_bytes"]["max"].as_u64(), Some(256 * MIB));
    assert_within(
        "memory_working_set_bytes",
        cg["memory_working_set_bytes"]
            .as_u64()
            .expect("working set"),
        usage.saturating_sub(inactive_file),
        0.02,
    );
    assert!(
        cg["oom_forecast_seconds"].is_null(),
        "a flat cgroup has no forecast: {cg}"
    );
    assert_eq!(
        cg["oom_candidate"]["pid"].as_u64(),
        Some(u64::from(flat.pid)),
        "{cg}"
    );
    let (_, metrics) = d.get("/metrics");
    let label = format!("cgroup=\"{path}\"");
    assert_eq!(
        metric_value(
            &metrics,
            "memmon_cgroup_memory_limit_bytes",
            &[&label, "limit=\"max\""]
        ),
        Some((256 * MIB) as f64)
    );
    promtool_check_metrics(&metrics);
    // `snapshot --cgroups`: the same keys and values, JSON and table.
    let out = std::process::Command::new(MEMMON)
        .args(["snapshot", "--cgroups", "--json", "-d", "0"])
        .output()
        .expect("run snapshot --cgroups");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cgroups JSON");
    let mine = all
        .as_array()
        .and_then(|a| a.iter().find(|c| c["cgroup"] == path.as_str()))
        .unwrap_or_else(|| panic!("{path} missing from snapshot --cgroups"));
    assert_eq!(mine["memory_limit_bytes"]["max"].as_u64(), Some(256 * MIB));
    let table = std::process::Command::new(MEMMON)
        .args(["snapshot", "--cgroups", "-d", "0"])
        .output()
        .expect("run snapshot --cgroups");
    let text = String::from_utf8_lossy(&table.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(path.as_str()))
        .unwrap_or_else(|| panic!("no row for {path}:\n{text}"));
    assert!(row.contains("256M"), "{row}");

    // 1 MiB every 125 ms: 8 MiB/s into 256 MiB, then the OOM killer.
    let grow_cg = Memcg::create("d-grow", 256 * MIB);
    grow_cg.write("memory.swappiness", "0");
    let gpath = grow_cg.path_in_hierarchy();
    let mut g = Workload::start(&["grow", "1024", "125"]);
    grow_cg.add(g.pid);
    g.send_go();
    let started = Instant::now();
    // After 10 s of growth, the forecast.
    std::thread::sleep(Duration::from_secs(10));
    let (eta, at) = wait_for("a forecast for the grower", Duration::from_secs(20), || {
        let c = cgroup_of(&d, &gpath)?;
        let f = c["oom_forecast_seconds"].as_f64()?;
        Some((f, started.elapsed().as_secs_f64()))
    });
    let status = g.child.wait().expect("wait for the grower");
    let killed_at = started.elapsed().as_secs_f64();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "not OOM-killed: {status}"
    );
    let predicted = at + eta;
    eprintln!(
        "forecast at {at:.1} s: kill in {eta:.1} s (at {predicted:.1} s); killed at {killed_at:.1} s"
    );
    assert!(
        (predicted - killed_at).abs() <= 0.25 * killed_at,
        "forecast {predicted:.1} s vs the kill at {killed_at:.1} s"
    );
    let kills = wait_for("the kill in memory_events", Duration::from_secs(30), || {
        let c = cgroup_of(&d, &gpath)?;
        c["memory_events"]["oom_kill"].as_u64().filter(|n| *n >= 1)
    });
    assert_eq!(
        kills,
        grow_cg.oom_kills(),
        "oom_kill vs memory.oom_control (v2: memory.events)"
    );
    // Removed between two scans: its final reading stays, marked gone,
    // with the kill in its events, in the API and in /metrics.
    drop(grow_cg);
    let gone = wait_for(
        "the removed cgroup, marked gone",
        Duration::from_secs(30),
        || {
            let (_, body) = d.get("/api/v1/snapshot");
            let snap: serde_json::Value = serde_json::from_str(&body).ok()?;
            snap["cgroups"]
                .as_array()?
                .iter()
                .find(|c| c["cgroup"] == gpath.as_str() && c["gone"] == true)
                .cloned()
        },
    );
    eprintln!("gone: {gone}");
    assert_eq!(
        gone["memory_events"]["oom_kill"].as_u64(),
        Some(kills),
        "{gone}"
    );
    assert!(gone["oom_forecast_seconds"].is_null(), "{gone}");
    let (_, metrics) = d.get("/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "memmon_cgroup_memory_events_total",
            &[&format!("cgroup=\"{gpath}\""), "event=\"oom_kill\""]
        ),
        Some(kills as f64),
        "the removed cgroup's final oom_kill count in /metrics"
    );
    flat.finish();
    d.stop();
}

/// The memory cgroup of `pid` as the kernel says it (/proc/PID/cgroup).
fn proc_memory_cgroup(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    memmon::procfs::cgroup::parse_memory_cgroup(&text).expect("a memory cgroup line")
}

/// A process moved to another memory cgroup (as systemd and container
/// runtimes move them) is followed: its `cgroup` in the API becomes the
/// one /proc/PID/cgroup names, the new cgroup's rollup counts it (one
/// process, its resident set within 2% of /proc's), the old one's no
/// longer does, and the new cgroup's own files are read.
#[test]
fn a_process_moved_to_another_memcg_is_followed() {
    if !require_bpf("a_process_moved_to_another_memcg_is_followed") {
        return;
    }
    let from = Memcg::create("move-from", 256 * MIB);
    let to = Memcg::create("move-to", 256 * MIB);
    let (from_path, to_path) = (from.path_in_hierarchy(), to.path_in_hierarchy());
    let mut w = Workload::start(&["touch", "12800"]);
    from.add(w.pid);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "0.5", "--max-cgroups", "100000"]);
    let pid = u64::from(w.pid);
    let process_cgroup = |d: &Daemon| -> Option<String> {
        let (_, body) = d.get("/api/v1/snapshot");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["processes"]
            .as_array()?
            .iter()
            .find(|p| p["pid"].as_u64() == Some(pid))?["cgroup"]
            .as_str()
            .map(String::from)
    };
    let processes = |metrics: &str, path: &str| {
        metric_value(
            metrics,
            "memmon_cgroup_processes",
            &[&format!("cgroup=\"{path}\"")],
        )
    };
    wait_for(
        "the workload in its first cgroup",
        Duration::from_secs(60),
        || {
            let (_, metrics) = d.get("/metrics");
            (process_cgroup(&d).as_deref() == Some(from_path.as_str())
                && processes(&metrics, &from_path) == Some(1.0))
            .then_some(())
        },
    );
    to.add(w.pid);
    let moved_at = Instant::now();
    let kernel_says = proc_memory_cgroup(w.pid);
    assert_eq!(kernel_says, to_path, "/proc/PID/cgroup after the move");
    let metrics = wait_for(
        "the move in the API and /metrics",
        Duration::from_secs(60),
        || {
            let (_, metrics) = d.get("/metrics");
            (process_cgroup(&d).as_deref() == Some(kernel_says.as_str())
                && processes(&metrics, &to_path) == Some(1.0)
                && metric_value(
                    &metrics,
                    "memmon_cgroup_memory_usage_bytes",
                    &[&format!("cgroup=\"{to_path}\"")],
                )
                .is_some())
            .then_some(metrics)
        },
    );
    eprintln!("move seen {:?} after it", moved_at.elapsed());
    assert_eq!(
        processes(&metrics, &from_path),
        Some(0.0),
        "the cgroup it left no longer counts it"
    );
    let rss = metric_value(
        &metrics,
        "memmon_cgroup_rss_bytes",
        &[&format!("cgroup=\"{to_path}\"")],
    )
    .expect("the new cgroup's rss rollup");
    assert_within(
        "memmon_cgroup_rss_bytes of the new cgroup",
        rss as u64,
        kernel_setup::status_kb(w.pid, "VmRSS") * 1024,
        0.02,
    );
    w.finish();
    d.stop();
}
