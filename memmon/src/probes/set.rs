//! The loaded probes: the eBPF object with its maps, each probe's state,
//! and what the readers of its maps and ring buffer keep between passes.
//! `loader` makes one; `reader`, `task_iter`, `control`, `stacks`, ...
//! add their methods.

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};

use memmon_common::names::Program;

use super::{ProbeState, ProbeStatus, btf_offsets::BtfError, catalog::Variants};

/// Why the task iterator was not loaded (kept with the probe set, told
/// on every try to use it).
#[derive(Clone, Debug, thiserror::Error)]
pub enum TaskIterUnavailable {
    /// Offsets missing from this kernel's BTF (or it is unreadable).
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// aya could not read the BTF to load it with.
    #[error("{0} could not be read")]
    NoBtf(&'static str),
    /// The program is not in the embedded object.
    #[error("{0} is not in the object")]
    Missing(&'static Program),
    /// The kernel refused both programs (each one's reason).
    #[error("the kernel refused the task iterator: {0}")]
    Refused(String),
}

/// The loaded programs, their maps and each probe's state.
pub struct ProbeSet {
    pub(super) ebpf: Ebpf,
    pub(super) events: RingBuf<MapData>,
    pub(super) statuses: Vec<ProbeStatus>,
    /// OOM events drained from the ring buffer, not yet taken.
    pub(super) pending_oom: Vec<memmon_common::OomEvent>,
    /// SIGKILL records drained from the ring buffer, not yet taken.
    pub(super) pending_kill: Vec<memmon_common::KillEvent>,
    /// Capacity of PROC_COUNTERS, for map-fill reporting.
    pub max_processes: u32,
    /// Where tracefs is mounted (to attach a resumed probe).
    pub(super) tracefs: std::path::PathBuf,
    /// Which probes run as raw tracepoints (`catalog::for_kernel`).
    pub(super) variants: Variants,
    /// The task iterator program that was loaded (it is attached per
    /// read), or why none was.
    pub(super) task_iter_loaded: Result<&'static str, TaskIterUnavailable>,
}

impl ProbeSet {
    /// Each probe's state, in catalog order.
    pub fn statuses(&self) -> &[ProbeStatus] {
        &self.statuses
    }

    /// Sets probe `name`'s state (run-time suspend and resume).
    pub(super) fn set_state(&mut self, name: &str, state: ProbeState) {
        if let Some(s) = self.statuses.iter_mut().find(|s| s.name == name) {
            s.state = state;
        }
    }

    /// True when `name` is attached.
    pub fn is_attached(&self, name: &str) -> bool {
        self.statuses
            .iter()
            .any(|s| s.name == name && s.is_attached())
    }
}
