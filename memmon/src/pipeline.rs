//! The one place a sampling pass is wired, for every command that samples
//! (the daemon, `snapshot`, `top`, `record`, `explain`): the collector
//! reads one [`Sample`](crate::sample::Sample) (all the pass's I/O), the
//! model applies it with the time it was taken, the probe CPU budget is
//! applied, and [`Pipeline::pass`] then publishes an immutable
//! [`Published`] copy for the sinks, feeds the flight recorder and folds
//! the exited processes into their cgroup totals.

use std::time::{Duration, Instant};

use crate::{
    clock,
    collector::{Collector, Reads},
    model::Model,
    model::budget::{Budget, Decision},
    model::incident,
    model::published::{Notice, Published},
    probes::ProbeState,
    procfs::{ProcRoot, cost_guard::GuardSettings},
};

/// Largest processes whose recent samples the flight recorder keeps.
const RECORDED_PROCESSES: usize = 100;
/// The largest processes published in order (`Published::by_rss`): a
/// `/metrics` top K up to this many by RSS reads them instead of every row.
pub const RANKED_ROWS: usize = 500;
/// Notices kept for /api/v1/events.
const MAX_NOTICES: usize = 256;
/// Passes between two returns of free heap to the kernel.
const TRIM_EVERY: u64 = 60;
/// A cap's notice repeats at most this often.
const CAP_NOTICE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The sampling state between passes.
pub struct Pipeline {
    collector: Collector,
    /// The model every sink reads (through [`Published`]).
    pub model: Model,
    notices: Vec<Notice>,
    /// Missing sources already said.
    reported_missing: std::collections::BTreeSet<String>,
    samples: u64,
    prev_lost: u64,
    /// Kernel statistics the caps' drops are counted from: the last
    /// pass's, or the last cap notice's while notices are held back.
    cap_stats: Option<crate::sample::stats::StatsSnapshot>,
    /// When a cap notice was last said.
    cap_said_at: Option<std::time::Instant>,
    /// The probe CPU budget (None: none).
    budget: Option<Budget>,
    /// Detail probes the budget suspended.
    suspended: Vec<&'static str>,
    /// Only these processes' memory is read (None: every process's).
    focus: Option<std::collections::HashSet<u32>>,
    /// SIGKILL lines' budget (OOM kills are always logged).
    kill_log: crate::sinks::kill_log::KillLog,
    /// What post-mortems take from the daemon.
    incident_extras: Option<Box<dyn IncidentExtras>>,
}

/// What a post-mortem takes from outside the model (the daemon's): its
/// cgroup's growth stacks (the continuous profile) and the findings of a
/// minute before (the history `memmon explain --connect` reads).
pub trait IncidentExtras: Send {
    /// The heaviest page-fault stacks of `cgroup` (and below) over the last
    /// minute; `members` are the processes the model knows there (pid,
    /// cgroup), whose samples count even when they were taken before the
    /// process was first published. None when there is no profile.
    fn growth_stacks(
        &self,
        _cgroup: &str,
        _members: &[(u32, String)],
    ) -> Option<crate::model::incident::GrowthStacks> {
        None
    }

    /// What `memmon explain` would have said about process `pid` at Unix
    /// ms `until_ms`, judging `window_ms` of history before it. None when
    /// there is no history of it then.
    fn findings_before(
        &self,
        _pid: u32,
        _until_ms: u64,
        _window_ms: u64,
    ) -> Option<crate::model::explain::Report> {
        None
    }
}

/// Why the task iterator does not scan the processes.
#[derive(Debug, thiserror::Error)]
pub enum TaskIterUnused {
    /// Processes are read from another proc root.
    #[error("processes are read from {} (--proc-root), not from the kernel", .0.display())]
    ProcRoot(std::path::PathBuf),
    /// The kernel side cannot run it.
    #[error(transparent)]
    Kernel(#[from] crate::probes::task_iter::TaskIterError),
}

impl Pipeline {
    /// A pipeline over loaded probes and a fresh model.
    pub fn new(collector: Collector, model: Model) -> Self {
        let notices = model
            .probes()
            .iter()
            .filter_map(|p| match &p.state {
                ProbeState::Unavailable { reason } => Some(Notice {
                    kind: "probe_status",
                    unix_ms: clock::unix_ms(),
                    message: format!("probe {} unavailable: {reason}", p.name),
                }),
                _ => None,
            })
            .collect();
        Pipeline {
            collector,
            model,
            notices,
            reported_missing: Default::default(),
            samples: 0,
            prev_lost: 0,
            cap_stats: None,
            cap_said_at: None,
            budget: None,
            suspended: Vec::new(),
            focus: None,
            kill_log: Default::default(),
            incident_extras: None,
        }
    }

