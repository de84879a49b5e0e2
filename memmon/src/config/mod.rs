//! The daemon's configuration: built-in defaults, overridden by the config
//! file (/etc/memmon/memmon.toml unless --config says otherwise), then by
//! environment variables (MEMMON_<KEY>), then by flags. Unknown keys, wrong
//! types and bad values are errors naming the file, line and key, or the
//! real flag.
//!
//! Every setting is declared once, below: its doc (the default file's
//! comment), name, type, default, kind, check and flag attributes. The
//! `Config` field, the file key, the flag and `--no-` switch, the
//! environment variable, `--help`, the default file, `config --check` and
//! SIGHUP's restart check all follow from that one entry (`decl.rs`,
//! `load.rs`, `flags.rs`, `default_file.rs`). Adding a setting: one entry
//! here, and the code that uses `Config::<name>`.

mod decl;
mod default_file;
mod flags;
mod load;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use decl::keys;
use decl::{Addr, Age, Auto, Float, Names, Path, Size, Switch, Text, Whole};
pub use decl::{Given, Key, Kind, Shape, ValueError, parse_age, parse_size};
pub use default_file::default_toml;
pub use flags::{DaemonProbeArgs, DaemonSettings, KeyFlags, ProbeArgs};
pub use load::{ConfigError, Overrides, load, parse_file};

/// Default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/memmon/memmon.toml";
/// Default listen address: loopback, port 9755 — in the Prometheus exporter
/// range (9100–9999) and not used by any well-known exporter (node 9100,
/// process 9256, ebpf 9435, ...).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9755,
));

/// `memmon top --profile`'s period: one fault stack sampled per this many
/// page faults on a CPU (a prime, so a loop that faults in strides of a
/// power of two is not sampled in lockstep).
pub const DEFAULT_PROFILE_PERIOD: u64 = 997;

/// Ranking keys for the top-K per-process series.
pub const TOP_BY_KEYS: &[&str] = &["rss", "pss", "fault_rate", "swap", "major_faults"];

