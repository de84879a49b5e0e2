//! The daemon's continuous fault-stack reader (`memmon daemon --profile`):
//! attaches the page-fault sampler for every process, takes STACK_COUNTS
//! and STACK_TRACES out of the object, and on each drain hands back the
//! samples added since the last drain. Keys idle for a whole drain are
//! deleted, and with them the stacks no remaining key refers to, so the
//! kernel maps hold only what is active (a long-running daemon never
//! fills them with dead processes' stacks, and a new stack finds room).
//! Stacks are keyed by a hash of their frames, so frames read once stay
//! right for that key forever: a stack deleted here is remembered for one
//! more drain, for a sample that found it in the kernel map just before
//! the delete.

use std::collections::{HashMap, HashSet};

use aya::maps::{HashMap as BpfHashMap, Map, MapData, MapError};
use memmon_common::{
    names,
    stacks::{NO_STACK, StackFrames, StackKey, stack_event},
};

use super::{
    ProbeSet,
    resident::ResidentReader,
    sampler_control::SamplerControl,
    stacks::{StackError, Target},
};
use crate::sample::stacks::{RawStack, ResidentPage};

/// Distinct stacks (and weighted keys) the daemon's maps hold.
pub const DAEMON_STACK_ENTRIES: u32 = 8192;

/// The kernel maps of the running fault sampler, and what the last drain
/// saw in them.
pub struct StackDrain {
    counts: BpfHashMap<MapData, StackKey, i64>,
    traces: BpfHashMap<MapData, u64, StackFrames>,
    /// Each key's count at the last drain.
    seen: HashMap<StackKey, i64>,
    /// Frames of each stack hash read so far.
    frames: HashMap<u64, Vec<u64>>,
    /// Frames of the stacks the previous drain deleted from the kernel.
    retired: HashMap<u64, Vec<u64>>,
    failed_deletes: u64,
    /// The sampled faults' addresses (resident mode).
    resident: ResidentReader,
    /// The running sampler's period and walk settings.
    control: SamplerControl,
}

/// Samples one drain found: a stack and how many samples it gained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drained {
    /// The stack (addresses).
    pub stack: RawStack,
    /// Samples since the previous drain.
    pub samples: u64,
}

fn map_err(map: &'static names::Map) -> impl FnOnce(MapError) -> StackError {
    move |source| StackError::Map { map, source }
}

