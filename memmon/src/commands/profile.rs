//! `memmon profile`: attaches the page-fault sampler (a perf software event
//! with a period, stacks by bpf_get_stackid) or the brk/mmap samplers
//! (syscall tracepoints) to the chosen processes or cgroup, waits, then reads the sampled stacks, names them (`symbols`)
//! while the processes still live, merges them (`model::profile`) and
//! writes the table, folded stacks, pprof or SVG. Also the output writer
//! `memmon leaks` shares.

use std::{
    io::Write as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use memmon_common::Stat;

use crate::{
    cli::{ProfileArgs, ProfileEvent, ProfileFormat},
    error::Fatal,
    model::profile::Profile,
    privileges,
    probes::{LoadOptions, ProbeSet, fault_events::FaultEvents, stacks::Target},
    sample::stacks::StackEvent,
    sinks,
    symbols::Symbols,
};

/// Distinct stacks the kernel maps hold.
pub const STACK_ENTRIES: u32 = 16384;
/// Where cgroup v2 is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How often the stop flag and the deadline are checked.
const POLL: Duration = Duration::from_millis(50);
/// The most time slots `--slots` takes.
const MAX_SLOTS: u64 = 64;

/// Runs the command.
pub fn run(args: &ProfileArgs) -> Result<(), Fatal> {
    check_duration(args.duration)?;
    if args.period == 0 {
        return Err(Fatal::Usage(
            "--period 0 is out of range: give the number of page faults per sample (>= 1)".into(),
        ));
    }
    if !(1..=MAX_SLOTS).contains(&args.slots) {
        return Err(Fatal::Usage(format!(
            "--slots {} is out of range: give 1 (the event always open) to {MAX_SLOTS}",
            args.slots
        )));
    }
    let events: Vec<StackEvent> = match args.event {
        ProfileEvent::Faults => vec![StackEvent::Faults],
        ProfileEvent::Brk => vec![StackEvent::Brk],
        ProfileEvent::Mmap => vec![StackEvent::Mmap],
        ProfileEvent::All => vec![StackEvent::Faults, StackEvent::Brk, StackEvent::Mmap],
    };
    if events.len() > 1 && args.format != ProfileFormat::Text {
        return Err(Fatal::Usage(
            "--event all writes one table per event (--format text); for folded, pprof or svg \
             pick one: --event faults, --event brk or --event mmap"
                .into(),
        ));
    }
    let target = target(&args.pid, args.cgroup.as_deref())?;
    privileges::check().map_err(Fatal::Privileges)?;
    let mut probes = load_stack_probes("`memmon profile`")?;
    probes
        .set_stack_target(&target, 1)
        .context("setting the profile's targets")?;
    if events.contains(&StackEvent::Brk)
        && let Target::Pids(pids) = &target
    {
        for pid in pids {
            if let Some(brk) = crate::procfs::maps::program_break(*pid) {
                probes
                    .seed_brk(*pid, brk)
                    .context("seeding the program break")?;
            }
        }
    }
    // The fault sampler's events: held until the end (dropping them
    // detaches it).
    let mut fault_events = None;
    for event in &events {
        match event {
            StackEvent::Faults => {
                fault_events = Some(
                    probes
                        .attach_fault_sampler(args.period)
                        .context("attaching the page-fault sampler")?,
                );
            }
            other => {
                probes
                    .attach_growth_sampler(*other)
                    .with_context(|| format!("attaching the {} sampler", other.name()))?;
            }
        }
    }
    super::stop_signal::install();
    let started = SystemTime::now();
    let begin = Instant::now();
    let names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    let slots = if fault_events.is_some() {
        args.slots
    } else {
        1
    };
    eprintln!(
        "memmon: probes attached; profiling {} of {} (faults: one sample per {} faults{}); \
         Ctrl-C to stop",
        names.join(", "),
        describe(&target),
        args.period,
        if slots > 1 {
            format!(", the event open one 100 ms slot in {slots}")
        } else {
            String::new()
        }
    );
    match fault_events.as_mut() {
        Some(events) => wait_in_slots(args.duration, events, slots)?,
        None => wait(args.duration),
    }
    // A sample stands for the faults of the time the event was closed
    // too: its weight is the period × the time sampled over the time the
    // event was open (about --slots).
    let weight = match &fault_events {
        Some(events) if slots > 1 => {
            let now = Instant::now();
            let open = events.open_time(now).as_secs_f64();
            let all = events.age(now).as_secs_f64();
            if open > 0.0 {
                ((args.period as f64) * all / open).round().max(1.0) as u64
            } else {
                args.period.saturating_mul(slots)
            }
        }
        _ => args.period,
    };
    // Sampling stops here: what the maps hold is what is reported.
    drop(fault_events);
    let duration = begin.elapsed().as_secs_f64();
    let raw = probes
        .read_samples(weight)
        .context("reading the sampled stacks")?;
    let named = Symbols::new().name(&raw);
    report_losses(&probes);
    if events.len() > 1 {
        let mut text = String::new();
        for event in &events {
            let profile = Profile::build(*event, period_of(*event, weight), duration, &named)
                .with_slots(slots_of(*event, slots));
            text.push_str(&sinks::profile::table(&profile, args.top));
            text.push('\n');
        }
        return write_bytes(text.as_bytes(), args.output.as_deref());
    }
    let event = events[0];
    let profile = Profile::build(event, period_of(event, weight), duration, &named)
        .with_slots(slots_of(event, slots));
    let title = format!("memmon profile: {} of {}", event.name(), describe(&target));
    write_output(
        &profile,
        args.format,
        args.output.as_deref(),
        args.top,
        &title,
        started,
    )
}

/// The period a profile of `event` reports (1 for the byte-weighted ones:
/// every call is seen).
fn period_of(event: StackEvent, period: u64) -> u64 {
    if event == StackEvent::Faults {
        period
    } else {
        1
    }
}

/// The time slots of a profile of `event` (only the fault sampler runs
/// in slots).
fn slots_of(event: StackEvent, slots: u64) -> u64 {
    if event == StackEvent::Faults {
        slots
    } else {
        1
    }
}

/// Waits like [`wait`], opening and closing the fault sampler's `events`
/// at the boundaries of its `slots` time slots (`FaultEvents::tick`).
fn wait_in_slots(duration: Option<f64>, events: &mut FaultEvents, slots: u64) -> Result<(), Fatal> {
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut next_tick = Instant::now();
    while !super::stop_signal::requested() {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= next_tick {
            next_tick = events
                .tick(slots, now)
                .context("opening the page-fault events for the next slot")?;
        }
        let mut left = POLL.min(next_tick.saturating_duration_since(now));
        if let Some(d) = deadline {
            left = left.min(d.saturating_duration_since(now));
        }
        std::thread::sleep(left);
    }
    Ok(())
}

/// Loads the eBPF object with room for stacks and no catalog probe.
pub fn load_stack_probes(who: &'static str) -> Result<ProbeSet, Fatal> {
    let opts = LoadOptions {
        fault_detail: false,
        alloc_detail: false,
        only: Some((&[], who)),
        stack_entries: Some(STACK_ENTRIES),
        ..LoadOptions::default()
    };
    Ok(ProbeSet::load(&opts).context("loading probes")?)
}

/// Rejects a negative or non-finite --duration.
pub fn check_duration(duration: Option<f64>) -> Result<(), Fatal> {
    if let Some(d) = duration
        && (!d.is_finite() || d < 0.0)
    {
        return Err(Fatal::Usage(format!(
            "--duration {d} is out of range: give seconds >= 0"
        )));
    }
    Ok(())
}

/// Sleeps until `duration` passed or SIGINT/SIGTERM came.
pub fn wait(duration: Option<f64>) {
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    while !super::stop_signal::requested() {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let left = deadline.map_or(POLL, |d| (d - now).min(POLL));
        std::thread::sleep(left);
    }
}

/// Says on stderr what the kernel side could not record.
pub fn report_losses(probes: &ProbeSet) {
    let lost = probes.stack_stat(Stat::StackLost);
    let full = probes.stack_stat(Stat::StackMapFull) + probes.stack_stat(Stat::LeakMapFull);
    let samples = probes.stack_stat(Stat::StackSamples);
    if lost > 0 || full > 0 {
        eprintln!(
            "memmon: of {samples} samples, {lost} stacks could not be walked or stored and {full} \
             were dropped because a map was full"
        );
    }
}

/// Whom `--pid` (repeatable) or `--cgroup` select.
pub fn target(pids: &[u32], cgroup: Option<&Path>) -> Result<Target, Fatal> {
    if let Some(path) = cgroup {
        return cgroup_id(path).map(Target::Cgroup);
    }
    if pids.is_empty() {
        return Ok(Target::All);
    }
    for pid in pids {
        check_pid(*pid)?;
    }
    Ok(Target::Pids(pids.to_vec()))
}

/// Fails with a clear message when process `pid` does not exist.
pub fn check_pid(pid: u32) -> Result<(), Fatal> {
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Fatal::Usage(format!(
            "--pid {pid}: no such process (/proc/{pid} does not exist)"
        )));
    }
    Ok(())
}

