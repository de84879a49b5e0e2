//! Post-mortems (issue 27 §2) on the real kernel, as users read them.
//!
//! A memcg OOM where the allocator is not the victim: in a 256 MiB memory
//! cgroup (no swap), an idle holder of 100 MiB (oom_score_adj 1000: the
//! kernel's choice) and an allocator that touches 200 MiB in
//! `touch_gamma`. The daemon records (`--record`) with its profile on. From
//! the recording, `memmon incidents --store` lists the post-mortem once and
//! `memmon explain --oom ID|latest --store` prints it; its values are the
//! kernel's: the victim's pid, comm, memcg and RSS at death (within 5% of
//! its VmRSS), the memcg's limit (exact) and usage at the kill (within 3%
//! of the limit), the trigger the kernel names (oom:mark_victim ran in the
//! allocator), the fastest grower (the allocator, its growth between its
//! share of the usage at the kill and its final VmRSS), memory.events' oom_kill count before → after (the cgroup's
//! own count), and the growth stack that names `touch_gamma`. The daemon
//! serves the same at /api/v1/incidents and counts it in
//! memmon_incidents_total{kind="oom_kill"}.
//!
//! Then the common case: the allocator is the victim (`stacks 300` alone
//! in the cgroup). It is gone before its post-mortem is made; the trigger
//! is the victim itself, and its growth stack still names `touch_gamma`
//! (from the binary, through the mappings the profile kept).
//!
//! A SIGKILL from another process (a shell named `reaper-incident`, in a
//! memory cgroup of its own) gets a post-mortem with its sender: pid,
//! comm and cgroup as the kernel has them.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use kernel_setup::Memcg;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 256 * MIB;

