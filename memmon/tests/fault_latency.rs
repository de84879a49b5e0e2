//! The optional fault-latency histogram (fentry/fexit on handle_mm_fault):
//! where the kernel allows BPF tracing programs it attaches and its buckets
//! hold at least every fault a known workload took. This machine's kernel
//! refuses them: the test then checks the refusal is reported with its
//! reason and reports itself skipped (counted as such by `cargo xtask
//! test`); MEMMON_REQUIRE_FENTRY=1 (vm-test's guest) makes it fail instead.

mod common;

use common::*;

#[test]
fn fault_latency_histogram_fills_where_tracing_is_allowed() {
    if !require_bpf("fault_latency_histogram_fills_where_tracing_is_allowed") {
        return;
    }
    const PAGES: u64 = 20_000;
    let mut w = Workload::start(&["touch", &PAGES.to_string()]);
    let m = Window::start(&["snapshot", "--probes", "--json", "--duration", "1"]);
    let minflt0 = proc_stat_field(w.pid, 10).expect("minflt before");
    let report = w.go();
    w.finish();
    let (stdout, _) = m.output();
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("probes JSON");
    let probe = v["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["name"] == "fault_latency")
        .expect("fault_latency probe listed")
        .clone();
    if probe["state"] != "attached" {
        let reason = probe["reason"].as_str().unwrap_or("");
        assert!(!reason.is_empty(), "unavailable without a reason: {probe}");
        if std::env::var("MEMMON_REQUIRE_FENTRY").as_deref() == Ok("1") {
            panic!("fault_latency did not attach where it must: {reason}");
        }
        skip(
            "fault_latency_histogram_fills_where_tracing_is_allowed",
            &format!("fault_latency unavailable on this kernel: {reason}"),
        );
        return;
    }
    let total: u64 = v["stats"]["fault_latency_hist"]
        .as_array()
        .expect("fault_latency_hist")
        .iter()
        .filter_map(|b| b[1].as_u64())
        .sum();
    let faults = report["minflt"].as_u64().expect("minflt in report") - minflt0;
    eprintln!("fault_latency: {total} faults in the histogram; the workload took {faults}");
    // Transparent huge pages may serve several pages per fault.
    assert!(faults >= PAGES / 4, "{report}");
    assert!(
        total >= faults,
        "the histogram ({total}) holds fewer faults than one workload took ({faults})"
    );
}
