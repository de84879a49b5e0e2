//! The collector: all of a pass's I/O. It reads the kernel's maps and ring
//! buffer, scans the processes (task iterator or /proc), and reads the
//! /proc and cgroupfs files the model needs (identities and placement of
//! new pids, the memory cgroups in use, the cost-guarded per-process
//! memory, the system files, the names of exit and OOM cgroups) into one
//! [`Sample`] per pass. It reads the model only to know what to read; the
//! model applies the sample without reading anything itself.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use memmon_common::{
    ExitEvent, OomEvent,
    events::{EXIT_MEMCG_ID, OOM_MEMCG_ID, OOM_VICTIM_IS_CURRENT},
    names::probe,
};

use crate::{
    model::{Model, comm_string},
    probes::{ProbeSet, StatsSnapshot},
    procfs::{
        ProcRoot, ReadFailure, cgroup,
        cost_guard::{CostGuard, GuardSettings},
        identity, memory, numa,
        stat_files::StatFiles,
        system, unit,
    },
    sample::{
        CgroupsRead, Host, Identity, MemoryRead, OomLimit, OomRecord, ProcMeta, Sample, Scan,
    },
};

/// Where cgroup filesystems are mounted.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A MEMCG_EXITS key unresolved this long names a memory cgroup that was
/// removed: its entry is deleted.
const ORPHAN_AFTER: Duration = Duration::from_secs(10);

/// Reads the probes and the files the model needs.
pub struct Collector {
    probes: ProbeSet,
    /// Where processes and the system files are read (/proc, or
    /// `--proc-root`).
    root: ProcRoot,
    /// The /proc scan (when the task iterator is not in use).
    stat_files: StatFiles,
    /// The per-process memory reads' cost guard.
    guard: CostGuard,
    /// CPU → NUMA node (local and remote pages).
    cpu_node: BTreeMap<u32, u32>,
    /// Exit events drained between passes.
    pending: Vec<ExitEvent>,
    /// Memory cgroup ids of exit events → paths.
    cgroup_ids: cgroup::CgroupIds,
    /// The memory controller's hierarchy (v1 `memory/`, or v2): where the
    /// memory cgroup an OOM event names is looked up.
    memcg_dir: std::path::PathBuf,
    /// MEMCG_EXITS keys no walk of the hierarchy found, since when.
    unresolved_memcgs: HashMap<u64, Instant>,
    /// The kernel's run-time statistics of the programs, while held.
    run_stats: Result<crate::probes::run_stats::RunStats, crate::probes::run_stats::RunStatsError>,
    /// The memory cgroups' own files (None: no memory controller found).
    cgroups: Option<crate::cgroupfs::CgroupReader>,
    /// Why there is no cgroup reader, said once.
    cgroups_missing: Option<String>,
    /// The task iterator, when it is the scan's source.
    task_scan: Option<crate::probes::task_iter::TaskScan>,
    /// The memory controller is cgroup v1's (its memory+swap counter is a
    /// limit of its own).
    memcg_v1: bool,
}

/// What a pass reads besides the kernel's maps and the process scan.
#[derive(Clone, Debug, Default)]
pub struct Reads {
    /// The memory cgroups' own files.
    pub cgroups: bool,
    /// Per-process memory (cost-guarded) and the system view, with the
    /// interval the guard's time budget is a share of.
    pub memory: Option<Duration>,
    /// Per-process memory of these pids only (what a command will show).
    pub only: Option<HashSet<u32>>,
}

impl Reads {
    /// Everything, every `interval`: the daemon's and `top`'s passes.
    pub fn all(interval: Duration) -> Self {
        Reads {
            cgroups: true,
            memory: Some(interval),
            only: None,
        }
    }
}

/// This host's constants.
pub fn host() -> Host {
    Host {
        page_size: identity::page_size(),
        ticks_per_second: identity::ticks_per_second(),
    }
}

/// Where `pid` belongs: its memory cgroup (and the names the path carries)
/// and owner.
pub fn proc_meta(root: &ProcRoot, pid: u32) -> ProcMeta {
    use std::os::unix::fs::MetadataExt as _;
    meta_of_cgroup(
        cgroup::memory_cgroup(root, pid).ok(),
        std::fs::metadata(root.pid_dir(pid)).ok().map(|m| m.uid()),
    )
}

