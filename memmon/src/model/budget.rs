//! The probe CPU budget: when the detail probes (per fault, per
//! allocation) cost more of a core than allowed, they are suspended; they
//! come back once the load that made them expensive has fallen (the
//! system's fault rate halved) and a cool-down has passed, which doubles
//! each time they have to be suspended again. Pure: the pipeline applies
//! its decisions to the probes.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sample::stats::ProgramRuns;

/// Passes in a row over budget before the detail probes are suspended
/// (one burst is not a trend).
const OVER_PASSES: u32 = 3;
/// First cool-down after a suspension.
pub const BASE_COOLDOWN: Duration = Duration::from_secs(20);
/// Longest cool-down.
const MAX_COOLDOWN: Duration = Duration::from_secs(600);
/// Quiet time after which the cool-down starts from the base again.
const FORGIVE_AFTER: Duration = Duration::from_secs(600);

/// One program's cost as published.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramCost {
    /// Program name in the eBPF object.
    pub program: &'static str,
    /// Serves a detail probe.
    pub detail: bool,
    /// Total run time since it was loaded, seconds.
    pub run_seconds_total: f64,
    /// Runs since it was loaded.
    pub runs_total: u64,
    /// Share of one core it took since the previous pass (None on the
    /// first pass, or when it was loaded again in between).
    pub cpu_share: Option<f64>,
}

/// Costs from two readings `dt` apart.
pub fn costs(prev: &[ProgramRuns], now: &[ProgramRuns], dt: Option<Duration>) -> Vec<ProgramCost> {
    now.iter()
        .map(|r| {
            let share = dt.filter(|d| !d.is_zero()).and_then(|d| {
                let p = prev.iter().find(|p| p.program == r.program)?;
                // A reloaded program starts from zero: no share this pass.
                let ns = r.run_ns.checked_sub(p.run_ns)?;
                Some(ns as f64 / d.as_nanos() as f64)
            });
            ProgramCost {
                program: r.program,
                detail: r.detail,
                run_seconds_total: r.run_ns as f64 / 1e9,
                runs_total: r.runs,
                cpu_share: share,
            }
        })
        .collect()
}

/// What to do with the detail probes this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Leave them as they are.
    Keep,
    /// Over budget: suspend them (their share of a core).
    Suspend { share: f64 },
    /// The load fell: attach them again.
    Resume,
}

/// The budget's state.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Share of one core the probes may take (0: no budget).
    pub limit: f64,
    over_passes: u32,
    suspended: Option<Suspension>,
    cooldown: Duration,
    last_suspended: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Suspension {
    at: Instant,
    fault_rate: Option<f64>,
    cooldown: Duration,
}

impl Budget {
    /// A budget of `limit` of one core.
    pub fn new(limit: f64) -> Self {
        Budget {
            limit,
            over_passes: 0,
            suspended: None,
            cooldown: BASE_COOLDOWN,
            last_suspended: None,
        }
    }

    /// True while the detail probes are suspended.
    pub fn is_suspended(&self) -> bool {
        self.suspended.is_some()
    }

    /// Decides from this pass's program costs and the system's fault rate
    /// (faults per second, /proc/vmstat pgfault).
    pub fn decide(
        &mut self,
        now: Instant,
        costs: &[ProgramCost],
        fault_rate: Option<f64>,
    ) -> Decision {
        if self.limit <= 0.0 {
            return Decision::Keep;
        }
        if let Some(s) = &self.suspended {
            let cooled = now.duration_since(s.at) >= s.cooldown;
            let calmer = match (s.fault_rate, fault_rate) {
                (Some(then), Some(rate)) => rate <= then / 2.0,
                _ => true,
            };
            if cooled && calmer {
                self.suspended = None;
                self.over_passes = 0;
                return Decision::Resume;
            }
            return Decision::Keep;
        }
        let detail: Vec<f64> = costs
            .iter()
            .filter(|c| c.detail)
            .filter_map(|c| c.cpu_share)
            .collect();
        if detail.is_empty() {
            self.over_passes = 0;
            return Decision::Keep;
        }
        let total: f64 = costs.iter().filter_map(|c| c.cpu_share).sum();
        if total <= self.limit {
            self.over_passes = 0;
            return Decision::Keep;
        }
        self.over_passes += 1;
        if self.over_passes < OVER_PASSES {
            return Decision::Keep;
        }
        if self
            .last_suspended
            .is_some_and(|t| now.duration_since(t) >= FORGIVE_AFTER)
        {
            self.cooldown = BASE_COOLDOWN;
        }
        self.suspended = Some(Suspension {
            at: now,
            fault_rate,
            cooldown: self.cooldown,
        });
        self.last_suspended = Some(now);
        self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN);
        Decision::Suspend { share: total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(detail: bool, share: f64) -> ProgramCost {
        ProgramCost {
            program: if detail {
                "page_fault_user"
            } else {
                "sched_process_exit"
            },
            detail,
            run_seconds_total: 0.0,
            runs_total: 0,
            cpu_share: Some(share),
        }
    }

    #[test]
    fn shares_from_two_readings() {
        let r = |ns| ProgramRuns {
            program: "p",
            detail: true,
            run_ns: ns,
            runs: 1,
        };
        let c = costs(
            &[r(1_000_000)],
            &[r(21_000_000)],
            Some(Duration::from_secs(2)),
        );
        assert_eq!(c[0].cpu_share, Some(0.01));
        assert_eq!(c[0].run_seconds_total, 0.021);
        let c = costs(&[r(5_000_000)], &[r(1_000)], Some(Duration::from_secs(1)));
        assert_eq!(c[0].cpu_share, None, "reloaded: no share");
    }

    #[test]
    fn suspends_after_three_passes_over_and_resumes_when_faults_halve() {
        let mut b = Budget::new(0.01);
        let t = Instant::now();
        let over = [cost(true, 0.05), cost(false, 0.001)];
        assert_eq!(b.decide(t, &over, Some(1e6)), Decision::Keep);
        assert_eq!(b.decide(t, &over, Some(1e6)), Decision::Keep);
        match b.decide(t, &over, Some(1e6)) {
            Decision::Suspend { share } => assert!((share - 0.051).abs() < 1e-9, "{share}"),
            other => panic!("{other:?}"),
        }
        // Cool-down not over, or the load still high: stay off.
        assert_eq!(
            b.decide(t + Duration::from_secs(5), &[], Some(1e5)),
            Decision::Keep
        );
        assert_eq!(b.decide(t + BASE_COOLDOWN, &[], Some(9e5)), Decision::Keep);
        assert_eq!(
            b.decide(t + BASE_COOLDOWN, &[], Some(4e5)),
            Decision::Resume
        );
        // Over again: the next cool-down is twice as long.
        let t2 = t + Duration::from_secs(60);
        for _ in 0..2 {
            b.decide(t2, &over, Some(1e6));
        }
        assert!(matches!(
            b.decide(t2, &over, Some(1e6)),
            Decision::Suspend { .. }
        ));
        assert_eq!(b.decide(t2 + BASE_COOLDOWN, &[], Some(1.0)), Decision::Keep);
        assert_eq!(
            b.decide(t2 + BASE_COOLDOWN * 2, &[], Some(1.0)),
            Decision::Resume
        );
    }

    #[test]
    fn defaults_alone_or_no_budget_never_suspend() {
        let mut b = Budget::new(0.01);
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(b.decide(t, &[cost(false, 0.5)], None), Decision::Keep);
        }
        let mut off = Budget::new(0.0);
        for _ in 0..5 {
            assert_eq!(off.decide(t, &[cost(true, 0.5)], None), Decision::Keep);
        }
    }
}
