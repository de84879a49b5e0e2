//! Every counter the daemon exports is monotonic across `kill -9`: short
//! processes churn in two memory cgroups of the test's and in the root
//! cgroup while the daemon, on pins of its own and a state directory of its
//! own, is SIGKILLed at a random moment and started again, round after
//! round; every `_total` series of every family in the last scrape before
//! a kill must be at least as high in the first scrape after the restart
//! (a series absent after it is allowed only for a process that left the
//! top K, a cgroup removed meanwhile, and the cgroupfs counters the new
//! daemon has not read yet), and no per-cgroup series carries
//! `cgroup=""`. The rounds' seed is printed.

mod common;
#[path = "common/kernel_setup.rs"]
mod kernel_setup;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use kernel_setup::Memcg;

/// Kill-and-restart rounds.
const ROUNDS: usize = 6;

/// Every `_total` sample of an exposition: `name{labels}` → value.
fn totals(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            name.ends_with("_total")
                .then(|| Some((series.to_string(), value.parse().ok()?)))
                .flatten()
        })
        .collect()
}

/// The `cgroup` label of a series, without its leading `/`.
fn cgroup_label(series: &str) -> Option<&str> {
    let rest = series.split("cgroup=\"").nth(1)?;
    Some(rest.split('"').next()?.trim_start_matches('/'))
}

/// No per-cgroup series of a cgroup named "" (a process whose cgroup is
/// not known yet is in none).
fn no_empty_cgroup(text: &str) {
    let empty: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("memmon_cgroup_") && l.contains("cgroup=\"\""))
        .collect();
    assert!(
        empty.is_empty(),
        "series of an empty cgroup label:\n{}",
        empty.join("\n")
    );
}

/// A small xorshift: moments that differ from run to run, printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Keeps `memmon-workload spawn` running in `procs` (a cgroup.procs file)
/// until `stop`.
fn churn(procs: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut w = Workload::start(&["spawn", "20"]);
            std::fs::write(&procs, w.pid.to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
            w.go();
            w.finish();
            rounds += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        rounds
    })
}

#[test]
fn every_total_is_monotonic_across_kill_9_at_random_moments() {
    if !require_bpf("every_total_is_monotonic_across_kill_9_at_random_moments") {
        return;
    }
    let pins = PinRoot::new("restart");
    let state = tempfile::tempdir().expect("tmp");
    let pin_arg = pins.arg().to_string();
    let args = ["--pin-dir", pin_arg.as_str(), "--interval", "0.5"];
    let env_state = state.path().to_str().expect("utf-8").to_string();

    let a = Memcg::create("restart-a", 256 << 20);
    let b = Memcg::create("restart-b", 256 << 20);
    let hierarchy = a.path.parent().expect("the hierarchy's root").to_path_buf();
    let root_procs = hierarchy.join("cgroup.procs");
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = [
        a.path.join("cgroup.procs"),
        b.path.join("cgroup.procs"),
        root_procs,
    ]
    .into_iter()
    .map(|p| churn(p, Arc::clone(&stop)))
    .collect();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let start = || {
        let mut cmd = std::process::Command::new(MEMMON);
        cmd.env("STATE_DIRECTORY", &env_state);
        Daemon::start_command_with(cmd, &args)
    };
    let started = Instant::now();
    let mut d = start();
    let mut checked = 0;
    for round in 0..ROUNDS {
        // Scrapes at random moments, then a kill at a random moment.
        let mut before = BTreeMap::new();
        for _ in 0..=rng.below(3) {
            std::thread::sleep(Duration::from_millis(rng.below(700)));
            let (status, text) = d.get("/metrics");
            assert_eq!(status, 200);
            no_empty_cgroup(&text);
            before = totals(&text);
        }
        std::thread::sleep(Duration::from_millis(rng.below(700)));
        d.memmon.signal(libc::SIGKILL);
        let _ = d.memmon.child.wait();
        d = start();
        let (status, text) = d.get("/metrics");
        assert_eq!(status, 200);
        no_empty_cgroup(&text);
        let after = totals(&text);
        let mut lower = Vec::new();
        for (series, was) in &before {
            match after.get(series) {
                Some(now) if now < was => lower.push(format!("{series}: {was} -> {now}")),
                Some(_) => checked += 1,
                // A process may leave the top K, and a cgroup removed
                // meanwhile (other tests') goes with its series; nothing
                // else may vanish.
                None if series.starts_with("memmon_process_") => {}
                None if cgroup_label(series).is_some_and(|c| !hierarchy.join(c).exists()) => {}
                // Read from cgroupfs on the cost guard's schedule: not
                // measured yet in the new daemon's first passes is absent
                // (never 0), and when present it is compared above.
                None if series.starts_with("memmon_cgroup_memory_") => {}
                None => lower.push(format!("{series}: {was} -> absent")),
            }
        }
        assert!(
            lower.is_empty(),
            "round {round} (seed {seed}): {} series went lower after kill -9:\n{}",
            lower.len(),
            lower.join("\n")
        );
    }
    stop.store(true, Ordering::Relaxed);
    let spawned: u64 = churners
        .into_iter()
        .map(|t| t.join().expect("churn thread"))
        .sum();
    d.stop();
    eprintln!(
        "{ROUNDS} kill -9 rounds in {:?}: {checked} series compared, {} spawn runs of 20",
        started.elapsed(),
        spawned
    );
    assert!(checked > 0, "no series compared");
}
