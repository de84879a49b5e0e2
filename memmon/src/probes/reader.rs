//! Typed reads of the kernel maps: per-process counters, per-CPU statistics
//! and the event ring buffer (exits, OOM kills, SIGKILLs). Nothing here
//! interprets the values.

use aya::maps::{HashMap, MapData, PerCpuArray};
use memmon_common::{
    ExitEvent, KillEvent, MemcgExits, OomEvent, ProcCounters, Stat,
    events::{EVENT_EXIT, EVENT_KILL, EVENT_OOM},
    names::{self, Map},
    stats::HIST_BUCKETS,
};

use super::ProbeSet;
pub use crate::sample::stats::StatsSnapshot;

/// A map read failed (kernel error): the caller keeps its previous data.
#[derive(Debug, thiserror::Error)]
#[error("reading map {map}: {source}")]
pub struct ReadError {
    map: &'static Map,
    #[source]
    source: aya::maps::MapError,
}

fn err(map: &'static Map) -> impl FnOnce(aya::maps::MapError) -> ReadError {
    move |source| ReadError { map, source }
}

impl ProbeSet {
    /// The per-process counters map (PROC_COUNTERS).
    fn proc_counters(&self) -> Result<HashMap<&MapData, u32, ProcCounters>, ReadError> {
        let map = self.ebpf.map(names::PROC_COUNTERS).ok_or(ReadError {
            map: names::PROC_COUNTERS,
            source: aya::maps::MapError::InvalidName {
                name: names::PROC_COUNTERS.name().into(),
            },
        })?;
        HashMap::try_from(map).map_err(err(names::PROC_COUNTERS))
    }

