//! Typed reads of the kernel maps: per-process counters, per-CPU statistics
//! and the exit-event ring buffer. Nothing here interprets the values.

use aya::maps::{HashMap, MapData, PerCpuArray};
use memmon_common::{ExitEvent, ProcCounters, Stat, events::EVENT_EXIT};
use serde::Serialize;

use super::ProbeSet;

/// Statistics summed over CPUs, plus map fill.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Fault tracepoint hits.
    pub fault_events: u64,
    /// Major-fault perf events.
    pub major_fault_events: u64,
    /// Process exits seen.
    pub exit_events: u64,
    /// Updates dropped because the per-process map was full.
    pub proc_map_full: u64,
    /// Exit events lost because the ring buffer was full.
    pub events_lost: u64,
    /// Entries in the per-process map now.
    pub proc_map_entries: u64,
    /// Its capacity.
    pub proc_map_capacity: u64,
    /// Entries found in the last pass whose process no longer existed and
    /// whose exit was not seen (0 in steady state: the exit probe removes
    /// entries; after a restart on pinned maps, the processes that exited
    /// while memmon was down). The collector removes them.
    pub proc_map_stale: u64,
}

/// A map read failed (kernel error): the caller keeps its previous data.
#[derive(Debug, thiserror::Error)]
#[error("reading map {map}: {source}")]
pub struct ReadError {
    map: &'static str,
    #[source]
    source: aya::maps::MapError,
}

fn err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> ReadError {
    move |source| ReadError { map, source }
}

impl ProbeSet {
    /// Every live process's counters, keyed by tgid.
    pub fn read_counters(&self) -> Result<Vec<(u32, ProcCounters)>, ReadError> {
        let map = self.ebpf.map("PROC_COUNTERS").ok_or(ReadError {
            map: "PROC_COUNTERS",
            source: aya::maps::MapError::InvalidName {
                name: "PROC_COUNTERS".into(),
            },
        })?;
        let map: HashMap<&MapData, u32, ProcCounters> =
            HashMap::try_from(map).map_err(err("PROC_COUNTERS"))?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok(kv) => out.push(kv),
                // An entry deleted between key and value lookups: the
                // process just exited and its exit event carries it.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(err("PROC_COUNTERS")(e)),
            }
        }
        Ok(out)
    }

    /// Deletes a process's counters from the kernel map (its process is
    /// gone and its exit was not seen).
    pub fn remove_counters(&mut self, tgid: u32) {
        let Some(map) = self.ebpf.map_mut("PROC_COUNTERS") else {
            return;
        };
        if let Ok(mut map) = HashMap::<&mut MapData, u32, ProcCounters>::try_from(map)
            && let Err(e) = map.remove(&tgid)
        {
            tracing::debug!("removing stale entry {tgid}: {e}");
        }
    }

    /// The statistics slots summed over CPUs.
    pub fn read_stats(&self) -> Result<StatsSnapshot, ReadError> {
        let map = self.ebpf.map("STATS").ok_or(ReadError {
            map: "STATS",
            source: aya::maps::MapError::InvalidName {
                name: "STATS".into(),
            },
        })?;
        let stats: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(err("STATS"))?;
        let mut out = StatsSnapshot {
            proc_map_capacity: u64::from(self.max_processes),
            ..Default::default()
        };
        for stat in Stat::ALL {
            let values = stats.get(&(stat as u32), 0).map_err(err("STATS"))?;
            let sum: u64 = values.iter().sum();
            match stat {
                Stat::FaultEvents => out.fault_events = sum,
                Stat::MajorFaultEvents => out.major_fault_events = sum,
                Stat::ExitEvents => out.exit_events = sum,
                Stat::ProcMapFull => out.proc_map_full = sum,
                Stat::EventsLost => out.events_lost = sum,
            }
        }
        if let Some(map) = self.ebpf.map("PROC_COUNTERS")
            && let Ok(map) = HashMap::<&MapData, u32, ProcCounters>::try_from(map)
        {
            out.proc_map_entries = map.keys().filter(|k| k.is_ok()).count() as u64;
        }
        Ok(out)
    }

    /// Moves every pending exit event into `out`; returns how many.
    pub fn drain_exits(&mut self, out: &mut Vec<ExitEvent>) -> usize {
        let mut n = 0;
        while let Some(item) = self.events.next() {
            if let Some(event) = parse_exit(&item) {
                out.push(event);
                n += 1;
            } else {
                tracing::warn!(
                    "ignored a malformed ring-buffer record of {} bytes",
                    item.len()
                );
            }
        }
        n
    }
}

/// An exit event from raw ring-buffer bytes, if it is one.
pub fn parse_exit(bytes: &[u8]) -> Option<ExitEvent> {
    if bytes.len() < std::mem::size_of::<ExitEvent>() {
        return None;
    }
    // SAFETY: length checked; ExitEvent is Pod, so any bytes are a value.
    let event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ExitEvent>()) };
    (event.kind == EVENT_EXIT).then_some(event)
}
