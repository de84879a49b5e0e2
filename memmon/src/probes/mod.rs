//! Kernel side, seen from userspace: which probes exist (`catalog`), loading
//! and attaching them one by one (`loader`), what each one's state is
//! (`status`), typed reads of their maps and ring buffer (`reader`), and
//! the SIGKILL records decoded (`kill`), the kernel's accounting of the
//! programs' run time (`run_stats`) and suspending/resuming a probe at run
//! time (`control`).

pub mod alloc_reader;
pub mod attach;
pub mod btf_offsets;
pub mod catalog;
pub mod control;
pub mod fault_events;
pub mod kill;
pub mod loader;
pub mod object;
pub mod offsets;
pub mod pins;
pub mod ran;
pub mod reader;
pub mod resident;
pub mod run_stats;
pub mod sampled;
pub mod sampler_control;
pub mod set;
pub mod stack_drain;
pub mod stacks;
pub mod task_iter;
pub mod task_iter_pid;
pub mod tracefs;

pub use crate::sample::probe_status::{ProbeState, ProbeStatus};
pub use kill::KillSignal;
pub use loader::LoadOptions;
pub use reader::StatsSnapshot;
pub use set::ProbeSet;
