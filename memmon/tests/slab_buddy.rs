//! Slab and buddy-allocator probes: a child opening files allocates slab
//! objects in its own context and the caches are named; a child touching
//! pages at a steady rate is given about that many pages by the buddy
//! allocator, as the page_alloc probe counts it.

mod common;

use common::*;

#[test]
fn opening_files_allocates_slab_objects() {
    if !require_bpf("opening_files_allocates_slab_objects") {
        return;
    }
    const FILES: u64 = 20_000;
    let mut w = Workload::start(&["open-files", &FILES.to_string()]);
    let pid = w.pid;
    let slab = Window::start(&["snapshot", "--slab", "--json", "--duration", "2"]);
    let rows = snapshot_json(&["--duration", "3", "--pid", &pid.to_string()], || {
        w.go();
    });
    w.finish();
    let row = row_for(&rows, pid);
    assert!(field(row, "slab_allocs") >= FILES, "{row}");
    let (stdout, _) = slab.output();
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("slab JSON");
    // Before 6.2 the kmem_cache_alloc record names no cache: memmon counts
    // every allocation under "?" there.
    let named = std::fs::read_to_string("/sys/kernel/tracing/events/kmem/kmem_cache_alloc/format")
        .is_ok_and(|f| f.contains(" name;"));
    let cache = if named { "filp" } else { "?" };
    let filp = report["caches"]
        .as_array()
        .expect("caches")
        .iter()
        .find(|c| c["cache"] == cache)
        .unwrap_or_else(|| panic!("no {cache} cache in --slab: {report}"));
    assert!(filp["allocs"].as_u64().unwrap_or(0) >= FILES, "{filp}");
    assert!(
        report["kmalloc"].as_array().is_some_and(|a| !a.is_empty()),
        "{report}"
    );
}

#[test]
fn touched_pages_come_from_the_buddy_allocator() {
    if !require_bpf("touched_pages_come_from_the_buddy_allocator") {
        return;
    }
    // 400 MiB, one MiB every 20 ms: 8 s of steady allocation (the probe
    // counts every page; page tables, and transparent huge pages given as
    // one order-9 block, move the count away from the pages touched).
    const MIB: u64 = 400;
    const PAGES: u64 = MIB * 256;
    let mut w = Workload::start(&["grow", &MIB.to_string(), "20"]);
    let pid = w.pid;
    let buddy = Window::start(&["snapshot", "--buddy", "--json", "--duration", "1"]);
    let rows = snapshot_json(&["--duration", "1", "--pid", &pid.to_string()], || {
        w.go();
    });
    w.finish();
    let row = row_for(&rows, pid);
    let estimate = field(row, "page_allocs");
    eprintln!("page_allocs {estimate} for {PAGES} pages touched");
    assert_within("page_allocs vs pages touched", estimate, PAGES, 0.1);
    let (stdout, _) = buddy.output();
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("buddy JSON");
    let orders = report["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 11, "orders 0..=10");
    // In small pages: transparent huge pages arrive as order-9 blocks.
    let pages: u64 = orders
        .iter()
        .map(|o| o["allocs"].as_u64().unwrap_or(0) << o["order"].as_u64().unwrap_or(0))
        .sum();
    // System-wide: the child's pages and everyone else's.
    assert!(
        pages >= PAGES / 2,
        "{pages} pages given while the child touched {PAGES}: {report}"
    );
    // Free blocks per order are /proc/buddyinfo's, summed over zones.
    let zones = report["buddyinfo"].as_array().expect("buddyinfo");
    let info = std::fs::read_to_string("/proc/buddyinfo").expect("buddyinfo");
    assert_eq!(zones.len(), info.lines().count(), "{report}");
}
