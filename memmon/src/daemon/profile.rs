//! The daemon's continuous profile (`--profile`): the `memmon-profile`
//! thread drains the page-fault sampler's maps (`probes::stack_drain`)
//! every 200 ms into the rolling window (`model::profile_window`), with
//! each process's cgroup from the latest publication; `/api/v1/profile`
//! drains once more (so it includes every sample taken until the
//! request), selects the seconds and the process or cgroup asked for,
//! names the frames (`symbols`, cached per process while it has samples in
//! the window; a process gone is named from the files of the executable
//! mappings read when its first sample was drained) and answers pprof
//! gzipped, as Go's net/http/pprof does (or folded stacks, or an SVG).
//! With `kind=resident` it answers from the resident table instead
//! (`model::resident`): the same thread adds each sampled fault's page to
//! it and, every [`CHECK_EVERY`], checks the pages in /proc/PID/pagemap
//! (`procfs::pagemap`) and records what each stack holds. Unless
//! `profile_period` fixes it, the sampling adapts every [`ADAPT_EVERY`]
//! (`model::fault_sampling`): the machine's fault rate and each process's
//! growth from the latest publication give the perf events' period and
//! which processes are walked more often, set on the running sampler
//! (`probes::sampler_control`); between two publications, a drain whose
//! runs show a fault storm raises the levels at once. blazesym's
//! symbolizer is not `Send`, so it lives on its own `memmon-symbols`
//! thread, handed each request's stacks over a channel.

