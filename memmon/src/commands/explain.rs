//! `memmon explain PID | --cgroup PATH | --unit NAME`: gathers the target's
//! evidence from one of three sources — live (memmon's own probes and the
//! daemon's pipeline, a pass every `--interval` for `--duration`), a
//! daemon's history (`--connect`), or a recording (`--store --at
//! --window`) — runs the findings engine on it, prints the report and
//! returns its exit status (0 nothing at warning or worse, 3 a warning, 4
//! critical).

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::{
    cli::ExplainArgs,
    clock::unix_ms,
    collector::Collector,
    commands::snapshot::load_options,
    error::Fatal,
    model::{
        Model,
        explain::{self, Builder, Evidence, Target, evidence::GrowthStack, thresholds},
    },
    pipeline::Pipeline,
    privileges,
    probes::ProbeSet,
    procfs::cost_guard::GuardSettings,
    sinks::explain as render,
    store::{reader::Store, time},
};

/// Longest live window accepted.
const MAX_DURATION_SECS: f64 = 3600.0;
/// How often kernel events are drained between passes.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Runs the command; returns its exit status.
pub fn run(args: &ExplainArgs) -> Result<u8, Fatal> {
    if args.thresholds {
        print!("{}", thresholds::markdown_table());
        return Ok(0);
    }
    if let Some(which) = &args.oom {
        let source =
            super::incidents::Source::resolve(args.connect.as_deref(), args.store.as_deref())?;
        super::incidents::explain_oom(&source, which, args.json)?;
        return Ok(0);
    }
    let target = target(args)?;
    let evidence = match (&args.connect, &args.store) {
        (Some(url), _) => from_daemon(args, url, &target)?,
        (None, Some(dir)) => from_store(args, dir, &target)?,
        (None, None) => live(args, &target)?,
    };
    let report = explain::explain(&evidence);
    let out = if args.json {
        render::json(&report)
    } else {
        render::text(&report)
    };
    println!("{out}");
    Ok(report.exit_code())
}

/// The target the flags name.
fn target(args: &ExplainArgs) -> Result<Target, Fatal> {
    match (args.pid, &args.cgroup, &args.unit) {
        (Some(pid), None, None) => Ok(Target::Pid(pid)),
        (None, Some(cg), None) => Ok(Target::Cgroup(cg.clone())),
        (None, None, Some(unit)) => Ok(Target::Unit(unit.clone())),
        _ => Err(Fatal::Usage(
            "explain: name one target: a PID, --cgroup PATH or --unit NAME \
             (e.g. `memmon explain 1234`); `memmon explain --thresholds` lists what it judges by"
                .into(),
        )),
    }
}

fn not_found(e: explain::evidence::NotFound, how: &str) -> Fatal {
    Fatal::Usage(format!("explain: {e}{how}"))
}

/// Live: memmon's own probes, a pipeline pass every interval.
fn live(args: &ExplainArgs, target: &Target) -> Result<Evidence, Fatal> {
    if !args.duration.is_finite() || !(0.0..=MAX_DURATION_SECS).contains(&args.duration) {
        return Err(Fatal::Usage(format!(
            "--duration {} is out of range: give 0 to {MAX_DURATION_SECS} seconds",
            args.duration
        )));
    }
    if !args.interval.is_finite() || !(0.1..=60.0).contains(&args.interval) {
        return Err(Fatal::Usage(format!(
            "--interval {} is out of range: give 0.1 to 60 seconds",
            args.interval
        )));
    }
    if let Target::Pid(pid) = target
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(Fatal::Usage(format!(
            "explain: pid {pid} is not running (for a process that is gone, use --store DIR --at TIME \
             on a recording, or --connect to a daemon)"
        )));
    }
    let mut opts = load_options(&args.probe_args)?;
    if args.profile {
        let Target::Pid(_) = target else {
            return Err(Fatal::Usage(
                "--profile samples one process's stacks: give a PID (for a cgroup, run \
                 `memmon profile --cgroup PATH`)"
                    .into(),
            ));
        };
        opts.stack_entries = Some(crate::probes::stack_drain::DAEMON_STACK_ENTRIES);
    }
    privileges::check().map_err(Fatal::Privileges)?;
    let mut probes = ProbeSet::load(&opts).context("loading probes")?;
    let mut profile = if args.profile {
        Some(super::top_profile::TopProfile::start(
            &mut probes,
            args.profile_period,
        )?)
    } else {
        None
    };
    let model = Model::new(probes.statuses().to_vec(), crate::collector::host());
    let interval = Duration::from_secs_f64(args.interval);
    // The target's memory (PSS, oom_score, NUMA) read every pass, and
    // everyone's once early (the oom_score rank).
    let mut pipeline = Pipeline::new(Collector::new(probes), model)
        .with_task_iter()
        .with_guard(GuardSettings {
            base_interval: interval,
            cpu_share: 0.25,
            ..GuardSettings::default()
        });
    super::stop_signal::install();
    let mut builder = Builder::new(target.clone(), "live");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    eprintln!(
        "memmon: probes attached; watching {target} for {} s",
        args.duration
    );
    loop {
        let started = Instant::now();
        let focus = builder.focus();
        pipeline.set_focus((!focus.is_empty()).then_some(focus));
        // Dated when the pass began, when the kernel's counters were read:
        // a pass's end is later by its work (the first reads every
        // process), and counter rates would be taken over too short a time.
        let began = unix_ms();
        let mut published = pipeline.pass(interval);
        published.unix_ms = began;
        builder.push_published(&published);
        if started >= end || super::stop_signal::requested() {
            break;
        }
        let next = (started + interval).min(end);
        while Instant::now() < next && !super::stop_signal::requested() {
            std::thread::sleep(DRAIN_EVERY.min(next.saturating_duration_since(Instant::now())));
            pipeline.drain();
            if let Some(p) = &mut profile {
                p.drain();
            }
        }
    }
    let mut ev = builder.finish().map_err(|e| not_found(e, ""))?;
    if let (Some(p), Target::Pid(pid)) = (&mut profile, target) {
        p.drain();
        let stacks = p.stacks(*pid);
        ev.stacks = stacks
            .lines
            .into_iter()
            .map(|l| GrowthStack {
                frames: l.frames,
                weight: l.faults as f64,
                what: format!("page faults in {} s", stacks.seconds),
            })
            .collect();
        if ev.stacks.is_empty() {
            ev.stacks_missing = Some(format!(
                "no page-fault stack sampled (one per {} faults) in the window",
                args.profile_period
            ));
        }
    }
    Ok(ev)
}

