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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::explain::history::tests::publication;

    #[test]
    fn findings_before_judge_the_victims_history_up_to_a_minute_before() {
        let mut h = History::new(300);
        // Process 7 grows 1 MB a second for four minutes.
        let start = 1_000_000_000;
        for s in 0..240u64 {
            h.record(&publication(start + s * 1000, 100e6 + s as f64 * 1e6));
        }
        let extras = Extras {
            profile: None,
            history: Arc::new(RwLock::new(h)),
        };
        let until = start + 180_000;
        let r = extras
            .findings_before(7, until, 120_000)
            .expect("a report of the victim");
        assert_eq!(r.span.to_unix_ms, until, "{:?}", r.span);
        assert!(r.span.from_unix_ms >= until - 120_000, "{:?}", r.span);
        assert!(
            r.findings.iter().any(|f| f.id == "steady_growth"),
            "{:#?}",
            r.findings
        );
        // No history of another pid: no report, never an empty one.
        assert!(extras.findings_before(8, until, 120_000).is_none());
    }
}