/// Where a live `pid` is now, read again after it moved: `None` when it
/// is gone or dying (a zombie's /proc shows the root cgroup, which would
/// be a wrong move).
pub fn moved_meta(root: &ProcRoot, pid: u32) -> Option<ProcMeta> {
    use std::os::unix::fs::MetadataExt as _;
    let cgroup = cgroup::memory_cgroup_of_live(root, pid).ok()?;
    Some(meta_of_cgroup(
        Some(cgroup),
        std::fs::metadata(root.pid_dir(pid)).ok().map(|m| m.uid()),
    ))
}

fn meta_of_cgroup(cgroup: Option<String>, uid: Option<u32>) -> ProcMeta {
    ProcMeta {
        unit: cgroup.as_deref().and_then(unit::systemd_unit),
        container_id: cgroup.as_deref().and_then(unit::container_id),
        cgroup,
        uid,
    }
}

/// uid → user name, from /etc/passwd (empty when unreadable).
pub fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An OOM kill with its names resolved: the victim's cgroup is read from
/// `root` now (the victim is dying: read it as soon as the event arrives);
/// the killing task's memory cgroup, which the event names by its
/// directory's name only, is looked up under `memcg_dir` (the memory
/// controller's hierarchy, v1 or v2).
pub fn oom_record(e: OomEvent, root: &ProcRoot, memcg_dir: &std::path::Path) -> OomRecord {
    let killer_memcg = match comm_string(&e.killer_memcg) {
        name if name.is_empty() => None,
        name => Some(cgroup::find_by_name(memcg_dir, &name, 6).unwrap_or(name)),
    };
    // When the victim is the task that ran into the limit, the kernel's own
    // record of its memcg is exact; /proc is racy for a dying task (after
    // cgroup_exit it shows the root cgroup).
    let victim_is_current = e.flags & OOM_VICTIM_IS_CURRENT != 0;
    let cgroup = match (victim_is_current, &killer_memcg) {
        (true, Some(memcg)) => Some(memcg.clone()),
        _ => match cgroup::memory_cgroup_of_live(root, e.victim_pid) {
            Ok(path) => Some(path),
            Err(err) => {
                tracing::debug!("cgroup of OOM victim {}: {err}", e.victim_pid);
                None
            }
        },
    };
    OomRecord {
        event: e,
        cgroup,
        killer_memcg,
        memcg_paths: Vec::new(),
        memsw_limit: false,
        events_limit: None,
    }
}

/// The limit an OOM kill hit as cgroup v2's files tell it after the fact
/// (where the kernel's own record was not read): the deepest of the
/// killer's memcg and its ancestors whose `memory.events` `oom` count grew
/// since `before` gave it (a memcg OOM counts there, a global one does
/// not), with its memory.max and memory.current read now (after the kill:
/// the victim's memory may already be freed); global when none grew.
/// `None` on v1 (its files count no memcg OOMs) or when the killer's memcg
/// is unknown.
pub fn events_limit(
    reader: &crate::cgroupfs::CgroupRoot,
    killer_memcg: &str,
    before: impl Fn(&str) -> u64,
) -> Option<OomLimit> {
    use crate::cgroupfs::{CgroupRead, Detail, Version};
    if reader.version() != Version::V2 || !killer_memcg.starts_with('/') {
        return None;
    }
    let mut read_any = false;
    for path in crate::cgroupfs::with_ancestors(killer_memcg) {
        if path == "/" {
            break;
        }
        let Ok(CgroupRead::Sample(s)) = reader.read(&path, Detail::Full) else {
            continue;
        };
        let Some(oom) = s.events.as_ref().and_then(|e| e.oom) else {
            continue;
        };
        read_any = true;
        if oom > before(&path) {
            let max = s.limits.as_ref().and_then(|l| l.max);
            return Some(OomLimit {
                constraint: "memcg",
                source: "memory.events",
                cgroup: Some(path),
                limit: max.map(|_| "max"),
                limit_bytes: max,
                usage_bytes: s.usage,
            });
        }
    }
    read_any.then_some(OomLimit {
        constraint: "global",
        source: "memory.events",
        cgroup: None,
        limit: None,
        limit_bytes: None,
        usage_bytes: None,
    })
}

