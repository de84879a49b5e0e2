//! The stack-sampling probes, which only `memmon profile` and `memmon leaks`
//! attach (they are not in the catalog, so the daemon and the other
//! commands never do): the page-fault perf event with a sample period, the
//! allocator uprobes on one process, the target settings, and typed reads
//! of the sampled stacks and live allocations.

use std::{num::NonZeroU32, os::fd::AsFd as _, path::Path};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{PerfEvent, TracePoint, UProbe, uprobe::UProbeScope},
};
use memmon_common::{
    Stat,
    names::{self, Map, Program, program},
    stacks::{LiveAlloc, NO_STACK, StackFrames, StackKey, setting, stack_event},
};

use super::{ProbeSet, fault_events::FaultEvents};
use crate::sample::stacks::{RawSample, RawStack, StackEvent};

/// Attaching or reading the stack probes failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A map is missing from the object.
    #[error("memmon's eBPF object has no map {0}")]
    MissingMap(&'static Map),
    /// A program is missing from the object.
    #[error("memmon's eBPF object has no program {0}")]
    MissingProgram(&'static Program),
    /// The kernel refused a map operation.
    #[error("map {map}: {source}")]
    Map {
        /// The map.
        map: &'static Map,
        /// What the kernel said.
        #[source]
        source: aya::maps::MapError,
    },
    /// The kernel refused a program.
    #[error("{what}: {source}")]
    Program {
        /// What was being done.
        what: String,
        /// What the kernel said.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Other failures, said in full.
    #[error("{0}")]
    Other(String),
}

fn map_err(map: &'static Map) -> impl FnOnce(aya::maps::MapError) -> StackError {
    move |source| StackError::Map { map, source }
}

/// Which processes the fault sampler records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every process.
    All,
    /// These processes (tgids).
    Pids(Vec<u32>),
    /// The processes of one cgroup v2 (its id: the directory's inode).
    Cgroup(u64),
}

/// What a symbol the allocator probes attach to is and which program.
type AllocFunction = (&'static str, &'static Program, Option<&'static Program>);
const ALLOC_FUNCTIONS: &[AllocFunction] = &[
    (
        "malloc",
        program::LEAK_MALLOC,
        Some(program::LEAK_ALLOC_RETURN),
    ),
    (
        "calloc",
        program::LEAK_CALLOC,
        Some(program::LEAK_ALLOC_RETURN),
    ),
    (
        "realloc",
        program::LEAK_REALLOC,
        Some(program::LEAK_ALLOC_RETURN),
    ),
    (
        "aligned_alloc",
        program::LEAK_ALIGNED_ALLOC,
        Some(program::LEAK_ALLOC_RETURN),
    ),
    (
        "posix_memalign",
        program::LEAK_POSIX_MEMALIGN,
        Some(program::LEAK_MEMALIGN_RETURN),
    ),
    ("free", program::LEAK_FREE, None),
];

impl ProbeSet {
    /// Sets who is sampled and the leak sample rate.
    pub fn set_stack_target(
        &mut self,
        target: &Target,
        sample_rate: u64,
    ) -> Result<(), StackError> {
        {
            let mut settings: Array<&mut MapData, u64> = Array::try_from(
                self.ebpf
                    .map_mut(names::PROFILE_SETTINGS)
                    .ok_or(StackError::MissingMap(names::PROFILE_SETTINGS))?,
            )
            .map_err(map_err(names::PROFILE_SETTINGS))?;
            let (mode, cgroup) = match target {
                Target::All => (setting::TARGET_ALL, 0),
                Target::Pids(_) => (setting::TARGET_PIDS, 0),
                Target::Cgroup(id) => (setting::TARGET_CGROUP, *id),
            };
            for (slot, value) in [
                (setting::TARGET, mode),
                (setting::CGROUP_ID, cgroup),
                (setting::SAMPLE_RATE, sample_rate),
            ] {
                settings
                    .set(slot, value, 0)
                    .map_err(map_err(names::PROFILE_SETTINGS))?;
            }
        }
        if let Target::Pids(pids) = target {
            let mut map: HashMap<&mut MapData, u32, u32> = HashMap::try_from(
                self.ebpf
                    .map_mut(names::PROFILE_PIDS)
                    .ok_or(StackError::MissingMap(names::PROFILE_PIDS))?,
            )
            .map_err(map_err(names::PROFILE_PIDS))?;
            for pid in pids {
                map.insert(pid, 1, 0)
                    .map_err(map_err(names::PROFILE_PIDS))?;
            }
        }
        Ok(())
    }

    /// Tells the brk sampler where process `pid`'s break is now, so its
    /// first growth is weighed too (without it, the first brk seen only
    /// sets the base).
    pub fn seed_brk(&mut self, pid: u32, brk: u64) -> Result<(), StackError> {
        let mut map: HashMap<&mut MapData, u32, u64> = HashMap::try_from(
            self.ebpf
                .map_mut(names::STACK_BRK_LAST)
                .ok_or(StackError::MissingMap(names::STACK_BRK_LAST))?,
        )
        .map_err(map_err(names::STACK_BRK_LAST))?;
        map.insert(pid, brk, 0)
            .map_err(map_err(names::STACK_BRK_LAST))
    }

    /// Attaches the fault sampler on every online CPU: one sample each
    /// `period` page faults. Returns its events (a new period reopens
    /// them: [`FaultEvents::set_period`]; dropping them detaches it).
    pub fn attach_fault_sampler(&mut self, period: u64) -> Result<FaultEvents, StackError> {
        let pe: &mut PerfEvent = self
            .ebpf
            .program_mut(program::STACK_FAULTS)
            .ok_or(StackError::MissingProgram(program::STACK_FAULTS))?
            .try_into()
            .map_err(|source| StackError::Program {
                what: program::STACK_FAULTS.to_string(),
                source,
            })?;
        if pe.fd().is_err() {
            pe.load().map_err(|source| StackError::Program {
                what: format!("verifier rejected {}", program::STACK_FAULTS),
                source,
            })?;
        }
        let fd = pe.fd().map_err(|source| StackError::Program {
            what: program::STACK_FAULTS.to_string(),
            source,
        })?;
        FaultEvents::open(fd.as_fd(), period).map_err(|e| {
            StackError::Other(format!(
                "perf_event_open(page-faults, period {period}): {e}"
            ))
        })
    }

    /// Attaches the brk sampler (`StackEvent::Brk`) or the mmap/munmap
    /// samplers (`StackEvent::Mmap`) to their syscall tracepoints.
    pub fn attach_growth_sampler(&mut self, event: StackEvent) -> Result<(), StackError> {
        let points: &[(&Program, &str)] = match event {
            StackEvent::Brk => &[(program::STACK_BRK_EXIT, "sys_exit_brk")],
            StackEvent::Mmap => &[
                (program::STACK_MMAP_ENTER, "sys_enter_mmap"),
                (program::STACK_MMAP_EXIT, "sys_exit_mmap"),
                (program::STACK_MUNMAP_ENTER, "sys_enter_munmap"),
            ],
            _ => {
                return Err(StackError::Other(format!(
                    "{} has no tracepoint sampler",
                    event.name()
                )));
            }
        };
        for (program, name) in points {
            let tp: &mut TracePoint = self
                .ebpf
                .program_mut(program)
                .ok_or(StackError::MissingProgram(program))?
                .try_into()
                .map_err(|source| StackError::Program {
                    what: program.to_string(),
                    source,
                })?;
            tp.load().map_err(|source| StackError::Program {
                what: format!("verifier rejected {program}"),
                source,
            })?;
            tp.attach("syscalls", name)
                .map_err(|source| StackError::Program {
                    what: format!("attaching {program} to syscalls:{name}"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Attaches the allocator probes to process `pid`'s allocator in
    /// `library` (a path as seen from here, e.g. under /proc/PID/root).
    /// Returns the functions attached; fails when malloc or free is missing.
    pub fn attach_allocator(
        &mut self,
        pid: u32,
        library: &Path,
    ) -> Result<Vec<&'static str>, StackError> {
        let scope_pid = NonZeroU32::new(pid)
            .ok_or_else(|| StackError::Other("pid 0 has no allocator".into()))?;
        let mut attached = Vec::new();
        for (function, entry, ret) in ALLOC_FUNCTIONS {
            let programs: Vec<&Program> = std::iter::once(*entry).chain(*ret).collect();
            let mut ok = true;
            for program in programs {
                let up: &mut UProbe = self
                    .ebpf
                    .program_mut(program)
                    .ok_or(StackError::MissingProgram(program))?
                    .try_into()
                    .map_err(|source| StackError::Program {
                        what: program.to_string(),
                        source,
                    })?;
                if up.fd().is_err() {
                    up.load().map_err(|source| StackError::Program {
                        what: format!("verifier rejected {program}"),
                        source,
                    })?;
                }
                if let Err(e) = up.attach(*function, library, UProbeScope::OneProcess(scope_pid)) {
                    ok = false;
                    let required = matches!(*function, "malloc" | "free");
                    if required {
                        return Err(StackError::Other(format!(
                            "cannot attach a uprobe to {function} in {}: {e}",
                            library.display()
                        )));
                    }
                    tracing::debug!("{function} in {}: {e}", library.display());
                    break;
                }
            }
            if ok {
                attached.push(*function);
            }
        }
        Ok(attached)
    }

    /// The sampled stacks, weights as counted in the kernel (fault samples
    /// or bytes).
    pub fn read_stack_counts(&self) -> Result<Vec<(StackKey, i64)>, StackError> {
        let map: HashMap<&MapData, StackKey, i64> = HashMap::try_from(
            self.ebpf
                .map(names::STACK_COUNTS)
                .ok_or(StackError::MissingMap(names::STACK_COUNTS))?,
        )
        .map_err(map_err(names::STACK_COUNTS))?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok(kv) => out.push(kv),
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(names::STACK_COUNTS)(e)),
            }
        }
        Ok(out)
    }

    /// The live allocations, by address.
    pub fn read_live_allocs(&self) -> Result<Vec<(u64, LiveAlloc)>, StackError> {
        let map: HashMap<&MapData, u64, LiveAlloc> = HashMap::try_from(
            self.ebpf
                .map(names::LIVE_ALLOCS)
                .ok_or(StackError::MissingMap(names::LIVE_ALLOCS))?,
        )
        .map_err(map_err(names::LIVE_ALLOCS))?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok(kv) => out.push(kv),
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(names::LIVE_ALLOCS)(e)),
            }
        }
        Ok(out)
    }

    /// The frames of the stack with hash `id` (innermost first); empty
    /// for `NO_STACK` (not walked, or not stored because the map was full).
    pub fn stack_frames(&self, id: u64) -> Vec<u64> {
        if id == NO_STACK {
            return Vec::new();
        }
        let Some(map) = self.ebpf.map(names::STACK_TRACES) else {
            return Vec::new();
        };
        let Ok(map) = HashMap::<&MapData, u64, StackFrames>::try_from(map) else {
            return Vec::new();
        };
        map.get(&id, 0)
            .map(|f| f.walked().to_vec())
            .unwrap_or_default()
    }

    /// The sampled stacks as raw stacks: fault samples weighted by
    /// `period` (and counted), brk and mmap weights in bytes.
    pub fn read_samples(&self, period: u64) -> Result<Vec<RawSample>, StackError> {
        let period = i64::try_from(period).unwrap_or(i64::MAX);
        Ok(self
            .read_stack_counts()?
            .into_iter()
            .filter_map(|(k, n)| {
                let (event, weight, count) = match k.event {
                    stack_event::FAULTS => (
                        StackEvent::Faults,
                        n.saturating_mul(period),
                        u64::try_from(n).unwrap_or(0),
                    ),
                    stack_event::BRK => (StackEvent::Brk, n, 0),
                    stack_event::MMAP => (StackEvent::Mmap, n, 0),
                    _ => return None,
                };
                Some(RawSample {
                    event,
                    stack: RawStack {
                        tgid: k.tgid,
                        user: self.stack_frames(k.user_stack),
                        kernel: self.stack_frames(k.kernel_stack),
                    },
                    weight,
                    count,
                    growth: 0,
                })
            })
            .collect())
    }

    /// One stack-probe statistic, summed over CPUs.
    pub fn stack_stat(&self, stat: Stat) -> u64 {
        let Some(map) = self.ebpf.map(names::STATS) else {
            return 0;
        };
        let Ok(stats) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return 0;
        };
        stats
            .get(&(stat as u32), 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }
}
