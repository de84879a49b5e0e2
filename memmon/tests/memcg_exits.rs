//! Per-cgroup totals of exited processes survive `kill -9` of the daemon
//! and a restart (what `Restart=on-failure` does): the exit probe adds
//! every exiting process's count and fault totals into the pinned
//! `MEMCG_EXITS` map, in the kernel. With `memmon daemon` running on its
//! own pin directory, 200 short-lived processes (and their parent) exit in
//! a memory cgroup; the daemon is killed with SIGKILL; a new probe set on
//! the same pins reads 201 exits and fault totals that match the cgroup's
//! own `memory.stat` pgfault; 200 more exits later the totals have only
//! grown.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{fs, os::unix::fs::MetadataExt as _, path::PathBuf};

use common::{Daemon, Workload, assert_within, proc_stat_field, require_bpf};
use kernel_setup::Memcg;
use memmon::probes::{LoadOptions, ProbeSet};
use memmon_common::MemcgExits;

/// A pin root under bpffs, removed on drop.
struct PinRoot(PathBuf);

impl Drop for PinRoot {
    fn drop(&mut self) {
        fn rm(p: &std::path::Path) {
            if p.is_dir() {
                for e in fs::read_dir(p).into_iter().flatten().flatten() {
                    rm(&e.path());
                }
                let _ = fs::remove_dir(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
        rm(&self.0);
    }
}

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
    let pin = PinRoot(PathBuf::from(format!(
        "/sys/fs/bpf/memmon-test-memcg-exits-{}",
        std::process::id()
    )));
    let pin_arg = pin.0.to_str().expect("utf-8").to_string();
    let cg = Memcg::create("exits", 512 << 20);
    let id = fs::metadata(&cg.path).expect("stat memcg").ino();

    // 1. The daemon counts 201 exits, then dies of SIGKILL.
    let daemon = Daemon::start(&["--pin-dir", &pin_arg]);
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
    assert_eq!(stats.memcg_exits_full, 0);
}
