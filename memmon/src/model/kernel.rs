//! What the kernel side says about itself, as the model keeps it: the
//! probes' states, the kernel's statistics (map fill, lost events) and
//! each program's run-time cost.

use std::time::Instant;

use super::{Model, budget};
use crate::sample::{
    probe_status::ProbeStatus,
    stats::{ProgramRuns, StatsSnapshot},
};

impl Model {
    /// Probe states as loaded (and as suspended or resumed since).
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    /// Probe states changed (a probe suspended or attached again).
    pub fn set_probes(&mut self, probes: Vec<ProbeStatus>) {
        self.probes = probes;
    }

    /// True when fault counts come from the per-fault probes; otherwise
    /// from the kernel's per-task counters (/proc/PID/stat, exit events).
    pub fn fault_probes(&self) -> bool {
        self.probes.iter().any(|p| {
            p.name == memmon_common::names::probe::PAGE_FAULT_USER.name() && p.is_attached()
        })
    }

    /// Latest kernel statistics.
    pub fn stats(&self) -> &StatsSnapshot {
        &self.stats
    }

    /// Each loaded program's cost in the last pass (empty without the
    /// kernel's run-time statistics).
    pub fn program_costs(&self) -> &[budget::ProgramCost] {
        &self.program_costs
    }

    /// Kernel statistics, and the programs' run times read at `now` (their
    /// cost is the difference from the last reading).
    pub(super) fn apply_stats(
        &mut self,
        stats: Option<StatsSnapshot>,
        program_runs: Option<Vec<ProgramRuns>>,
        now: Instant,
    ) {
        if let Some(stats) = stats {
            self.stats = stats;
        }
        if let Some(runs) = program_runs {
            let (prev, dt) = match &self.program_runs_prev {
                Some((at, prev)) => (prev.as_slice(), Some(now.duration_since(*at))),
                None => (&[][..], None),
            };
            self.program_costs = budget::costs(prev, &runs, dt);
            self.program_runs_prev = Some((now, runs));
        }
    }
}
