//! `memmon explain` against the kernel's own numbers, on constructed
//! scenarios: a child leaking 3 MiB/s in a 256 MiB memory cgroup gets a
//! steady-growth finding at the rate VmRSS and memory.usage moved by
//! (±20%), the OOM forecast the kernel's figures give (limit − anon over
//! that rate, ±25%) and is ranked first to be killed (its oom_score is the
//! cgroup's highest, as /proc says) and, with `--profile`, its growth stack
//! names the function that touches the memory, exit 4; a quiet process beside it gets
//! "No problem found." and exit 0. A working set of 160 MiB in a 64 MiB
//! memcg with swap on is thrashing, with the swap-in rate of /proc/vmstat
//! pswpin (±25%) and a reclaim stall time inside the kernel's memory PSI.
//! From a recording, `explain --store --at` a time before an OOM kill
//! gives the forecast that was true then: the kill came when it said
//! (±25%). Through a daemon (`--connect`), its history gives the leak's
//! rate at once.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::{Daemon, MEMMON, Memmon, Workload, require_bpf};
use kernel_setup::{Memcg, SwapFile, status_kb, vmstat};
use serde_json::Value;

const MIB: f64 = 1024.0 * 1024.0;

/// `memmon explain ARGS`: (exit code, stdout, stderr).
fn explain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(MEMMON)
        .args(["--log", "error", "explain"])
        .args(args)
        .output()
        .expect("run memmon explain");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `memmon explain ARGS --json`: (exit code, report).
fn explain_json(args: &[&str]) -> (i32, Value) {
    let mut full = args.to_vec();
    full.push("--json");
    let (code, out, err) = explain(&full);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("explain {args:?} ({code}): not JSON ({e}):\n{out}\n{err}"));
    (code, v)
}

/// The finding `id` (panics with the report).
fn finding<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == id))
        .unwrap_or_else(|| panic!("no {id} finding in {r:#}"))
}