    /// Post-mortems get their growth stacks and earlier findings from
    /// `extras`.
    pub fn with_incident_extras(mut self, extras: Box<dyn IncidentExtras>) -> Self {
        self.incident_extras = Some(extras);
        self
    }

    /// Reads only these processes' memory (smaps_rollup, oom_score,
    /// numa_maps) from the next pass on; None: every process's, as the
    /// cost guard allows (`memmon explain` watches one target).
    pub fn set_focus(&mut self, pids: Option<std::collections::HashSet<u32>>) {
        self.focus = pids;
    }

    /// Scans processes with the kernel's task iterator (one read for every
    /// process) instead of reading /proc/PID/stat one by one; only for the
    /// real /proc (a `--proc-root` is read as files). The number of
    /// processes the first read saw and the program reading them, or why
    /// it cannot be used.
    pub fn use_task_iter(&mut self) -> Result<(usize, &'static str), TaskIterUnused> {
        if *self.collector.root() != ProcRoot::default() {
            return Err(TaskIterUnused::ProcRoot(
                self.collector.root().path().to_path_buf(),
            ));
        }
        Ok(self.collector.use_task_iter()?)
    }

    /// [`Pipeline::use_task_iter`], saying in the log which scan runs.
    pub fn with_task_iter(mut self) -> Self {
        match self.use_task_iter() {
            Ok((n, program)) => tracing::info!(
                "iter/task: processes read through the kernel's task iterator ({n} in one read, program {program})"
            ),
            Err(e) => {
                tracing::info!("iter/task: not used ({e}); processes are read from /proc/PID/stat")
            }
        }
        self
    }

    /// Reads process memory (smaps_rollup, oom_score, numa_maps) with these
    /// cost-guard settings instead of the daemon's.
    pub fn with_guard(mut self, settings: GuardSettings) -> Self {
        self.collector = self.collector.with_guard(settings);
        self
    }

    /// Reads processes and system files under `root` instead of /proc.
    pub fn with_root(mut self, root: ProcRoot) -> Self {
        self.collector = self.collector.with_root(root);
        self
    }

    /// Holds the probes to `limit` of one core (0: no budget; suspended
    /// probes then come back).
    pub fn set_probe_budget(&mut self, limit: f64) {
        match &mut self.budget {
            Some(b) if limit > 0.0 => b.limit = limit,
            None if limit > 0.0 => self.budget = Some(Budget::new(limit)),
            _ => {
                self.budget = None;
                self.resume_detail("the probe CPU budget was turned off");
            }
        }
    }

    /// Applies the budget's decision for this pass.
    fn govern(&mut self) {
        let Some(budget) = self.budget.as_mut() else {
            return;
        };
        let limit = budget.limit;
        let fault_rate = self
            .model
            .system()
            .and_then(|s| s.rate(crate::model::system_fields::sys::PGFAULT));
        match budget.decide(Instant::now(), self.model.program_costs(), fault_rate) {
            Decision::Keep => {}
            Decision::Suspend { share } => {
                let names = self.collector.probes().attached_detail();
                let reason = format!(
                    "suspended: memmon's probes took {:.2}% of a core, over probe_cpu_budget ({:.2}%); attached again when the load falls",
                    share * 100.0,
                    limit * 100.0
                );
                for name in &names {
                    if self.collector.probes_mut().suspend(name, &reason) {
                        self.suspended.push(name);
                    }
                }
                let message = format!("detail probes {} {reason}", names.join(", "));
                tracing::warn!("{message}");
                self.push_notice("probe_budget", message);
                self.model
                    .set_probes(self.collector.probes().statuses().to_vec());
            }
            Decision::Resume => self.resume_detail("the load fell"),
        }
    }

