//! One record for every kill, as users read it from the daemon and from
//! `memmon events --json`: a SIGKILL from a process named `reaper-test`
//! (in a memory cgroup of its own, with its target) is in
//! `/api/v1/events` with the sender's comm, pid and cgroup, the target's
//! pid, comm and cgroup, and counted in `memmon_kills_total{cause="sigkill"}`;
//! `memmon events --json` streams the same line; a target killed right
//! after it was forked (never seen by the daemon, dead and reaped before
//! the record is made) still has its cgroup; a memcg OOM kill's record
//! names the constraint (the memcg, as the kernel's own oom_control says),
//! its limit, its usage at the kill (within 3% of the limit), and the
//! runner-up by oom_score (another process in the memcg), compared with
//! the kernel's own memory.oom_control and limit-hit counts. How long each took to show is printed (a
//! benchmark figure, not a bound).

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use kernel_setup::Memcg;

const MIB: u64 = 1 << 20;

/// A sleeping child, waited for until it has exec'd sleep, its pid
/// printed; on a line from the test, SIGKILL to it (by `$KILL`: the
/// shell's builtin, or a short-lived kill binary) and `killed SENDER`
/// printed; the child stays a zombie (its /proc shows the root cgroup)
/// until the test sends a second line.
const SCRIPT: &str = r#"
sleep 1000 & v=$!
until read c < /proc/$v/comm && [ "$c" = sleep ]; do :; done
echo "$v"
read go
if [ "$KILL" = kill ]; then kill -9 $v; echo "killed $$"; else $KILL -9 $v & k=$!; wait $k; echo "killed $k"; fi
read done
wait
"#;

/// `reaper-test` (a copy of bash running [`SCRIPT`], or bash running a
/// copy of /bin/kill named `reaper-test`) inside a memory cgroup (it moves
/// itself there before it forks).
struct Reaper {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    /// The shell's pid.
    pid: u32,
    /// The sleeping child's pid.
    victim: u32,
    _dir: tempfile::TempDir,
}

impl Reaper {
    /// Starts it in `cg`; `kill_binary`: the SIGKILL comes from a copy of
    /// /bin/kill named `reaper-test` (gone at once), else from the shell
    /// named `reaper-test` (its builtin).
    fn start(cg: &Memcg, kill_binary: bool) -> Reaper {
        let dir = tempfile::tempdir().expect("tmp");
        let named = dir.path().join("reaper-test");
        let (shell, kill) = if kill_binary {
            std::fs::copy("/bin/kill", &named).expect("copy kill");
            (
                std::path::PathBuf::from("/bin/bash"),
                named.display().to_string(),
            )
        } else {
            std::fs::copy("/bin/bash", &named).expect("copy bash");
            (named.clone(), "kill".to_string())
        };
        let procs = cg.path.join("cgroup.procs");
        let script = format!("echo $$ > {}\n{SCRIPT}", procs.display());
        let mut child = Command::new(shell)
            .args(["-c", &script])
            .env("KILL", kill)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn reaper-test");
        let pid = child.id();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read pid");
        let victim = line.trim().parse().expect("pid");
        Reaper {
            child,
            out,
            pid,
            victim,
            _dir: dir,
        }
    }

    fn say(&mut self) {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .expect("write to reaper-test");
    }