keys! {
    /// HTTP endpoint (/metrics, /api/v1/snapshot, /api/v1/events, /healthz).
    /// Loopback by default; 9755 is in the exporter range and used by no
    /// well-known exporter.
    listen: SocketAddr = DEFAULT_LISTEN; Addr {
        help: "Listen address",
        value_name: "ADDR:PORT",
    }
    /// Seconds between samples of the kernel maps and /proc.
    interval_seconds: f64 = 1.0; Float where (in_range(0.05, 3600.0, "seconds")) {
        flag: Some("interval"),
        help: "Seconds between samples",
        value_name: "SECS",
        reload: true,
    }
    /// Processes exported with their own series (all processes are also
    /// summed per cgroup).
    top_k: usize = 50; Whole where (count_in(1, 10_000)) {
        help: "Processes with their own series",
        value_name: "N",
        reload: true,
    }
    /// What ranks those processes: one of rss, pss, fault_rate, swap,
    /// major_faults.
    top_by: String = "rss".into(); Text where (one_of(TOP_BY_KEYS, "a ranking key")) {
        help: "What ranks them: rss, pss, fault_rate, swap, major_faults",
        value_name: "KEY",
        reload: true,
    }
    /// Cgroups exported with their own series; the rest are summed as
    /// "other".
    max_cgroups: usize = 200; Whole where (count_in(1, 100_000)) {
        help: "Cgroups with their own series",
        value_name: "N",
        reload: true,
    }
    /// Per-fault programs: the read/write/copy-on-write split of faults.
    /// One program per fault, which costs a few percent of a pure
    /// page-fault storm; off by default.
    fault_detail: bool = false; Switch {
        help: "Attach the per-fault programs (read/write/copy-on-write split of faults; a few % \
               cost)",
        value_name: "BOOL",
        probe: true,
    }
    /// Per-allocation programs: mmap/munmap/mremap/brk syscalls, slab caches,
    /// kmalloc size classes, buddy allocator (sampled: attached 100 ms in
    /// every second), per process. Syscall tracepoints put every syscall on
    /// the slow path and the allocator ones run on every kernel allocation;
    /// off by default.
    alloc_detail: bool = false; Switch {
        help: "Attach the per-allocation programs (mmap/munmap/brk syscalls, slab caches, \
               kmalloc size classes, buddy allocator)",
        value_name: "BOOL",
        probe: true,
    }
    /// Probes not to attach (see `memmon snapshot --probes`).
    disabled_probes: Vec<String> = Vec::new(); Names where (probes_exist) {
        flag: Some("disable-probe"),
        help: "Do not attach this probe (repeatable, or a comma list); see `snapshot --probes`",
        value_name: "NAME",
        probe: true,
    }
    /// Passes between two walks of every task by the task iterator. In
    /// between, a pass reads only the processes that ran (marked by the
    /// scheduler, each read alone: Linux 6.1+); a walk also finds what
    /// others did to a sleeping process (reclaim swapping its pages out).
    /// 0: only when a pass must (marks unavailable or lost).
    full_scan_every: u64 = crate::collector::DEFAULT_FULL_SCAN_EVERY; Whole {
        help: "Passes between two walks of every task (0: only when a pass must)",
        value_name: "PASSES",
    }
    /// Processes the kernel's per-process maps hold (their counters, their
    /// swap follow-up). Past it the counts of further processes are
    /// dropped, counted (memmon_kernel_map_full_total) and said in the log
    /// and /api/v1/events.
    max_processes: usize = 32768; Whole where (count_in(64, 4_194_304)) {
        help: "Processes the kernel's per-process maps hold",
        value_name: "N",
        probe: true,
    }
    /// Pin the cumulative kernel maps so a restart keeps counting.
    pin: bool = true; Switch {
        help: "Pin the kernel maps so a restart keeps counting",
        value_name: "BOOL",
    }
    /// Where the pinned maps live (a bpffs directory).
    pin_dir: PathBuf = PathBuf::from(crate::probes::pins::DEFAULT_PIN_ROOT); Path {
        help: "Where to pin",
        value_name: "DIR",
    }
    /// Seconds of per-process history kept for the OOM flight recorder.
    history_seconds: u64 = 300; Whole {
        flag: Some("history"),
        help: "Seconds of per-process history for the OOM flight recorder",
        value_name: "SECS",
    }
    /// Exporter-toolkit style web config file (TLS certificate, basic auth).
    web_config_file: Option<PathBuf> = None; Path {
        flag: Some("web.config.file"),
        help: "Exporter-toolkit web config (TLS, basic auth)",
        value_name: "PATH",
        reload: true,
        example: Some("\"/etc/memmon/web.yml\""),
    }
    /// The proc filesystem to read (the host's, with the host's pids).
    proc_root: PathBuf = PathBuf::from("/proc"); Path {
        help: "The proc filesystem to read (e.g. the host's /proc mounted at /host/proc in a \
               container; pids must match the kernel's)",
        value_name: "DIR",
    }
    /// Where cgroup filesystems are mounted (v1 memory/ below it, or v2).
    cgroup_root: PathBuf = PathBuf::from("/sys/fs/cgroup"); Path {
        help: "Where cgroup filesystems are mounted (v1 `memory/` below it, or the v2 unified \
               hierarchy)",
        value_name: "DIR",
    }
    /// Record every pass (all processes and cgroups) into a local store that
    /// `memmon replay` and `memmon dump` read; off unless set (the shipped
    /// systemd unit records into /var/lib/memmon/store).
    record: Option<PathBuf> = None; Path {
        help: "Record every pass into a local store in DIR (`memmon replay`, `memmon dump` \
               read it); off unless set",
        value_name: "DIR",
        example: Some("\"/var/lib/memmon/store\""),
    }
    /// What the store keeps: total size (bytes, or 500MiB, 2GiB); the oldest
    /// shards are removed first.
    record_max_bytes: u64 = crate::store::writer::DEFAULT_MAX_BYTES; Size where (at_least_mib) {
        help: "Total size the store keeps, oldest shards removed first",
        value_name: "SIZE",
    }
    /// What the store keeps: age (24h, 7d); the oldest shards are removed
    /// first.
    record_max_age: Duration = crate::store::writer::DEFAULT_MAX_AGE; Age where (at_least_a_minute) {
        help: "Age the store keeps (e.g. 24h, 7d)",
        value_name: "DURATION",
    }
    /// Share of one core memmon's kernel programs may take (the kernel's BPF
    /// run-time statistics measure it). Above it for 3 passes, the detail
    /// probes (fault_detail, alloc_detail) are suspended, said once in the
    /// log and /api/v1/events, and attached again once the system's fault
    /// rate has halved and a cool-down (20 s, doubling) has passed. 0: no
    /// budget.
    probe_cpu_budget: f64 = 0.01; Float where (share_of_a_core) {
        help: "Share of one core the probes may take before the detail probes are suspended; \
               0 for no budget",
        value_name: "SHARE",
        reload: true,
    }
    /// Continuous page-fault profile, served as gzipped pprof on
    /// /api/v1/profile?seconds=N[&pid=P|&cgroup=PATH] (what Parca and
    /// Pyroscope scrape): the last 60 s kept in memory (at most 16384
    /// distinct stacks). Off by default.
    profile: bool = false; Switch {
        help: "Keep a rolling 60 s window of sampled page-fault stacks, served as pprof on \
               /api/v1/profile",
        value_name: "BOOL",
    }
    /// With profile: page faults per sampled stack. "auto" (the default)
    /// adapts it at each pass: one run of the sampler per 13 faults or
    /// more on a CPU, at most 10,000 runs a second over the machine, and
    /// at most 500 stack walks a second, plus up to 1,000 a second for
    /// each process whose memory grew by 1 MiB within 10 s (2,000 for all
    /// of them), so a leak is sampled densely (down to every run) at a
    /// bounded cost; above 100,000 faults a second the events are open one
    /// 100 ms slot in 2 to 8; each sample weighs the faults it stood for. A number
    /// fixes the period: one stack per N faults on a CPU, for every
    /// process.
    profile_period: Option<u64> = None; Auto where (faults_per_stack) {
        help: "With --profile: page faults per sampled stack, or auto (adapts to the fault rate and \
               samples growing processes more often, within a fixed cost)",
        value_name: "N|auto",
    }
}