use std::{
    collections::{HashMap, HashSet},
    io::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use crate::{
    clock::unix_ms,
    model::{
        explain::evidence::GrowthStack,
        fault_sampling::{LIMITS, Plan, Planner, ProcessReading},
        incident::{self, GrowthStacks},
        profile::Profile,
        profile_window::{Filter, ProfileWindow},
        published::{Published, Shared, latest},
        resident::ResidentTable,
        system_fields::sys,
        view::idx,
    },
    probes::{fault_events::SLOT, stack_drain::StackDrain},
    procfs::pagemap::Pagemaps,
    sample::stacks::{Frame, Mapping, NamedSample, RawSample, StackEvent},
    sinks,
    symbols::Symbols,
};

use super::profile_query::{Format, Kind, ProfileQuery};

/// How often the thread drains the kernel maps: often, so a key idle
/// since the last drain (and its stack) leaves the kernel maps soon and
/// new stacks find room (see `probes::stack_drain`).
const DRAIN_EVERY: Duration = Duration::from_millis(200);
/// How often the thread checks the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How often the resident table's pages are checked in pagemap (one
/// pread per sampled page: every process's, so not every second; a
/// request checks them again before it answers).
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often an adaptive sampling is planned again (from a new publication
/// only: at most once a pass).
pub const ADAPT_EVERY: Duration = Duration::from_millis(250);
/// The shortest span of drained runs an adaptive sampling is raised from
/// between two plans (a fault storm that starts after a pass).
const REACT_SPAN: Duration = Duration::from_millis(150);

/// The kernel side, the window and the resident table, drained together.
struct Inner {
    drain: StackDrain,
    window: ProfileWindow,
    resident: ResidentTable,
    pagemaps: Pagemaps,
    /// The adaptive sampling's planner (None: a fixed period).
    planner: Option<Planner>,
    /// The plan the sampler runs.
    plan: Plan,
    /// The publication the last plan was made from (Unix ms).
    planned_from: u64,
    /// A drain failure was logged (said once, not at every drain).
    failed: bool,
    /// The executable mappings of each process with samples, read when its
    /// first sample is drained (empty when it was gone already), so its
    /// frames can be named after it exits: an OOM victim's are.
    maps: HashMap<u32, Arc<[Mapping]>>,
    /// Drains since `maps` last dropped the processes the window lost.
    since_pruned: u32,
    /// Faults the drained runs stand for, by process, since
    /// `sampled_since` (what [`Inner::react`] reads).
    sampled: HashMap<u32, u64>,
    sampled_since: Instant,
    /// Reopening the events failed (said once).
    failed_tick: bool,
}

impl Inner {
    /// Moves the samples taken since the last drain into the window, and
    /// the sampled pages into the resident table; `published` names each
    /// process's cgroup.
    fn drain(&mut self, published: &Published) {
        let now = unix_seconds();
        // Before the counts: a drain may retire a stack a page refers to.
        let pages = self.drain.drain_resident();
        let drained = self.drain.drain();
        // The counts are runs of the sampler, each standing for one
        // period of faults times the time slots (a walk of 1 in N runs
        // adds N): taken at the levels in force, which change only right
        // after a drain.
        let period = self.drain.faults_per_run();
        let stacks: &[_] = drained.as_deref().unwrap_or_default();
        if !pages.is_empty() || !stacks.is_empty() {
            let cgroups: HashMap<u32, &str> = published
                .processes
                .iter()
                .filter_map(|p| Some((p.pid, p.cgroup.as_deref()?)))
                .collect();
            for p in &pages {
                let cgroup = cgroups.get(&p.stack.tgid).copied();
                self.resident.add(p, cgroup);
            }
            for d in stacks {
                let cgroup = cgroups.get(&d.stack.tgid).copied();
                self.window.add(now, &d.stack, cgroup, d.samples, period);
                let tgid = d.stack.tgid;
                let faults = self.sampled.entry(tgid).or_default();
                *faults = faults.saturating_add(d.samples.saturating_mul(period));
                self.maps.entry(tgid).or_insert_with(|| {
                    crate::procfs::maps::exec_mappings(tgid)
                        .unwrap_or_default()
                        .into()
                });
            }
        }
        match &drained {
            Ok(d) => {
                self.failed = false;
                tracing::debug!(
                    gained = d.len(),
                    resident_pages = self.resident.pages(),
                    kernel_keys = self.drain.live_keys(),
                    window_stacks = self.window.stacks(),
                    window_counts = self.window.entries(),
                    dropped = self.window.dropped,
                    failed_deletes = self.drain.failed_deletes(),
                    "continuous profile drained"
                );
                self.since_pruned += 1;
                if self.since_pruned >= PRUNE_MAPS_EVERY {
                    self.since_pruned = 0;
                    let mut held = self.window.tgids();
                    held.extend(self.resident.tgids());
                    self.maps.retain(|tgid, _| held.contains(tgid));
                }
                self.react();
            }
            Err(e) => {
                if !self.failed {
                    tracing::warn!("continuous profile: reading the stack maps failed: {e}");
                }
                self.failed = true;
            }
        }
        self.window.advance(now);
    }

    /// Plans the sampling again from `published` (once per publication)
    /// and sets it on the sampler, after a drain (so the samples drained
    /// are weighed with the period they were taken at).
    fn adapt(&mut self, published: &Published) {
        let Some(planner) = self.planner.as_mut() else {
            return;
        };
        if published.unix_ms == self.planned_from || published.processes.is_empty() {
            return;
        }
        self.planned_from = published.unix_ms;
        let readings: Vec<ProcessReading> = published
            .processes
            .iter()
            .filter(|p| !p.exited)
            .map(|p| ProcessReading {
                tgid: p.pid,
                rss_bytes: p.whole(idx::RSS),
                faults_per_second: p.rate(idx::FAULTS).or_else(|| p.rate(idx::MINOR)),
            })
            .collect();
        let all = published.system.as_ref().and_then(|s| s.rate(sys::PGFAULT));
        let plan = planner.update(published.unix_ms, all, &readings).clone();
        if plan == self.plan {
            return;
        }
        self.drain(published);
        tracing::debug!(all_faults_per_second = ?all, "continuous profile: planning from a pass");
        self.set_plan(plan, "continuous profile: sampling planned");
    }

    /// Sets `plan` on the running sampler (after a drain, so the samples
    /// drained are weighed with the levels they were taken at), saying
    /// `what` at debug; on failure the next publication plans again.
    fn set_plan(&mut self, plan: Plan, what: &str) {
        match self
            .drain
            .control()
            .set(plan.period, plan.walk_every, &plan.boosted, plan.slots)
        {
            Ok(()) => {
                tracing::debug!(
                    period = plan.period,
                    slots = plan.slots,
                    walk_every = plan.walk_every,
                    boosted = ?plan.boosted,
                    "{what}"
                );
                self.plan = plan;
            }
            Err(e) => {
                // What the kernel holds may be partly new: samples carry
                // the period they were taken at; the plan is tried again
                // at the next publication.
                tracing::warn!("continuous profile: setting the sampling failed: {e}");
                self.planned_from = 0;
            }
        }
    }

    /// Raises an adaptive sampling at once, right after a drain, when the
    /// runs drained since the last check (at least [`REACT_SPAN`] ago) show
    /// a storm the plan in force was not made for
    /// (`fault_sampling::Planner::react`), rather than one pass later.
    fn react(&mut self) {
        let Some(planner) = self.planner.as_mut() else {
            return;
        };
        let span = self.sampled_since.elapsed();
        if span < REACT_SPAN {
            return;
        }
        let secs = span.as_secs_f64();
        let rates: HashMap<u32, f64> = self
            .sampled
            .drain()
            .map(|(tgid, faults)| (tgid, faults as f64 / secs))
            .collect();
        self.sampled_since = Instant::now();
        if !planner.react(&rates) {
            return;
        }
        let plan = planner.plan().clone();
        self.set_plan(
            plan,
            "continuous profile: sampling raised for a fault storm",
        );
    }

    /// Opens or closes the sampler's events at its time slots' boundaries
    /// (`SamplerControl::tick`); returns when to call again.
    fn tick(&mut self, now: Instant) -> Instant {
        match self.drain.control().tick(now) {
            Ok(next) => next,
            Err(e) => {
                if !self.failed_tick {
                    tracing::warn!(
                        "continuous profile: reopening the page-fault events failed: {e}"
                    );
                }
                self.failed_tick = true;
                now + SLOT
            }
        }
    }

    /// Checks every sampled page of the resident table and records what
    /// each stack holds at Unix second `now`.
    fn check(&mut self, now: u64) {
        let pagemaps = &mut self.pagemaps;
        self.resident
            .check(now, |tgid, pages| pagemaps.read(tgid, pages));
        let alive = self.resident.tgids();
        pagemaps.retain(|p| alive.contains(&p));
    }
}

/// Drains between two prunings of the kept mappings (5 s).
const PRUNE_MAPS_EVERY: u32 = 25;

/// Stacks to name, the processes whose cached names to keep, and where
/// the names go.
struct NameJob {
    samples: Vec<RawSample>,
    keep: HashSet<u32>,
    /// The kept mappings of the samples' processes.
    maps: HashMap<u32, Arc<[Mapping]>>,
    reply: mpsc::Sender<Vec<NamedSample>>,
}

/// The continuous profile the daemon serves.
pub struct ContinuousProfile {
    inner: Mutex<Inner>,
    symbols: mpsc::Sender<NameJob>,
    shared: Shared,
}

/// Names stacks until every sender is gone.
fn name_stacks(jobs: mpsc::Receiver<NameJob>) {
    let mut symbols = Symbols::new();
    for job in jobs {
        symbols.retain_processes(|pid| job.keep.contains(&pid));
        let _ = job.reply.send(symbols.name_with(&job.samples, &job.maps));
    }
}

/// `samples` with their addresses as names (the symbolizer thread is gone).
fn unnamed(samples: &[RawSample]) -> Vec<NamedSample> {
    let frame = |a: &u64, kernel| Frame {
        name: format!("{a:#x}"),
        module: None,
        kernel,
        symbolized: false,
    };
    samples
        .iter()
        .map(|s| NamedSample {
            event: s.event,
            tgid: s.stack.tgid,
            frames: s
                .stack
                .kernel
                .iter()
                .map(|a| frame(a, true))
                .chain(s.stack.user.iter().map(|a| frame(a, false)))
                .collect(),
            weight: s.weight,
            count: s.count,
            growth: s.growth,
        })
        .collect()
}

fn unix_seconds() -> u64 {
    unix_ms() / 1000
}

impl ContinuousProfile {
    /// A profile over the attached sampler's `drain`: one sample per
    /// `period` faults, or adaptive when `period` is None (the sampler is
    /// set to the planner's first plan here); `shared` names each
    /// process's cgroup and gives the rates the plans are made from.
    pub fn new(mut drain: StackDrain, period: Option<u64>, shared: Shared) -> anyhow::Result<Self> {
        let (planner, plan) = match period {
            Some(p) => (None, Plan::fixed(p)),
            None => {
                let planner = Planner::new(LIMITS);
                let plan = planner.plan().clone();
                (Some(planner), plan)
            }
        };
        drain
            .control()
            .set(plan.period, plan.walk_every, &plan.boosted, plan.slots)
            .map_err(|e| anyhow::anyhow!("setting the page-fault sampler's period: {e}"))?;
        let (symbols, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("memmon-symbols".into())
            .spawn(move || name_stacks(jobs))?;
        Ok(ContinuousProfile {
            inner: Mutex::new(Inner {
                drain,
                window: ProfileWindow::new(unix_seconds()),
                resident: ResidentTable::new(page_size(), unix_seconds()),
                pagemaps: Pagemaps::new("/proc", page_size()),
                planner,
                plan,
                planned_from: 0,
                failed: false,
                maps: HashMap::new(),
                since_pruned: 0,
                sampled: HashMap::new(),
                sampled_since: Instant::now(),
                failed_tick: false,
            }),
            symbols,
            shared,
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Moves the samples taken since the last drain into the window, and
    /// the sampled pages into the resident table.
    pub fn drain(&self) {
        let published = latest(&self.shared);
        self.inner().drain(&published);
    }

    /// Plans an adaptive sampling again (nothing for a fixed period).
    pub fn adapt(&self) {
        let published = latest(&self.shared);
        self.inner().adapt(&published);
    }

    /// Drains every [`DRAIN_EVERY`], plans the sampling every
    /// [`ADAPT_EVERY`], opens and closes the events at their time slots'
    /// boundaries and checks the resident pages every [`CHECK_EVERY`]
    /// until `stop` is set.
    pub fn run(&self, stop: &AtomicBool) {
        let mut next = Instant::now() + DRAIN_EVERY;
        let mut next_check = Instant::now() + CHECK_EVERY;
        let mut next_plan = Instant::now() + ADAPT_EVERY;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            // Every turn: a new plan may have changed the slots since
            // the last call (a tick that has nothing to do only says when).
            let next_tick = self.inner().tick(now);
            if now >= next {
                self.drain();
                next += DRAIN_EVERY;
                if next < now {
                    next = now + DRAIN_EVERY;
                }
            }
            if now >= next_plan {
                self.adapt();
                next_plan = now + ADAPT_EVERY;
            }
            if now >= next_check {
                self.inner().check(unix_seconds());
                next_check = now + CHECK_EVERY;
            }
            let now = Instant::now();
            std::thread::sleep(
                POLL.min(next.saturating_duration_since(now))
                    .min(next_tick.saturating_duration_since(now)),
            );
        }
    }

    /// The profile `query` asks for: the body and its content type.
    pub fn answer(&self, query: &ProfileQuery) -> (Vec<u8>, &'static str) {
        let (profile, from_second) = self.named(query);
        match query.format {
            Format::Pprof => {
                let nanos = i64::try_from(from_second)
                    .unwrap_or(i64::MAX / 1_000_000_000)
                    .saturating_mul(1_000_000_000);
                (
                    gzip(&sinks::pprof::encode(&profile, nanos)),
                    "application/octet-stream",
                )
            }
            Format::Folded => (
                sinks::profile::folded(&profile).into_bytes(),
                "text/plain; charset=utf-8",
            ),
            Format::Svg => {
                let mut out = Vec::new();
                let title = format!("memmon daemon: {} by stack", profile.event.name());
                if profile.stacks.iter().any(|s| s.weight > 0)
                    && sinks::flamegraph::svg(&profile, &title, &mut out).is_ok()
                {
                    (out, "image/svg+xml")
                } else {
                    (
                        format!(
                            "no stacks with weight in the selection: nothing to draw ({})\n",
                            sinks::profile::describe(&profile).0
                        )
                        .into_bytes(),
                        "text/plain; charset=utf-8",
                    )
                }
            }
        }
    }

    /// The `n` heaviest stacks `query` selects, user frames only, innermost
    /// first (what `explain --connect` shows as growth stacks).
    pub fn top_stacks(&self, query: &ProfileQuery, n: usize) -> Vec<GrowthStack> {
        let (profile, _) = self.named(query);
        profile
            .stacks
            .iter()
            .map(|s| GrowthStack {
                frames: s
                    .frames
                    .iter()
                    .filter(|f| !f.kernel)
                    .map(|f| f.name.clone())
                    .collect(),
                weight: s.weight as f64,
                what: format!("page faults in the last {} s", query.seconds),
            })
            .filter(|s| !s.frames.is_empty())
            .take(n)
            .collect()
    }

    /// The heaviest stacks of `cgroup` (and below) over the last minute, for
    /// a post-mortem; `members` (pid, cgroup) name the cgroup of processes
    /// whose samples were drained before they were published.
    pub fn cgroup_stacks(&self, cgroup: &str, members: &[(u32, String)]) -> GrowthStacks {
        {
            let mut inner = self.inner();
            for (pid, c) in members {
                inner.window.tag(*pid, c);
            }
        }
        let seconds = crate::model::profile_window::WINDOW_SECONDS;
        let (profile, _) = self.named(&ProfileQuery {
            seconds,
            filter: Filter::Cgroup(cgroup.to_string()),
            kind: Kind::Faults,
            format: Format::Pprof,
        });
        let top = sinks::top::stacks::FaultStacks::from_profile(0, seconds, &profile);
        GrowthStacks {
            seconds: top.seconds,
            period: top.period,
            total_faults: top.total,
            stacks: top
                .lines
                .into_iter()
                .map(|l| incident::GrowthStack {
                    faults: l.faults,
                    share: l.share,
                    frames: l.frames,
                })
                .collect(),
        }
    }

    /// The samples `query` selects, named and merged, and the first
    /// second they cover.
    fn named(&self, query: &ProfileQuery) -> (Profile, u64) {
        self.drain();
        let now = unix_seconds();
        let (samples, period, periods, seconds, from_second, tgids) = {
            let mut inner = self.inner();
            let period = inner.plan.faults_per_walk();
            match query.kind {
                Kind::Faults => {
                    let selection = inner.window.select(now, query.seconds, &query.filter);
                    if inner.window.dropped > 0 {
                        tracing::debug!(
                            "continuous profile: {} samples dropped at the window's caps",
                            inner.window.dropped
                        );
                    }
                    (
                        selection.samples,
                        period,
                        selection.periods,
                        selection.seconds,
                        selection.from_second,
                        inner.window.tgids(),
                    )
                }
                Kind::Resident => {
                    inner.check(now);
                    let selection = inner.resident.select(now, query.seconds, &query.filter);
                    let mut tgids = inner.window.tgids();
                    tgids.extend(inner.resident.tgids());
                    (
                        selection.rows.into_iter().map(|r| r.sample).collect(),
                        period,
                        selection.periods,
                        selection.seconds,
                        now.saturating_sub(selection.seconds),
                        tgids,
                    )
                }
            }
        };
        let maps: HashMap<u32, Arc<[Mapping]>> = {
            let inner = self.inner();
            samples
                .iter()
                .filter_map(|s| {
                    let m = inner.maps.get(&s.stack.tgid)?;
                    Some((s.stack.tgid, Arc::clone(m)))
                })
                .collect()
        };
        let (reply, names) = mpsc::channel();
        let job = NameJob {
            samples: samples.clone(),
            keep: tgids,
            maps,
            reply,
        };
        let named = match self.symbols.send(job).ok().and_then(|()| names.recv().ok()) {
            Some(n) => n,
            None => {
                tracing::warn!("continuous profile: the symbolizer thread is gone; frames unnamed");
                unnamed(&samples)
            }
        };
        let event = match query.kind {
            Kind::Faults => StackEvent::Faults,
            Kind::Resident => StackEvent::Resident,
        };
        (
            Profile::build(event, period, seconds as f64, &named).with_periods(periods),
            from_second,
        )
    }
}

/// The page size of this machine.
fn page_size() -> u64 {
    crate::procfs::identity::page_size()
}

/// `bytes` gzipped (pprof readers take gzip-less input too, which is what
/// is sent should compression ever fail).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3 + 64),
        flate2::Compression::default(),
    );
    match gz.write_all(bytes).and_then(|()| gz.finish()) {
        Ok(z) => z,
        Err(e) => {
            tracing::debug!("gzip: {e}");
            bytes.to_vec()
        }
    }
}
