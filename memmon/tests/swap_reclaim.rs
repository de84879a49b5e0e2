//! Swap and reclaim probes against the kernel's own numbers: a child
//! touching 200 MiB in a 64 MiB memory cgroup with a swap file on swaps
//! out (memmon's swap_out_pages vs its VmSwap and /proc/vmstat pswpout),
//! stalls in memcg reclaim (reclaim_stalls vs memory.failcnt), and swaps
//! back in when it reads its memory again with the limit lifted
//! (swap_in_pages = the fall of VmSwap, out - in = its change). Its
//! real-time swap_bytes and rss_anon_bytes match VmSwap and RssAnon, and
//! its cgroup's swap cache (`memory_stat_bytes{swapcached}`) the
//! kernel's memory.stat.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::time::{Duration, Instant};

use common::{Window, Workload, assert_within, field, require_bpf, row_for, snapshot_json};
use kernel_setup::{Memcg, SwapFile, status_kb, vmstat, vmswap_kb};

const LIMIT: u64 = 64 << 20;
const TOUCH_MIB: &str = "200";
/// Least snapshot window per phase: the window ends when the phase's
/// workload reports it is done (SIGINT), however long that takes.
const WINDOW_SECS: u64 = 1;
const PAGE_KB: u64 = 4;

#[test]
fn swap_out_in_and_reclaim_stalls_match_the_kernel() {
    if !require_bpf("swap_reclaim") {
        return;
    }
    let _swap = SwapFile::create("swap", 384);
    let cg = Memcg::create("swap", LIMIT);
    let mut w = Workload::start(&["swap-cycle", TOUCH_MIB]);
    cg.add(w.pid);
    let pid = w.pid.to_string();
    let window = WINDOW_SECS.to_string();

    // Phase 1: touch 200 MiB under the 64 MiB limit.
    let failcnt0 = cg.read_u64("memory.failcnt");
    let pswpout0 = vmstat("pswpout");
    let mut vmswap1 = 0;
    let mut rss_anon1 = 0;
    let mut took = Duration::ZERO;
    let rows = snapshot_json(&["-d", &window, "--pid", &pid], || {
        let start = Instant::now();
        let report = w.go();
        took = start.elapsed();
        assert_eq!(report["phase"], "touched");
        vmswap1 = vmswap_kb(w.pid);
        rss_anon1 = status_kb(w.pid, "RssAnon");
    });
    eprintln!("phase 1 took {took:?}");
    let failcnt = cg.read_u64("memory.failcnt") - failcnt0;
    let pswpout = vmstat("pswpout") - pswpout0;
    let row = row_for(&rows, w.pid);
    let out1 = field(row, "swap_out_pages");
    let in1 = field(row, "swap_in_pages");
    let stalls = field(row, "reclaim_stalls");
    let stall_s = row["reclaim_stall_seconds"]
        .as_f64()
        .expect("reclaim_stall_seconds");
    eprintln!(
        "phase 1: swap_out {out1} swap_in {in1} VmSwap {vmswap1} kB pswpout +{pswpout} \
         stalls {stalls} ({stall_s:.3} s) failcnt +{failcnt}"
    );
    assert!(vmswap1 > 0, "the child did not swap: VmSwap is 0 kB");
    assert!(out1 > 0, "swap_out_pages is 0 while VmSwap is {vmswap1} kB");
    assert_within("swap_out_pages vs VmSwap", out1, vmswap1 / PAGE_KB, 0.05);
    assert!(
        out1 <= pswpout + pswpout / 20,
        "swap_out_pages {out1} exceeds the system-wide pswpout delta {pswpout}"
    );
    assert!(stalls > 0, "no reclaim stall seen under a memcg limit");
    assert!(
        stalls <= failcnt,
        "reclaim_stalls {stalls} > memory.failcnt delta {failcnt} (each stall follows a failed charge)"
    );
    assert!(stall_s > 0.0, "stalls counted but no stall time");
    // Real-time resident set: the last rss_stat values vs /proc/PID/status
    // (which reads the same counters, without summing per-CPU deltas).
    let swap_bytes = field(row, "swap_bytes");
    let anon_bytes = field(row, "rss_anon_bytes");
    eprintln!("rss: anon {anon_bytes} B vs RssAnon {rss_anon1} kB, swap {swap_bytes} B");
    assert_within("swap_bytes vs VmSwap", swap_bytes, vmswap1 * 1024, 0.05);
    assert_within(
        "rss_anon_bytes vs RssAnon",
        anon_bytes,
        rss_anon1 * 1024,
        0.05,
    );

    // Phase 2: read everything back, with room for it. (Under the limit
    // each page read in pushes another out on the same CPU: the mm's swap
    // counter, which VmSwap and the probe both read without the per-CPU
    // deltas, then moves less than one per-CPU batch, and a CI run saw
    // VmSwap move by 4 kB and the probe see no swap-in at all.)
    cg.write("memory.limit_in_bytes", &(1u64 << 30).to_string());
    let mut vmswap2 = 0;
    let rows = snapshot_json(&["-d", &window, "--pid", &pid], || {
        let start = Instant::now();
        let report = w.go();
        took = start.elapsed();
        assert_eq!(report["phase"], "read_back");
        vmswap2 = vmswap_kb(w.pid);
    });
    eprintln!("phase 2 took {took:?}");
    let row = row_for(&rows, w.pid);
    let out2 = field(row, "swap_out_pages");
    let in2 = field(row, "swap_in_pages");
    eprintln!("phase 2: swap_out {out2} swap_in {in2} VmSwap {vmswap1} -> {vmswap2} kB");
    assert!(
        vmswap2 < vmswap1 / 2,
        "the child did not swap back in: VmSwap {vmswap1} -> {vmswap2} kB"
    );
    assert_within(
        "swap_in_pages vs the fall of VmSwap",
        in2,
        (vmswap1 - vmswap2) / PAGE_KB,
        0.05,
    );
    // Both come from the same kernel counter (MM_SWAPENTS): out - in is
    // exactly how much VmSwap moved.
    let net = out2 as i64 - in2 as i64;
    let want = (vmswap2 as i64 - vmswap1 as i64) / PAGE_KB as i64;
    assert!(
        (net - want).abs() as f64 <= 0.05 * in2 as f64,
        "swap_out - swap_in = {net} pages but VmSwap moved by {want} pages"
    );
    // The pages read back keep their copy in swap (swap is far from
    // full): the cgroup's swap cache, as its memory.stat says (v1's
    // hierarchical total_swapcached; v2 has the line from Linux 6.6, and
    // memmon reports none where the kernel has none).
    let text = std::fs::read_to_string(cg.path.join("memory.stat")).expect("memory.stat");
    let key = if cg.is_v2() {
        "swapcached "
    } else {
        "total_swapcached "
    };
    let kernel = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok());
    let (stdout, stderr) = Window::start(&["snapshot", "--cgroups", "--json", "-d", "0"]).output();
    let cgroups: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("snapshot --cgroups JSON: {e}\n{stdout}\n{stderr}"));
    let ours = cgroups
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["cgroup"] == cg.path_in_hierarchy().as_str())
        })
        .unwrap_or_else(|| panic!("{} missing from snapshot --cgroups", cg.path_in_hierarchy()));
    let got = ours["memory_stat_bytes"]["swapcached"].as_u64();
    eprintln!("swapcached: memmon {got:?}, kernel {kernel:?}");
    match kernel {
        Some(k) => {
            assert!(k >= 16 << 20, "the kernel's swap cache holds only {k} B");
            assert_within("swapcached", got.expect("memmon's swapcached"), k, 0.05);
        }
        None => assert_eq!(got, None, "swapcached where the kernel has none"),
    }
    w.finish();
}
