//! Probes switched at run time: a detail probe suspended (its program
//! detached and unloaded, its state `Disabled` with the reason) and
//! resumed (loaded and attached again), for the probe CPU budget; and the
//! sampled probes' threads started and stopped (`sampled.rs`).

use aya::programs::{Program, ProgramError};

use super::{
    ProbeSet, ProbeState,
    attach::{AttachError, attach_one},
    catalog::{self, PROBES, ProbeSpec},
    offsets::kernel_release,
    sampled::{self, SampleError},
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
    /// Its sampler could not start (its state now says why).
    #[error(transparent)]
    Sampled(#[from] SampleError),
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
        self.stop_sampled(name);
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
        let attached = match sampled::duty(name) {
            Some(duty) => self.start_sampled(spec, duty).map_err(ResumeError::from),
            None => attach_one(&mut self.ebpf, spec, spec.attach, &tracefs, None)
                .map_err(ResumeError::from),
        };
        match attached {
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
                Err(reason)
            }
        }
    }

    /// Loads sampled probe `spec` (a raw tracepoint) without attaching it
    /// and starts its sampler thread (`sampled.rs`); an error says why it
    /// cannot run.
    pub(super) fn start_sampled(
        &mut self,
        spec: &'static ProbeSpec,
        duty: sampled::Duty,
    ) -> Result<(), SampleError> {
        use std::os::fd::AsFd as _;
        let catalog::Attach::RawTracepoint { category, name } = spec.attach else {
            return Err(SampleError::NotRaw(spec.name));
        };
        if !super::tracefs::exists(&self.tracefs, category, name) {
            return Err(AttachError::NoTracepoint {
                category,
                name,
                release: kernel_release(),
            }
            .into());
        }
        let program = self
            .ebpf
            .program_mut(spec.program)
            .ok_or(AttachError::MissingProgram(spec.program))?;
        let tp: &mut aya::programs::RawTracePoint = program
            .try_into()
            .map_err(|e| AttachError::Kind(Box::new(e)))?;
        if tp.fd().is_err() {
            tp.load().map_err(|e| AttachError::Verifier {
                program: spec.program,
                source: Box::new(e),
            })?;
        }
        let fd = tp
            .fd()
            .map_err(|e| AttachError::Kind(Box::new(e)))?
            .as_fd()
            .try_clone_to_owned()
            .map_err(SampleError::Fd)?;
        self.stop_sampled(spec.name);
        self.sampled
            .push(sampled::Sampler::start(spec.name, name, fd, duty)?);
        Ok(())
    }

    /// Stops probe `name`'s sampler thread, if it has one.
    pub(super) fn stop_sampled(&mut self, name: &str) {
        self.sampled.retain(|s| s.probe.name() != name);
    }

    /// The share of the time sampled probe `name` was attached since it
    /// started (None: not sampled, or not running).
    pub fn sampled_duty(&self, name: &str) -> Option<f64> {
        self.sampled
            .iter()
            .find(|s| s.probe.name() == name)
            .map(sampled::Sampler::measured_duty)
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