/// From a recording: the frames in [at - window, at].
fn from_store(
    args: &ExplainArgs,
    dir: &std::path::Path,
    target: &Target,
) -> Result<Evidence, Fatal> {
    let now = unix_ms();
    let window = window(args)?;
    let at = match &args.at {
        Some(t) => time::parse(t, now).map_err(|m| Fatal::Usage(format!("--at {m}")))?,
        None => u64::MAX,
    };
    let from = at.saturating_sub(window);
    let store = Store::open(dir, Some((from, at))).map_err(|e| Fatal::Usage(e.to_string()))?;
    // Without --at: the end of the recording.
    let (from, at) = if args.at.is_none() {
        let last = store.frames.last().map_or(0, |f| f.unix_ms);
        (last.saturating_sub(window), last)
    } else {
        (from, at)
    };
    let mut builder = Builder::new(target.clone(), "store");
    let mut read = 0;
    for i in store.range(from, at).collect::<Vec<_>>() {
        match store.frame(i) {
            Ok(v) => {
                builder.push_json(&v);
                read += 1;
            }
            Err(e) => eprintln!("memmon: {e}"),
        }
    }
    if read == 0 {
        let (first, last) = (
            store.frames.first().map_or(0, |f| f.unix_ms),
            store.frames.last().map_or(0, |f| f.unix_ms),
        );
        return Err(Fatal::Usage(format!(
            "--at {}: the recording in {} has no frame between {} and {} (it spans {} to {}); \
             pick a time in it or widen --window",
            args.at.as_deref().unwrap_or("(end)"),
            dir.display(),
            time::format(from),
            time::format(at.min(now)),
            time::format(first),
            time::format(last)
        )));
    }
    builder.finish().map_err(|e| {
        not_found(
            e,
            &format!(" of the recording before {}", time::format(at.min(now))),
        )
    })
}

/// From a daemon: its recent history of the target.
fn from_daemon(args: &ExplainArgs, url: &str, target: &Target) -> Result<Evidence, Fatal> {
    let addr = super::daemon_client::connect_addr(url)?;
    let seconds = window(args)? / 1000;
    let q = super::daemon_client::query_value;
    let which = match target {
        Target::Pid(pid) => format!("pid={pid}"),
        Target::Cgroup(c) => format!("cgroup={}", q(c)),
        Target::Unit(u) => format!("unit={}", q(u)),
    };
    let v = super::daemon_client::get_json(
        &addr,
        &format!("/api/v1/history?{which}&seconds={seconds}"),
    )
    .map_err(Fatal::Other)?;
    let mut builder = Builder::new(target.clone(), "daemon");
    for f in v
        .get("frames")
        .and_then(|f| f.as_array())
        .into_iter()
        .flatten()
    {
        builder.push_json(f);
    }
    let mut ev = builder
        .finish()
        .map_err(|e| not_found(e, &format!(" of the daemon at {addr}")))?;
    ev.stacks = v
        .get("stacks")
        .and_then(|s| serde_json::from_value::<Vec<GrowthStack>>(s.clone()).ok())
        .unwrap_or_default();
    ev.stacks_missing = v
        .get("stacks_missing")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    if ev.frames.len() < 3 {
        ev.notes.push(format!(
            "trend and rates: the daemon's history holds {} sample(s) of this target (it keeps the \
             100 largest processes, each cgroup's 3 highest oom_scores and every cgroup); \
             `memmon explain` without --connect watches it live",
            ev.frames.len()
        ));
    }
    Ok(ev)
}

/// `--window` in ms.
fn window(args: &ExplainArgs) -> Result<u64, Fatal> {
    let d = humantime::parse_duration(&args.window).map_err(|e| {
        Fatal::Usage(format!(
            "--window {}: {e}; write e.g. 2m or 90s",
            args.window
        ))
    })?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err(Fatal::Usage(format!(
            "--window {}: give more than 0 and at most 24h",
            args.window
        )));
    }
    Ok(d.as_millis() as u64)
}
