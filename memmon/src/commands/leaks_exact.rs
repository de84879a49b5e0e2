//! `memmon leaks --exact --pid PID`: finds the allocator the process maps (libc,
//! jemalloc or tcmalloc), attaches the allocator uprobes/uretprobes to it
//! for that process only, waits, then groups the allocations still live
//! (and older than --min-age) by stack, names the stacks while the process
//! lives, and writes them like `memmon profile` does.

use std::{
    path::PathBuf,
    time::{Instant, SystemTime},
};

use anyhow::Context as _;

use crate::{
    cli::{Allocator, LeaksArgs},
    error::Fatal,
    model::profile::{Profile, group_live},
    privileges,
    procfs::maps::mapped_files,
    sample::stacks::{RawSample, RawStack, StackEvent},
    symbols::Symbols,
};

use super::profile::{
    check_duration, check_pid, load_stack_probes, report_losses, wait, write_output,
};

/// Runs the command.
pub fn run(args: &LeaksArgs) -> Result<(), Fatal> {
    check_duration(args.duration)?;
    let pid = match args.pid.as_slice() {
        [pid] => *pid,
        _ => {
            return Err(Fatal::Usage(
                "--exact traces one process: give exactly one --pid (the resident mode, without \
                 --exact, takes several or --cgroup)"
                    .into(),
            ));
        }
    };
    if args.sample_rate == 0 {
        return Err(Fatal::Usage(
            "--sample-rate 0 is out of range: give N >= 1 (track one allocation in N)".into(),
        ));
    }
    if !args.min_age.is_finite() || args.min_age < 0.0 {
        return Err(Fatal::Usage(format!(
            "--min-age {} is out of range: give seconds >= 0",
            args.min_age
        )));
    }
    check_pid(pid)?;
    let library = allocator_library(pid, args.allocator)?;
    privileges::check().map_err(Fatal::Privileges)?;
    let mut probes = load_stack_probes("`memmon leaks`")?;
    probes
        .set_stack_target(
            &crate::probes::stacks::Target::Pids(vec![pid]),
            args.sample_rate,
        )
        .context("setting the sample rate")?;
    // The library as this mount namespace reaches it: through the
    // process's root, so a container's libc is the one traced.
    let reachable = PathBuf::from(format!("/proc/{}/root", pid))
        .join(library.strip_prefix("/").unwrap_or(&library));
    let attached = probes
        .attach_allocator(pid, &reachable)
        .map_err(|e| Fatal::Other(anyhow::anyhow!("{e} (the allocator of pid {} is {}; a stripped library without a dynamic symbol table cannot be traced)", pid, library.display())))?;
    super::stop_signal::install();
    let started = SystemTime::now();
    let begin = Instant::now();
    eprintln!(
        "memmon: probes attached; tracing {} in {} of pid {} (one allocation in {}); Ctrl-C to stop",
        attached.join(", "),
        library.display(),
        pid,
        args.sample_rate
    );
    wait(args.duration);
    let duration = begin.elapsed().as_secs_f64();
    let live: Vec<_> = probes
        .read_live_allocs()
        .context("reading the live allocations")?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let now = monotonic_ns();
    let min_age_ns = (args.min_age * 1e9) as u64;
    let raw: Vec<RawSample> = group_live(&live, now, min_age_ns, args.sample_rate)
        .into_iter()
        .map(|(tgid, stack, bytes, count)| RawSample {
            event: StackEvent::Leaks,
            stack: RawStack {
                tgid,
                user: probes.stack_frames(stack),
                kernel: Vec::new(),
            },
            weight: bytes,
            count,
            growth: 0,
        })
        .collect();
    let named = Symbols::new().name(&raw);
    let profile = Profile::build(StackEvent::Leaks, args.sample_rate, duration, &named);
    report_losses(&probes);
    let title = format!("memmon leaks --exact: outstanding allocations of pid {pid}");
    write_output(
        &profile,
        args.format,
        args.output.as_deref(),
        args.top,
        &title,
        started,
    )
}

/// CLOCK_MONOTONIC in ns (what bpf_ktime_get_ns reads).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// The allocator library `pid` maps, as a path inside its mount namespace.
fn allocator_library(pid: u32, allocator: Allocator) -> Result<PathBuf, Fatal> {
    let files = mapped_files(pid).map_err(|e| Fatal::Other(e.into()))?;
    let find = |prefixes: &[&str]| {
        files
            .iter()
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    prefixes.iter().any(|pre| n.starts_with(pre)) && n.contains(".so")
                })
            })
            .cloned()
    };
    let libc = || find(&["libc.so", "libc-", "ld-musl-"]);
    let jemalloc = || find(&["libjemalloc"]);
    let tcmalloc = || find(&["libtcmalloc"]);
    let (found, wanted) = match allocator {
        Allocator::Auto => (
            jemalloc().or_else(tcmalloc).or_else(libc),
            "libc.so, libjemalloc.so or libtcmalloc.so",
        ),
        Allocator::Libc => (libc(), "libc.so"),
        Allocator::Jemalloc => (jemalloc(), "libjemalloc.so"),
        Allocator::Tcmalloc => (tcmalloc(), "libtcmalloc.so"),
    };
    found.ok_or_else(|| {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "its binary".into());
        Fatal::Other(anyhow::anyhow!(
            "pid {pid} ({exe}) maps no shared allocator library ({wanted}): memmon leaks traces malloc and free in a shared \
             allocator library, and this process has none (a static binary, or an allocator \
             linked into the binary); try --allocator auto, or a dynamically linked build"
        ))
    })
}
