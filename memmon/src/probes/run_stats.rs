//! The kernel's accounting of memmon's own programs: `BPF_ENABLE_STATS`
//! (held for the daemon's lifetime; or `kernel.bpf_stats_enabled=1`) makes
//! the kernel time every run, and each program's info carries its total
//! run time and run count.

use std::os::fd::OwnedFd;

use super::{ProbeSet, catalog::PROBES};
use crate::sample::stats::ProgramRuns;

/// The kernel's run-time statistics cannot be switched on.
#[derive(Debug, thiserror::Error)]
#[error(
    "BPF run-time statistics unavailable ({0}; needs CAP_SYS_ADMIN and Linux 5.8, or sysctl \
     kernel.bpf_stats_enabled=1): not reported: memmon_probe_run_seconds_total, \
     memmon_probe_runs_total, the probe CPU budget"
)]
pub struct RunStatsError(#[source] aya::sys::SyscallError);

/// Run-time statistics switched on while this lives.
#[derive(Debug)]
pub struct RunStats {
    _fd: Option<OwnedFd>,
}

impl RunStats {
    /// Turns the kernel's run-time statistics on; the error names why
    /// (they stay unmeasured, never 0).
    pub fn enable() -> Result<RunStats, RunStatsError> {
        if sysctl_on() {
            return Ok(RunStats { _fd: None });
        }
        aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(|fd| RunStats { _fd: Some(fd) })
            .map_err(RunStatsError)
    }
}

fn sysctl_on() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1")
}

impl ProbeSet {
    /// Run time and count of every loaded program (a program shared by
    /// several probes is listed once, as `detail` when a detail probe uses
    /// it).
    pub fn program_runs(&self) -> Vec<ProgramRuns> {
        let mut out: Vec<ProgramRuns> = Vec::new();
        for spec in PROBES {
            let spec = super::catalog::for_kernel(spec, self.variants);
            if out.iter().any(|r| r.program == spec.program) {
                continue;
            }
            let Some(program) = self.ebpf.program(spec.program) else {
                continue;
            };
            // Not loaded (disabled, unavailable, suspended): no info.
            let Ok(info) = program.info() else {
                continue;
            };
            out.push(ProgramRuns {
                program: spec.program,
                detail: spec.per_fault || spec.per_alloc,
                run_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                runs: info.run_count(),
            });
        }
        out
    }
}
