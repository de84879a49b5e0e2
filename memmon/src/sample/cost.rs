//! What a cost-guarded pass over per-process /proc files cost.

use serde::Serialize;

use crate::sample::key::ProcessKey;

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

/// What the process scans read: how often every task was walked, how
/// often only the processes that ran were, and how many the last one
/// read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScanCost {
    /// Passes that walked every task (or read every /proc/PID/stat).
    pub full_total: u64,
    /// Passes that read only the processes that ran.
    pub changed_total: u64,
    /// Processes the last pass read.
    pub read: u64,
    /// Of those, the ones whose values had changed.
    pub changed: u64,
}

/// A process the guard may read: its key, RSS bytes, and a fingerprint of
/// its activity (fault counts and address-space size; None when unknown,
/// which never counts as idle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The process.
    pub key: ProcessKey,
    /// Resident bytes now.
    pub rss: u64,
    /// Changes whenever the process faults or maps memory.
    pub activity: Option<u64>,
}
