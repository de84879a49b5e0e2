//! What the cgroup reader costs: scans the memory cgroups under one
//! directory (every child of `--under`, and their ancestors) once per
//! interval for a while after one first pass (everything at full detail,
//! timed apart), and prints one JSON line with its own CPU time
//! (getrusage) against the wall time of the steady state: the share of a core
//! `cargo xtask bench --only cgroups` reports. `--policy guarded` is the
//! daemon's cost guard (full detail every 10 s or when usage moved),
//! `--policy full` reads memory.stat and the limits every pass.
//!
//! usage: cgroup_scan --under /memmon-bench [--seconds 30] [--interval-ms 1000]
//!        [--policy guarded|full] [--cgroup-root /sys/fs/cgroup]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use memmon::cgroupfs::{CgroupReader, CgroupRoot, DetailPolicy};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let mut under = None;
    let mut seconds = 30.0;
    let mut interval = Duration::from_millis(1000);
    let mut full = false;
    let mut mount = "/sys/fs/cgroup".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--under" => under = Some(val()?),
            "--seconds" => seconds = val()?.parse().context("--seconds")?,
            "--interval-ms" => {
                interval = Duration::from_millis(val()?.parse().context("--interval-ms")?)
            }
            "--policy" => {
                full = match val()?.as_str() {
                    "full" => true,
                    "guarded" => false,
                    p => bail!("--policy {p}: expected guarded or full"),
                }
            }
            "--cgroup-root" => mount = val()?,
            _ => bail!("unknown argument {a}; see the usage in the source's header"),
        }
    }
    let under = under.context("--under DIR (a cgroup path) is required")?;
    let root = CgroupRoot::detect_at(&mount)?;
    let dir = root.cgroup_dir(&under)?;
    let mut paths = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_dir() {
            paths.push(format!(
                "{}/{}",
                under.trim_end_matches('/'),
                e.file_name().to_string_lossy()
            ));
        }
    }
    // The daemon's budget: the cgroup files' share of RLIMIT_NOFILE.
    let max_open_files = memmon::fd_budget::limit().cgroup_files();
    let policy = DetailPolicy {
        interval: if full {
            Duration::ZERO
        } else {
            DetailPolicy::default().interval
        },
        max_open_files,
        ..DetailPolicy::default()
    };
    let mut reader = CgroupReader::new(root, policy);
    // The first pass reads everything at full detail (and opens the usage
    // files): reported apart, the steady state is measured after it.
    let first = reader.scan(paths.iter().map(String::as_str));
    let first_pass_ms = first.seconds * 1e3;
    let (mut passes, mut full_reads, mut usage_reads, mut gone, mut samples) = (0, 0, 0, 0, 0);
    let mut pass_seconds = Vec::new();
    let wall0 = Instant::now();
    let cpu0 = cpu_seconds();
    while wall0.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        let scan = reader.scan(paths.iter().map(String::as_str));
        pass_seconds.push(scan.seconds);
        passes += 1;
        full_reads += scan.full_reads;
        usage_reads += scan.usage_reads;
        gone += scan.gone.len();
        samples = scan.samples.len();
        std::thread::sleep(interval.saturating_sub(t.elapsed()));
    }
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    pass_seconds.sort_by(f64::total_cmp);
    let median_ms = pass_seconds
        .get(pass_seconds.len() / 2)
        .map_or(0.0, |s| s * 1e3);
    println!(
        "{}",
        serde_json::json!({
            "cgroups": paths.len(),
            "samples_per_pass": samples,
            "passes": passes,
            "full_reads": full_reads,
            "usage_reads": usage_reads,
            "gone": gone,
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "core_share": cpu / wall,
            "median_pass_ms": median_ms,
            "first_pass_ms": first_pass_ms,
        })
    );
    Ok(())
}
