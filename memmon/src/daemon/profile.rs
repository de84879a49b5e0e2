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
//! (`procfs::pagemap`) and records what each stack holds. blazesym's
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
        incident::{self, GrowthStacks},
        profile::Profile,
        profile_window::{Filter, ProfileWindow},
        published::{Shared, latest},
        resident::ResidentTable,
    },
    probes::stack_drain::StackDrain,
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

/// The kernel side, the window and the resident table, drained together.
struct Inner {
    drain: StackDrain,
    window: ProfileWindow,
    resident: ResidentTable,
    pagemaps: Pagemaps,
    /// A drain failure was logged (said once, not at every drain).
    failed: bool,
    /// The executable mappings of each process with samples, read when its
    /// first sample is drained (empty when it was gone already), so its
    /// frames can be named after it exits: an OOM victim's are.
    maps: HashMap<u32, Arc<[Mapping]>>,
    /// Drains since `maps` last dropped the processes the window lost.
    since_pruned: u32,
}

impl Inner {
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
    /// A profile over the attached sampler's `drain`, one sample per
    /// `period` faults; `shared` names each process's cgroup.
    pub fn new(drain: StackDrain, period: u64, shared: Shared) -> std::io::Result<Self> {
        let (symbols, jobs) = mpsc::channel();
        std::thread::Builder::new()
            .name("memmon-symbols".into())
            .spawn(move || name_stacks(jobs))?;
        Ok(ContinuousProfile {
            inner: Mutex::new(Inner {
                drain,
                window: ProfileWindow::new(period, unix_seconds()),
                resident: ResidentTable::new(page_size(), unix_seconds()),
                pagemaps: Pagemaps::new("/proc", page_size()),
                failed: false,
                maps: HashMap::new(),
                since_pruned: 0,
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
        let mut inner = self.inner();
        let now = unix_seconds();
        // Before the counts: a drain may retire a stack a page refers to.
        let pages = inner.drain.drain_resident();
        let drained = inner.drain.drain();
        let stacks: &[_] = drained.as_deref().unwrap_or_default();
        if !pages.is_empty() || !stacks.is_empty() {
            let published = latest(&self.shared);
            let cgroups: HashMap<u32, &str> = published
                .processes
                .iter()
                .filter_map(|p| Some((p.pid, p.cgroup.as_deref()?)))
                .collect();
            for p in &pages {
                let cgroup = cgroups.get(&p.stack.tgid).copied();
                inner.resident.add(p, cgroup);
            }
            for d in stacks {
                let cgroup = cgroups.get(&d.stack.tgid).copied();
                inner.window.add(now, &d.stack, cgroup, d.samples);
                let tgid = d.stack.tgid;
                inner.maps.entry(tgid).or_insert_with(|| {
                    crate::procfs::maps::exec_mappings(tgid)
                        .unwrap_or_default()
                        .into()
                });
            }
        }
        match &drained {
            Ok(d) => {
                inner.failed = false;
                tracing::debug!(
                    gained = d.len(),
                    resident_pages = inner.resident.pages(),
                    kernel_keys = inner.drain.live_keys(),
                    window_stacks = inner.window.stacks(),
                    window_counts = inner.window.entries(),
                    dropped = inner.window.dropped,
                    failed_deletes = inner.drain.failed_deletes(),
                    "continuous profile drained"
                );
                inner.since_pruned += 1;
                if inner.since_pruned >= PRUNE_MAPS_EVERY {
                    inner.since_pruned = 0;
                    let mut held = inner.window.tgids();
                    held.extend(inner.resident.tgids());
                    inner.maps.retain(|tgid, _| held.contains(tgid));
                }
            }
            Err(e) => {
                if !inner.failed {
                    tracing::warn!("continuous profile: reading the stack maps failed: {e}");
                }
                inner.failed = true;
            }
        }
        inner.window.advance(now);
    }

    /// Drains every [`DRAIN_EVERY`] and checks the resident pages every
    /// [`CHECK_EVERY`] until `stop` is set.
    pub fn run(&self, stop: &AtomicBool) {
        let mut next = Instant::now() + DRAIN_EVERY;
        let mut next_check = Instant::now() + CHECK_EVERY;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                self.drain();
                next += DRAIN_EVERY;
                if next < now {
                    next = now + DRAIN_EVERY;
                }
            }
            if now >= next_check {
                self.inner().check(unix_seconds());
                next_check = now + CHECK_EVERY;
            }
            std::thread::sleep(POLL.min(next.saturating_duration_since(Instant::now())));
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
        let (samples, period, seconds, from_second, tgids) = {
            let mut inner = self.inner();
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
                        inner.window.period(),
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
                        inner.window.period(),
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
            Profile::build(event, period, seconds as f64, &named),
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
