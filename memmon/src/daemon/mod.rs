//! `memmon daemon`: the long-running service. Order of start-up: config
//! (errors exit 2), bind the listener (port in use exits 2), privileges,
//! probes, first sample, then READY=1 to systemd. SIGTERM/SIGINT stop
//! cleanly (probes detached, pinned maps kept); SIGHUP reloads the config.

pub mod basic_auth;
pub mod conn_cap;
pub mod counter_state;
pub mod gzip;
pub mod history;
pub mod http;
pub mod incident_extras;
pub mod incidents;
pub mod listener;
pub mod profile;
pub mod profile_query;
pub mod sampler;
pub mod snapshot_cache;
pub mod stall_io;
pub mod web_config;

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    cli::DaemonArgs,
    collector::Collector,
    config::{self, Config},
    error::Fatal,
    model::Model,
    pipeline::Pipeline,
    privileges,
    probes::{LoadOptions, ProbeSet},
    sinks::prometheus::{CgroupAdmission, RenderSettings},
};

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: &DaemonArgs) -> Result<(), Fatal> {
    let cfg = config::load(args.config.as_deref(), &args.overrides())
        .map_err(|e| Fatal::Usage(e.to_string()))?;
    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| {
        Fatal::Usage(format!(
            "cannot listen on {}: {e}; choose another address with --listen or `listen` in the config file",
            cfg.listen
        ))
    })?;
    listener
        .set_nonblocking(true)
        .context("setting the listener non-blocking")?;
    listener::set_backlog(&listener).context("setting the listener's backlog")?;
    let web = load_web(&cfg).map_err(|e| Fatal::Usage(e.to_string()))?;
    check_proc_root(&cfg).map_err(|e| Fatal::Usage(e.to_string()))?;
    check_cgroup_root(&cfg).map_err(|e| Fatal::Usage(e.to_string()))?;
    privileges::check().map_err(Fatal::Privileges)?;
    // Raised before anything keeps files open; shared out from here on.
    let files = crate::fd_budget::limit();

    let opts = LoadOptions {
        fault_detail: cfg.fault_detail,
        alloc_detail: cfg.alloc_detail,
        disabled: cfg.disabled_probes.iter().cloned().collect(),
        pin_root: cfg.pin.then(|| cfg.pin_dir.clone()),
        max_processes: u32::try_from(cfg.max_processes).unwrap_or(u32::MAX),
        // Room for stacks only when asked: the maps hold one entry else.
        stack_entries: cfg
            .profile
            .then_some(crate::probes::stack_drain::DAEMON_STACK_ENTRIES),
        ..LoadOptions::default()
    };
    let mut probes = ProbeSet::load(&opts).context("loading probes")?;
    let stack_drain = if cfg.profile {
        Some(
            probes
                // The first period; an adaptive one is set again below.
                .start_fault_profile(cfg.profile_period.unwrap_or(997))
                .map_err(|e| {
                    Fatal::Other(anyhow::anyhow!(
                        "--profile (or `profile`): cannot attach the page-fault sampler: {e}; \
                         run without --profile, or on a kernel with perf events and BPF stack maps"
                    ))
                })?,
        )
    } else {
        None
    };
    if cfg.profile {
        let window = crate::model::profile_window::WINDOW_SECONDS;
        match cfg.profile_period {
            Some(p) => tracing::info!(
                "continuous profile on: one page-fault stack per {p} faults per CPU, the last \
                 {window} s served on /api/v1/profile"
            ),
            None => tracing::info!(
                "continuous profile on: page-fault stacks sampled at an adaptive period (the \
                 fault rate sets it; processes whose memory grows are sampled more often), the \
                 last {window} s served on /api/v1/profile"
            ),
        }
    }
    for s in probes.statuses() {
        match &s.state {
            crate::probes::ProbeState::Unavailable { reason }
                if crate::probes::catalog::is_optional(&s.name) =>
            {
                tracing::info!("optional probe {} unavailable: {reason}", s.name);
            }
            crate::probes::ProbeState::Unavailable { reason } => {
                tracing::warn!("probe {} unavailable: {reason}", s.name);
            }
            crate::probes::ProbeState::Disabled { reason } => {
                tracing::info!("probe {} disabled: {reason}", s.name);
            }
            crate::probes::ProbeState::Attached => {}
        }
    }
    crate::pipeline::tune_heap();
    let model = Model::new(probes.statuses().to_vec(), crate::collector::host())
        .with_history(cfg.history_seconds);
    let history = Arc::new(RwLock::new(crate::model::explain::history::History::new(
        cfg.history_seconds,
    )));
    let collector = Collector::new(probes)
        .with_cgroup_root(&cfg.cgroup_root)
        .with_full_scan_every(cfg.full_scan_every);

    let shared: crate::model::published::Shared = Arc::new(RwLock::new(Arc::new(
        crate::model::published::Published::default(),
    )));
    let live = Arc::new(RwLock::new(sampler::LiveSettings {
        interval: Duration::from_secs_f64(cfg.interval_seconds),
        probe_cpu_budget: cfg.probe_cpu_budget,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let root = crate::procfs::ProcRoot::new(cfg.proc_root.clone());
    let recorder = match &cfg.record {
        Some(dir) => Some(
            crate::store::recorder::Recorder::start(crate::store::writer::WriterSettings {
                max_bytes: cfg.record_max_bytes,
                max_age: cfg.record_max_age,
                ..crate::store::writer::WriterSettings::new(dir.clone())
            })
            .map_err(|e| {
                Fatal::Usage(format!(
                    "--record (or `record`): cannot use the store: {e}; give a writable directory"
                ))
            })?,
        ),
        None => None,
    };
    let profile = match stack_drain {
        Some(d) => Some(Arc::new(
            profile::ContinuousProfile::new(d, cfg.profile_period, Arc::clone(&shared))
                .context("starting the continuous profile")?,
        )),
        None => None,
    };
    let profile_thread = match &profile {
        Some(p) => {
            let (p, stop) = (Arc::clone(p), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("memmon-profile".into())
                    .spawn(move || p.run(&stop))
                    .context("starting the profile thread")?,
            )
        }
        None => None,
    };
    let sampler_thread = {
        let (shared, live, stop) = (Arc::clone(&shared), Arc::clone(&live), Arc::clone(&stop));
        let history = Arc::clone(&history);
        let pipeline = Pipeline::new(collector, model)
            .with_root(root)
            .with_incident_extras(Box::new(incident_extras::Extras {
                profile: profile.clone(),
                history: Arc::clone(&history),
            }));
        std::thread::Builder::new()
            .name("memmon-sampler".into())
            .spawn(move || {
                sampler::run(
                    pipeline.with_task_iter(),
                    sampler::Outputs {
                        shared,
                        history,
                        recorder,
                    },
                    live,
                    stop,
                    first_tx,
                )
            })
            .context("starting the sampler thread")?
    };
    let state = Arc::new(http::HttpState {
        shared,
        render: RwLock::new(render_settings(&cfg)),
        admission: Mutex::new(CgroupAdmission::default()),
        last_scrape: AtomicU64::new(0f64.to_bits()),
        stale_after_ms: AtomicU64::new(stale_after_ms(&cfg)),
        web: RwLock::new(web),
        profile,
        profile_permits: Arc::new(tokio::sync::Semaphore::new(http::PROFILE_CONCURRENCY)),
        snapshot: snapshot_cache::SnapshotCache::default(),
        counters: cfg
            .pin
            .then(|| Mutex::new(counter_state::CounterState::load(&cfg.pin_dir))),
        history,
    });
    tracing::info!("{}", files.summary());
    let slots = conn_cap::Slots::new(files.http_connections());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // bcrypt checks, profiles and the first-sample wait: a flood of
        // requests queues for these instead of starting hundreds of threads.
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(
        listener,
        cfg,
        args.clone(),
        state,
        slots,
        live,
        first_rx,
    ));
    stop.store(true, Ordering::Relaxed);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    if sampler_thread.join().is_err() {
        tracing::error!("the sampler thread panicked");
    }
    if let Some(t) = profile_thread
        && t.join().is_err()
    {
        tracing::error!("the profile thread panicked");
    }
    tracing::info!("stopped; probes detached");
    result
}

/// Threads for blocking work the endpoint hands off (tokio's default is
/// 512).
const BLOCKING_THREADS: usize = 8;

/// A root the daemon was pointed at is not what it must be.
#[derive(Debug, thiserror::Error)]
enum RootError {
    /// proc_root unreadable.
    #[error(
        "cannot read proc_root {}: {source}; point --proc-root (or `proc_root`) at a proc \
         filesystem",
        path.display()
    )]
    ProcUnreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// proc_root without processes.
    #[error(
        "proc_root {} holds no process directories; point --proc-root (or `proc_root`) at a \
         proc filesystem",
        .0.display()
    )]
    NoProcesses(std::path::PathBuf),
    /// cgroup_root without a memory controller.
    #[error("cgroup_root: {0}")]
    Cgroup(#[source] crate::cgroupfs::CgroupError),
}