    /// Sends the SIGKILL; returns the sender's pid once it is sent (the
    /// victim is a zombie from then on, until [`Reaper::finish`]).
    fn kill(&mut self) -> u32 {
        self.say();
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read killed");
        line.trim()
            .strip_prefix("killed ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("reaper-test said {line:?}"))
    }

    /// Lets the shell reap the victim and exit.
    fn finish(mut self) {
        self.say();
        assert!(self.child.wait().expect("wait").success());
    }
}

fn events(d: &Daemon) -> serde_json::Value {
    let (status, body) = d.get("/api/v1/events");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("events JSON")
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let started = Instant::now();
    let limit = Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return (v, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not seen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkills_and_oom_kills_are_one_record_each_in_the_daemon() {
    if !require_bpf("sigkills_and_oom_kills_are_one_record_each_in_the_daemon") {
        return;
    }
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);

    // SIGKILL from userspace, sender and target in one memcg. The daemon
    // has seen the target before the kill (what it knew is in the record);
    // the target is a zombie while the record is made.
    let reaper_cg = Memcg::create("reaper", 256 * MIB);
    let reaper_path = reaper_cg.path_in_hierarchy();
    let mut reaper = Reaper::start(&reaper_cg, false);
    let (reaper_pid, victim) = (reaper.pid, reaper.victim);
    wait_for("the target in the snapshot", || {
        let (_, body) = d.get("/api/v1/snapshot");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["processes"]
            .as_array()?
            .iter()
            .find(|p| {
                p["pid"].as_u64() == Some(u64::from(victim))
                    && p["cgroup"] == reaper_path.as_str()
                    && p["rss_bytes"].is_u64()
            })
            .cloned()
    });
    assert_eq!(reaper.kill(), reaper_pid, "the shell's builtin kill");
    let (k, after) = wait_for("the SIGKILL record", || {
        events(&d)["sigkills"]
            .as_array()?
            .iter()
            .find(|k| k["target_pid"].as_u64() == Some(u64::from(victim)))
            .cloned()
    });
    reaper.finish();
    eprintln!("sigkill record after {after:?}: {k}");
    assert_eq!(k["type"], "sigkill");
    assert_eq!(k["cause"], "sigkill");
    assert_eq!(k["sender_comm"], "reaper-test");
    assert_eq!(k["sender_pid"].as_u64(), Some(u64::from(reaper_pid)));
    assert_eq!(k["target_comm"], "sleep");
    assert_eq!(
        k["sender_cgroup"].as_str(),
        Some(reaper_path.as_str()),
        "{k}"
    );
    assert_eq!(
        k["target_cgroup"].as_str(),
        Some(reaper_path.as_str()),
        "the target's cgroup, not the root cgroup its zombie shows: {k}"
    );
    assert!(
        k["target_rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "the target's last sample: {k}"
    );
    let (_, metrics) = d.get("/metrics");
    let n = metric_value(&metrics, "memmon_kills_total", &["cause=\"sigkill\""])
        .expect("memmon_kills_total{cause=sigkill}");
    assert!(n >= 1.0, "{n}");

    // A target the daemon never saw: killed right after it was forked,
    // reaped at once. Its cgroup is the one the kernel read from the
    // target task as the signal was generated.
    let (quick, sender) = kill_at_once(&reaper_cg);
    let (k, after) = wait_for("the SIGKILL record of a target killed at once", || {
        events(&d)["sigkills"]
            .as_array()?
            .iter()
            .find(|k| k["target_pid"].as_u64() == Some(u64::from(quick)))
            .cloned()
    });
    eprintln!("sigkill record (target killed at once) after {after:?}: {k}");
    assert_eq!(k["sender_pid"].as_u64(), Some(u64::from(sender)), "{k}");
    assert_eq!(
        k["target_cgroup"].as_str(),
        Some(reaper_path.as_str()),
        "a dead target's cgroup, from the kernel: {k}"
    );

    // Where the kernel's oom:mark_victim lacks the victim's fields (5.10)
    // there are no OOM records: the test is reported skipped with that
    // reason (counted as skipped, its SIGKILL half above having run).
    let (_, body) = d.get("/api/v1/snapshot");
    let snapshot: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
    if probe_unavailable(
        "sigkills_and_oom_kills_are_one_record_each_in_the_daemon",
        &snapshot,
        "oom_kill",
    )
    .is_some()
    {
        d.stop();
        return;
    }

    // A memcg OOM kill: a 2 MiB bystander and a 256 MiB victim in a 64 MiB
    // memcg without swap. The bystander is the runner-up.
    let cg = Memcg::create("record", 64 * MIB);
    cg.write("memory.swappiness", "0");
    if cg.has("memory.memsw.limit_in_bytes") {
        cg.write("memory.memsw.limit_in_bytes", &(64 * MIB).to_string());
    }
    let mut bystander = Workload::start(&["touch", "512"]);
    cg.add(bystander.pid);
    bystander.go();
    // Let the daemon read the bystander's oom_score and the memcg.
    let path = cg.path_in_hierarchy();
    wait_for("the memcg's candidate in the snapshot", || {
        let (_, body) = d.get("/api/v1/snapshot");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["cgroups"]
            .as_array()?
            .iter()
            .find(|c| c["cgroup"] == path.as_str() && c["oom_candidate"].is_object())
            .cloned()
    });
    let (kills0, hits0) = (cg.oom_kills(), cg.limit_hits());
    let mut w = Workload::start(&["oom", "256"]);
    cg.add(w.pid);
    w.send_go();
    let status = w.child.wait().expect("wait victim");
    assert!(!status.success(), "the victim survived: {status}");
    assert_eq!(
        cg.oom_kills() - kills0,
        1,
        "memory.oom_control counted one kill"
    );
    let (k, after) = wait_for("the OOM kill record", || {
        events(&d)["oom_kills"]
            .as_array()?
            .iter()
            .find(|k| k["pid"].as_u64() == Some(u64::from(w.pid)))
            .cloned()
    });
    eprintln!("oom record after {after:?}: {k}");
    // The kernel's own oom_control decided, with the memcg's page counter
    // at the kill; its files agree that the limit was hit here.
    assert!(
        cg.limit_was_hit(hits0),
        "the kernel's files show no limit hit"
    );
    assert_eq!(k["constraint"], "memcg", "{k}");
    // The kernel's own oom_control where kprobes exist, else its page
    // counters at the kill: both read by the probe, never a guess.
    assert!(
        k["constraint_source"] == "oom_control" || k["constraint_source"] == "page_counter",
        "{k}"
    );
    assert_eq!(k["constraint_cgroup"].as_str(), Some(path.as_str()), "{k}");
    assert_eq!(k["limit_bytes"].as_u64(), Some(64 * MIB), "{k}");
    let usage = k["usage_bytes"].as_u64().expect("usage at the kill");
    assert!(usage <= 64 * MIB, "{k}");
    assert_within("usage at the kill vs the limit", usage, 64 * MIB, 0.03);
    assert_eq!(
        k["runner_ups"][0]["pid"].as_u64(),
        Some(u64::from(bystander.pid)),
        "the bystander is the runner-up: {k}"
    );
    // The OOM killer's own SIGKILL is not a second record.
    let dup = events(&d)["sigkills"]
        .as_array()
        .map(|a| {
            a.iter()
                .any(|s| s["target_pid"].as_u64() == Some(u64::from(w.pid)))
        })
        .unwrap_or(false);
    assert!(!dup, "the OOM kill was also recorded as a SIGKILL");
    bystander.finish();
    d.stop();
}

/// `memmon events --json` streams a SIGKILL as one JSON line (read after
/// SIGINT, which drains what arrived before it: no timing). The sender is
/// a copy of /bin/kill named `reaper-test`, gone before the line is
/// written: its cgroup comes from the kernel's memcg id. The target is a
/// zombie by then and `events` keeps no model of the processes: its cgroup
/// too comes from the kernel (read from the target task as the signal was
/// generated), never the root cgroup a zombie's /proc shows. A second
/// target, killed right after it was forked and reaped at once, likewise.
#[test]
fn events_json_streams_a_sigkill_with_sender_and_target() {
    if !require_bpf("events_json_streams_a_sigkill_with_sender_and_target") {
        return;
    }
    let cg = Memcg::create("reaper-ev", 256 * MIB);
    let path = cg.path_in_hierarchy();
    let m = Memmon::start(&["events", "--json"]);
    let mut reaper = Reaper::start(&cg, true);
    let victim = reaper.victim;
    let sender = reaper.kill();
    let (quick, quick_sender) = kill_at_once(&cg);
    m.signal(libc::SIGINT);
    let (stdout, _) = m.output();
    reaper.finish();
    let k: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "sigkill" && v["target_pid"].as_u64() == Some(u64::from(victim)))
        .unwrap_or_else(|| panic!("no sigkill line for pid {victim}:\n{stdout}"));
    eprintln!("{k}");
    assert_eq!(k["cause"], "sigkill", "{k}");
    assert_eq!(k["sender_comm"], "reaper-test", "{k}");
    assert_eq!(k["sender_pid"].as_u64(), Some(u64::from(sender)), "{k}");
    assert_eq!(k["sender_cgroup"].as_str(), Some(path.as_str()), "{k}");
    assert_eq!(k["target_comm"], "sleep", "{k}");
    assert_eq!(
        k["target_cgroup"].as_str(),
        Some(path.as_str()),
        "the target's cgroup, from the kernel: {k}"
    );
    let q: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "sigkill" && v["target_pid"].as_u64() == Some(u64::from(quick)))
        .unwrap_or_else(|| panic!("no sigkill line for pid {quick}:\n{stdout}"));
    eprintln!("{q}");
    assert_eq!(
        q["sender_pid"].as_u64(),
        Some(u64::from(quick_sender)),
        "{q}"
    );
    assert_eq!(q["target_cgroup"].as_str(), Some(path.as_str()), "{q}");
}

/// A shell in `cg` forks a child and SIGKILLs it at once (before it can
/// exec), reaps it and exits: (the child's pid, the shell's pid), both
/// gone when this returns.
fn kill_at_once(cg: &Memcg) -> (u32, u32) {
    let procs = cg.path.join("cgroup.procs");
    let script = format!(
        "echo $$ > {}\nsleep 1000 & v=$!\nkill -9 $v\nwait $v\necho \"$v $$\"",
        procs.display()
    );
    let out = Command::new("/bin/bash")
        .args(["-c", &script])
        .output()
        .expect("run the quick killer");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pids = text
        .split_whitespace()
        .map(|p| p.parse::<u32>().expect("pid"));
    match (pids.next(), pids.next()) {
        (Some(v), Some(s)) => (v, s),
        _ => panic!("the quick killer said {text:?}"),
    }
}

/// A burst of userspace SIGKILLs (40 `sleep`s killed at once, as a
/// container runtime's stop would): the daemon logs them at info, at most
/// `SIGKILL_LINES` one by one (the rest go to a once-a-minute summary),
/// none as a warning; and every one of them is in /api/v1/events, in the
/// store's frames and in `memmon events --json`.
#[test]
fn a_burst_of_sigkills_is_logged_thinly_at_info_and_kept_whole_everywhere() {
    if !require_bpf("a_burst_of_sigkills_is_logged_thinly_at_info_and_kept_whole_everywhere") {
        return;
    }
    const KILLS: usize = 40;
    let store = tempfile::tempdir().expect("tmp");
    let mut d = Daemon::start(&[
        "--no-pin",
        "--interval",
        "0.5",
        "--log",
        "info",
        "--record",
        store.path().to_str().expect("utf-8 path"),
    ]);
    let m = Memmon::start(&["events", "--json"]);
    let mut children: Vec<std::process::Child> = (0..KILLS)
        .map(|_| {
            Command::new("sleep")
                .arg("1000")
                .spawn()
                .expect("spawn sleep")
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
    for pid in &pids {
        // Killed as `sleep`, not as the test's fork of itself.
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .as_deref()
            .map(str::trim)
            != Some("sleep")
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for pid in &pids {
        // SAFETY: our own children.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    for c in &mut children {
        let _ = c.wait();
    }
    // How many of ours a list of kill records holds.
    let listed = |records: &serde_json::Value| -> usize {
        let Some(a) = records.as_array() else {
            return 0;
        };
        pids.iter()
            .filter(|p| {
                a.iter()
                    .any(|k| k["target_pid"].as_u64() == Some(u64::from(**p)))
            })
            .count()
    };
    wait_for("every SIGKILL in /api/v1/events", || {
        (listed(&events(&d)["sigkills"]) == KILLS).then_some(())
    });
    // The store: the frames written since hold every record.
    std::thread::sleep(Duration::from_millis(1500));
    let lines: Vec<String> = d.memmon.stderr_so_far().to_vec();
    d.stop();
    let s = memmon::store::reader::Store::open(store.path(), None).expect("store opens");
    let last = s.frames.len().checked_sub(1).expect("frames recorded");
    let frame = s.frame(last).expect("last frame");
    assert_eq!(
        listed(&frame["recent_sigkills"]),
        KILLS,
        "the store's last frame holds every SIGKILL"
    );
    let (out, _) = {
        m.signal(libc::SIGINT);
        m.output()
    };
    let streamed = pids
        .iter()
        .filter(|p| {
            out.lines().any(|l| {
                l.contains(&format!("\"target_pid\":{p},"))
                    || l.contains(&format!("\"target_pid\":{p}}}"))
            })
        })
        .count();
    assert_eq!(
        streamed, KILLS,
        "memmon events --json streamed every SIGKILL:\n{out}"
    );

    // The log: ours at info, a few at most, never a warning.
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.contains("SIGKILL") && pids.iter().any(|p| l.contains(&format!("target_pid={p} ")))
        })
        .collect();
    assert!(
        ours.len() <= memmon::sinks::kill_log::SIGKILL_LINES as usize,
        "{} SIGKILL lines for {KILLS} kills:\n{}",
        ours.len(),
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .all(|l| !(l.contains("SIGKILL") && l.contains("WARN"))),
        "a SIGKILL logged as a warning:\n{}",
        lines.join("\n")
    );
}
