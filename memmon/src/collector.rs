//! The collector: all of a pass's I/O. It turns the kernel's maps and ring
//! buffer, and the /proc and cgroupfs files the model needs (identities of
//! new pids, their cgroups, the names of exit and OOM cgroups), into
//! [`Sample`]s; the model applies them without reading anything itself.

use std::collections::HashMap;

use memmon_common::{
    ExitEvent, OomEvent,
    events::{
        EXIT_MEMCG_ID, OOM_CONTROL_READ, OOM_MEMCG, OOM_MEMCG_ID, OOM_MEMSW, OOM_PATH_MEMSW,
        OOM_PATH_READ, OOM_VICTIM_IS_CURRENT, constraint,
    },
    names::probe,
};

use crate::{
    model::{Model, comm_string},
    probes::{ProbeSet, StatsSnapshot},
    procfs::{ProcRoot, ReadFailure, cgroup, identity, unit},
    sample::{Host, Identity, OomLimit, OomRecord, ProcMeta, Sample},
};

/// Where cgroup filesystems are mounted.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A MEMCG_EXITS key unresolved this long names a memory cgroup that was
/// removed: its entry is deleted.
const ORPHAN_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the probes and the files the model needs.
pub struct Collector {
    probes: ProbeSet,
    /// Memory cgroup ids of exit events → paths.
    cgroup_ids: cgroup::CgroupIds,
    /// The memory controller's hierarchy (v1 `memory/`, or v2): where the
    /// memory cgroup an OOM event names is looked up.
    memcg_dir: std::path::PathBuf,
    /// MEMCG_EXITS keys no walk of the hierarchy found, since when.
    unresolved_memcgs: HashMap<u64, std::time::Instant>,
    /// The kernel's run-time statistics of the programs, while held.
    run_stats: Result<crate::probes::run_stats::RunStats, String>,
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

/// The placement of every pid in `scan` that the model does not know yet.
pub fn scan_metas(scan: &[Identity], root: &ProcRoot, model: &Model) -> HashMap<u32, ProcMeta> {
    scan.iter()
        .filter(|id| id.fresh && !model.knows_pid(id.pid, id.start_time_ticks))
        .map(|id| (id.pid, proc_meta(root, id.pid)))
        .collect()
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
        limit: None,
    }
}

/// A page counter's `max` at or past `PAGE_COUNTER_MAX` (`LONG_MAX /
/// PAGE_SIZE`): no limit.
fn unlimited(max_pages: u64, page_size: u64) -> bool {
    max_pages >= (i64::MAX as u64) / page_size.max(1)
}

/// How close to its limit a page counter must be at an OOM kill to be the
/// one that was hit: a memcg OOM starts with less than the failed charge
/// (at most 8 pages) left, and other tasks may uncharge before the victim
/// is marked; 1% of the limit, and at least one charge batch (64 pages).
fn at_limit(usage_pages: u64, max_pages: u64) -> bool {
    max_pages.saturating_sub(usage_pages) <= (max_pages / 100).max(64)
}

