//! `memmon top --profile`: the page-fault sampler on every process, its
//! maps drained at each refresh into a rolling window
//! (`model::profile_window`), and the selected process's stacks named
//! (`symbols`, cached while the process has samples) and merged
//! (`model::profile`) for the detail pane (`sinks::top::stacks`).

use crate::{
    clock::unix_ms,
    error::Fatal,
    model::{
        profile::Profile,
        profile_window::{Filter, ProfileWindow, WINDOW_SECONDS},
    },
    probes::{ProbeSet, stack_drain::StackDrain},
    sample::stacks::StackEvent,
    sinks::top::stacks::FaultStacks,
    symbols::Symbols,
};

/// The sampler, its window and the names.
pub struct TopProfile {
    drain: StackDrain,
    /// Faults per sample (fixed).
    period: u64,
    window: ProfileWindow,
    symbols: Symbols,
    /// A drain failure was said (once).
    failed: bool,
}

impl TopProfile {
    /// Attaches the sampler (one stack per `period` faults on a CPU) to
    /// `probes`, loaded with `stack_entries` set.
    pub fn start(probes: &mut ProbeSet, period: u64) -> Result<TopProfile, Fatal> {
        if period == 0 {
            return Err(Fatal::Usage(
                "--profile-period 0 is out of range: give the page faults per sample (>= 1)".into(),
            ));
        }
        let drain = probes.start_fault_profile(period).map_err(|e| {
            Fatal::Other(anyhow::anyhow!(
                "--profile: cannot attach the page-fault sampler: {e}; run without --profile"
            ))
        })?;
        Ok(TopProfile {
            drain,
            period,
            window: ProfileWindow::new(unix_ms() / 1000),
            symbols: Symbols::new(),
            failed: false,
        })
    }

    /// Moves the samples taken since the last drain into the window.
    pub fn drain(&mut self) {
        let now = unix_ms() / 1000;
        match self.drain.drain() {
            Ok(drained) => {
                for d in &drained {
                    self.window.add(now, &d.stack, None, d.samples, self.period);
                }
            }
            Err(e) => {
                if !self.failed {
                    tracing::warn!("top --profile: reading the stack maps failed: {e}");
                }
                self.failed = true;
            }
        }
        self.window.advance(now);
    }

    /// Process `pid`'s heaviest stacks over the window.
    pub fn stacks(&mut self, pid: u32) -> FaultStacks {
        let now = unix_ms() / 1000;
        let selection = self.window.select(now, WINDOW_SECONDS, &Filter::Pid(pid));
        let tgids = self.window.tgids();
        self.symbols.retain_processes(|p| tgids.contains(&p));
        let named = self.symbols.name(&selection.samples);
        let profile = Profile::build(
            StackEvent::Faults,
            self.period,
            selection.seconds as f64,
            &named,
        );
        FaultStacks::from_profile(pid, selection.seconds, &profile)
    }
}