/// The value of the evidence item `what` of `f`.
fn item(f: &Value, what: &str) -> f64 {
    f["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|i| i["what"] == what))
        .and_then(|i| i["value"].as_f64())
        .unwrap_or_else(|| panic!("no {what} value in {f:#}"))
}

fn within(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs(),
        "{what}: explain says {got:.3}, the kernel {want:.3} (more than {:.0}% apart)",
        tol * 100.0
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn oom_score(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("/proc/{pid}/oom_score"))
}

/// What the forecast tracks, as memory.stat says: anon + shmem.
fn unreclaimable(cg: &Memcg) -> u64 {
    if cg.is_v2() {
        cg.stat("anon") + cg.stat("shmem")
    } else {
        cg.stat("total_rss") + cg.stat("total_shmem")
    }
}

/// Ends a grower before its schedule does.
fn stop(mut w: Workload) {
    let _ = w.child.kill();
    let _ = w.child.wait();
}

/// A memcg whose processes never swap (v1 swappiness 0 and memsw at the
/// limit, v2 swap.max 0): growth stays in RAM until the limit.
fn no_swap_memcg(tag: &str, limit: u64) -> Memcg {
    let cg = Memcg::create(tag, limit);
    cg.write("memory.swappiness", "0");
    if cg.has("memory.memsw.limit_in_bytes") {
        cg.write("memory.memsw.limit_in_bytes", &limit.to_string());
    }
    cg
}

const LEAK: &str =
    "a_leaker_grows_at_the_kernels_rate_is_forecast_and_dies_first_beside_a_quiet_process";

#[test]
fn a_leaker_grows_at_the_kernels_rate_is_forecast_and_dies_first_beside_a_quiet_process() {
    if !require_bpf(LEAK) {
        return;
    }
    let limit = 256u64 << 20;
    let cg = no_swap_memcg("explain-leak", limit);
    let mut quiet = Workload::start(&["touch", "1024"]);
    cg.add(quiet.pid);
    quiet.go();
    // 1 MiB every 333 ms: 3 MiB/s, 160 MiB in 53 s (never at the limit).
    let mut leak = Workload::start(&["grow", "160", "333"]);
    cg.add(leak.pid);
    leak.send_go();
    std::thread::sleep(Duration::from_secs(1));

    let pid = leak.pid.to_string();
    let (t0, rss0, use0) = (Instant::now(), status_kb(leak.pid, "VmRSS"), cg.usage());
    let (code, r) = explain_json(&[&pid, "--duration", "8", "--profile"]);
    let dt = t0.elapsed().as_secs_f64();
    let (rss1, use1, anon1) = (status_kb(leak.pid, "VmRSS"), cg.usage(), unreclaimable(&cg));
    let rss_rate = (rss1 - rss0) as f64 * 1024.0 / dt;
    let use_rate = (use1 as f64 - use0 as f64) / dt;
    eprintln!(
        "kernel: VmRSS {rss0} -> {rss1} kB, usage {use0} -> {use1} over {dt:.1} s: {:.2} / {:.2} MiB/s",
        rss_rate / MIB,
        use_rate / MIB
    );
    let growth = finding(&r, "steady_growth");
    assert_eq!(growth["severity"], "warning", "{growth:#}");
    within(
        "RSS growth vs VmRSS",
        item(growth, "RSS growth"),
        rss_rate,
        0.2,
    );
    within(
        "its cgroup's usage growth vs memory.usage",
        item(growth, "its cgroup's usage growth"),
        use_rate,
        0.2,
    );
    let fc = finding(&r, "oom_forecast");
    assert_eq!(fc["severity"], "critical", "{fc:#}");
    let want = (limit as f64 - anon1 as f64) / rss_rate;
    within(
        "time to OOM vs (limit - anon) / rate",
        item(fc, "time to OOM"),
        want,
        0.25,
    );
    let rank = finding(&r, "oom_rank");
    assert_eq!(item(rank, "rank by oom_score"), 1.0, "{rank:#}");
    let (s_leak, s_quiet) = (oom_score(leak.pid), oom_score(quiet.pid));
    assert!(
        s_leak > s_quiet,
        "the kernel ranks them otherwise: oom_score {s_leak} (leak) vs {s_quiet} (quiet)"
    );
    // Its own page-fault stacks (--profile) name the function that grows it.
    let wig = finding(&r, "where_it_grows");
    assert!(
        wig["title"]
            .as_str()
            .is_some_and(|t| t.contains("touch_fresh") || t.contains("memmon_workload::")),
        "{wig:#}"
    );
    assert_eq!(r["worst"], "critical");
    assert_eq!(code, 4, "exit status for a critical finding");

    let (code, text, err) = explain(&[&quiet.pid.to_string(), "--duration", "3"]);
    assert!(text.contains("No problem found."), "{text}\n{err}");
    assert!(
        !text.contains("CRITICAL") && !text.contains("WARNING"),
        "{text}"
    );
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!(
            "pid {} (memmon-workload) would be killed first",
            leak.pid
        )),
        "the quiet process is told who dies first: {text}"
    );
    assert_eq!(
        code, 0,
        "exit status with nothing at warning or worse:\n{text}"
    );
    stop(leak);
    quiet.finish();
}

const THRASH: &str = "a_working_set_over_its_limit_thrashes_with_the_kernels_swap_in_and_stall";

/// A cgroup of the unified hierarchy holding one process, for its own
/// memory PSI (hybrid hosts: /sys/fs/cgroup/unified; removed on drop).
struct UnifiedCgroup(std::path::PathBuf);

