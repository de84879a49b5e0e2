//! Per-cgroup totals of exited processes survive `kill -9` of the daemon
//! and a restart (what `Restart=on-failure` does): the exit probe adds
//! every exiting process's count and fault totals into the pinned
//! `MEMCG_EXITS` map, in the kernel. With `memmon daemon` running on its
//! own pin directory, 200 short-lived processes (and their parent) exit in
//! a memory cgroup; the daemon is killed with SIGKILL; a new probe set on
//! the same pins reads 201 exits and fault totals that match the cgroup's
//! own `memory.stat` pgfault (and probe counters that match the tasks' own
//! fault counts); 200 more exits later the totals have only grown. Through
//! the daemon: the cgroup's `/metrics` counters are the same after a
//! restart.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{fs, os::unix::fs::MetadataExt as _};

use common::{
    Daemon, PinRoot, Workload, assert_within, metric_value, proc_stat_field, require_bpf,
};
use kernel_setup::Memcg;
use memmon::probes::{LoadOptions, ProbeSet};
use memmon_common::MemcgExits;

/// Runs `memmon-workload spawn 200` in `cg`: (the parent's own minor +
/// major faults at its end, its faults during the work).
fn spawn_200(cg: &Memcg) -> (u64, u64) {
    let mut w = Workload::start(&["spawn", "200"]);
    cg.add(w.pid);
    let report = w.go();
    let during =
        report["minflt"].as_u64().expect("minflt") + report["majflt"].as_u64().expect("majflt");
    let total =
        proc_stat_field(w.pid, 10).expect("minflt") + proc_stat_field(w.pid, 12).expect("majflt");
    w.finish();
    (total, during)
}