/// A proc root without a single process directory is a wrong path.
fn check_proc_root(cfg: &Config) -> Result<(), RootError> {
    let has_pid = std::fs::read_dir(&cfg.proc_root)
        .map_err(|source| RootError::ProcUnreadable {
            path: cfg.proc_root.clone(),
            source,
        })?
        .flatten()
        .any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        });
    if has_pid {
        Ok(())
    } else {
        Err(RootError::NoProcesses(cfg.proc_root.clone()))
    }
}

/// A cgroup root given by hand must hold a memory controller; the default
/// may lack one (the daemon then says once what goes unreported and serves
/// the rest).
fn check_cgroup_root(cfg: &Config) -> Result<(), RootError> {
    if cfg.cgroup_root == std::path::Path::new(crate::collector::DEFAULT_CGROUP_ROOT) {
        return Ok(());
    }
    crate::cgroupfs::CgroupRoot::detect_at(&cfg.cgroup_root)
        .map(drop)
        .map_err(RootError::Cgroup)
}

/// The endpoint's TLS and basic auth from the web config file, if any.
fn load_web(cfg: &Config) -> Result<web_config::WebSecurity, web_config::WebConfigError> {
    match &cfg.web_config_file {
        Some(path) => web_config::load(path),
        None => Ok(web_config::WebSecurity::default()),
    }
}

