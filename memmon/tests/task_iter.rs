//! The `iter/task` start-up probe: the daemon runs a BPF task iterator once
//! and logs how many tasks it walked. With 200 extra threads parked in this
//! test, the count must match the kernel's own list of tasks
//! (/proc/*/task/*) read just before and just after.

mod common;

use std::time::Duration;

use common::{Memmon, require_bpf};

/// Threads in /proc (every task of every process).
fn proc_tasks() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read_dir(e.path().join("task")).ok())
        .map(|t| t.count())
        .sum()
}

#[test]
fn the_task_iterator_walks_every_task() {
    if !require_bpf("the_task_iterator_walks_every_task") {
        return;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let parked: Vec<_> = (0..200)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(200));
                }
            })
        })
        .collect();
    let before = proc_tasks();
    let mut m = Memmon::start(&[
        "--log",
        "info",
        "daemon",
        "--listen",
        "127.0.0.1:0",
        "--no-pin",
    ]);
    m.wait_for_stderr("iter/task:", Duration::from_secs(10));
    let after = proc_tasks();
    let line = m.stderr_line("iter/task:").unwrap_or_default();
    m.signal(libc::SIGTERM);
    let _ = m.output();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in parked {
        let _ = t.join();
    }
    let walked: usize = line
        .split("available (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the task iterator did not run: {line}"));
    let (lo, hi) = (before.min(after), before.max(after));
    assert!(
        lo >= 200 && walked * 10 >= lo * 9 && walked * 10 <= hi * 11,
        "iter/task walked {walked} tasks; /proc listed {before} before and {after} after"
    );
}