    /// Every live process's counters, keyed by tgid.
    pub fn read_counters(&self) -> Result<Vec<(u32, ProcCounters)>, ReadError> {
        let map = self.proc_counters()?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok((tgid, c)) => out.push((tgid, super::sampled::scaled(c))),
                // An entry deleted between key and value lookups: the
                // process just exited and its exit event carries it.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(err(names::PROC_COUNTERS)(e)),
            }
        }
        Ok(out)
    }

    /// The counters of the processes `tgids` that have some (one lookup
    /// each: a pass that read only the processes that ran).
    pub fn read_counters_of(&self, tgids: &[u32]) -> Result<Vec<(u32, ProcCounters)>, ReadError> {
        let map = self.proc_counters()?;
        let mut out = Vec::new();
        for tgid in tgids {
            match map.get(tgid, 0) {
                Ok(c) => out.push((*tgid, super::sampled::scaled(c))),
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(err(names::PROC_COUNTERS)(e)),
            }
        }
        Ok(out)
    }

    /// Deletes a process's counters from the kernel map (its process is
    /// gone and its exit was not seen).
    pub fn remove_counters(&mut self, tgid: u32) {
        let Some(map) = self.ebpf.map_mut(names::PROC_COUNTERS) else {
            return;
        };
        if let Ok(mut map) = HashMap::<&mut MapData, u32, ProcCounters>::try_from(map)
            && let Err(e) = map.remove(&tgid)
        {
            tracing::debug!("removing stale entry {tgid}: {e}");
        }
    }

    /// What exited processes left per memory cgroup (key: memcg id, the
    /// directory inode; resolve with [`crate::procfs::cgroup::CgroupIds`]):
    /// kernel-side totals in a pinned map, so they survive restarts and
    /// never go backwards. Empty when the exit probe is not loaded.
    pub fn read_memcg_exits(&self) -> Result<Vec<(u64, MemcgExits)>, ReadError> {
        let Some(map) = self.ebpf.map(names::MEMCG_EXITS) else {
            return Ok(Vec::new());
        };
        let map: HashMap<&MapData, u64, MemcgExits> =
            HashMap::try_from(map).map_err(err(names::MEMCG_EXITS))?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok((id, mut totals)) => {
                    totals.counters = super::sampled::scaled(totals.counters);
                    out.push((id, totals));
                }
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(err(names::MEMCG_EXITS)(e)),
            }
        }
        Ok(out)
    }

    /// Forgets the exit totals of memory cgroup `id` (it no longer exists).
    pub fn remove_memcg_exits(&mut self, id: u64) {
        let Some(map) = self.ebpf.map_mut(names::MEMCG_EXITS) else {
            return;
        };
        if let Ok(mut map) = HashMap::<&mut MapData, u64, MemcgExits>::try_from(map)
            && let Err(e) = map.remove(&id)
        {
            tracing::debug!("removing the exit totals of memcg {id}: {e}");
        }
    }

    /// The thread ids the `cgroup_attach` probe saw moved to another cgroup
    /// since the last call, each once, taken out of the map (an id moved
    /// again meanwhile is put back by the kernel and read next time).
    /// Empty when the probe is not loaded.
    pub fn take_moved_tasks(&mut self) -> Vec<u32> {
        let Some(map) = self.ebpf.map_mut(names::MOVED_TASKS) else {
            return Vec::new();
        };
        let Ok(mut map) = HashMap::<&mut MapData, u32, u32>::try_from(map) else {
            return Vec::new();
        };
        let ids: Vec<u32> = map.keys().filter_map(Result::ok).collect();
        for id in &ids {
            let _ = map.remove(id);
        }
        ids
    }

    /// The statistics slots summed over CPUs.
    pub fn read_stats(&self) -> Result<StatsSnapshot, ReadError> {
        let map = self.ebpf.map(names::STATS).ok_or(ReadError {
            map: names::STATS,
            source: aya::maps::MapError::InvalidName {
                name: names::STATS.name().into(),
            },
        })?;
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(err(names::STATS))?;
        let mut out = StatsSnapshot {
            proc_map_capacity: u64::from(self.max_processes),
            ..Default::default()
        };
        for stat in Stat::ALL {
            let values = stats.get(&(stat as u32), 0).map_err(err(names::STATS))?;
            let sum: u64 = values.iter().sum();
            match stat {
                Stat::FaultEvents => out.fault_events = sum,
                Stat::MajorFaultEvents => out.major_fault_events = sum,
                Stat::ExitEvents => out.exit_events = sum,
                Stat::ProcMapFull => out.proc_map_full = sum,
                Stat::EventsLost => out.events_lost = sum,
                Stat::MmapEvents => out.mmap_events = sum,
                Stat::MmapMapFull => out.mmap_map_full = sum,
                Stat::SlabEvents => out.slab_events = sum,
                Stat::SlabMapFull => out.slab_map_full = sum,
                Stat::PageAllocEvents => out.page_alloc_events = sum,
                Stat::ExtfragEvents => out.extfrag_events = sum,
                Stat::ReclaimEvents => out.reclaim_events = sum,
                Stat::ReclaimMapFull => out.reclaim_map_full = sum,
                Stat::OomEvents => out.oom_events = sum,
                Stat::OomEventsLost => out.oom_events_lost = sum,
                Stat::MigrateEvents => out.migrate_events = sum,
                Stat::NumaMoveEvents => out.numa_move_events = sum,
                Stat::FaultLatencyEvents => out.fault_latency_events = sum,
                Stat::KillEvents => out.kill_events = sum,
                Stat::KillEventsLost => out.kill_events_lost = sum,
                Stat::MemcgExitsFull => out.memcg_exits_map_full = sum,
                Stat::CgroupMoveEvents => out.cgroup_move_events = sum,
                Stat::MovedTasksMapFull => out.moved_tasks_map_full = sum,
                Stat::SwapMapFull => out.swap_map_full = sum,
                Stat::RanOverflow => out.ran_map_full = sum,
                Stat::RanMarks => out.ran_mark_events = sum,
                // Only `memmon profile` / `memmon leaks` attach the stack
                // probes; they read these slots themselves (probes::stacks).
                Stat::StackSamples
                | Stat::StackMapFull
                | Stat::StackLost
                | Stat::LeakMapFull
                | Stat::ResidentLost => {}
            }
        }
        out.reclaim_stall_hist = self.read_log2_hist(names::RECLAIM_HIST);
        out.fault_latency_hist = self.read_log2_hist(names::FAULT_LATENCY_HIST);
        out.migrate_pages_by_reason = self
            .read_per_cpu_slots(names::MIGRATE_REASONS, MIGRATE_REASON_NAMES.len() as u32)
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(i, n)| (MIGRATE_REASON_NAMES[i].to_string(), n))
            .collect();
        if let Some(map) = self.ebpf.map(names::PROC_COUNTERS)
            && let Ok(map) = HashMap::<&MapData, u32, ProcCounters>::try_from(map)
        {
            out.proc_map_entries = map.keys().filter(|k| k.is_ok()).count() as u64;
        }
        Ok(out)
    }

    /// A log2 histogram of ns (slot i counts [2^i, 2^(i+1)), slot 0 from
    /// 0): (lower bound, count) of the non-empty slots.
    fn read_log2_hist(&self, name: &str) -> Vec<(u64, u64)> {
        self.read_per_cpu_slots(name, HIST_BUCKETS)
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(i, n)| (if i == 0 { 0 } else { 1u64 << i }, n))
            .collect()
    }

    /// A per-CPU u64 array summed over CPUs, `len` slots; empty when the
    /// map is missing or unreadable (its probe is then unavailable).
    fn read_per_cpu_slots(&self, name: &str, len: u32) -> Vec<u64> {
        let Some(map) = self.ebpf.map(name) else {
            return Vec::new();
        };
        let Ok(array) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return Vec::new();
        };
        (0..len)
            .map(|i| array.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0))
            .collect()
    }

    /// Moves every pending exit event into `out` (OOM events are kept for
    /// [`ProbeSet::take_oom_events`], SIGKILLs for
    /// [`ProbeSet::take_kill_signals`]); returns how many exits.
    pub fn drain_exits(&mut self, out: &mut Vec<ExitEvent>) -> usize {
        let mut n = 0;
        while let Some(item) = self.events.next() {
            match parse_event(&item) {
                Some(RingEvent::Exit(mut event)) => {
                    event.counters = super::sampled::scaled(event.counters);
                    out.push(event);
                    n += 1;
                }
                Some(RingEvent::Oom(event)) => self.pending_oom.push(*event),
                Some(RingEvent::Kill(event)) => self.pending_kill.push(event),
                None => tracing::warn!(
                    "ignored a malformed ring-buffer record of {} bytes",
                    item.len()
                ),
            }
        }
        n
    }

    /// OOM events drained so far (by [`ProbeSet::drain_exits`]), oldest first.
    pub fn take_oom_events(&mut self) -> Vec<OomEvent> {
        std::mem::take(&mut self.pending_oom)
    }
}