/// The limit the kernel says an OOM kill hit, read at the kill (`None`
/// when it was not): the kernel's own `struct oom_control` where the
/// `oom_constraint` kprobe ran (source `oom_control`: its `memcg`, set
/// only for a memcg OOM, with that memcg's page counter, else its
/// `constraint`: global, cpuset, mempolicy); else the page counters of the
/// killing task's memcg and its ancestors (source `page_counter`): the
/// deepest one at its limit ([`at_limit`]) is the memcg OOM's, none at its
/// limit is a global OOM. `memsw`: cgroup v1, whose memory+swap counter is
/// a limit of its own (on v2 that slot counts swap alone). The memcg id is
/// resolved with `resolve`.
pub fn kernel_limit(
    e: &OomEvent,
    page_size: u64,
    memsw: bool,
    resolve: impl FnOnce(u64) -> Option<String>,
) -> Option<OomLimit> {
    let limited = |max: u64| !unlimited(max, page_size);
    let memcg = |id: Option<u64>, hit: Option<(u64, u64, &'static str)>, source| OomLimit {
        constraint: "memcg",
        source,
        cgroup: id.and_then(resolve),
        limit: hit.map(|(_, _, name)| name),
        limit_bytes: hit.map(|(_, max, _)| max.saturating_mul(page_size)),
        usage_bytes: hit.map(|(usage, _, _)| usage.saturating_mul(page_size)),
    };
    let global = |constraint, source| OomLimit {
        constraint,
        source,
        cgroup: None,
        limit: None,
        limit_bytes: None,
        usage_bytes: None,
    };
    if e.flags & OOM_CONTROL_READ != 0 {
        if e.flags & OOM_MEMCG == 0 {
            let constraint = match e.constraint {
                constraint::NONE => "global",
                constraint::CPUSET => "cpuset",
                constraint::MEMORY_POLICY => "mempolicy",
                _ => return None,
            };
            return Some(global(constraint, "oom_control"));
        }
        let memory = limited(e.memory_max_pages).then_some((
            e.memory_usage_pages,
            e.memory_max_pages,
            "max",
        ));
        let memsw = (memsw && e.flags & OOM_MEMSW != 0 && limited(e.memsw_max_pages)).then_some((
            e.memsw_usage_pages,
            e.memsw_max_pages,
            "memsw_max",
        ));
        let headroom = |(usage, max, _): (u64, u64, &str)| max.saturating_sub(usage);
        let hit = match (memory, memsw) {
            (Some(m), Some(s)) if headroom(s) < headroom(m) => Some(s),
            (m, s) => m.or(s),
        };
        let id = (e.flags & OOM_MEMCG_ID != 0).then_some(e.oom_memcg_id);
        return Some(memcg(id, hit, "oom_control"));
    }
    if e.flags & OOM_PATH_READ == 0 || e.path_levels == 0 {
        return None;
    }
    let memsw = memsw && e.flags & OOM_PATH_MEMSW != 0;
    let levels = e.path.iter().take(e.path_levels as usize);
    for level in levels {
        let hit = if limited(level.max_pages) && at_limit(level.usage_pages, level.max_pages) {
            Some((level.usage_pages, level.max_pages, "max"))
        } else if memsw
            && limited(level.memsw_max_pages)
            && at_limit(level.memsw_usage_pages, level.memsw_max_pages)
        {
            Some((level.memsw_usage_pages, level.memsw_max_pages, "memsw_max"))
        } else {
            None
        };
        if hit.is_some() {
            return Some(memcg(
                (level.id != 0).then_some(level.id),
                hit,
                "page_counter",
            ));
        }
    }
    Some(global("global", "page_counter"))
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
    /// Wraps a loaded probe set; memory cgroups are read under
    /// /sys/fs/cgroup.
    pub fn new(probes: ProbeSet) -> Self {
        Collector {
            probes,
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

    /// Reads the memory cgroups of the model's live processes and their
    /// ancestors into the model; problems go to its missing sources.
    pub fn collect_cgroups(&mut self, model: &mut Model) {
        model.cgroupfs_live = self.cgroups.is_some();
        let Some(reader) = self.cgroups.as_mut() else {
            if let Some(why) = &self.cgroups_missing {
                model.missing_sources.insert(why.clone());
            }
            return;
        };
        let in_use: Vec<String> = model
            .cgroups_in_use()
            .into_iter()
            .map(String::from)
            .collect();
        let scan = reader.scan(in_use.iter().map(String::as_str));
        model.missing_sources.extend(scan.notices);
        let samples = scan
            .samples
            .into_iter()
            .map(|s| {
                let names = crate::cgroupfs::names::names(&s.path);
                (s, names)
            })
            .collect();
        model.apply_cgroups(samples, &scan.gone, std::time::Instant::now());
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

    /// Drains exit events only (cheap; call often so the ring buffer
    /// never fills).
    pub fn drain_exits(&mut self, into: &mut Vec<ExitEvent>) -> usize {
        self.probes.drain_exits(into)
    }

    /// A full pass: live counters, then exits (so a process that exits in
    /// between is seen live first and exited after, never lost), then
    /// entries whose process is gone without an exit event, then
    /// statistics; the identities of pids `model` does not know, and the
    /// names of exit and OOM cgroups.
    pub fn collect(
        &mut self,
        pending_exits: Vec<ExitEvent>,
        root: &ProcRoot,
        model: &Model,
    ) -> Sample {
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
            missing: self.run_stats.as_ref().err().cloned().into_iter().collect(),
        }
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

    /// The OOM kills drained so far, with their names resolved and the
    /// limit each hit: the kernel's own record where the oom probes read
    /// it, else (cgroup v2, with `model`'s last reading of each memcg's
    /// events to compare with) memory.events.
    fn oom_records(&mut self, root: &ProcRoot, model: Option<&Model>) -> Vec<OomRecord> {
        let events = self.probes.take_oom_events();
        self.cgroup_ids.refresh_for(events.iter().flat_map(|e| {
            let oc = (e.flags & OOM_MEMCG_ID != 0).then_some(e.oom_memcg_id);
            let path = e.path.iter().take(e.path_levels as usize).map(|l| l.id);
            oc.into_iter().chain(path).filter(|id| *id != 0)
        }));
        let page_size = identity::page_size();
        let memsw = self.memcg_v1;
        events
            .into_iter()
            .map(|e| {
                let mut record = oom_record(e, root, &self.memcg_dir);
                record.limit = kernel_limit(&e, page_size, memsw, |id| self.cgroup_ids.resolve(id))
                    .or_else(|| {
                        let (reader, model) = (self.cgroups.as_ref()?, model?);
                        let killer = record.killer_memcg.as_deref()?;
                        events_limit(reader.root(), killer, |path| {
                            model
                                .cgroups
                                .get(path)
                                .and_then(|c| c.sample.events.as_ref())
                                .and_then(|e| e.oom)
                                .unwrap_or(0)
                        })
                    });
                record
            })
            .collect()
    }

    /// Drains the ring buffer and returns the OOM kills in it with their
    /// names and (from the kernel's record) limits resolved (exits go to
    /// `exits`).
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

/// One cost-guarded pass over the live processes' memory (smaps_rollup,
/// status, OOM score, numa_maps), folded into the model, then the system
/// view. `cycle` is the sampling interval the guard's budget is a share of;
/// `only` limits the reads to these pids (what a command will show).
pub fn collect_memory(
    model: &mut crate::model::Model,
    guard: &mut crate::procfs::cost_guard::CostGuard,
    root: &ProcRoot,
    cpu_node: &std::collections::BTreeMap<u32, u32>,
    cycle: std::time::Duration,
    only: Option<&std::collections::HashSet<u32>>,
) {
    use crate::{
        procfs::{ReadFailure, memory, numa, system},
        sources::ProcFile,
    };
    // Without the cgroup_attach probe, a process's memory cgroup is read
    // again whenever its memory is (a move is then seen within its
    // interval rather than at once).
    let reread_cgroups = !model
        .probes
        .iter()
        .any(|p| p.name == probe::CGROUP_ATTACH.name() && p.is_attached());
    let mut candidates = model.memory_candidates();
    if let Some(only) = only {
        candidates.retain(|c| only.contains(&c.key.pid));
    }
    let slabinfo = guard.slabinfo_due(std::time::Instant::now());
    let mut system = system::read(root, &numa::SysNodeRoot::default(), slabinfo);
    // One node: every page is local and numa_maps (one of the costliest
    // /proc files: it prints every mapping's path) says nothing new.
    let multi_node = system.nodes.len() > 1;
    // A file counts as missing from the kernel when no process read in
    // this pass had it (a trimmed /proc may lack it for some only).
    let (mut had_rollup, mut lacked_rollup) = (false, false);
    let cost = guard.cycle(&candidates, cycle, |key| {
        match memory::read(root, key.pid) {
            Ok(mut m) => {
                match m.missing.take() {
                    Some((_, what)) => {
                        lacked_rollup = true;
                        model.missing_sources.insert(what);
                    }
                    None => had_rollup = true,
                }
                let numa = multi_node
                    .then(|| numa::read(root, key.pid, cpu_node).ok())
                    .flatten();
                model.apply_memory(key, m, numa);
                if reread_cgroups && let Some(meta) = moved_meta(root, key.pid) {
                    model.apply_moves(HashMap::from([(key.pid, meta)]));
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
    model.memory_cost = cost;
    if had_rollup {
        model.missing_files.remove(&ProcFile::SmapsRollup);
    } else if lacked_rollup {
        model.missing_files.insert(ProcFile::SmapsRollup);
    }
    model
        .missing_sources
        .extend(std::mem::take(&mut system.missing));
    model.apply_system(system);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom_event(killer_memcg: &str) -> OomEvent {
        let mut name = [0u8; memmon_common::events::MEMCG_NAME_LEN];
        name[..killer_memcg.len()].copy_from_slice(killer_memcg.as_bytes());
        OomEvent {
            kind: memmon_common::events::EVENT_OOM,
            flags: OOM_VICTIM_IS_CURRENT,
            victim_pid: 4_194_305,
            uid: 0,
            oom_score_adj: 0,
            killer_tid: 4_194_305,
            killer_tgid: 4_194_305,
            constraint: 0,
            total_vm_kb: 0,
            anon_rss_kb: 0,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            pgtables_kb: 0,
            killer_cgroup_id: 0,
            boot_ns: 0,
            victim_comm: [0; 16],
            killer_comm: [0; 16],
            killer_memcg: name,
            oom_memcg_id: 0,
            memory_usage_pages: 0,
            memory_max_pages: 0,
            memsw_usage_pages: 0,
            memsw_max_pages: 0,
            path_levels: 0,
            _pad: 0,
            path: Default::default(),
        }
    }

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
        let rec = oom_record(oom_event("box"), &root, cg_root.dir());
        assert_eq!(
            rec.killer_memcg.as_deref(),
            Some("/kubepods.slice/pod-a.slice/box")
        );
        assert_eq!(
            rec.cgroup.as_deref(),
            Some("/kubepods.slice/pod-a.slice/box")
        );
        // Not found: the bare name stays (it is what the kernel said).
        let rec = oom_record(oom_event("elsewhere"), &root, cg_root.dir());
        assert_eq!(rec.killer_memcg.as_deref(), Some("elsewhere"));
    }

    /// The kernel's oom_control decides: its memcg (with the counter that
    /// was at its limit), else its constraint; nothing when it was not
    /// read, never a guess.
    #[test]
    fn the_kernels_oom_control_decides_the_constraint() {
        use memmon_common::events::{OOM_CONTROL_READ, OOM_MEMCG, OOM_MEMCG_ID, OOM_MEMSW};
        let page = 4096;
        let unlimited = (i64::MAX as u64) / page;
        let mut e = oom_event("box");
        assert_eq!(
            kernel_limit(&e, page, true, |_| None),
            None,
            "not read: no guess"
        );
        // A global OOM started by a task whose memcg has a limit: global.
        e.flags |= OOM_CONTROL_READ;
        e.constraint = memmon_common::events::constraint::NONE;
        let l = kernel_limit(&e, page, true, |_| panic!("no memcg to resolve")).expect("read");
        assert_eq!(
            (l.constraint, l.source, l.cgroup),
            ("global", "oom_control", None)
        );
        e.constraint = memmon_common::events::constraint::CPUSET;
        assert_eq!(
            kernel_limit(&e, page, true, |_| None).map(|l| l.constraint),
            Some("cpuset")
        );
        // A memcg OOM: 64 MiB limit, usage at the kill 64 MiB minus 3 pages.
        e.flags |= OOM_MEMCG | OOM_MEMCG_ID;
        e.constraint = memmon_common::events::constraint::MEMCG;
        e.oom_memcg_id = 77;
        e.memory_max_pages = 16384;
        e.memory_usage_pages = 16381;
        let l = kernel_limit(&e, page, true, |id| (id == 77).then(|| "/box".to_string()))
            .expect("read");
        assert_eq!(l.constraint, "memcg");
        assert_eq!(l.cgroup.as_deref(), Some("/box"));
        assert_eq!((l.limit, l.limit_bytes), (Some("max"), Some(64 << 20)));
        assert_eq!(l.usage_bytes, Some((64 << 20) - 3 * 4096));
        // v1 memsw: an unlimited memory counter, memory+swap at its limit.
        e.flags |= OOM_MEMSW;
        e.memory_max_pages = unlimited;
        e.memsw_max_pages = 8192;
        e.memsw_usage_pages = 8190;
        let l = kernel_limit(&e, page, true, |_| None).expect("read");
        assert_eq!(
            (l.limit, l.limit_bytes),
            (Some("memsw_max"), Some(32 << 20))
        );
        assert_eq!(l.cgroup, None, "an id that does not resolve");
        // Both limited: the one with less headroom was hit.
        e.memory_max_pages = 16384;
        e.memory_usage_pages = 9000;
        let limit =
            |e: &OomEvent, memsw| kernel_limit(e, page, memsw, |_| None).and_then(|l| l.limit);
        assert_eq!(limit(&e, true), Some("memsw_max"));
        // On v2 that slot counts swap alone (swap.max 0 is no memory limit).
        assert_eq!(limit(&e, false), Some("max"));
        e.memory_usage_pages = 16384;
        assert_eq!(limit(&e, true), Some("max"));
    }

    /// Without the kprobe, the page counters of the killer's memcg path at
    /// the kill decide: the deepest at its limit, else global (a limited
    /// memcg well below its limit does not make a memcg OOM).
    #[test]
    fn the_page_counters_at_the_kill_decide_without_oom_control() {
        use memmon_common::events::{MemcgLevel, OOM_PATH_MEMSW, OOM_PATH_READ};
        let page = 4096;
        let unlimited = (i64::MAX as u64) / page;
        let level = |id, usage, max| MemcgLevel {
            id,
            usage_pages: usage,
            max_pages: max,
            memsw_usage_pages: usage,
            memsw_max_pages: unlimited,
        };
        let mut e = oom_event("box");
        e.flags |= OOM_PATH_READ;
        // The killer's memcg (64 MiB limit) at 2.25 MiB, its parent
        // unlimited, the root: a global OOM.
        e.path_levels = 3;
        e.path[0] = level(10, 576, 16384);
        e.path[1] = level(11, 100_000, unlimited);
        e.path[2] = level(1, 200_000, unlimited);
        let l = kernel_limit(&e, page, false, |_| panic!("nothing to resolve")).expect("read");
        assert_eq!((l.constraint, l.source), ("global", "page_counter"));
        // The memcg at its limit (64 pages short: a charge batch).
        e.path[0].usage_pages = 16384 - 64;
        let l = kernel_limit(&e, page, false, |id| Some(format!("/id-{id}"))).expect("read");
        assert_eq!(
            (l.constraint, l.cgroup.as_deref()),
            ("memcg", Some("/id-10"))
        );
        assert_eq!(
            (l.limit_bytes, l.usage_bytes),
            (Some(64 << 20), Some((64 << 20) - (64 << 12)))
        );
        // Its parent's limit was hit, not its own.
        e.path[0].usage_pages = 8000;
        e.path[1].max_pages = 100_050;
        let l = kernel_limit(&e, page, false, |id| Some(format!("/id-{id}"))).expect("read");
        assert_eq!(l.cgroup.as_deref(), Some("/id-11"));
        // v1 memory+swap at its limit, the memory counter below.
        e.path[1].max_pages = unlimited;
        e.flags |= OOM_PATH_MEMSW;
        e.path[0].memsw_usage_pages = 16380;
        e.path[0].memsw_max_pages = 16384;
        let l = kernel_limit(&e, page, true, |id| Some(format!("/id-{id}"))).expect("read");
        assert_eq!(
            (l.cgroup.as_deref(), l.limit),
            (Some("/id-10"), Some("memsw_max"))
        );
        // ... which on v2 is swap alone: not a memory limit.
        let l = kernel_limit(&e, page, false, |_| None).expect("read");
        assert_eq!(l.constraint, "global");
        // Nothing read: nothing said.
        e.flags &= !OOM_PATH_READ;
        assert_eq!(kernel_limit(&e, page, true, |_| None), None);
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
