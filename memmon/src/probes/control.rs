//! Probes switched at run time: a detail probe suspended (its program
//! detached and unloaded, its state `Disabled` with the reason) and
//! resumed (loaded and attached again), for the probe CPU budget.

use aya::programs::{Program, ProgramError};

use super::{
    ProbeSet, ProbeState,
    attach::{AttachError, attach_one},
    catalog::{self, PROBES},
};

/// A suspended probe could not be attached again.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No such probe.
    #[error("no probe named {0}")]
    NoProbe(String),
    /// The kernel refused it (its state now says why).
    #[error(transparent)]
    Attach(#[from] AttachError),
}

impl ProbeSet {
    /// The attached detail probes (per-fault or per-allocation).
    pub fn attached_detail(&self) -> Vec<&'static str> {
        PROBES
            .iter()
            .filter(|s| (s.per_fault || s.per_alloc) && self.is_attached(s.name))
            .map(|s| s.name.name())
            .collect()
    }

    /// Detaches probe `name` (the others keep running); its state says
    /// `reason`. Returns false when it was not attached.
    pub fn suspend(&mut self, name: &str, reason: &str) -> bool {
        let Some(spec) = catalog::find(name) else {
            return false;
        };
        let spec = catalog::for_kernel(spec, self.variants);
        if !self.is_attached(name) {
            return false;
        }
        if let Some(program) = self.ebpf.program_mut(spec.program)
            && let Err(e) = unload(program)
        {
            tracing::warn!("detaching probe {name}: {e}");
            return false;
        }
        self.set_state(
            name,
            ProbeState::Disabled {
                reason: reason.to_string(),
            },
        );
        true
    }

    /// Loads and attaches a suspended probe again; on failure it stays
    /// off with the kernel's reason.
    pub fn resume(&mut self, name: &str) -> Result<(), ResumeError> {
        let spec = catalog::find(name).ok_or_else(|| ResumeError::NoProbe(name.to_string()))?;
        let spec = catalog::for_kernel(spec, self.variants);
        let tracefs = self.tracefs.clone();
        match attach_one(&mut self.ebpf, spec, spec.attach, &tracefs, None) {
            Ok(()) => {
                self.set_state(name, ProbeState::Attached);
                Ok(())
            }
            Err(reason) => {
                self.set_state(
                    name,
                    ProbeState::Unavailable {
                        reason: reason.to_string(),
                    },
                );
                Err(ResumeError::Attach(reason))
            }
        }
    }
}

/// Detaches every link of `program` and unloads it (it can be loaded
/// again).
fn unload(program: &mut Program) -> Result<(), ProgramError> {
    match program {
        Program::TracePoint(p) => p.unload(),
        Program::RawTracePoint(p) => p.unload(),
        Program::PerfEvent(p) => p.unload(),
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::UProbe(p) => p.unload(),
        Program::KProbe(p) => p.unload(),
        _ => Ok(()),
    }
}