    /// Attaches the suspended detail probes again.
    fn resume_detail(&mut self, why: &str) {
        if self.suspended.is_empty() {
            return;
        }
        let names = std::mem::take(&mut self.suspended);
        let mut failed = Vec::new();
        for name in &names {
            if let Err(e) = self.collector.probes_mut().resume(name) {
                failed.push(format!("{name}: {e}"));
            }
        }
        let message = if failed.is_empty() {
            format!("detail probes {} attached again: {why}", names.join(", "))
        } else {
            format!(
                "detail probes {} attached again ({why}), except {}",
                names.join(", "),
                failed.join("; ")
            )
        };
        tracing::warn!("{message}");
        self.push_notice("probe_budget", message);
        self.model
            .set_probes(self.collector.probes().statuses().to_vec());
    }

    /// Drains exit events into the next pass (call often between passes so
    /// the ring buffer never fills).
    pub fn drain(&mut self) {
        self.collector.drain();
    }

    /// Reads one sample (what `reads` asks for beside the kernel's maps
    /// and the process scan) and applies it to the model; applies the
    /// probe CPU budget. Nothing is published: [`Pipeline::pass`] does, and
    /// a command that shows its own window (`snapshot`) reads the model.
    pub fn sample(&mut self, reads: &Reads) {
        let now = clock::now();
        let mut sample = self.collector.collect(&self.model, reads);
        if let Some(why) = sample.scan.as_mut().and_then(|s| s.failed.take()) {
            tracing::warn!("{why}");
            self.push_notice("source_missing", why);
        }
        self.model.apply(sample, now);
        self.finish_incidents();
        self.govern();
    }

    /// One pass ([`Pipeline::sample`] reading everything), published;
    /// `interval` sizes the memory reads' time budget.
    pub fn pass(&mut self, interval: Duration) -> Published {
        let started = Instant::now();
        let ooms_before = self.model.oom_kills_total();
        let sigkills_before = self.sigkills();
        self.sample(&Reads {
            only: self.focus.clone(),
            ..Reads::all(interval)
        });
        let t_sample = started.elapsed();
        self.log_kills(ooms_before, sigkills_before);
        self.report_missing_sources();
        self.samples += 1;
        let lost = self.model.stats().events_lost + self.model.stats().oom_events_lost;
        if lost > self.prev_lost {
            let message = format!("{lost} ring-buffer events lost since start");
            tracing::warn!("{message}");
            self.push_notice("events_lost", message);
            self.prev_lost = lost;
        }
        // A cap reached: said when what it drops grows (from the first
        // pass on: pinned statistics carry earlier runs' counts), then at
        // most once a minute, with what it dropped since the last notice
        // (a pid past the RAN bitmap would otherwise be said every pass).
        let at = clock::now().instant;
        let quiet = self
            .cap_said_at
            .is_some_and(|said| at.saturating_duration_since(said) < CAP_NOTICE_EVERY);
        if !quiet {
            if let Some(prev) = &self.cap_stats {
                let notices = crate::model::caps::cap_notices(prev, self.model.stats());
                if !notices.is_empty() {
                    self.cap_said_at = Some(at);
                }
                for message in notices {
                    tracing::warn!("{message}");
                    self.push_notice("cap_reached", message);
                }
            }
            self.cap_stats = Some(self.model.stats().clone());
        }
        let mut published = Published::from_model(&mut self.model, clock::now());
        // After the rows are built: the recorders read them.
        published.recorded = self.model.recorded_rows(RECORDED_PROCESSES);
        published.by_rss = self.model.rows_by_rss(RANKED_ROWS);
        self.model
            .record_history(&published.recorded, published.unix_ms);
        tracing::debug!(
            sample = ?t_sample,
            publish = ?(started.elapsed() - t_sample),
            "pass"
        );
        published.notices = self.notices.clone();
        published.sample_seconds = started.elapsed().as_secs_f64();
        published.samples_total = self.samples;
        published.probe_cpu_budget = self.budget.as_ref().map(|b| b.limit);
        let (rss, cpu) = self.collector.self_usage();
        published.self_rss_bytes = rss;
        published.self_cpu_seconds = cpu;
        self.model.fold_exited();
        let model_shrank = self.model.shrink();
        if self.collector.shrink() || model_shrank {
            release_freed_memory();
            tracing::debug!("shrank the model after a burst; freed heap returned");
        } else if self.samples % TRIM_EVERY == 2 {
            // The start (the kernel's BTF parsed, every process read for
            // the first time) and each pass's short-lived tables leave
            // free heap glibc keeps; handing it back now and then keeps
            // RSS near what is live (~1 ms with 10,000 processes).
            release_freed_memory();
        }
        published
    }