impl UnifiedCgroup {
    fn holding(pid: u32) -> Option<UnifiedCgroup> {
        let root = std::path::Path::new("/sys/fs/cgroup/unified");
        if !root.join("memory.pressure").exists() {
            return None;
        }
        let dir = root.join(format!("memmon-test-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let cg = UnifiedCgroup(dir);
        std::fs::write(cg.0.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(cg)
    }
}

impl Drop for UnifiedCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The `some ... total=` of a PSI file, µs.
fn psi_some_us(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find(|l| l.starts_with("some"))
        .and_then(|l| l.rsplit("total=").next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no some total: {text}", path.display()))
}

#[test]
fn a_working_set_over_its_limit_thrashes_with_the_kernels_swap_in_and_stall() {
    if !require_bpf(THRASH) {
        return;
    }
    let _swap = SwapFile::in_ram_or_file("explain", 512);
    let cg = Memcg::create("explain-thrash", 64 << 20);
    let mut w = Workload::start(&["thrash", "160"]);
    cg.add(w.pid);
    let own = UnifiedCgroup::holding(w.pid);
    let touched = w.go();
    assert_eq!(touched["phase"], "touched", "{touched}");
    std::thread::sleep(Duration::from_secs(1));
    // The kernel's counters, sampled every 50 ms while explain runs, so
    // they are compared over explain's own window (its probes' loading
    // takes CPU from the thrasher, and its stalls with it).
    let pid = w.pid;
    let own_psi = own.as_ref().map(|u| u.0.join("memory.pressure"));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let psi = own_psi.unwrap_or_else(|| "/proc/pressure/memory".into());
        let mut out = Vec::new();
        loop {
            out.push((
                now_ms(),
                vmstat("pswpin"),
                common::proc_stat_field(pid, 12).expect("majflt"),
                psi_some_us(&psi),
            ));
            if stop_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return out;
            }
        }
    });
    let (code, r) = explain_json(&[&w.pid.to_string(), "--duration", "5"]);
    let _ = stop_tx.send(());
    let samples = sampler.join().expect("sampler");
    let at = |ms: u64| {
        *samples
            .iter()
            .min_by_key(|s| s.0.abs_diff(ms))
            .expect("samples")
    };
    let (from, to) = (
        r["span"]["from_unix_ms"].as_u64().expect("span"),
        r["span"]["to_unix_ms"].as_u64().expect("span"),
    );
    let (a, b) = (at(from), at(to));
    let dt = (b.0 - a.0) as f64 / 1000.0;
    let swap_in = (b.1 - a.1) as f64 / dt;
    let major = (b.2 - a.2) as f64 / dt;
    let some = (b.3 - a.3) as f64 / 1e6 / dt;
    eprintln!(
        "kernel over explain's {dt:.1} s: pswpin {swap_in:.0}/s, its majflt {major:.0}/s, \
         memory PSI some {:.1}% ({})",
        some * 100.0,
        if own.is_some() {
            "its own cgroup"
        } else {
            "system"
        }
    );
    let f = finding(&r, "thrashing");
    assert!(
        f["severity"] == "warning" || f["severity"] == "critical",
        "{f:#}"
    );
    within(
        "major faults vs /proc/PID/stat majflt",
        item(f, "major faults"),
        major,
        0.25,
    );
    within(
        "swap-in, whole system vs /proc/vmstat pswpin",
        item(f, "swap-in, whole system"),
        swap_in,
        0.25,
    );
    // A memcg reclaim stall is a memory stall: PSI counts it, with the
    // swap-in waits, so the stall time is most of the PSI time, never more.
    let stall = item(f, "reclaim stall");
    eprintln!(
        "explain: major faults {:.0}/s, swap-in (system) {:.0}/s, reclaim stall {stall:.3} s/s",
        item(f, "major faults"),
        item(f, "swap-in, whole system")
    );
    assert!(
        stall <= some * 1.15 + 0.02,
        "reclaim stall {stall:.3} s/s exceeds the kernel's memory PSI some {some:.3}"
    );
    if own.is_some() {
        assert!(
            stall >= some * 0.5,
            "reclaim stall {stall:.3} s/s is under half of its own memory PSI some {some:.3}"
        );
    }
    assert!(code >= 3, "exit status {code} with a thrashing finding");
    w.finish();
    drop(own);
}

const STORE: &str = "explain_from_a_recording_gives_the_forecast_that_was_true_before_the_kill";

#[test]
fn explain_from_a_recording_gives_the_forecast_that_was_true_before_the_kill() {
    if !require_bpf(STORE) {
        return;
    }
    let limit = 128u64 << 20;
    let cg = no_swap_memcg("explain-store", limit);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().to_str().expect("utf-8 path").to_string();
    let rec = Memmon::start(&[
        "record",
        &path,
        "--interval",
        "1",
        "--no-fault-detail",
        "--no-alloc-detail",
    ]);
    // 1 MiB every 125 ms: 8 MiB/s until the 128 MiB limit kills it.
    let mut w = Workload::start(&["grow", "400", "125"]);
    cg.add(w.pid);
    let kills0 = cg.oom_kills();
    w.send_go();
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_ms = loop {
        if let Ok(Some(_)) = w.child.try_wait() {
            break now_ms();
        }
        assert!(Instant::now() < deadline, "the grower was never OOM-killed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        cg.oom_kills() > kills0,
        "it died, but not by the OOM killer"
    );
    std::thread::sleep(Duration::from_secs(2));
    rec.signal(libc::SIGINT);
    let _ = rec.output();
    // 5 s before the kill, looking back a minute.
    let at = (killed_ms - 5_000) as f64 / 1000.0;
    let (code, r) = explain_json(&[
        &w.pid.to_string(),
        "--store",
        &path,
        "--at",
        &format!("{at:.3}"),
        "--window",
        "60s",
    ]);
    let then = r["span"]["to_unix_ms"].as_u64().expect("span");
    let left = (killed_ms - then) as f64 / 1000.0;
    let fc = finding(&r, "oom_forecast");
    eprintln!(
        "forecast {:#}; the kill came {left:.1} s after",
        fc["title"]
    );
    within(
        "the forecast then vs when the kill came",
        item(fc, "time to OOM"),
        left,
        0.25,
    );
    within(
        "RSS growth then vs the workload's 8 MiB/s",
        item(finding(&r, "steady_growth"), "RSS growth"),
        8.0 * MIB,
        0.2,
    );
    assert_eq!(r["span"]["source"], "store");
    assert_eq!(code, 4, "a kill seconds away is critical");
    // After the kill, the process is gone from the recording's last frames.
    let (code, _, err) = explain(&[
        &w.pid.to_string(),
        "--store",
        &path,
        "--at",
        &format!("{:.3}", (killed_ms + 1_500) as f64 / 1000.0),
        "--window",
        "60s",
    ]);
    assert!(
        code != 2,
        "the frames before the kill still explain it: {err}"
    );
}

const CONNECT: &str = "explain_connect_judges_the_daemons_history_at_once";

#[test]
fn explain_connect_judges_the_daemons_history_at_once() {
    if !require_bpf(CONNECT) {
        return;
    }
    let cg = no_swap_memcg("explain-connect", 512 << 20);
    let d = Daemon::start(&["--no-pin", "--profile", "--profile-period", "61"]);
    let mut leak = Workload::start(&["grow", "200", "250"]);
    cg.add(leak.pid);
    leak.send_go();
    std::thread::sleep(Duration::from_secs(2));
    let (t0, rss0) = (Instant::now(), status_kb(leak.pid, "VmRSS"));
    std::thread::sleep(Duration::from_secs(12));
    let (dt, rss1) = (t0.elapsed().as_secs_f64(), status_kb(leak.pid, "VmRSS"));
    let rate = (rss1 - rss0) as f64 * 1024.0 / dt;
    let url = format!("http://{}", d.addr);
    let started = Instant::now();
    let (code, r) = explain_json(&[&leak.pid.to_string(), "--connect", &url, "--window", "12s"]);
    let took = started.elapsed();
    eprintln!("explain --connect took {took:?}");
    assert_eq!(r["span"]["source"], "daemon");
    assert!(
        r["span"]["samples"].as_u64().unwrap_or(0) >= 8,
        "the daemon's history: {:#}",
        r["span"]
    );
    within(
        "RSS growth from the daemon's history vs VmRSS",
        item(finding(&r, "steady_growth"), "RSS growth"),
        rate,
        0.2,
    );
    let wig = finding(&r, "where_it_grows");
    let stacks: Vec<&str> = wig["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| {
            i["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("growth stack"))
        })
        .filter_map(|i| i["text"].as_str())
        .collect();
    assert!(
        stacks
            .iter()
            .any(|s| s.contains("touch_fresh") || s.contains("grow")),
        "the daemon's growth stacks name the workload's touching function: {stacks:?}\n{wig:#}"
    );
    // 512 MiB at 4 MiB/s: the limit is under two minutes away.
    assert_eq!(finding(&r, "oom_forecast")["severity"], "critical", "{r:#}");
    assert_eq!(code, 4);
    // A bad query is refused with the key named.
    let (status, body) = d.get("/api/v1/history?pid=abc");
    assert_eq!(status, 400);
    assert!(body.contains("pid=abc"), "{body}");
    stop(leak);
    let _ = d.stop();
}