/// `enum migrate_reason` names (include/linux/migrate_mode.h), by value;
/// the last slot also holds any newer reason.
pub const MIGRATE_REASON_NAMES: [&str; 16] = [
    "compaction",
    "memory_failure",
    "memory_hotplug",
    "syscall_or_cpuset",
    "mempolicy_mbind",
    "numa_misplaced",
    "contig_range",
    "longterm_pin",
    "demotion",
    "damon",
    "reason_10",
    "reason_11",
    "reason_12",
    "reason_13",
    "reason_14",
    "other",
];

/// One record of the `EVENTS` ring buffer.
#[derive(Clone, Debug)]
pub enum RingEvent {
    /// A process exited.
    Exit(ExitEvent),
    /// The OOM killer marked a victim (boxed: the largest record, and
    /// the rarest).
    Oom(Box<OomEvent>),
    /// A SIGKILL was sent.
    Kill(KillEvent),
}

/// A ring-buffer record by its kind tag; `None` when the tag is unknown or
/// the record is shorter than its type.
pub fn parse_event(bytes: &[u8]) -> Option<RingEvent> {
    let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    match kind {
        EVENT_EXIT => read_pod::<ExitEvent>(bytes).map(RingEvent::Exit),
        EVENT_OOM => read_pod::<OomEvent>(bytes).map(|e| RingEvent::Oom(Box::new(e))),
        EVENT_KILL => read_pod::<KillEvent>(bytes).map(RingEvent::Kill),
        _ => None,
    }
}

/// An exit event from raw ring-buffer bytes, if it is one.
pub fn parse_exit(bytes: &[u8]) -> Option<ExitEvent> {
    match parse_event(bytes)? {
        RingEvent::Exit(e) => Some(e),
        RingEvent::Oom(_) | RingEvent::Kill(_) => None,
    }
}

fn read_pod<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is Pod, so any bytes are a value.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading a Pod value's bytes.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    #[test]
    fn parses_by_kind_tag() {
        let oom = OomEvent {
            kind: EVENT_OOM,
            flags: 0,
            victim_pid: 42,
            uid: 0,
            oom_score_adj: -5,
            killer_tid: 42,
            killer_tgid: 42,
            constraint: 0,
            total_vm_kb: 1,
            anon_rss_kb: 2,
            file_rss_kb: 3,
            shmem_rss_kb: 4,
            pgtables_kb: 5,
            killer_cgroup_id: 6,
            boot_ns: 7,
            victim_comm: *b"victim\0\0\0\0\0\0\0\0\0\0",
            killer_comm: [0; 16],
            killer_memcg: [0; 64],
            oom_memcg_id: 0,
            memory_usage_pages: 0,
            memory_max_pages: 0,
            memsw_usage_pages: 0,
            memsw_max_pages: 0,
            path_levels: 0,
            _pad: 0,
            path: Default::default(),
        };
        let raw = bytes_of(&oom);
        match parse_event(&raw) {
            Some(RingEvent::Oom(e)) => {
                assert_eq!(e.victim_pid, 42);
                assert_eq!(e.oom_score_adj, -5);
                assert_eq!(e.pgtables_kb, 5);
            }
            other => panic!("expected an OOM event, got {other:?}"),
        }
        assert!(parse_exit(&raw).is_none());
        assert!(parse_event(&raw[..raw.len() - 1]).is_none());
        assert!(parse_event(&[9, 0, 0, 0]).is_none());
        assert!(parse_event(&[]).is_none());
    }
}