fn totals(probes: &ProbeSet, id: u64) -> MemcgExits {
    probes
        .read_memcg_exits()
        .expect("read MEMCG_EXITS")
        .into_iter()
        .find(|(k, _)| *k == id)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[test]
fn exit_totals_per_memcg_survive_kill_9_and_restart() {
    if !require_bpf("memcg_exits") {
        return;
    }
    let pin = PinRoot::new("memcg-exits");
    let pin_arg = pin.0.to_str().expect("utf-8").to_string();
    let cg = Memcg::create("exits", 512 << 20);
    let id = fs::metadata(&cg.path).expect("stat memcg").ino();

    // 1. The daemon counts 201 exits, then dies of SIGKILL.
    let daemon = Daemon::start(&[
        "--pin-dir",
        &pin_arg,
        "--fault-detail",
        "--probe-cpu-budget",
        "0",
    ]);
    let pgfault0 = cg.stat("pgfault");
    let (parent_total, parent_during) = spawn_200(&cg);
    let pgfault1 = cg.stat("pgfault");
    let mut daemon = daemon;
    daemon.memmon.signal(libc::SIGKILL);
    let status = daemon.memmon.child.wait().expect("wait daemon");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

    // 2. A restart on the same pins finds them.
    let mut opts = LoadOptions {
        fault_detail: false,
        alloc_detail: false,
        ..LoadOptions::default()
    };
    opts.pin_root = Some(pin.0.clone());
    let probes = ProbeSet::load(&opts).expect("load probes on the pins");
    assert!(
        probes.is_attached("process_exit"),
        "exit probe not attached"
    );
    let first = totals(&probes, id);
    eprintln!(
        "after kill -9 and restart: {first:?}; memcg pgfault +{}; parent {parent_total} faults ({parent_during} during the work)",
        pgfault1 - pgfault0
    );
    assert_eq!(first.exited, 201, "200 children and their parent");
    assert_eq!(first.with_faults, 201, "BTF offsets known on this kernel");
    // The probe counters the exits left: the fault probes (on in the
    // daemon) counted what the kernel's own task counters say.
    assert_within(
        "exited processes' probe-counted faults vs their task counters",
        first.counters.faults,
        first.min_flt + first.maj_flt,
        0.05,
    );
    // The children fault only inside the cgroup; the parent's faults before
    // it was moved there are not the cgroup's.
    let children = (first.min_flt + first.maj_flt) - parent_total;
    assert_within(
        "exited processes' faults vs memory.stat pgfault",
        children + parent_during,
        pgfault1 - pgfault0,
        0.05,
    );

    // 3. More exits: the totals only grow.
    let (parent2, _) = spawn_200(&cg);
    let second = totals(&probes, id);
    eprintln!("after 200 more: {second:?}");
    assert_eq!(second.exited, first.exited + 201);
    assert!(second.min_flt >= first.min_flt + parent2);
    assert!(second.maj_flt >= first.maj_flt);
    let stats = probes.read_stats().expect("stats");
    assert_eq!(stats.memcg_exits_map_full, 0);
}

/// `memmon_cgroup_<key>` of cgroup `path` in a scrape.
fn cgroup_metric(d: &Daemon, metric: &str, path: &str) -> Option<f64> {
    let (_, text) = d.get("/metrics");
    metric_value(&text, metric, &[&format!("cgroup=\"{path}\"")])
}

/// Polls `d` until `metric` of `path` reads `want` (or 30 s pass).
fn wait_for(d: &Daemon, metric: &str, path: &str, want: f64) -> Option<f64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = cgroup_metric(d, metric, path);
        if v == Some(want) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// What `systemctl restart` and `Restart=on-failure` need from /metrics: a
/// memory cgroup whose 201 processes all exited keeps
/// `memmon_cgroup_exited_processes_total` at 201 and its minor faults
/// where they were across `kill -9` of the daemon and a new one on the
/// same pins (the numbers come from the kernel's pinned per-memcg
/// totals, not from the dead daemon's memory).
#[test]
fn cgroup_counters_never_go_backwards_across_a_restart() {
    if !require_bpf("memcg_exits restart") {
        return;
    }
    let pin = PinRoot::new("memcg-restart");
    let pin_arg = pin.0.to_str().expect("utf-8").to_string();
    let cg = Memcg::create("restart", 512 << 20);
    let path = cg.path_in_hierarchy();
    let args = ["--pin-dir", pin_arg.as_str(), "--interval", "0.5"];

    let first = Daemon::start(&args);
    let pgfault0 = cg.stat("pgfault");
    let (parent_total, parent_during) = spawn_200(&cg);
    let pgfault1 = cg.stat("pgfault");
    let exited = wait_for(&first, "memmon_cgroup_exited_processes_total", &path, 201.0);
    assert_eq!(exited, Some(201.0), "200 children and their parent");
    let minor = cgroup_metric(&first, "memmon_cgroup_minor_faults_total", &path)
        .expect("minor faults of the cgroup");
    let major = cgroup_metric(&first, "memmon_cgroup_major_faults_total", &path)
        .expect("major faults of the cgroup");
    eprintln!(
        "before: exited 201, minor {minor}, major {major}; memory.stat pgfault +{}",
        pgfault1 - pgfault0
    );
    // What the kernel counted in the cgroup: the children's faults and the
    // parent's after it moved there.
    assert_within(
        "cgroup faults vs memory.stat pgfault",
        (minor + major) as u64 - parent_total + parent_during,
        pgfault1 - pgfault0,
        0.05,
    );
    let mut first = first;
    first.memmon.signal(libc::SIGKILL);
    let _ = first.memmon.child.wait();

    let second = Daemon::start(&args);
    let after = wait_for(
        &second,
        "memmon_cgroup_exited_processes_total",
        &path,
        201.0,
    );
    assert_eq!(after, Some(201.0), "exited processes after the restart");
    let minor2 = cgroup_metric(&second, "memmon_cgroup_minor_faults_total", &path);
    let major2 = cgroup_metric(&second, "memmon_cgroup_major_faults_total", &path);
    eprintln!("after kill -9 and restart: minor {minor2:?}, major {major2:?}");
    assert_eq!(minor2, Some(minor), "minor faults across the restart");
    assert_eq!(major2, Some(major), "major faults across the restart");
    second.stop();
}
