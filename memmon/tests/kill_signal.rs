//! The `kill_signal` probe (`signal:signal_generate`, filtered in the
//! kernel to SIGKILL) read directly from the probe set: a process named
//! `reaper-test` (a copy of bash) sends SIGTERM to one child and SIGKILL to
//! another. Exactly one record for the SIGKILLed child, naming the sender
//! (`reaper-test`, its pid, its memory cgroup id = the inode of its memory
//! cgroup's directory) and the target (pid, comm `sleep`, and its memory
//! cgroup id, read from the target task by the kernel: the target is dead
//! and reaped before the record is read); none for the SIGTERMed one. The delay from the kill to the record is printed (not
//! asserted: the TCG guest is slow).

mod common;

use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::MetadataExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::require_bpf;
use memmon::probes::{LoadOptions, ProbeSet, kill::SignalResult};

/// The script `reaper-test` runs: two sleeping children, each waited for
/// until it has exec'd sleep (so its comm is `sleep`), SIGTERM to one,
/// SIGKILL to the other (bash's builtin kill: the sender is the shell).
const SCRIPT: &str = r#"
sleep 1000 & t=$!
sleep 1000 & v=$!
until read c < /proc/$t/comm && [ "$c" = sleep ]; do :; done
until read c < /proc/$v/comm && [ "$c" = sleep ]; do :; done
kill -TERM $t
kill -9 $v
echo "$t $v"
wait
"#;

/// The memory cgroup id of `pid` as the kernel gives it: the inode of its
/// directory (v1 memory hierarchy, else the unified one).
fn memcg_inode(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    let path = memmon::procfs::cgroup::parse_memory_cgroup(&text).expect("memory cgroup line");
    let hierarchy = memmon::procfs::cgroup::memory_hierarchy();
    let dir = hierarchy.join(path.trim_start_matches('/'));
    std::fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()))
        .ino()
}

#[test]
fn sigkill_from_reaper_test_is_recorded_with_sender_and_target() {
    if !require_bpf("kill_signal") {
        return;
    }
    let mut probes = ProbeSet::load(&LoadOptions {
        fault_detail: false,
        alloc_detail: false,
        ..LoadOptions::default()
    })
    .expect("load probes");
    assert!(
        probes.is_attached("kill_signal"),
        "kill_signal probe not attached: {:?}",
        probes.statuses().iter().find(|s| s.name == "kill_signal")
    );
    let dir = tempfile::tempdir().expect("tmp");
    let reaper = dir.path().join("reaper-test");
    std::fs::copy("/bin/bash", &reaper).expect("copy bash");

    let mut child = Command::new(&reaper)
        .args(["-c", SCRIPT])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reaper-test");
    let reaper_pid = child.id();
    let reaper_memcg = memcg_inode(reaper_pid);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read pids");
    let killed_at = Instant::now();
    let pids: Vec<u32> = line
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    let [termed, victim] = pids[..] else {
        panic!("reaper-test printed {line:?}, expected two pids");
    };
    let status = child.wait().expect("wait reaper-test");
    assert!(status.success(), "reaper-test failed: {status}");

    // Drain until the record arrives (bounded, not timed).
    let mut exits = Vec::new();
    let mut kills = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen_after = None;
    while Instant::now() < deadline {
        probes.drain_exits(&mut exits);
        kills.extend(probes.take_kill_signals());
        if seen_after.is_none() && kills.iter().any(|k| k.target_pid == victim) {
            seen_after = Some(killed_at.elapsed());
            // A little longer: a second record for the same kill would show.
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        if seen_after.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ours: Vec<_> = kills
        .iter()
        .filter(|k| k.target_pid == victim || k.target_pid == termed)
        .collect();
    eprintln!("records for our children: {ours:#?}; first seen {seen_after:?} after the kill");
    assert_eq!(ours.len(), 1, "one SIGKILL record, none for SIGTERM");
    let k = ours[0];
    assert_eq!(k.target_pid, victim);
    assert_eq!(k.target_comm, "sleep");
    assert_eq!(k.sender_comm, "reaper-test");
    assert_eq!(k.sender_pid, reaper_pid);
    assert_eq!(k.sender_tid, reaper_pid, "bash is single-threaded");
    assert!(k.group, "kill(2) signals the whole process");
    assert_eq!(k.code, 0, "SI_USER: sent by kill(2)");
    assert_eq!(k.result, SignalResult::Delivered);
    assert_eq!(
        k.sender_memcg_id,
        Some(reaper_memcg),
        "the sender's memory cgroup id is its directory's inode"
    );
    // The target (a child of the sender, in its memory cgroup) is dead and
    // reaped by now: its memory cgroup id was read from the target task
    // when the signal was generated.
    assert!(
        !std::path::Path::new(&format!("/proc/{victim}")).exists(),
        "the target is gone"
    );
    assert_eq!(
        k.target_memcg_id,
        Some(reaper_memcg),
        "the target's memory cgroup id, read by the kernel program"
    );
    let stats = probes.read_stats().expect("stats");
    assert!(stats.kill_events >= 1, "kill_events {}", stats.kill_events);
    assert_eq!(stats.kill_events_lost, 0);
}
