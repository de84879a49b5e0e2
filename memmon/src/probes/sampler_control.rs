//! The running fault sampler's knobs, held by whoever adapts it (the
//! daemon's profile thread): its perf events (their period and their time
//! slots: with k slots, the events are open one `fault_events::SLOT` in k and closed
//! for the others, since an open page-fault event costs every fault of the
//! machine ~30–40 ns whether it samples or not), the `WALK_EVERY` setting
//! (1 run in N walks a stack) and the per-process PROFILE_WALK_EVERY
//! entries. Setting them changes what the next run does; samples already
//! taken keep the weight they were taken with.

use std::{collections::BTreeMap, time::Instant};

use aya::maps::{Array, HashMap, MapData};
use memmon_common::{
    names,
    stacks::{MAX_WALK_EVERY_ENTRIES, setting},
};

use super::{ProbeSet, fault_events::FaultEvents, stacks::StackError};

/// The sampler's events and the maps that steer its walks.
pub struct SamplerControl {
    events: FaultEvents,
    settings: Array<MapData, u64>,
    every: HashMap<MapData, u32, u64>,
    /// What PROFILE_WALK_EVERY holds.
    boosted: BTreeMap<u32, u64>,
    walk_every: u64,
    /// The events are open one slot in this many.
    slots: u64,
}

fn map_err(map: &'static names::Map) -> impl FnOnce(aya::maps::MapError) -> StackError {
    move |source| StackError::Map { map, source }
}

impl ProbeSet {
    /// Takes the settings and PROFILE_WALK_EVERY out of the object, for
    /// the sampler running as `events` (call after setting the targets).
    pub fn sampler_control(&mut self, events: FaultEvents) -> Result<SamplerControl, StackError> {
        let settings = self
            .ebpf
            .take_map(names::PROFILE_SETTINGS)
            .ok_or(StackError::MissingMap(names::PROFILE_SETTINGS))?;
        let every = self
            .ebpf
            .take_map(names::PROFILE_WALK_EVERY)
            .ok_or(StackError::MissingMap(names::PROFILE_WALK_EVERY))?;
        Ok(SamplerControl {
            events,
            settings: Array::try_from(settings).map_err(map_err(names::PROFILE_SETTINGS))?,
            every: HashMap::try_from(every).map_err(map_err(names::PROFILE_WALK_EVERY))?,
            boosted: BTreeMap::new(),
            walk_every: 1,
            slots: 1,
        })
    }
}

impl SamplerControl {
    /// The perf events' period now.
    pub fn period(&self) -> u64 {
        self.events.period()
    }

    /// The events are open one slot in this many.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Faults one run of the sampler stands for: the period, times the
    /// slots (a run in an open slot stands for the closed ones too).
    pub fn faults_per_run(&self) -> u64 {
        self.period().saturating_mul(self.slots)
    }

    /// Runs the sampler once per `period` faults on a CPU, in one time
    /// slot in `slots`; walks 1 run in `walk_every` (1 in the process's
    /// own N for those in `boosted`, tgid → N; past
    /// [`MAX_WALK_EVERY_ENTRIES`] the rest are left out).
    pub fn set(
        &mut self,
        period: u64,
        walk_every: u64,
        boosted: &BTreeMap<u32, u64>,
        slots: u64,
    ) -> Result<(), StackError> {
        self.slots = slots.max(1);
        if self.slots == 1 {
            // Open again now rather than at the end of a closed phase
            // timed for more slots: a tick at one slot opens them and
            // starts the open phase's clock.
            self.events
                .tick(1, Instant::now())
                .map_err(|e| StackError::Other(e.to_string()))?;
        }
        if walk_every != self.walk_every {
            self.settings
                .set(setting::WALK_EVERY, walk_every, 0)
                .map_err(map_err(names::PROFILE_SETTINGS))?;
            self.walk_every = walk_every;
        }
        let gone: Vec<u32> = self
            .boosted
            .keys()
            .filter(|t| !boosted.contains_key(t))
            .copied()
            .collect();
        for tgid in gone {
            // Already gone is fine: the entry is what matters.
            let _ = self.every.remove(&tgid);
            self.boosted.remove(&tgid);
        }
        for (tgid, n) in boosted.iter().take(MAX_WALK_EVERY_ENTRIES as usize) {
            if self.boosted.get(tgid) != Some(n) {
                self.every
                    .insert(*tgid, *n, 0)
                    .map_err(map_err(names::PROFILE_WALK_EVERY))?;
                self.boosted.insert(*tgid, *n);
            }
        }
        self.events
            .set_period(period)
            .map_err(|e| StackError::Other(e.to_string()))
    }

    /// Opens or closes the events at the slots' boundaries
    /// (`FaultEvents::tick`); returns when to call again.
    pub fn tick(&mut self, now: Instant) -> Result<Instant, StackError> {
        self.events
            .tick(self.slots, now)
            .map_err(|e| StackError::Other(e.to_string()))
    }
}