/// A [`ValueError::OutOfRange`] from a format string.
macro_rules! out_of_range {
    ($($t:tt)*) => { ValueError::OutOfRange(format!($($t)*)) };
}

/// A number in `lo..=hi` of `unit`.
fn in_range(lo: f64, hi: f64, unit: &'static str) -> impl Fn(&f64) -> Result<(), ValueError> {
    move |v| {
        if v.is_finite() && (lo..=hi).contains(v) {
            Ok(())
        } else {
            Err(out_of_range!(
                "{v} is out of range: give {lo} to {hi} {unit}"
            ))
        }
    }
}

/// A count in `lo..=hi`.
fn count_in<T: Copy + TryInto<u64> + std::fmt::Display>(
    lo: u64,
    hi: u64,
) -> impl Fn(&T) -> Result<(), ValueError> {
    move |v| {
        if (*v).try_into().is_ok_and(|n| (lo..=hi).contains(&n)) {
            Ok(())
        } else {
            Err(out_of_range!("{v} is out of range: give {lo} to {hi}"))
        }
    }
}

fn faults_per_stack(v: &Option<u64>) -> Result<(), ValueError> {
    match v {
        Some(n) if !(1..=1_000_000_000).contains(n) => Err(out_of_range!(
            "{n} is out of range: give the page faults per sampled stack, 1 to 1000000000, or \
             auto (the default)"
        )),
        _ => Ok(()),
    }
}

/// One of `allowed`.
fn one_of(
    allowed: &'static [&'static str],
    what: &'static str,
) -> impl Fn(&String) -> Result<(), ValueError> {
    move |v| {
        if allowed.contains(&v.as_str()) {
            Ok(())
        } else {
            Err(out_of_range!(
                "`{v}` is not {what}; use one of {}",
                allowed.join(", ")
            ))
        }
    }
}

fn probes_exist(names: &[String]) -> Result<(), ValueError> {
    use memmon_common::names::probe;
    match names.iter().find(|n| probe::find(n).is_none()) {
        None => Ok(()),
        Some(n) => {
            let known: Vec<&str> = probe::ALL.iter().map(|p| p.name()).collect();
            Err(out_of_range!(
                "no probe named `{n}`; known probes: {}",
                known.join(", ")
            ))
        }
    }
}

fn at_least_mib(v: &u64) -> Result<(), ValueError> {
    if *v >= 1 << 20 {
        Ok(())
    } else {
        Err(out_of_range!("{v} bytes is too small: give at least 1MiB"))
    }
}

fn at_least_a_minute(v: &Duration) -> Result<(), ValueError> {
    if *v >= Duration::from_secs(60) {
        Ok(())
    } else {
        Err(out_of_range!(
            "{} is too short: give at least 1m",
            humantime::format_duration(*v)
        ))
    }
}

fn share_of_a_core(v: &f64) -> Result<(), ValueError> {
    if v.is_finite() && (0.0..=1.0).contains(v) {
        Ok(())
    } else {
        Err(out_of_range!(
            "{v} is out of range: give a share of one core from 0 (no budget) to 1, e.g. 0.01 for 1%"
        ))
    }
}

impl Config {
    /// Keys whose value differs from `other`'s and that SIGHUP cannot apply.
    pub fn needs_restart(&self, other: &Config) -> Vec<&'static Key> {
        KEYS.iter()
            .copied()
            .filter(|k| !k.reload && self.value_of(k.name) != other.value_of(k.name))
            .collect()
    }
}

#[cfg(test)]
mod tests;
