//! `memmon events`: streams events that must not be aggregated (OOM kills)
//! as they happen, one line each, plus probe states at start and ring-buffer
//! losses when they occur, until Ctrl-C, SIGTERM or `--duration` ends.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use memmon_common::names::probe;

use crate::{
    cli::EventsArgs,
    collector::Collector,
    commands::snapshot::load_options,
    error::Fatal,
    model::OomKill,
    privileges,
    probes::{ProbeSet, ProbeState},
    procfs::ProcRoot,
    sinks::events as sink,
};

/// How often the ring buffer is drained (bounds the event latency).
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often loss counters are checked.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the command.
pub fn run(args: &EventsArgs) -> Result<(), Fatal> {
    if let Some(d) = args.duration
        && (!d.is_finite() || d < 0.0)
    {
        return Err(Fatal::Usage(format!(
            "--duration {d} is out of range: give seconds >= 0"
        )));
    }
    if let Some(dir) = &args.cgroup_root
        && let Err(e) = crate::cgroupfs::CgroupRoot::detect_at(dir)
    {
        return Err(Fatal::Usage(format!("--cgroup-root: {e}")));
    }
    let mut opts = load_options(&args.probe_args)?;
    // OOM kills and exits travel through the ring buffer: nothing else is
    // needed to stream them (oom_constraint tells which limit each OOM kill
    // hit).
    opts.only = Some((
        &[
            probe::OOM_CONSTRAINT,
            probe::OOM_KILL,
            probe::KILL_SIGNAL,
            probe::PROCESS_EXIT,
        ],
        "`memmon events`",
    ));
    privileges::check().map_err(Fatal::Privileges)?;
    let probes = ProbeSet::load(&opts).context("loading probes")?;
    super::stop_signal::install();
    let mut out = std::io::stdout().lock();
    for status in probes.statuses() {
        let unneeded = matches!(&status.state, ProbeState::Disabled { reason } if reason.starts_with("not needed"));
        if !matches!(status.state, ProbeState::Attached) && !unneeded {
            let _ = writeln!(out, "{}", sink::probe_status(status, args.json));
        }
    }
    if !probes.is_attached(probe::OOM_KILL) {
        eprintln!("memmon: the oom_kill probe is not attached: no OOM kills will be reported");
    }
    let root = ProcRoot::default();
    let mut collector = Collector::new(probes);
    if let Some(dir) = &args.cgroup_root {
        collector = collector.with_cgroup_root(dir);
    }
    let (mut oom_lost, mut exit_lost) = collector
        .stats()
        .map_or((0, 0), |s| (s.oom_events_lost, s.events_lost));
    eprintln!("memmon: probes attached; streaming events");
    let _ = out.flush();

    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut next_stats = Instant::now() + STATS_INTERVAL;
    let mut exits = Vec::new();
    let mut oom_victims: std::collections::VecDeque<u32> = Default::default();
    while !super::stop_signal::requested() {
        if !stream(
            &mut collector,
            &mut exits,
            &root,
            &mut oom_victims,
            &mut out,
            args.json,
        ) {
            return Ok(()); // stdout closed: the reader is gone.
        }
        let now = Instant::now();
        if now >= next_stats {
            next_stats = now + STATS_INTERVAL;
            if let Some(s) = collector.stats()
                && (s.oom_events_lost > oom_lost || s.events_lost > exit_lost)
            {
                let line = sink::lost(
                    s.oom_events_lost - oom_lost,
                    s.events_lost.saturating_sub(exit_lost),
                    args.json,
                );
                (oom_lost, exit_lost) = (s.oom_events_lost, s.events_lost);
                eprintln!("memmon: {}", sink::lost(oom_lost, exit_lost, false));
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    // Last drain: nothing that arrived before the stop is dropped.
    stream(
        &mut collector,
        &mut exits,
        &root,
        &mut oom_victims,
        &mut out,
        args.json,
    );
    Ok(())
}

/// Writes the OOM kills and SIGKILLs drained now, one line each (the OOM
/// killer's own SIGKILL is the OOM kill line); false when stdout closed.
fn stream(
    collector: &mut Collector,
    exits: &mut Vec<memmon_common::ExitEvent>,
    root: &ProcRoot,
    oom_victims: &mut std::collections::VecDeque<u32>,
    out: &mut impl std::io::Write,
    json: bool,
) -> bool {
    let mut ok = true;
    for record in collector.drain_oom_records(exits, root) {
        let kill = OomKill::from_record(record, crate::procfs::identity::page_size());
        if oom_victims.len() == 256 {
            oom_victims.pop_front();
        }
        oom_victims.push_back(kill.pid);
        ok &= writeln!(out, "{}", sink::oom_kill(&kill, json)).is_ok();
    }
    exits.clear();
    for record in collector.kill_signal_records(root) {
        if crate::model::oom::is_oom_killers_sigkill(
            record.signal.code,
            record.signal.target_pid,
            |pid| oom_victims.contains(&pid),
        ) {
            continue;
        }
        let cause = crate::model::oom::sigkill_cause(record.signal.code);
        let rss = crate::procfs::identity::read(root, record.signal.target_pid)
            .ok()
            .map(|id| id.rss_pages * crate::procfs::identity::page_size());
        let kill = crate::model::SignalKill::from_record(record, cause, rss);
        ok &= writeln!(out, "{}", sink::sigkill(&kill, json)).is_ok();
    }
    ok &= out.flush().is_ok();
    ok
}