/// The cgroup v2 id of `path` (the inode of its directory).
fn cgroup_id(path: &Path) -> Result<u64, Fatal> {
    let full: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(CGROUP_ROOT).join(path)
    };
    let meta = std::fs::metadata(&full).map_err(|e| {
        Fatal::Usage(format!(
            "--cgroup {}: cannot open {}: {e} (give a cgroup v2 directory, e.g. \
             /sys/fs/cgroup/system.slice/foo.service)",
            path.display(),
            full.display()
        ))
    })?;
    if !meta.is_dir() || !full.join("cgroup.procs").exists() {
        return Err(Fatal::Usage(format!(
            "--cgroup {}: {} is not a cgroup directory (no cgroup.procs)",
            path.display(),
            full.display()
        )));
    }
    Ok(meta.ino())
}

/// Whom `target` selects, in words.
pub fn describe(target: &Target) -> String {
    match target {
        Target::All => "every process".into(),
        Target::Pids(p) => format!(
            "pid {}",
            p.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
        Target::Cgroup(id) => format!("cgroup id {id}"),
    }
}

/// Writes `profile` in `format` to `output` (stdout when None).
pub fn write_output(
    profile: &Profile,
    format: ProfileFormat,
    output: Option<&Path>,
    top: usize,
    title: &str,
    started: SystemTime,
) -> Result<(), Fatal> {
    let bytes = match format {
        ProfileFormat::Text => sinks::profile::table(profile, top).into_bytes(),
        ProfileFormat::Folded => sinks::profile::folded(profile).into_bytes(),
        ProfileFormat::Pprof => {
            let nanos = started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            sinks::pprof::encode(profile, nanos)
        }
        ProfileFormat::Svg => {
            if profile.stacks.iter().all(|s| s.weight <= 0) {
                return Err(Fatal::Other(anyhow::anyhow!(
                    "no stacks were sampled: nothing to draw (did the process run during the \
                     profile? is --pid right?)"
                )));
            }
            let mut out = Vec::new();
            sinks::flamegraph::svg(profile, title, &mut out).context("drawing the flame graph")?;
            out
        }
    };
    write_bytes(&bytes, output)?;
    if format != ProfileFormat::Text {
        let head: String = sinks::profile::table(profile, 0)
            .lines()
            .take(2)
            .map(|l| format!("memmon: {l}\n"))
            .collect();
        eprint!("{head}");
    }
    Ok(())
}

/// Writes `bytes` to `output` (stdout when None; a closed pipe is not an
/// error: the reader is gone).
fn write_bytes(bytes: &[u8], output: Option<&Path>) -> Result<(), Fatal> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(bytes).and_then(|()| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(Fatal::Other(
                    anyhow::Error::new(e).context("writing stdout"),
                ));
            }
        }
    }
    Ok(())
}
