//! Kernel side, seen from userspace: which probes exist (`catalog`), loading
//! and attaching them one by one (`loader`), what each one's state is
//! (`status`), and typed reads of their maps and ring buffer (`reader`).

pub mod alloc_reader;
pub mod btf_offsets;
pub mod catalog;
pub mod loader;
pub mod pins;
pub mod reader;
pub mod tracefs;

pub use crate::sample::probe_status::{ProbeState, ProbeStatus};
pub use loader::{LoadOptions, ProbeSet};
pub use reader::StatsSnapshot;
