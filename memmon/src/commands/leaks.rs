//! `memmon leaks`: leak suspects for any allocator. By default the
//! resident mode: the page-fault sampler (no allocator is traced, no
//! uprobe attached) sends each sampled fault's address; every --interval
//! the sampled pages are checked in /proc/PID/pagemap (`procfs::pagemap`)
//! and those released, unmapped or of a process gone are dropped
//! (`model::resident`); the period is chosen again from the fault rates
//! (`model::resident::choose_period`). At the end the stacks still holding
//! memory are named and written like `memmon profile` writes. `--exact`
//! runs the uprobe mode (`leaks_exact`).

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;

use crate::{
    cli::LeaksArgs,
    error::Fatal,
    model::{
        profile::Profile,
        profile_window::Filter,
        resident::{ResidentTable, choose_period},
    },
    privileges,
    probes::{ProbeSet, fault_events::FaultEvents, resident::ResidentReader},
    procfs::pagemap::Pagemaps,
    sample::stacks::StackEvent,
    symbols::Symbols,
};

use super::profile::{
    check_duration, describe, load_stack_probes, report_losses, target, write_output,
};

/// How often the ring buffer is read between checks.
const READ_EVERY: Duration = Duration::from_millis(100);

/// Runs the command.
pub fn run(args: &LeaksArgs) -> Result<(), Fatal> {
    if args.exact {
        return super::leaks_exact::run(args);
    }
    check_duration(args.duration)?;
    if args.period == 0 {
        return Err(Fatal::Usage(
            "--period 0 is out of range: give the page faults per sample (>= 1)".into(),
        ));
    }
    if !args.interval.is_finite() || args.interval < 0.05 {
        return Err(Fatal::Usage(format!(
            "--interval {} is out of range: give seconds >= 0.05",
            args.interval
        )));
    }
    if args.pid.is_empty() && args.cgroup.is_none() {
        return Err(Fatal::Usage(
            "give the processes to watch: --pid PID (repeatable) or --cgroup PATH".into(),
        ));
    }
    let target = target(&args.pid, args.cgroup.as_deref())?;
    privileges::check().map_err(Fatal::Privileges)?;
    let mut probes = load_stack_probes("`memmon leaks`")?;
    probes
        .set_stack_target(&target, 1)
        .context("setting the targets")?;
    let reader = probes
        .start_resident()
        .context("opening the resident samples")?;
    let events = probes
        .attach_fault_sampler(args.period)
        .context("attaching the page-fault sampler")?;
    super::stop_signal::install();
    let started = SystemTime::now();
    let begin = Instant::now();
    let who = describe(&target);
    eprintln!(
        "memmon: probes attached; resident mode for {who}: page faults sampled (one per {} to \
         start, then following the fault rate), pages checked every {} s; no allocator traced; \
         Ctrl-C to stop",
        args.period, args.interval
    );
    let page_size = crate::procfs::identity::page_size();
    let mut run = Run {
        probes,
        reader,
        events,
        table: ResidentTable::new(page_size, 0),
        pagemaps: Pagemaps::new("/proc", page_size),
        frames: HashMap::new(),
        periods: (args.period, args.period),
        samples: 0,
        samples_at_adapt: 0,
        faults: system_faults(),
    };
    let deadline = args.duration.map(|d| begin + Duration::from_secs_f64(d));
    let interval = Duration::from_secs_f64(args.interval);
    let mut next_check = begin + interval;
    loop {
        let now = Instant::now();
        if super::stop_signal::requested() || deadline.is_some_and(|d| now >= d) {
            break;
        }
        run.read();
        if now >= next_check {
            run.check(begin.elapsed().as_secs());
            run.adapt(interval.as_secs_f64());
            next_check += interval;
        }
        let mut sleep = READ_EVERY.min(next_check.saturating_duration_since(Instant::now()));
        if let Some(d) = deadline {
            sleep = sleep.min(d.saturating_duration_since(Instant::now()));
        }
        std::thread::sleep(sleep);
    }
    // The last samples, then one more check: what is held at the end.
    run.read();
    let elapsed = begin.elapsed();
    run.check(elapsed.as_secs().max(1));
    let selection = run
        .table
        .select(elapsed.as_secs().max(1), u64::MAX, &Filter::All);
    let periods = selection.periods;
    let raw: Vec<_> = selection.rows.into_iter().map(|r| r.sample).collect();
    let named = Symbols::new().name(&raw);
    report_losses(&run.probes);
    let lost = run.probes.stack_stat(memmon_common::Stat::ResidentLost);
    if lost > 0 {
        eprintln!("memmon: {lost} sampled faults were lost (the resident ring buffer was full)");
    }
    let (low, high) = run.periods;
    eprintln!(
        "memmon: {} faults sampled; period {low} to {high} (at the end {}); {} sampled pages \
         still held",
        run.samples,
        run.period(),
        run.table.pages()
    );
    let profile = Profile::build(
        StackEvent::Resident,
        run.period(),
        elapsed.as_secs_f64(),
        &named,
    )
    .with_periods(periods);
    let title = format!("memmon leaks: resident memory by first-touch stack, {who}");
    write_output(
        &profile,
        args.format,
        args.output.as_deref(),
        args.top,
        &title,
        started,
    )
}

