//! One record for every kill, as users read it from the daemon: a SIGKILL
//! from a process named `reaper-test` is in `/api/v1/events` with the
//! sender's comm and pid, the target's pid and comm, and counted in
//! `memmon_kills_total{cause="sigkill"}`; a memcg OOM kill's record names
//! the constraint (the memcg), its limit, and the runner-up by oom_score
//! (another process in the memcg), compared with the kernel's own
//! memory.oom_control count. How long each took to show is printed (a
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

/// Two sleeping children, each waited for until it has exec'd sleep,
/// SIGKILL to one, its pid printed.
const SCRIPT: &str = r#"
sleep 1000 & v=$!
until read c < /proc/$v/comm && [ "$c" = sleep ]; do :; done
kill -9 $v
echo "$v"
wait
"#;

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

    // SIGKILL from userspace.
    let dir = tempfile::tempdir().expect("tmp");
    let reaper = dir.path().join("reaper-test");
    std::fs::copy("/bin/bash", &reaper).expect("copy bash");
    let mut child = Command::new(&reaper)
        .args(["-c", SCRIPT])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reaper-test");
    let reaper_pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read pid");
    let victim: u32 = line.trim().parse().expect("pid");
    assert!(child.wait().expect("wait").success());
    let (k, after) = wait_for("the SIGKILL record", || {
        events(&d)["sigkills"]
            .as_array()?
            .iter()
            .find(|k| k["target_pid"].as_u64() == Some(u64::from(victim)))
            .cloned()
    });
    eprintln!("sigkill record after {after:?}: {k}");
    assert_eq!(k["type"], "sigkill");
    assert_eq!(k["cause"], "sigkill");
    assert_eq!(k["sender_comm"], "reaper-test");
    assert_eq!(k["sender_pid"].as_u64(), Some(u64::from(reaper_pid)));
    assert_eq!(k["target_comm"], "sleep");
    let (_, metrics) = d.get("/metrics");
    let n = metric_value(&metrics, "memmon_kills_total", &["cause=\"sigkill\""])
        .expect("memmon_kills_total{cause=sigkill}");
    assert!(n >= 1.0, "{n}");

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
    let kills0 = cg.oom_kills();
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
    assert_eq!(k["constraint"], "memcg", "{k}");
    assert_eq!(k["constraint_cgroup"].as_str(), Some(path.as_str()), "{k}");
    assert_eq!(k["limit_bytes"].as_u64(), Some(64 * MIB), "{k}");
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
