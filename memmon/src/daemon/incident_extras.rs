//! What the daemon adds to a post-mortem beyond the model: the cgroup's
//! growth stacks from the continuous profile (`--profile`), and the
//! findings `memmon explain` would have given about the victim a minute
//! before, judged from the daemon's history (the one `explain --connect`
//! reads).

use std::sync::{Arc, RwLock};

use super::profile::ContinuousProfile;
use crate::{
    model::{
        explain::{self, Report, evidence::Target, history::History},
        incident::GrowthStacks,
    },
    pipeline::IncidentExtras,
};

/// The daemon's sources for post-mortems.
pub struct Extras {
    /// The continuous profile, when `--profile` is on.
    pub profile: Option<Arc<ContinuousProfile>>,
    /// The recent history the sampler records.
    pub history: Arc<RwLock<History>>,
}

impl IncidentExtras for Extras {
    fn growth_stacks(&self, cgroup: &str, members: &[(u32, String)]) -> Option<GrowthStacks> {
        Some(self.profile.as_ref()?.cgroup_stacks(cgroup, members))
    }

    fn findings_before(&self, pid: u32, until_ms: u64, window_ms: u64) -> Option<Report> {
        let from = until_ms.saturating_sub(window_ms);
        let evidence = match self.history.read() {
            Ok(h) => h.evidence(&Target::Pid(pid), from, until_ms),
            Err(p) => p.into_inner().evidence(&Target::Pid(pid), from, until_ms),
        };
        Some(explain::explain(&evidence.ok()?))
    }
}
