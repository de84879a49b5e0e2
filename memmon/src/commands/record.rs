//! `memmon record DIR`: samples as the daemon does (its own probes, the
//! same pipeline) and appends every pass to the store in DIR, until Ctrl-C,
//! SIGTERM or `--duration`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    cli::RecordArgs,
    collector::Collector,
    commands::{snapshot::load_options, stop_signal},
    config::{parse_age, parse_size},
    error::Fatal,
    model::Model,
    pipeline::Pipeline,
    privileges,
    probes::ProbeSet,
    store::{recorder::Recorder, writer::WriterSettings},
};

/// How often kernel events are drained between passes.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Runs the command.
pub fn run(args: &RecordArgs) -> Result<(), Fatal> {
    if !args.interval.is_finite() || !(0.05..=3600.0).contains(&args.interval) {
        return Err(Fatal::Usage(format!(
            "--interval {} is out of range: give 0.05 to 3600 seconds",
            args.interval
        )));
    }
    let max_bytes =
        parse_size(&args.max_bytes).map_err(|m| Fatal::Usage(format!("--max-bytes: {m}")))?;
    let max_age = parse_age(&args.max_age).map_err(|m| Fatal::Usage(format!("--max-age: {m}")))?;
    let duration = match args.duration {
        Some(d) if !d.is_finite() || d < 0.0 => {
            return Err(Fatal::Usage(format!(
                "--duration {d}: give a number of seconds (0 or more)"
            )));
        }
        Some(d) => Some(Duration::from_secs_f64(d)),
        None => None,
    };
    let opts = load_options(&args.probe_args)?;
    privileges::check().map_err(Fatal::Privileges)?;
    let recorder = Recorder::start(WriterSettings {
        max_bytes,
        max_age,
        ..WriterSettings::new(args.dir.clone())
    })
    .map_err(|e| Fatal::Usage(format!("{e}; give a writable directory")))?;
    let probes = ProbeSet::load(&opts).context("loading probes")?;
    crate::pipeline::tune_heap();
    // The daemon's default history, so the post-mortems of the kills it
    // records have the victim's and its cgroup's last minutes.
    let model = Model::new(probes.statuses().to_vec(), crate::collector::host())
        .with_history(crate::config::Config::default().history_seconds);
    let mut pipeline = Pipeline::new(Collector::new(probes), model).with_task_iter();
    stop_signal::install();
    let interval = Duration::from_secs_f64(args.interval);
    let begun = Instant::now();
    eprintln!(
        "memmon: probes attached; recording into {} every {} s",
        args.dir.display(),
        args.interval
    );
    while !stop_signal::requested() && duration.is_none_or(|d| begun.elapsed() < d) {
        let started = Instant::now();
        recorder.offer(Arc::new(pipeline.pass(interval)));
        let deadline = started + interval;
        while !stop_signal::requested() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(DRAIN_EVERY.min(deadline - now));
            pipeline.drain();
        }
    }
    if recorder.dropped() > 0 {
        tracing::warn!("{} frames not recorded (disk behind)", recorder.dropped());
    }
    Ok(())
}