/// Polls `f` every 200 ms for up to 60 s (a bound for a slow machine, not
/// a latency target).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `memmon ARGS`: stdout, after checking it succeeded.
fn memmon(args: &[&str]) -> String {
    let out = Command::new(MEMMON)
        .args(args)
        .output()
        .expect("run memmon");
    assert!(
        out.status.success(),
        "memmon {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `VmRSS` of `pid`, bytes.
fn vm_rss(pid: u32) -> u64 {
    kernel_setup::status_kb(pid, "VmRSS") * 1024
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .expect("read comm")
        .trim()
        .to_string()
}

#[test]
fn a_memcg_oom_kill_gets_a_post_mortem_in_the_recording_with_the_kernels_values() {
    const TEST: &str =
        "a_memcg_oom_kill_gets_a_post_mortem_in_the_recording_with_the_kernels_values";
    if !require_bpf(TEST) {
        return;
    }
    let cg = Memcg::create("incidents", LIMIT);
    cg.write("memory.swappiness", "0");
    if cg.has("memory.memsw.limit_in_bytes") {
        cg.write("memory.memsw.limit_in_bytes", &LIMIT.to_string());
    }
    let memcg = cg.path_in_hierarchy();
    let store = tempfile::tempdir().expect("tmp");
    let store_dir = store.path().display().to_string();
    let d = Daemon::start(&[
        "--no-pin",
        "--interval",
        "0.5",
        "--record",
        &store_dir,
        "--profile",
        "--profile-period",
        "64",
    ]);
    let (_, probes) = d.get("/api/v1/snapshot");
    let snap: Value = serde_json::from_str(&probes).expect("snapshot JSON");
    if probe_unavailable(TEST, &snap, "oom_kill").is_some() {
        d.stop();
        return;
    }
    let kills0 = cg.oom_kills();

    // The victim: 100 MiB, idle, first to go.
    let mut holder = Workload::start(&["touch", "25600"]);
    cg.add(holder.pid);
    std::fs::write(format!("/proc/{}/oom_score_adj", holder.pid), "1000")
        .expect("set oom_score_adj");
    holder.go();
    let victim = holder.pid;
    let victim_comm = comm_of(victim);
    let victim_rss = vm_rss(victim);
    // The daemon has it, in the memcg (its history starts).
    wait_for("the daemon to publish the holder", || {
        let (_, body) = d.get("/api/v1/snapshot");
        let v: Value = serde_json::from_str(&body).ok()?;
        v["processes"]
            .as_array()?
            .iter()
            .any(|p| {
                p["pid"].as_u64() == Some(u64::from(victim))
                    && p["cgroup"].as_str() == Some(memcg.as_str())
                    && p["rss_bytes"].as_u64().is_some_and(|r| r >= 90 * MIB)
            })
            .then_some(())
    });

    // The allocator: 200 MiB in touch_gamma; the OOM fires while it
    // charges, and the holder dies.
    let mut allocator = Workload::start(&["stacks", "200", "1"]);
    cg.add(allocator.pid);
    let report = allocator.go();
    assert_eq!(report["gamma_pages"].as_u64(), Some(200 * 256), "{report}");
    let alloc = allocator.pid;
    let alloc_comm = comm_of(alloc);
    let alloc_rss = vm_rss(alloc);
    let status = holder.child.wait().expect("wait for the holder");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the holder was not OOM-killed: {status}"
    );
    let kills1 = cg.oom_kills();
    assert_eq!(kills1 - kills0, 1, "the kernel counted one kill");

    // The daemon serves it.
    let summary: Value = wait_for("the post-mortem at /api/v1/incidents", || {
        let (status, body) = d.get("/api/v1/incidents");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("incidents JSON");
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["kind"] == "oom_kill" && i["pid"].as_u64() == Some(u64::from(victim)))
            .cloned()
    });
    let id = summary["id"].as_str().expect("id").to_string();
    let (status, served) = d.get(&format!("/api/v1/incidents/{id}"));
    assert_eq!(status, 200, "{served}");
    let metrics = d.get("/metrics").1;
    let counted = metric_value(&metrics, "memmon_incidents_total", &["kind=\"oom_kill\""])
        .expect("memmon_incidents_total{kind=\"oom_kill\"}");
    assert!(counted >= 1.0, "{counted}");
    let (status, absent) = d.get("/api/v1/incidents/1-1");
    assert_eq!(status, 404, "{absent}");
    assert!(absent.contains("memmon incidents --store"), "{absent}");
    let listed = memmon(&["incidents", "--connect", &format!("http://{}", d.addr)]);
    assert!(listed.contains(&id), "{listed}");

    // The common case next: the allocator is the victim. It is gone before
    // its post-mortem is made; its frames are named from its binary (the
    // mappings the profile kept when its first sample was drained, every
    // 200 ms). It grows 1 MiB every 10 ms, so it lives ~2.5 s: a process
    // killed before its first drain keeps unnamed frames (a quiet CI
    // machine ran `stacks 300 1` into the limit within one drain).
    allocator.finish();
    let mut leaker = Workload::start(&["grow", "300", "10"]);
    cg.add(leaker.pid);
    let leaker_pid = leaker.pid;
    leaker.send_go();
    let status = leaker.child.wait().expect("wait for the leaker");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the leaker was not OOM-killed: {status}"
    );
    let own_id: String = wait_for("the leaker's post-mortem", || {
        let (_, body) = d.get("/api/v1/incidents");
        let v: Value = serde_json::from_str(&body).ok()?;
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["kind"] == "oom_kill" && i["pid"].as_u64() == Some(u64::from(leaker_pid)))
            .and_then(|i| Some(i["id"].as_str()?.to_string()))
    });
    let own: Value =
        serde_json::from_str(&d.get(&format!("/api/v1/incidents/{own_id}")).1).expect("JSON");
    assert_eq!(
        own["trigger"]["pid"].as_u64(),
        Some(u64::from(leaker_pid)),
        "{own}"
    );
    assert!(
        own["trigger"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("the victim itself")),
        "{own}"
    );
    let top = &own["growth_stacks"]["stacks"][0]["frames"];
    eprintln!("the dead leaker's top growth stack: {top}");
    assert!(
        top.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|f| f == "touch_fresh" || f.ends_with("::touch_fresh")),
        "the dead victim's frames are not named: {own}"
    );
    d.stop();

    // From the recording: listed once, with the victim, the memcg, its
    // limit and the trigger.
    let lines = memmon(&["incidents", "--store", &store_dir, "--json"]);
    let ours: Vec<Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["id"] == id.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "listed once: {lines}");
    let s = &ours[0];
    eprintln!("listed: {s}");
    assert_eq!(s["kind"], "oom_kill");
    assert_eq!(s["comm"].as_str(), Some(victim_comm.as_str()));
    assert_eq!(s["cgroup"].as_str(), Some(memcg.as_str()));
    assert_eq!(s["limit_bytes"].as_u64(), Some(LIMIT));
    assert_eq!(
        s["by"].as_str(),
        Some(format!("{alloc} ({alloc_comm})").as_str())
    );
    assert_eq!(s["by_basis"], "kernel");

    let json = memmon(&["explain", "--oom", &id, "--store", &store_dir, "--json"]);
    let i: Value = serde_json::from_str(&json).expect("incident JSON");
    assert_eq!(
        serde_json::from_str::<Value>(&served).expect("served JSON"),
        i,
        "the recording holds what the daemon served"
    );
    let v = &i["victim"];
    assert_eq!(v["pid"].as_u64(), Some(u64::from(victim)));
    assert_eq!(v["cgroup"].as_str(), Some(memcg.as_str()));
    assert_eq!(v["rss_source"], "oom:mark_victim");
    assert_within(
        "victim RSS at death vs its VmRSS before",
        v["rss_bytes"].as_u64().expect("rss_bytes"),
        victim_rss,
        0.05,
    );
    assert_eq!(v["oom_score_adj"].as_i64(), Some(1000));
    let c = &i["cgroup"];
    assert_eq!(c["path"].as_str(), Some(memcg.as_str()));
    assert_eq!(c["limit_bytes"].as_u64(), Some(LIMIT), "{c}");
    assert_within(
        "memcg usage at the kill vs its limit",
        c["usage_bytes"].as_u64().expect("usage_bytes"),
        LIMIT,
        0.03,
    );
    assert_eq!(i["constraint"], "memcg");
    let t = &i["trigger"];
    assert_eq!(t["pid"].as_u64(), Some(u64::from(alloc)), "{t}");
    assert_eq!(t["basis"], "kernel", "{t}");
    assert_eq!(t["comm"].as_str(), Some(alloc_comm.as_str()));
    // The grower: the allocator, born in the minute, so grown from 0 to
    // its size as read just after the kill: at least what it held at the
    // kill (the memcg's usage then, less the victim's RSS, less 5% for the
    // page cache and tables around them), at most its final VmRSS.
    let g = &i["grower"];
    assert_eq!(g["pid"].as_u64(), Some(u64::from(alloc)), "{g}");
    let grew = g["grew_bytes"].as_u64().expect("grew_bytes");
    let at_kill = c["usage_bytes"].as_u64().expect("usage") - v["rss_bytes"].as_u64().expect("rss");
    assert!(
        grew as f64 >= at_kill as f64 * 0.95 && grew <= alloc_rss,
        "the grower grew {grew} B: not between {at_kill} B (its share at the kill) and {alloc_rss}          B (its final VmRSS)"
    );
    let history = i["victim_history"].as_array().expect("victim_history");
    let last = history
        .iter()
        .rev()
        .find_map(|h| h["rss_bytes"].as_u64())
        .expect("the victim's history has its RSS");
    assert_within("the victim's last recorded RSS", last, victim_rss, 0.05);
    assert!(
        !i["cgroup_history"]
            .as_array()
            .expect("cgroup_history")
            .is_empty(),
        "{i}"
    );
    let around = &i["around"];
    assert_eq!(
        around["cgroup_after"]["oom_kills"].as_u64(),
        around["cgroup_before"]["oom_kills"].as_u64().map(|n| n + 1),
        "memory.events oom_kill before and after: {around}"
    );
    assert_eq!(
        around["cgroup_after"]["oom_kills"].as_u64(),
        Some(kills1),
        "the cgroup's own count after the first kill"
    );
    // The profile's top growth stack is the allocator's.
    let stacks = i["growth_stacks"]["stacks"]
        .as_array()
        .expect("growth stacks");
    let top = stacks.first().expect("a stack");
    eprintln!("top growth stack: {top}");
    assert!(
        top["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .filter_map(Value::as_str)
            .any(|f| f == "touch_gamma" || f.ends_with("::touch_gamma")),
        "the top growth stack does not name touch_gamma: {stacks:#?}"
    );

    let text = memmon(&["explain", "--oom", &id, "--store", &store_dir]);
    eprintln!("{text}");
    for l in text.lines() {
        assert!(l.chars().count() <= 100, "wider than 100 columns: {l}");
    }
    assert!(text.contains(&format!(
        "victim      pid {victim} ({victim_comm}) in {memcg}"
    )));
    assert!(
        text.contains(&format!("cgroup      {memcg}: usage")) && text.contains("of limit 256M")
    );
    assert!(
        text.contains(&format!("trigger     pid {alloc} ({alloc_comm})")),
        "{text}"
    );
    assert!(text.contains("touch_gamma"), "{text}");
    // `latest`: this one, unless another kill on the machine (a SIGKILL
    // from anything else here) was recorded after it.
    let latest: Value = serde_json::from_str(&memmon(&[
        "explain", "--oom", "latest", "--store", &store_dir, "--json",
    ]))
    .expect("latest JSON");
    assert!(
        latest["id"] == id.as_str() || latest["unix_ms"].as_u64() >= i["unix_ms"].as_u64(),
        "latest is older than ours: {latest}"
    );
}

