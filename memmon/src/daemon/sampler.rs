//! The daemon's sampling loop, on its own thread: drain exit and OOM events
//! often (so the ring buffer never fills), and every interval read the
//! kernel maps and scan /proc into the model, publish a copy for the HTTP
//! side, fold exited processes into their cgroup totals, and ping the
//! systemd watchdog.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::published::{Notice, Published, Shared, unix_ms};
use crate::{
    collector::Collector,
    model::Model,
    procfs::{
        ProcRoot,
        cost_guard::{CostGuard, GuardSettings},
        identity, numa,
    },
};

/// How often events are drained between samples.
const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// Notices kept for /api/v1/events.
const MAX_NOTICES: usize = 256;
/// Largest processes whose recent samples the flight recorder keeps.
const RECORDED_PROCESSES: usize = 100;

/// Settings the sampler re-reads each pass (SIGHUP may change them).
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Seconds between samples.
    pub interval: Duration,
}

/// Runs until `stop` is set. `first_pass` is signalled after the first
/// publication (the daemon then tells systemd it is ready).
pub fn run(
    mut collector: Collector,
    mut model: Model,
    shared: Shared,
    settings: Arc<RwLock<LiveSettings>>,
    stop: Arc<AtomicBool>,
    first_pass: std::sync::mpsc::Sender<()>,
) {
    let root = ProcRoot::default();
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut last_ping = Instant::now();
    let mut notices: Vec<Notice> = model
        .probes
        .iter()
        .filter_map(|p| match &p.state {
            crate::probes::ProbeState::Unavailable { reason } => Some(Notice {
                kind: "probe_status",
                unix_ms: unix_ms(),
                message: format!("probe {} unavailable: {reason}", p.name),
            }),
            _ => None,
        })
        .collect();
    let mut samples = 0u64;
    let mut first = Some(first_pass);
    let mut prev_lost = 0u64;
    let mut pending = Vec::new();
    let mut guard = CostGuard::new(GuardSettings::default());
    let cpu_node = numa::cpu_nodes(&numa::SysNodeRoot::default());
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let interval = settings
            .read()
            .map(|s| s.interval)
            .unwrap_or(Duration::from_secs(1));
        let sample = collector.collect(std::mem::take(&mut pending), &root);
        let ooms_before = model.oom_kills_total;
        model.apply(sample, &root);
        let new_ooms = (model.oom_kills_total - ooms_before) as usize;
        for kill in model.recent_ooms.iter().rev().take(new_ooms) {
            let trail: Vec<String> = kill
                .history
                .iter()
                .map(|h| format!("{}MiB", h.rss_bytes.unwrap_or(0) >> 20))
                .collect();
            tracing::warn!(
                pid = kill.pid,
                comm = %kill.comm,
                cgroup = kill.cgroup.as_deref().unwrap_or("?"),
                anon_rss_kb = kill.anon_rss_kb,
                rss_history = %trail.join(" "),
                "OOM kill"
            );
        }
        model.apply_scan(identity::scan(&root), &root);
        crate::collector::collect_memory(&mut model, &mut guard, &root, &cpu_node, interval);
        model.record_history(RECORDED_PROCESSES, unix_ms());
        samples += 1;
        let lost = model.stats.events_lost + model.stats.oom_events_lost;
        if lost > prev_lost {
            let msg = format!("{} ring-buffer events lost since start", lost);
            tracing::warn!("{msg}");
            push_notice(
                &mut notices,
                Notice {
                    kind: "events_lost",
                    unix_ms: unix_ms(),
                    message: msg,
                },
            );
            prev_lost = lost;
        }
        let mut published = Published::from_model(&model);
        published.notices = notices.clone();
        published.sample_seconds = started.elapsed().as_secs_f64();
        published.samples_total = samples;
        let (rss, cpu) = self_usage();
        published.self_rss_bytes = rss;
        published.self_cpu_seconds = cpu;
        if let Ok(mut g) = shared.write() {
            *g = Arc::new(published);
        }
        model.fold_exited();
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        if let Some(w) = watchdog
            && last_ping.elapsed() >= w
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            last_ping = Instant::now();
        }
        // Sleep until the next pass, draining events meanwhile.
        let deadline = started + interval;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(DRAIN_EVERY.min(deadline - now));
            collector.drain_exits(&mut pending);
        }
    }
    tracing::info!("sampler stopped after {samples} passes");
}

fn push_notice(notices: &mut Vec<Notice>, n: Notice) {
    if notices.len() == MAX_NOTICES {
        notices.remove(0);
    }
    notices.push(n);
}

/// memmon's own resident bytes and CPU seconds, from /proc/self/stat.
fn self_usage() -> (u64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0, 0.0);
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0, 0.0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After comm: field 3 is index 0; utime 14, stime 15, rss 24.
    let get = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = identity::ticks_per_second() as f64;
    (
        get(24) * identity::page_size(),
        (get(14) + get(15)) as f64 / ticks,
    )
}