/// True when a delete failed because the entry was already gone (aya
/// reports ENOENT from bpf_map_delete_elem as a syscall error).
fn gone(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

fn take(probes: &mut ProbeSet, name: &'static names::Map) -> Result<Map, StackError> {
    probes
        .ebpf
        .take_map(name)
        .ok_or(StackError::MissingMap(name))
}

impl ProbeSet {
    /// Samples every process's page faults (one per `period` faults on a
    /// CPU, every run walked until told otherwise), with their addresses
    /// for the resident mode, and hands the stack maps, the addresses'
    /// ring buffer and the sampler's knobs to the returned drain.
    /// Load with `LoadOptions::stack_entries` set (else the maps hold one
    /// stack).
    pub fn start_fault_profile(&mut self, period: u64) -> Result<StackDrain, StackError> {
        self.set_stack_target(&Target::All, 1)?;
        let resident = self.start_resident()?;
        let events = self.attach_fault_sampler(period)?;
        let control = self.sampler_control(events)?;
        let counts = BpfHashMap::try_from(take(self, names::STACK_COUNTS)?)
            .map_err(map_err(names::STACK_COUNTS))?;
        let traces = BpfHashMap::try_from(take(self, names::STACK_TRACES)?)
            .map_err(map_err(names::STACK_TRACES))?;
        Ok(StackDrain {
            counts,
            traces,
            seen: HashMap::new(),
            frames: HashMap::new(),
            retired: HashMap::new(),
            failed_deletes: 0,
            resident,
            control,
        })
    }
}

impl StackDrain {
    /// The fault samples added since the last drain. Deletes the keys that
    /// gained nothing since then (a sample landing between the read and the
    /// delete of such a key is lost: one in a whole idle interval) and the
    /// stacks only they referred to.
    pub fn drain(&mut self) -> Result<Vec<Drained>, StackError> {
        let mut keys = Vec::new();
        for key in self.counts.keys() {
            match key {
                Ok(k) => keys.push(k),
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(names::STACK_COUNTS)(e)),
            }
        }
        let mut out = Vec::new();
        let mut idle = Vec::new();
        let mut present = HashSet::with_capacity(keys.len());
        for key in keys {
            let value = match self.counts.get(&key, 0) {
                Ok(v) => v,
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(names::STACK_COUNTS)(e)),
            };
            present.insert(key);
            if key.event != stack_event::FAULTS {
                continue;
            }
            let before = self.seen.get(&key).copied().unwrap_or(0);
            let gained = value.saturating_sub(before);
            if gained > 0 {
                self.seen.insert(key, value);
                let stack = RawStack {
                    tgid: key.tgid,
                    user: self.frames_of(key.user_stack),
                    kernel: self.frames_of(key.kernel_stack),
                };
                tracing::trace!(
                    "drained tgid {} user {:#x} ({} frames) kernel {:#x} ({} frames): +{gained}",
                    key.tgid,
                    key.user_stack,
                    stack.user.len(),
                    key.kernel_stack,
                    stack.kernel.len()
                );
                out.push(Drained {
                    stack,
                    samples: u64::try_from(gained).unwrap_or(0),
                });
            } else {
                match self.seen.entry(key) {
                    std::collections::hash_map::Entry::Occupied(_) => idle.push(key),
                    // Seen for the first time with no weight: track it.
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(value);
                    }
                }
            }
        }
        self.seen.retain(|k, _| present.contains(k));
        let mut retired = HashMap::new();
        // Deleting is housekeeping: a failure never costs the samples read.
        for key in &idle {
            tracing::trace!(
                "idle: deleting tgid {} user {:#x} kernel {:#x}",
                key.tgid,
                key.user_stack,
                key.kernel_stack
            );
            if let Err(e) = self.counts.remove(key)
                && !gone(&e)
            {
                self.failed_deletes += 1;
                tracing::debug!("deleting an idle key of {}: {e:?}", names::STACK_COUNTS);
            }
            self.seen.remove(key);
        }
        let referenced: HashSet<u64> = self
            .seen
            .keys()
            .flat_map(|k| [k.user_stack, k.kernel_stack])
            .collect();
        for id in idle
            .iter()
            .flat_map(|k| [k.user_stack, k.kernel_stack])
            .filter(|id| *id != NO_STACK && !referenced.contains(id))
            .collect::<HashSet<u64>>()
        {
            if let Some(f) = self.frames.remove(&id) {
                retired.insert(id, f);
            }
            if let Err(e) = self.traces.remove(&id)
                && !gone(&e)
            {
                self.failed_deletes += 1;
                tracing::debug!("deleting stack {id} of {}: {e:?}", names::STACK_TRACES);
            }
        }
        self.retired = retired;
        Ok(out)
    }

    /// The sampled faults' pages sent since the last call, with their
    /// stacks' frames (call before `drain`, which may retire a stack).
    pub fn drain_resident(&mut self) -> Vec<ResidentPage> {
        let raw = self.resident.read_raw();
        // The kernel weighs a page by the period and its walk; the slots
        // the events were closed for are the drain's to add.
        let slots = self.control.slots();
        raw.into_iter()
            .map(|s| {
                let mut page = ResidentReader::page(s, |id| self.frames_of(id));
                page.period = page.period.saturating_mul(slots);
                page
            })
            .collect()
    }

    /// The running sampler's knobs (drain before changing the period: the
    /// samples drained are weighed with the period they were taken at).
    pub fn control(&mut self) -> &mut SamplerControl {
        &mut self.control
    }

    /// Faults one run of the sampler stands for now: the perf events'
    /// period × the time slots (`SamplerControl::faults_per_run`).
    pub fn faults_per_run(&self) -> u64 {
        self.control.faults_per_run()
    }

    /// Distinct keys the kernel map holds now (as of the last drain).
    pub fn live_keys(&self) -> usize {
        self.seen.len()
    }

    /// Deletes the kernel refused (other than for an entry already gone).
    pub fn failed_deletes(&self) -> u64 {
        self.failed_deletes
    }

    /// The frames of the stack with hash `id` (innermost first); empty for
    /// `NO_STACK` (not walked or not stored) or a stack gone from the map.
    fn frames_of(&mut self, id: u64) -> Vec<u64> {
        if id == NO_STACK {
            return Vec::new();
        }
        if let Some(f) = self.frames.get(&id) {
            return f.clone();
        }
        let frames: Vec<u64> = match self.traces.get(&id, 0) {
            Ok(f) => f.walked().to_vec(),
            Err(_) => self.retired.remove(&id).unwrap_or_default(),
        };
        if !frames.is_empty() {
            self.frames.insert(id, frames.clone());
        }
        frames
    }
}
