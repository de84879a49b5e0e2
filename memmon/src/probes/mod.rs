//! Kernel side, seen from userspace: which probes exist (`catalog`), loading
//! and attaching them one by one (`loader`), what each one's state is
//! (`status`), typed reads of their maps and ring buffer (`reader`), and
//! the SIGKILL records decoded (`kill`).

pub mod alloc_reader;
pub mod btf_offsets;
pub mod catalog;
pub mod kill;
pub mod loader;
pub mod pins;
pub mod reader;
pub mod stacks;
pub mod tracefs;

pub use crate::sample::probe_status::{ProbeState, ProbeStatus};
pub use kill::KillSignal;
pub use loader::{LoadOptions, ProbeSet};
pub use reader::StatsSnapshot;