impl Collector {
    /// Wraps a loaded probe set; processes are read under /proc, memory
    /// cgroups under /sys/fs/cgroup.
    pub fn new(probes: ProbeSet) -> Self {
        Collector {
            probes,
            root: ProcRoot::default(),
            stat_files: StatFiles::default(),
            guard: CostGuard::new(GuardSettings::default()),
            cpu_node: numa::cpu_nodes(&numa::SysNodeRoot::default()),
            pending: Vec::new(),
            cgroup_ids: cgroup::CgroupIds::new(Some(cgroup::memory_hierarchy())),
            memcg_dir: cgroup::memory_hierarchy(),
            unresolved_memcgs: HashMap::new(),
            run_stats: crate::probes::run_stats::RunStats::enable(),
            cgroups: None,
            cgroups_missing: None,
            task_scan: None,
            memcg_v1: cgroup::memory_hierarchy().ends_with("memory"),
        }
        .with_cgroup_root(std::path::Path::new(DEFAULT_CGROUP_ROOT))
    }

    /// Reads processes and system files under `root` instead of /proc.
    pub fn with_root(mut self, root: ProcRoot) -> Self {
        self.root = root;
        self
    }

    /// Where processes are read.
    pub fn root(&self) -> &ProcRoot {
        &self.root
    }

    /// The per-process memory reads' cost guard, tuned.
    pub fn with_guard(mut self, settings: GuardSettings) -> Self {
        self.guard = CostGuard::new(settings);
        self
    }

    /// Reads memory cgroups under `mount` (v1 `memory/` below it, or v2);
    /// the memory cgroups of exits and OOM kills are resolved there too.
    pub fn with_cgroup_root(mut self, mount: &std::path::Path) -> Self {
        match crate::cgroupfs::CgroupRoot::detect_at(mount) {
            Ok(root) => {
                self.memcg_v1 = root.version() == crate::cgroupfs::Version::V1;
                if root.dir() != self.memcg_dir {
                    self.memcg_dir = root.dir().to_path_buf();
                    self.cgroup_ids = cgroup::CgroupIds::new(Some(self.memcg_dir.clone()));
                }
                self.cgroups = Some(crate::cgroupfs::CgroupReader::new(
                    root,
                    crate::cgroupfs::DetailPolicy::default(),
                ));
                self.cgroups_missing = None;
            }
            Err(e) => {
                self.cgroups = None;
                self.cgroups_missing = Some(format!(
                    "{e}: not reported: per-cgroup usage, limits, memory.stat, events, PSI and the OOM forecast"
                ));
            }
        }
        self
    }

    /// Scans processes through the kernel's task iterator from now on
    /// (read once here): the number of processes it saw and the program
    /// that runs, or why this kernel refuses it (the /proc scan then stays).
    pub fn use_task_iter(
        &mut self,
    ) -> Result<(usize, &'static str), crate::probes::task_iter::TaskIterError> {
        use crate::probes::task_iter::TaskScan;
        let program = self.probes.task_iter_ready()?;
        let h = host();
        let mut trial = TaskScan::new(h.ticks_per_second, h.page_size);
        let n = trial.scan(&mut self.probes)?.len();
        // A fresh scan state: the first pass must see every process as new.
        self.task_scan = Some(TaskScan::new(h.ticks_per_second, h.page_size));
        Ok((n, program))
    }

    /// Every process, from the task iterator; None when it is not in use
    /// (or just failed: then the /proc scan takes over, and the reason is
    /// returned in `failed`).
    pub fn scan_tasks(&mut self, failed: &mut Option<String>) -> Option<Vec<Identity>> {
        let scan = self.task_scan.as_mut()?;
        match scan.scan(&mut self.probes) {
            Ok(ids) => Some(ids),
            Err(e) => {
                *failed = Some(format!(
                    "the task iterator failed ({e}): processes are read from /proc from now on"
                ));
                self.task_scan = None;
                None
            }
        }
    }

    /// True while the task iterator is the scan's source.
    pub fn task_iter_in_use(&self) -> bool {
        self.task_scan.is_some()
    }

    /// The probe set (statuses, map fill).
    pub fn probes(&self) -> &ProbeSet {
        &self.probes
    }

    /// The probe set, to suspend or resume probes.
    pub fn probes_mut(&mut self) -> &mut ProbeSet {
        &mut self.probes
    }

    /// Drains exit events into the next pass (cheap; call often so the
    /// ring buffer never fills).
    pub fn drain(&mut self) {
        self.probes.drain_exits(&mut self.pending);
    }

