//! `memmon top` for real: in a tmux pane of 160x45 with a known workload
//! alive, keys sort by PSS, filter by the workload's name and open its
//! detail; its RSS is within 5% of /proc/PID/status VmRSS; `q` restores the
//! terminal. Batch JSON frames parse and hold the workload, locally and
//! with `--connect` to a running daemon.

mod common;
#[path = "common/tmux.rs"]
mod tmux;

use std::{process::Command, time::Duration};

use common::*;
use tmux::{Tmux, rss_cell};

/// VmRSS of `pid`, bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
fn interactive_view_sorts_filters_details_and_restores_the_terminal() {
    if !require_bpf("interactive_view_sorts_filters_details_and_restores_the_terminal") {
        return;
    }
    let mut w = Workload::start(&["touch", "16384"]);
    w.go();
    let pid = w.pid;
    let t = Tmux::new(
        "view",
        &format!("{MEMMON} top --interval 0.5; echo EXITED:$?"),
    );
    t.wait_for("the process table", |s| {
        s.contains("MINFLT/s") && s.contains("processes")
    });
    t.keys(&["p"]);
    t.keys(&[
        "/", "m", "e", "m", "m", "o", "n", "-", "w", "o", "r", "k", "Enter",
    ]);
    let screen = t.wait_for("the workload's row alone", |s| {
        rss_cell(s, pid).is_some()
            && s.contains("[filter: memmon-work]")
            && !s
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some("bash"))
    });
    let rss = rss_cell(&screen, pid).expect("rss cell");
    assert_within(
        "RSS on screen (MiB)",
        (rss * 1024.0) as u64,
        vm_rss(pid) / 1024,
        0.05,
    );
    assert!(screen.contains("[filter: memmon-work]"), "{screen}");
    t.keys(&["Enter"]);
    let detail = t.wait_for("the detail pane", |s| s.contains(&format!("pid {pid} ")));
    assert!(
        detail.contains("rss_bytes ") && detail.contains("minor_faults "),
        "{detail}"
    );
    assert_eq!(
        t.alternate_on(),
        "1",
        "the view runs on the alternate screen"
    );
    t.keys(&["q"]);
    // The echoed command holds "EXITED:$?"; its output line starts with it.
    let after = t.wait_for("memmon to exit", |s| {
        s.lines().any(|l| l.starts_with("EXITED:"))
    });
    assert!(after.lines().any(|l| l == "EXITED:0"), "{after}");
    assert_eq!(t.alternate_on(), "0", "terminal not restored");
    w.finish();
}

#[test]
fn profile_detail_pane_shows_the_selected_process_fault_stacks() {
    if !require_bpf("profile_detail_pane_shows_the_selected_process_fault_stacks") {
        return;
    }
    // Waits for "go": it faults only once top samples.
    let mut w = Workload::start(&["stacks", "200", "20"]);
    let pid = w.pid;
    let t = Tmux::new(
        "profile",
        &format!("{MEMMON} top --interval 0.5 --profile --profile-period 64; echo EXITED:$?"),
    );
    t.wait_for("the process table", |s| {
        s.contains("MINFLT/s") && s.contains("processes")
    });
    t.keys(&[
        "/", "m", "e", "m", "m", "o", "n", "-", "w", "o", "r", "k", "Enter",
    ]);
    t.wait_for("the workload's row", |s| rss_cell(s, pid).is_some());
    w.go();
    t.keys(&["Enter"]);
    let screen = t.wait_for("the workload's fault stacks", |s| {
        s.contains(&format!("fault stacks of pid {pid}")) && s.contains("touch_delta")
    });
    // touch_gamma took ~91% of the faults: the heaviest stack, leaf first.
    let first = screen
        .lines()
        .skip_while(|l| !l.contains("fault stacks of pid"))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains("touch_gamma"),
        "first stack line: {first}\n{screen}"
    );
    let share: f64 = first
        .split('%')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no share in {first}"));
    assert!(
        (80.0..=95.0).contains(&share),
        "touch_gamma's heaviest stack has {share}%: {first}\n{screen}"
    );
    t.keys(&["q"]);
    let after = t.wait_for("memmon to exit", |s| {
        s.lines().any(|l| l.starts_with("EXITED:"))
    });
    assert!(after.lines().any(|l| l == "EXITED:0"), "{after}");
    w.finish();
}

#[test]
fn tiny_terminal_says_so() {
    if !require_bpf("tiny_terminal_says_so") {
        return;
    }
    let t = Tmux::new(
        "tiny",
        &format!("{MEMMON} top --interval 0.5; echo EXITED:$?"),
    );
    t.wait_for("the process table", |s| s.contains("MINFLT/s"));
    let _ = Command::new("tmux")
        .args([
            "-L",
            &t.socket,
            "resize-window",
            "-t",
            "t",
            "-x",
            "60",
            "-y",
            "10",
        ])
        .status();
    t.wait_for("the too-small message", |s| {
        s.contains("terminal too small")
    });
    t.keys(&["q"]);
    t.wait_for("memmon to exit", |s| s.lines().any(|l| l == "EXITED:0"));
}

fn batch_json(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(MEMMON)
        .args(args)
        .output()
        .expect("run memmon top");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {l}")))
        .collect()
}

fn has_pid(frame: &serde_json::Value, pid: u32) -> bool {
    frame["processes"]
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p["pid"].as_u64() == Some(u64::from(pid))))
}

#[test]
fn batch_frames_locally_and_from_a_daemon() {
    if !require_bpf("batch_frames_locally_and_from_a_daemon") {
        return;
    }
    let mut w = Workload::start(&["touch", "16384"]);
    w.go();
    let frames = batch_json(&[
        "top",
        "--batch",
        "--iterations",
        "2",
        "--json",
        "--interval",
        "0.5",
    ]);
    assert_eq!(frames.len(), 2);
    assert!(
        frames.iter().all(|f| has_pid(f, w.pid)),
        "workload missing from a frame"
    );

    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    std::thread::sleep(Duration::from_millis(1200));
    let url = format!("http://{}", d.addr);
    let frames = batch_json(&[
        "top",
        "--connect",
        &url,
        "--batch",
        "--iterations",
        "2",
        "--json",
        "--interval",
        "0.5",
    ]);
    assert_eq!(frames.len(), 2);
    let row = frames[1]["processes"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|p| p["pid"].as_u64() == Some(u64::from(w.pid)))
        })
        .expect("workload in the daemon's frame");
    assert_within(
        "rss via daemon",
        row["rss_bytes"].as_u64().expect("rss_bytes"),
        vm_rss(w.pid),
        0.05,
    );
    // The same table in text mode.
    let out = Command::new(MEMMON)
        .args([
            "top",
            "--connect",
            &url,
            "--batch",
            "--iterations",
            "1",
            "--filter",
            "memmon-work",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MINFLT/s") && text.contains(&w.pid.to_string()),
        "{text}"
    );
    d.stop();
    w.finish();
}