/// The script of `reaper-incident` (a copy of bash): a sleeping child, its
/// pid printed; on a line, `kill -9` to it and `killed PID` printed; on a
/// second line, the child reaped.
const REAPER: &str = r#"
sleep 1000 & v=$!
until read c < /proc/$v/comm && [ "$c" = sleep ]; do :; done
echo "$v"
read go
kill -9 $v
echo "killed $$"
read done
wait
"#;

#[test]
fn a_sigkill_from_another_process_gets_a_post_mortem_with_its_sender() {
    const TEST: &str = "a_sigkill_from_another_process_gets_a_post_mortem_with_its_sender";
    if !require_bpf(TEST) {
        return;
    }
    let cg = Memcg::create("incident-kill", 64 * MIB);
    let memcg = cg.path_in_hierarchy();
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    let (_, body) = d.get("/api/v1/snapshot");
    let snap: Value = serde_json::from_str(&body).expect("snapshot JSON");
    if probe_unavailable(TEST, &snap, "kill_signal").is_some() {
        d.stop();
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let shell = dir.path().join("reaper-incident");
    std::fs::copy("/bin/bash", &shell).expect("copy bash");
    let script = format!(
        "echo $$ > {}\n{REAPER}",
        cg.path.join("cgroup.procs").display()
    );
    let mut child = Command::new(&shell)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reaper-incident");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("the sleeper's pid");
    let target: u32 = line.trim().parse().expect("pid");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    line.clear();
    out.read_line(&mut line).expect("killed");
    let sender: u32 = line
        .trim()
        .strip_prefix("killed ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("reaper-incident said {line:?}"));
    assert_eq!(sender, child.id(), "the shell sent it");

    let summary: Value = wait_for("the SIGKILL's post-mortem", || {
        let (_, body) = d.get("/api/v1/incidents");
        let v: Value = serde_json::from_str(&body).ok()?;
        v["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["kind"] == "sigkill" && i["pid"].as_u64() == Some(u64::from(target)))
            .cloned()
    });
    stdin.write_all(b"done\n").expect("done");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    assert_eq!(summary["comm"], "sleep");
    assert_eq!(summary["by_basis"], "sender");
    assert_eq!(
        summary["by"].as_str(),
        Some(format!("{sender} (reaper-incident)").as_str())
    );
    let id = summary["id"].as_str().expect("id");
    let url = format!("http://{}", d.addr);
    let i: Value = serde_json::from_str(&memmon(&[
        "explain",
        "--oom",
        id,
        "--connect",
        &url,
        "--json",
    ]))
    .expect("incident JSON");
    let s = &i["sender"];
    assert_eq!(s["pid"].as_u64(), Some(u64::from(sender)), "{i}");
    assert_eq!(s["comm"], "reaper-incident", "{i}");
    assert_eq!(s["cgroup"].as_str(), Some(memcg.as_str()), "{i}");
    assert_eq!(i["victim"]["cgroup"].as_str(), Some(memcg.as_str()), "{i}");
    assert!(
        i["trigger"].is_null(),
        "a SIGKILL has a sender, not a trigger: {i}"
    );
    let text = memmon(&["explain", "--oom", id, "--connect", &url]);
    assert!(
        text.starts_with(&format!("SIGKILL {id} at "))
            && text.contains(&format!(
                "sender      pid {sender} (reaper-incident) in {memcg}"
            )),
        "{text}"
    );
    d.stop();
}
