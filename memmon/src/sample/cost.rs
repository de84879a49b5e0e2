//! What a cost-guarded pass over per-process /proc files cost.

use serde::Serialize;

/// What one cycle did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CycleCost {
    /// Time spent reading, seconds.
    pub seconds: f64,
    /// Processes read.
    pub read: u64,
    /// Processes due but left for a later cycle (budget spent).
    pub deferred: u64,
    /// Processes not due (RSS steady, interval not elapsed).
    pub skipped: u64,
    /// The budget, seconds.
    pub budget_seconds: f64,
}