fn render_settings(cfg: &Config) -> RenderSettings {
    RenderSettings {
        top_k: cfg.top_k,
        top_by: cfg.top_by.clone(),
        max_cgroups: cfg.max_cgroups,
        last_scrape_seconds: 0.0,
    }
}

fn stale_after_ms(cfg: &Config) -> u64 {
    ((cfg.interval_seconds * 3.0 + 5.0) * 1000.0) as u64
}

async fn serve(
    listener: std::net::TcpListener,
    mut cfg: Config,
    args: DaemonArgs,
    state: Arc<http::HttpState>,
    slots: Arc<conn_cap::Slots>,
    live: Arc<RwLock<sampler::LiveSettings>>,
    first_rx: std::sync::mpsc::Receiver<()>,
) -> Result<(), Fatal> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener =
        tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
    let addr = listener.local_addr().context("listener address")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(listener::serve(
        listener,
        Arc::clone(&state),
        slots,
        shutdown_rx,
    ));

    // Ready once the first sample is published.
    let first =
        tokio::task::spawn_blocking(move || first_rx.recv_timeout(Duration::from_secs(120)));
    if !matches!(first.await, Ok(Ok(()))) {
        return Err(Fatal::Other(anyhow::anyhow!(
            "the sampler did not publish a first sample"
        )));
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let web = state.web();
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let summary = web.summary();
    eprintln!(
        "memmon: daemon ready; probes attached; serving {scheme}://{addr}/metrics ({summary})"
    );
    tracing::info!("listening on {addr}");

    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                match config::load(args.config.as_deref(), &args.overrides()) {
                    Ok(new) => {
                        apply_reload(&cfg, &new, &state, &live);
                        cfg = new;
                    }
                    Err(e) => tracing::error!("config reload failed, keeping the running config: {e}"),
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    tracing::info!("stopping");
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    Ok(())
}

/// Applies what can change at runtime; warns about what needs a restart.
fn apply_reload(
    old: &Config,
    new: &Config,
    state: &http::HttpState,
    live: &RwLock<sampler::LiveSettings>,
) {
    if let Ok(mut r) = state.render.write() {
        *r = render_settings(new);
    }
    if let Ok(mut l) = live.write() {
        l.interval = Duration::from_secs_f64(new.interval_seconds);
        l.probe_cpu_budget = new.probe_cpu_budget;
    }
    state
        .stale_after_ms
        .store(stale_after_ms(new), Ordering::Relaxed);
    // The web config is read again even when its path is unchanged, so a
    // renewed certificate or a changed user list takes effect on SIGHUP.
    match load_web(new) {
        Ok(web) => {
            tracing::info!("endpoint security: {}", web.summary());
            if let Ok(mut w) = state.web.write() {
                *w = web;
            }
        }
        Err(e) => tracing::error!("web config reload failed, keeping the running one: {e}"),
    }
    for k in old.needs_restart(new) {
        tracing::warn!(
            "config reload: `{}` changed; it takes effect after a restart (SIGHUP cannot apply it)",
            k.name
        );
    }
    tracing::info!("config reloaded");
}
