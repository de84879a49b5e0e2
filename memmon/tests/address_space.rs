//! Address-space probes (mmap/munmap/brk syscalls) against what a child
//! knows it did: exact call counts and bytes.

mod common;

use std::io::Write as _;

use common::*;

#[test]
fn mmap_munmap_pairs_are_counted_exactly() {
    if !require_bpf("mmap_munmap_pairs_are_counted_exactly") {
        return;
    }
    const PAIRS: u64 = 10_000;
    let mut w = Workload::start(&["mmap-storm", &PAIRS.to_string()]);
    let pid = w.pid;
    let rows = snapshot_json(&["--duration", "3", "--pid", &pid.to_string()], || {
        w.go();
    });
    w.finish();
    let row = row_for(&rows, pid);
    assert_eq!(field(row, "mmap_calls"), PAIRS, "{row}");
    assert_eq!(field(row, "munmap_calls"), PAIRS, "{row}");
    assert_eq!(field(row, "mmap_anon_bytes"), PAIRS * 65_536, "{row}");
    assert_eq!(field(row, "mmap_bytes"), PAIRS * 65_536, "{row}");
    assert_eq!(field(row, "munmap_bytes"), PAIRS * 65_536, "{row}");
    assert_eq!(field(row, "mmap_file_bytes"), 0, "{row}");
    assert_eq!(field(row, "mmap_failed"), 0, "{row}");
}

#[test]
fn file_mappings_count_as_file_backed() {
    if !require_bpf("file_mappings_count_as_file_backed") {
        return;
    }
    let mut f = tempfile::NamedTempFile::new_in("/var/tmp").expect("tmp");
    let len = 3 * 1024 * 1024 + 4096;
    f.write_all(&vec![1u8; len]).expect("write");
    f.flush().expect("flush");
    let mut w = Workload::start(&["read-file", f.path().to_str().expect("utf-8")]);
    let pid = w.pid;
    let rows = snapshot_json(&["--duration", "3", "--pid", &pid.to_string()], || {
        w.go();
    });
    w.finish();
    let row = row_for(&rows, pid);
    assert_eq!(field(row, "mmap_file_bytes"), len as u64, "{row}");
    assert_eq!(field(row, "mmap_calls"), 1, "{row}");
}

#[test]
fn brk_growth_is_counted() {
    if !require_bpf("brk_growth_is_counted") {
        return;
    }
    const COUNT: u64 = 1_000;
    let mut w = Workload::start(&["brk", &COUNT.to_string()]);
    let pid = w.pid;
    let mut grown = 0;
    let rows = snapshot_json(&["--duration", "3", "--pid", &pid.to_string()], || {
        grown = w.go()["brk_grow_bytes"].as_u64().expect("brk_grow_bytes");
    });
    w.finish();
    let row = row_for(&rows, pid);
    assert_eq!(grown, COUNT * 4096);
    assert!(field(row, "brk_calls") >= COUNT, "{row}");
    // The workload's own allocations may move the break too: at least what
    // it grew by hand, within 1%.
    let got = field(row, "brk_grow_bytes");
    assert!(got >= grown, "{row}");
    assert_within("brk_grow_bytes", got, grown, 0.01);
}
