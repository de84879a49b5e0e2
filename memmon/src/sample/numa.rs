//! A process's NUMA locality: pages per node, the nodes its threads ran
//! on, and their ratio.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Resident pages of a process per NUMA node (in 4 KiB-page units, huge
/// pages counted by their size).
pub type NodePages = BTreeMap<u32, u64>;

/// Locality of one process.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NumaUsage {
    /// Pages per node.
    pub pages: NodePages,
    /// Nodes its threads ran on.
    pub nodes_run: BTreeSet<u32>,
    /// Pages on those nodes / all pages (None with no pages or no CPU info).
    pub local_ratio: Option<f64>,
}
