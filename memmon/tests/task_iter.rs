//! The task iterator (`iter/task`) as the daemon's process scan: a process
//! with 40 threads (half of them already exited, so their faults live in
//! the process's reaped-thread totals) and 200 idle children, read by the
//! daemon through one iterator read per pass, must show exactly what the
//! kernel's /proc/PID/stat says of each (faults summed over threads,
//! resident and virtual size, parent, start time, comm), and the field
//! catalog must name the iterator as the live source. The mm's counters it
//! reads besides (RssAnon, RssFile, RssShmem, VmSwap) are the counters'
//! `count`, as /proc/PID/stat's RSS is: since 6.16 /proc/PID/status sums
//! the per-CPU parts exactly, so they may differ from it by what the CPUs
//! have not folded in yet (at most `percpu_counter_batch` pages per CPU).

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Workload, require_bpf};

/// (minflt, majflt, rss bytes, vsize, ppid, start ticks, comm) from
/// /proc/PID/stat.
fn proc_stat(pid: u32) -> (u64, u64, u64, u64, u64, u64, String) {
    let raw = std::fs::read(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.rsplit_once(')').expect("comm in stat");
    let comm = head
        .split_once('(')
        .map(|(_, c)| c)
        .unwrap_or("")
        .to_string();
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // Index i is field i + 4 (proc(5)): ppid 4, minflt 10, majflt 12,
    // starttime 22, vsize 23, rss 24.
    let page = 4096;
    (f[6], f[8], f[20] * page, f[19], f[0], f[18], comm)
}

/// RssAnon, RssFile, RssShmem and VmSwap from /proc/PID/status, bytes.
fn proc_status(pid: u32) -> [u64; 4] {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kb = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(u64::MAX, |v| v * 1024)
    };
    [
        kb("RssAnon:"),
        kb("RssFile:"),
        kb("RssShmem:"),
        kb("VmSwap:"),
    ]
}

fn row_status(row: &serde_json::Value) -> [u64; 4] {
    let n = |k: &str| row[k].as_u64().unwrap_or(u64::MAX - 1);
    [
        n("rss_anon_bytes"),
        n("rss_file_bytes"),
        n("rss_shmem_bytes"),
        n("swap_bytes"),
    ]
}

/// Within the per-CPU counters' slack: `percpu_counter_batch` (max(32,
/// 2 × CPUs)) pages per CPU.
fn near(got: [u64; 4], want: [u64; 4]) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let slack = cpus * 32u64.max(2 * cpus) * 4096;
    got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= slack)
}

fn row(snapshot: &serde_json::Value, pid: u32) -> Option<serde_json::Value> {
    snapshot["processes"]
        .as_array()?
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(pid)))
        .cloned()
}

fn row_stat(row: &serde_json::Value) -> (u64, u64, u64, u64, u64, u64, String) {
    let n = |k: &str| {
        row[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} is not a number in {row}"))
    };
    (
        n("minor_faults"),
        n("major_faults"),
        n("rss_bytes"),
        n("vm_bytes"),
        n("ppid"),
        n("start_time_ticks"),
        row["comm"].as_str().unwrap_or_default().to_string(),
    )
}

const TEST: &str = "the_daemon_reads_every_process_through_the_task_iterator_as_proc_does";

#[test]
fn the_daemon_reads_every_process_through_the_task_iterator_as_proc_does() {
    if !require_bpf(TEST) {
        return;
    }
    let mut threaded = Workload::start(&["threads", "40", "256"]);
    let report = threaded.go();
    assert_eq!(report["threads"], 40, "{report}");
    let mut idle = Workload::start(&["--no-wait", "idle", "200"]);
    let children: Vec<u32> = idle
        .read_json_line()
        .get("pids")
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_u64().map(|p| p as u32))
        .collect();
    assert_eq!(children.len(), 200);

    let mut d = Daemon::start(&["--no-pin", "--log", "info"]);
    d.memmon
        .wait_for_stderr("iter/task:", Duration::from_secs(30));
    let line = d.memmon.stderr_line("iter/task:").unwrap_or_default();
    if line.contains("not used") {
        // A kernel that refuses the iterator keeps /proc as the source:
        // said, and counted as a skip (never as a pass).
        d.stop();
        threaded.finish();
        idle.finish();
        common::skip(TEST, &line);
        return;
    }
    assert!(
        line.contains("through the kernel's task iterator"),
        "the daemon did not use the task iterator: {line}"
    );

    // Both are idle now: the daemon's reading and /proc's must agree
    // exactly. Retry a few passes in case a reading raced the last touch.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    let ok = loop {
        std::thread::sleep(Duration::from_millis(1500));
        let (status, body) = d.get("/api/v1/snapshot");
        assert_eq!(status, 200);
        let snap: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
        let mut mismatches = Vec::new();
        for pid in std::iter::once(threaded.pid).chain(children.iter().copied()) {
            let (want, want_status) = (proc_stat(pid), proc_status(pid));
            match row(&snap, pid) {
                Some(r) if row_stat(&r) == want && near(row_status(&r), want_status) => {}
                Some(r) => mismatches.push(format!(
                    "{pid}: memmon {:?} {:?} /proc {want:?} {want_status:?}",
                    row_stat(&r),
                    row_status(&r)
                )),
                None => mismatches.push(format!("{pid}: missing")),
            }
        }
        let sources = snap["fields"]
            .as_array()
            .and_then(|f| {
                f.iter()
                    .find(|f| f["key"] == "minor_faults" && f["scope"] == "process")
            })
            .map(|f| f["sources"].clone())
            .unwrap_or_default();
        let live = |name: &str| {
            sources
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == name))
                .and_then(|s| s["live"].as_bool())
        };
        assert_eq!(live("iter/task"), Some(true), "sources: {sources}");
        assert_eq!(live("/proc/PID/stat"), Some(false), "sources: {sources}");
        if mismatches.is_empty() {
            break true;
        }
        last = mismatches.join("\n");
        if Instant::now() > deadline {
            break false;
        }
    };
    let (minflt, ..) = proc_stat(threaded.pid);
    // 40 threads × 256 pages: most of its faults are the threads'.
    assert!(minflt >= 40 * 256, "minflt {minflt}");
    d.stop();
    threaded.finish();
    idle.finish();
    assert!(ok, "memmon and /proc/PID/stat disagree:\n{last}");
}
