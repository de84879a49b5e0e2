//! The list of memmon's kernel probes: name, program in the eBPF object,
//! attach point, and whether it runs on every page fault (costly: only on
//! when fault detail is asked for).

use aya::programs::perf_event::SoftwareEvent;

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// A classic tracepoint `category:name` under tracefs `events/`.
    Tracepoint {
        /// Tracepoint category (directory under events/).
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
    },
    /// A raw tracepoint (`category` only names where tracefs lists it).
    RawTracepoint {
        /// Tracepoint category (directory under events/).
        category: &'static str,
        /// Tracepoint name.
        name: &'static str,
    },
    /// A perf software event on every online CPU, sample period 1.
    PerfSoftware(SoftwareEvent),
}

/// One probe memmon can attach.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    /// Stable name used in status reports, flags and metrics.
    pub name: &'static str,
    /// Program name in the eBPF object.
    pub program: &'static str,
    /// Attach point.
    pub attach: Attach,
    /// Runs on every page fault: attached only with fault detail on.
    pub per_fault: bool,
    /// What it counts, for `--probes` and docs.
    pub what: &'static str,
}

/// Every probe, in attach order. The exit probe comes last so that a
/// process's counters exist before its exit can remove them.
pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        name: "page_fault_user",
        program: "page_fault_user",
        attach: Attach::RawTracepoint {
            category: "exceptions",
            name: "page_fault_user",
        },
        per_fault: true,
        what: "user-mode page faults per process: read/write/copy-on-write",
    },
    ProbeSpec {
        name: "page_fault_kernel",
        program: "page_fault_kernel",
        attach: Attach::RawTracepoint {
            category: "exceptions",
            name: "page_fault_kernel",
        },
        per_fault: true,
        what: "kernel-mode faults on user addresses (copy_to/from_user)",
    },
    ProbeSpec {
        name: "major_faults",
        program: "major_fault",
        attach: Attach::PerfSoftware(SoftwareEvent::PageFaultsMaj),
        per_fault: false,
        what: "major page faults per process (perf PAGE_FAULTS_MAJ)",
    },
    ProbeSpec {
        name: "process_exit",
        program: "sched_process_exit",
        attach: Attach::Tracepoint {
            category: "sched",
            name: "sched_process_exit",
        },
        per_fault: false,
        what: "final counters of exiting processes; frees their map entries",
    },
];

/// The spec named `name`, if any.
pub fn find(name: &str) -> Option<&'static ProbeSpec> {
    PROBES.iter().find(|p| p.name == name)
}
