//! The daemon's sampling loop, on its own thread: a [`Pipeline`] pass every
//! interval, published for the HTTP side, events drained in between (so the
//! ring buffer never fills), and the systemd watchdog pinged while passes
//! keep coming; each publication is recorded in the recent history (for
//! `/api/v1/history`) and, with `--record`, handed to the store's recorder
//! thread (never waited for).

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::model::{explain::history::History, published::Shared};
use crate::pipeline::Pipeline;

/// How often events are drained between samples.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Settings the sampler re-reads each pass (SIGHUP may change them).
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Seconds between samples.
    pub interval: Duration,
    /// Share of one core the probes may take (0: no budget).
    pub probe_cpu_budget: f64,
}

/// Where each publication goes.
pub struct Outputs {
    /// The latest publication, for the HTTP side.
    pub shared: Shared,
    /// The recent history (`/api/v1/history`, `explain --connect`).
    pub history: Arc<RwLock<History>>,
    /// The store's recorder, with `--record`.
    pub recorder: Option<crate::store::recorder::Recorder>,
}

/// Runs until `stop` is set. `first_pass` is signalled after the first
/// publication (the daemon then tells systemd it is ready).
pub fn run(
    mut pipeline: Pipeline,
    outputs: Outputs,
    settings: Arc<RwLock<LiveSettings>>,
    stop: Arc<AtomicBool>,
    first_pass: std::sync::mpsc::Sender<()>,
) {
    let Outputs {
        shared,
        history,
        recorder,
    } = outputs;
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    // Test-only: never ping the watchdog, so systemd's restart on a missed
    // ping can be tested (the systemd lane, `cargo xtask vm-test --systemd`).
    let stall_watchdog = std::env::var_os("MEMMON_TEST_STALL_WATCHDOG").is_some_and(|v| v == "1");
    if stall_watchdog && watchdog.is_some() {
        tracing::warn!("MEMMON_TEST_STALL_WATCHDOG=1: not pinging the systemd watchdog");
    }
    let mut last_ping = Instant::now();
    let mut first = Some(first_pass);
    let mut passes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let (interval, budget) = settings
            .read()
            .map(|s| (s.interval, s.probe_cpu_budget))
            .unwrap_or((Duration::from_secs(1), 0.0));
        pipeline.set_probe_budget(budget);
        let published = pipeline.pass(interval);
        passes += 1;
        let published = Arc::new(published);
        if let Some(r) = &recorder {
            r.offer(Arc::clone(&published));
        }
        if let Ok(mut h) = history.write() {
            h.record(&published);
        }
        if let Ok(mut g) = shared.write() {
            *g = published;
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        if let Some(w) = watchdog
            && !stall_watchdog
            && last_ping.elapsed() >= w
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            last_ping = Instant::now();
        }
        let deadline = started + interval;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(DRAIN_EVERY.min(deadline - now));
            pipeline.drain();
        }
    }
    tracing::info!("sampler stopped after {passes} passes");
}