/// The running resident mode.
struct Run {
    probes: ProbeSet,
    reader: ResidentReader,
    /// The sampler's perf events (a new period reopens them).
    events: FaultEvents,
    table: ResidentTable,
    pagemaps: Pagemaps,
    /// Frames of each stack hash read so far (a hash names the same
    /// frames forever; the one-shot command never deletes stacks).
    frames: HashMap<u64, Vec<u64>>,
    /// The lowest and highest period used.
    periods: (u64, u64),
    /// Samples read.
    samples: u64,
    /// `samples` at the last period choice.
    samples_at_adapt: u64,
    /// The system's page faults at the last period choice.
    faults: Option<u64>,
}

impl Run {
    fn period(&self) -> u64 {
        self.events.period()
    }

    /// Moves the samples sent since the last read into the table.
    fn read(&mut self) {
        let (probes, frames) = (&self.probes, &mut self.frames);
        let pages = self.reader.read(|hash| {
            frames
                .entry(hash)
                .or_insert_with(|| probes.stack_frames(hash))
                .clone()
        });
        self.samples += pages.len() as u64;
        for p in &pages {
            self.table.add(p, None);
        }
    }

    /// Checks every sampled page and records the outstanding bytes.
    fn check(&mut self, second: u64) {
        let pagemaps = &mut self.pagemaps;
        self.table
            .check(second, |tgid, pages| pagemaps.read(tgid, pages));
        let alive = self.table.tgids();
        pagemaps.retain(|p| alive.contains(&p));
    }

    /// Chooses the period for the next interval from this one's fault
    /// rates (the targets' estimated from their samples, the system's from
    /// /proc/vmstat) and sets it on the running events when it changes.
    fn adapt(&mut self, seconds: f64) {
        let before = std::mem::replace(&mut self.samples_at_adapt, self.samples);
        let period = self.period();
        let target_rate = (self.samples - before) as f64 * period as f64 / seconds;
        let now = system_faults();
        let all_rate = match (self.faults, now) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / seconds,
            _ => 0.0,
        };
        self.faults = now;
        let next = choose_period(target_rate, all_rate);
        if next == period {
            return;
        }
        match self.events.set_period(next) {
            Ok(()) => {
                tracing::debug!(
                    "resident mode: period {period} -> {next} (targets {target_rate:.0} faults/s, \
                     all {all_rate:.0})"
                );
                self.periods = (self.periods.0.min(next), self.periods.1.max(next));
            }
            // The events keep their old period: the samples stay right.
            Err(e) => tracing::warn!("resident mode: changing the period to {next} failed: {e}"),
        }
    }
}

/// The system's page faults so far (`pgfault` in /proc/vmstat).
fn system_faults() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("pgfault "))
        .and_then(|v| v.trim().parse().ok())
}