    /// Drains exit events only, into `into`.
    pub fn drain_exits(&mut self, into: &mut Vec<ExitEvent>) -> usize {
        self.probes.drain_exits(into)
    }

    /// One pass: the kernel's maps and events ([`Collector::kernel`]), the
    /// process scan, then what `reads` asks for (the memory cgroups, the
    /// per-process memory and the system files). `model` (as of the last
    /// pass) says which pids are new and which cgroups are in use.
    pub fn collect(&mut self, model: &Model, reads: &Reads) -> Sample {
        let pending = std::mem::take(&mut self.pending);
        for exit in &pending {
            self.stat_files.forget(exit.tgid);
        }
        let mut sample = self.kernel(pending, model);
        sample.scan = Some(self.scan(model, &sample));
        if reads.cgroups {
            sample.cgroups = Some(self.read_cgroups(model, &sample));
        }
        if let Some(cycle) = reads.memory {
            sample.memory = Some(self.read_memory(model, &sample, cycle, reads.only.as_ref()));
        }
        sample
    }

    /// The kernel's part of a pass: live counters, then exits (so a
    /// process that exits in between is seen live first and exited after,
    /// never lost), then entries whose process is gone without an exit
    /// event, then statistics; the identities of pids `model` does not
    /// know, and the names of exit and OOM cgroups.
    fn kernel(&mut self, pending_exits: Vec<ExitEvent>, model: &Model) -> Sample {
        let root = self.root.clone();
        let root = &root;
        // Before the live counters: the exit probe adds a process to its
        // memcg's totals before deleting its counters, so a process is in
        // at most one of the two reads.
        let memcg_exits = self.memcg_exits();
        let mut live = match self.probes.read_counters() {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        let rss = self.probes.read_mm_states();
        let mut exits = pending_exits;
        self.probes.drain_exits(&mut exits);
        let gone = |tgid: u32, exits: &[ExitEvent]| {
            !root.pid_dir(tgid).exists() && !exits.iter().any(|e| e.tgid == tgid)
        };
        if live.iter().any(|(tgid, _)| gone(*tgid, &exits)) {
            // An exit may have landed after the first drain: drain again
            // before calling an entry vanished.
            self.probes.drain_exits(&mut exits);
        }
        let (vanished, still): (Vec<_>, Vec<_>) =
            live.drain(..).partition(|(tgid, _)| gone(*tgid, &exits));
        for (tgid, _) in &vanished {
            self.probes.remove_counters(*tgid);
        }
        let stats = match self.probes.read_stats() {
            Ok(mut s) => {
                s.proc_map_stale = vanished.len() as u64;
                Some(s)
            }
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        let ooms = self.oom_records(root, Some(model));
        // Moved processes: their memory cgroup read again (after the ids
        // left the map: a move after this read is seen next pass).
        let moved = self
            .probes
            .take_moved_tasks()
            .into_iter()
            .filter(|pid| model.is_live(*pid))
            .filter_map(|pid| Some((pid, moved_meta(root, pid)?)))
            .collect();
        let mut infos = HashMap::new();
        for (tgid, counters) in &still {
            if !model.needs_identity(*tgid, counters) {
                continue;
            }
            match identity::read(root, *tgid) {
                Ok(id) => {
                    infos.insert(*tgid, (id, proc_meta(root, *tgid)));
                }
                // Exited between the map read and now: its exit event follows.
                Err(ReadFailure::Gone(_)) => {}
                Err(e) => tracing::debug!("identity of pid {tgid}: {e}"),
            }
        }
        let kill_signals = self.kill_signal_records(root);
        let mut exit_cgroups = HashMap::new();
        for e in exits.iter().filter(|e| e.flags & EXIT_MEMCG_ID != 0) {
            if let Some(path) = self.cgroup_ids.resolve(e.cgroup_id) {
                exit_cgroups.insert(e.cgroup_id, meta_of_cgroup(Some(path), None));
            }
        }
        Sample {
            live: still,
            infos,
            exits,
            exit_cgroups,
            vanished,
            ooms,
            kill_signals,
            moved,
            rss,
            stats,
            alloc: self.probes.read_alloc(),
            memcg_exits,
            program_runs: self.run_stats.is_ok().then(|| self.probes.program_runs()),
            missing: self
                .run_stats
                .as_ref()
                .err()
                .map(ToString::to_string)
                .into_iter()
                .collect(),
            ..Sample::default()
        }
    }

    /// Every process, from the task iterator (or /proc when it is not in
    /// use or just failed: the reason then is in [`Scan::failed`]), with
    /// the placement of the pids neither the model nor the kernel's part
    /// of this pass knows.
    fn scan(&mut self, model: &Model, kernel: &Sample) -> Scan {
        let mut failed = None;
        let identities = match self.scan_tasks(&mut failed) {
            Some(scan) => scan,
            None => self.stat_files.scan(&self.root),
        };
        let metas = identities
            .iter()
            .filter(|id| id.fresh && !model.knows_pid(id.pid, id.start_time_ticks))
            .filter(|id| {
                kernel
                    .infos
                    .get(&id.pid)
                    .is_none_or(|(known, _)| known.start_time_ticks != id.start_time_ticks)
            })
            .map(|id| (id.pid, proc_meta(&self.root, id.pid)))
            .collect();
        Scan {
            identities,
            metas,
            task_iter: self.task_iter_in_use(),
            failed,
        }
    }

    /// The memory cgroups of the live processes (as of the last pass, and
    /// the new and moved ones of this one) and their ancestors; problems
    /// go to the sample's missing sources.
    fn read_cgroups(&mut self, model: &Model, sample: &Sample) -> CgroupsRead {
        let Some(reader) = self.cgroups.as_mut() else {
            return CgroupsRead {
                live: false,
                missing: self.cgroups_missing.iter().cloned().collect(),
                ..CgroupsRead::default()
            };
        };
        let new = sample
            .scan
            .iter()
            .flat_map(|s| s.metas.values())
            .chain(sample.infos.values().map(|(_, meta)| meta))
            .chain(sample.moved.values())
            .filter_map(|meta| meta.cgroup.as_deref());
        let mut in_use = model.cgroups_in_use();
        in_use.extend(new);
        let scan = reader.scan(in_use);
        CgroupsRead {
            live: true,
            readings: scan
                .samples
                .into_iter()
                .map(|s| {
                    let names = crate::cgroupfs::names::names(&s.path);
                    (s, names)
                })
                .collect(),
            gone: scan.gone,
            missing: scan.notices,
        }
    }

    /// One cost-guarded pass over the live processes' memory
    /// (smaps_rollup, status, OOM score, numa_maps), then the system
    /// files. `cycle` is the sampling interval the guard's budget is a
    /// share of; `only` limits the reads to these pids.
    fn read_memory(
        &mut self,
        model: &Model,
        sample: &Sample,
        cycle: Duration,
        only: Option<&HashSet<u32>>,
    ) -> MemoryRead {
        // Without the cgroup_attach probe, a process's memory cgroup is
        // read again whenever its memory is (a move is then seen within
        // its interval rather than at once).
        let reread_cgroups = !model
            .probes()
            .iter()
            .any(|p| p.name == probe::CGROUP_ATTACH.name() && p.is_attached());
        let mut candidates = model.memory_candidates(sample);
        if let Some(only) = only {
            candidates.retain(|c| only.contains(&c.key.pid));
        }
        let slabinfo = self.guard.slabinfo_due(Instant::now());
        let root = &self.root;
        let mut system = system::read(root, &numa::SysNodeRoot::default(), slabinfo);
        // One node: every page is local and numa_maps (one of the costliest
        // /proc files: it prints every mapping's path) says nothing new.
        let multi_node = system.nodes.len() > 1;
        let cpu_node = &self.cpu_node;
        let mut out = MemoryRead::default();
        // A file counts as missing from the kernel when no process read in
        // this pass had it (a trimmed /proc may lack it for some only).
        let (mut had_rollup, mut lacked_rollup) = (false, false);
        out.cost = self.guard.cycle(&candidates, cycle, |key| {
            match memory::read(root, key.pid) {
                Ok(mut m) => {
                    match m.missing.take() {
                        Some((_, what)) => {
                            lacked_rollup = true;
                            out.missing.push(what);
                        }
                        None => had_rollup = true,
                    }
                    let numa = multi_node
                        .then(|| numa::read(root, key.pid, cpu_node).ok())
                        .flatten();
                    out.processes.push((key, m, numa));
                    if reread_cgroups && let Some(meta) = moved_meta(root, key.pid) {
                        out.moved.insert(key.pid, meta);
                    }
                    true
                }
                Err(ReadFailure::Gone(_)) => false,
                Err(e) => {
                    tracing::debug!("{e}");
                    true
                }
            }
        });
        out.smaps_rollup = if had_rollup {
            Some(true)
        } else if lacked_rollup {
            Some(false)
        } else {
            None
        };
        out.missing.extend(std::mem::take(&mut system.missing));
        out.system = system;
        out
    }

    /// memmon's own resident bytes and CPU seconds now.
    pub fn self_usage(&self) -> (u64, f64) {
        identity::self_usage()
    }

    /// Returns the free room a burst of processes left in the scan's
    /// tables; true when something shrank.
    pub fn shrink(&mut self) -> bool {
        self.stat_files.shrink()
    }

    /// The pinned per-memcg exit totals by cgroup path; entries of memory
    /// cgroups that no longer exist (unresolved for [`ORPHAN_AFTER`]) are
    /// deleted from the map. `None` when the exit probe is not attached.
    fn memcg_exits(&mut self) -> Option<Vec<(String, memmon_common::MemcgExits)>> {
        if !self.probes.is_attached(probe::PROCESS_EXIT) {
            return None;
        }
        let raw = match self.probes.read_memcg_exits() {
            Ok(raw) => raw,
            Err(e) => {
                tracing::debug!("{e}");
                return None;
            }
        };
        let now = std::time::Instant::now();
        let mut out = Vec::with_capacity(raw.len());
        for (id, totals) in raw {
            match self.cgroup_ids.resolve(id) {
                Some(path) => {
                    self.unresolved_memcgs.remove(&id);
                    out.push((path, totals));
                }
                None => {
                    let first = *self.unresolved_memcgs.entry(id).or_insert(now);
                    if now.duration_since(first) > ORPHAN_AFTER {
                        self.probes.remove_memcg_exits(id);
                        self.unresolved_memcgs.remove(&id);
                    }
                }
            }
        }
        Some(out)
    }

    /// SIGKILLs drained so far, with the sender's and the target's memory
    /// cgroups from their ids (the hierarchy is walked again at once for an
    /// id it has not seen). Where the probe gave no id (a classic
    /// tracepoint), /proc names the cgroup of a process still alive; a dead
    /// one's /proc shows the root cgroup, so it is left unknown.
    pub fn kill_signal_records(&mut self, root: &ProcRoot) -> Vec<crate::sample::KillSignalRecord> {
        let signals = self.probes.take_kill_signals();
        self.cgroup_ids.refresh_for(
            signals
                .iter()
                .flat_map(|s| [s.sender_memcg_id, s.target_memcg_id])
                .flatten(),
        );
        signals
            .into_iter()
            .map(|signal| crate::sample::KillSignalRecord {
                sender_cgroup: signal
                    .sender_memcg_id
                    .and_then(|id| self.cgroup_ids.resolve(id))
                    .or_else(|| cgroup::memory_cgroup_of_live(root, signal.sender_pid).ok()),
                target_cgroup: signal
                    .target_memcg_id
                    .and_then(|id| self.cgroup_ids.resolve(id))
                    .or_else(|| cgroup::memory_cgroup_of_live(root, signal.target_pid).ok()),
                signal,
            })
            .collect()
    }

    /// The OOM kills drained so far, with their names resolved: the memcg
    /// ids the kernel's record names, and (cgroup v2, where that record
    /// tells nothing, with `model`'s last reading of each memcg's events
    /// to compare with) the limit memory.events tells.
    fn oom_records(&mut self, root: &ProcRoot, model: Option<&Model>) -> Vec<OomRecord> {
        let events = self.probes.take_oom_events();
        let ids = |e: &OomEvent| {
            let oc = (e.flags & OOM_MEMCG_ID != 0).then_some(e.oom_memcg_id);
            let path = e.path.iter().take(e.path_levels as usize).map(|l| l.id);
            oc.into_iter()
                .chain(path)
                .filter(|id| *id != 0)
                .collect::<Vec<_>>()
        };
        self.cgroup_ids.refresh_for(events.iter().flat_map(ids));
        let page_size = identity::page_size();
        events
            .into_iter()
            .map(|e| {
                let mut record = oom_record(e, root, &self.memcg_dir);
                record.memsw_limit = self.memcg_v1;
                record.memcg_paths = ids(&e)
                    .into_iter()
                    .filter_map(|id| Some((id, self.cgroup_ids.resolve(id)?)))
                    .collect();
                let told = crate::model::oom_limit::limit_of(&record, page_size).is_some();
                if !told
                    && let (Some(reader), Some(model), Some(killer)) =
                        (self.cgroups.as_ref(), model, record.killer_memcg.as_deref())
                {
                    record.events_limit =
                        events_limit(reader.root(), killer, |path| model.cgroup_oom_count(path));
                }
                record
            })
            .collect()
    }

    /// Drains the ring buffer and returns the OOM kills in it with their
    /// names resolved (exits go to `exits`).
    pub fn drain_oom_records(
        &mut self,
        exits: &mut Vec<ExitEvent>,
        root: &ProcRoot,
    ) -> Vec<OomRecord> {
        self.probes.drain_exits(exits);
        self.oom_records(root, None)
    }

    /// Kernel statistics now.
    pub fn stats(&self) -> Option<StatsSnapshot> {
        match self.probes.read_stats() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memcg an OOM event names is found in the hierarchy the
    /// collector reads, v1 or v2 (a v2 host has no /sys/fs/cgroup/memory:
    /// looking there left the bare name, and the kill read as global).
    #[test]
    fn the_killers_memcg_is_resolved_under_the_cgroup_root_in_use() {
        let mount = tempfile::tempdir().expect("tmp");
        // A v2 hierarchy with the memory controller, a limited cgroup in it.
        std::fs::write(mount.path().join("cgroup.controllers"), "cpu memory\n").expect("w");
        std::fs::create_dir_all(mount.path().join("kubepods.slice/pod-a.slice/box"))
            .expect("mkdir");
        let root = ProcRoot::new(mount.path().join("no-proc"));
        let cg_root = crate::cgroupfs::CgroupRoot::detect_at(mount.path()).expect("v2");
        let rec = oom_record(crate::sample::test_oom_event("box"), &root, cg_root.dir());
        assert_eq!(
            rec.killer_memcg.as_deref(),
            Some("/kubepods.slice/pod-a.slice/box")
        );
        assert_eq!(
            rec.cgroup.as_deref(),
            Some("/kubepods.slice/pod-a.slice/box")
        );
        // Not found: the bare name stays (it is what the kernel said).
        let rec = oom_record(
            crate::sample::test_oom_event("elsewhere"),
            &root,
            cg_root.dir(),
        );
        assert_eq!(rec.killer_memcg.as_deref(), Some("elsewhere"));
    }

    /// Without the kernel's record, cgroup v2's memory.events tells: the
    /// deepest memcg on the killer's path whose `oom` count grew; global
    /// when none did; nothing on v1.
    #[test]
    fn memory_events_decide_where_the_kernels_record_is_missing() {
        let mount = tempfile::tempdir().expect("tmp");
        std::fs::write(mount.path().join("cgroup.controllers"), "memory\n").expect("w");
        for (dir, oom, max) in [("pod", 2, "max"), ("pod/box", 0, "67108864")] {
            let d = mount.path().join(dir);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(
                d.join("memory.events"),
                format!("low 0\nhigh 0\nmax 5\noom {oom}\noom_kill 1\n"),
            )
            .expect("w");
            std::fs::write(d.join("memory.max"), format!("{max}\n")).expect("w");
            std::fs::write(d.join("memory.current"), "1048576\n").expect("w");
        }
        let root = crate::cgroupfs::CgroupRoot::detect_at(mount.path()).expect("v2");
        // The pod's count grew (2 > 1): its limit (none here) was hit.
        let l = events_limit(&root, "/pod/box", |p| if p == "/pod" { 1 } else { 0 }).expect("v2");
        assert_eq!((l.constraint, l.source), ("memcg", "memory.events"));
        assert_eq!(l.cgroup.as_deref(), Some("/pod"));
        assert_eq!((l.limit_bytes, l.usage_bytes), (None, Some(1 << 20)));
        // No count grew: global.
        let l = events_limit(&root, "/pod/box", |_| 2).expect("v2");
        assert_eq!((l.constraint, l.cgroup), ("global", None));
        let v1 = crate::cgroupfs::CgroupRoot::new(mount.path(), crate::cgroupfs::Version::V1);
        assert_eq!(events_limit(&v1, "/pod/box", |_| 0), None);
    }
}
