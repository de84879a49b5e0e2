//! What the daemon adds to a post-mortem beyond the model: the cgroup's
//! growth stacks from the continuous profile (`--profile`), and the
//! findings `memmon explain` would have given about the victim a minute
//! before (FINDINGS SEAM: from the daemon's history once it keeps one for
//! `explain --connect`; none until then).

use std::sync::Arc;

use super::profile::ContinuousProfile;
use crate::{model::incident::GrowthStacks, pipeline::IncidentExtras};

/// The daemon's sources for post-mortems.
pub struct Extras {
    /// The continuous profile, when `--profile` is on.
    pub profile: Option<Arc<ContinuousProfile>>,
}

impl IncidentExtras for Extras {
    fn growth_stacks(&self, cgroup: &str, members: &[(u32, String)]) -> Option<GrowthStacks> {
        Some(self.profile.as_ref()?.cgroup_stacks(cgroup, members))
    }
}