    /// SIGKILLs counted so far (sent from userspace or by the kernel).
    fn sigkills(&self) -> u64 {
        self.model
            .kills_total()
            .get("sigkill")
            .copied()
            .unwrap_or(0)
            + self.model.kills_total().get("kernel").copied().unwrap_or(0)
    }

    /// Logs the kills the last sample brought (counts before it given):
    /// OOM kills as warnings, SIGKILLs thinned (`sinks::kill_log`).
    fn log_kills(&mut self, ooms_before: u64, sigkills_before: u64) {
        let new_sigkills = (self.sigkills() - sigkills_before) as usize;
        let recent = self.model.recent_sigkills();
        let n = recent.len();
        self.kill_log.sigkills(
            recent.range(n.saturating_sub(new_sigkills)..),
            Instant::now(),
        );
        let new_ooms = (self.model.oom_kills_total() - ooms_before) as usize;
        let n = self.model.recent_ooms().len();
        for kill in self.model.recent_ooms().range(n.saturating_sub(new_ooms)..) {
            crate::sinks::kill_log::oom_kill(kill);
        }
    }
}

impl Pipeline {
    /// Adds to the post-mortems the last sample completed what the model
    /// cannot (growth stacks, the findings of a minute before), keeps them
    /// in the model and says where to read each.
    fn finish_incidents(&mut self) {
        let mut done = self.model.take_completed_incidents();
        for i in &mut done {
            if let Some(extras) = &self.incident_extras {
                if let Some(cg) = &i.cgroup {
                    let members = self.model.members_of(&cg.path);
                    i.growth_stacks = extras.growth_stacks(&cg.path, &members);
                }
                i.findings_before = extras
                    .findings_before(
                        i.victim.pid,
                        i.unix_ms.saturating_sub(incident::FINDINGS_BEFORE_MS),
                        incident::FINDINGS_WINDOW_MS,
                    )
                    .and_then(|r| serde_json::to_value(r).ok());
            }
            tracing::info!(
                id = %i.id,
                kind = %i.kind,
                pid = i.victim.pid,
                comm = %i.victim.comm,
                cgroup = i.cgroup.as_ref().map_or("?", |c| c.path.as_str()),
                "post-mortem recorded; read it with `memmon explain --oom {}`",
                i.id
            );
        }
        self.model.push_incidents(done);
    }

    /// Says once (log and /api/v1/events) each source found missing.
    fn report_missing_sources(&mut self) {
        let new: Vec<String> = self
            .model
            .missing_sources()
            .difference(&self.reported_missing)
            .cloned()
            .collect();
        for what in new {
            tracing::warn!("{what}");
            self.reported_missing.insert(what.clone());
            self.push_notice("source_missing", what);
        }
    }

    fn push_notice(&mut self, kind: &'static str, message: String) {
        if self.notices.len() == MAX_NOTICES {
            self.notices.remove(0);
        }
        self.notices.push(Notice {
            kind,
            unix_ms: clock::unix_ms(),
            message,
        });
    }
}

/// Heap settings for a long-running sampler: buffers of 1 MiB and more
/// (a pass's tables during a pid storm) get their own mappings, returned
/// whole when freed; glibc's default raises that threshold after the first
/// such free, and the next storm's tables then fragment the heap. Two
/// arenas are enough for two threads that allocate (sampler, HTTP).
pub fn tune_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed heap to the kernel after a burst (glibc keeps it
/// otherwise, and the daemon's RSS would stay at its peak).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap structures.
    unsafe {
        libc::malloc_trim(0);
    }
}
