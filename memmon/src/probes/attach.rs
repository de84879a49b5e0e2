//! Attaching one probe of the catalog: check its tracepoint exists and is
//! laid out as memmon reads it, load the program, attach it; the error is
//! the reason the probe is reported unavailable. Also the test-only
//! tracepoint overrides.

use std::path::Path;

use aya::{
    Ebpf,
    programs::{
        KProbe, PerfEvent, ProgramError, RawTracePoint, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
    util::online_cpus,
};
use memmon_common::names::Program;

use super::{
    catalog::{Attach, ProbeSpec},
    offsets::{LayoutError, check_fixed_layout, kernel_release},
    tracefs,
};

/// Test-only: `probe=category:name,...` attaches a probe to another
/// tracepoint (e.g. one that does not exist) to prove the others survive.
pub const TRACEPOINT_OVERRIDE_ENV: &str = "MEMMON_TEST_TRACEPOINT_OVERRIDE";

/// Why a probe could not be attached (its `unavailable` reason).
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The program is not in the object.
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static Program),
    /// The tracepoint does not exist here.
    #[error("tracepoint {category}:{name} does not exist on this kernel ({release})")]
    NoTracepoint {
        /// Category.
        category: &'static str,
        /// Name.
        name: &'static str,
        /// `uname -r`.
        release: String,
    },
    /// Its record is not laid out as memmon reads it.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The program is not of the kind its attach point needs.
    #[error("{0}")]
    Kind(#[source] Box<ProgramError>),
    /// The verifier refused the program.
    #[error("verifier rejected {program}: {source}")]
    Verifier {
        /// The program.
        program: &'static Program,
        /// What the kernel said.
        #[source]
        source: Box<ProgramError>,
    },
    /// Attaching to a tracepoint failed.
    #[error("attach to {category}:{name} failed: {}{}", chain(.source), perf_paranoid_hint())]
    Tracepoint {
        /// Category.
        category: &'static str,
        /// Name.
        name: &'static str,
        /// What the kernel said.
        source: Box<ProgramError>,
    },
    /// Attaching to a raw tracepoint failed.
    #[error("attach to raw tracepoint {name} failed: {source}")]
    RawTracepoint {
        /// Name.
        name: &'static str,
        /// What the kernel said.
        source: Box<ProgramError>,
    },
    /// The kernel refused the kprobe.
    #[error("kprobe on {function} refused on this kernel ({release}): {}", chain(.source))]
    Kprobe {
        /// Kernel function.
        function: &'static str,
        /// `uname -r`.
        release: String,
        /// What the kernel said.
        source: Box<ProgramError>,
    },
    /// The online CPUs could not be read.
    #[error("cannot read {path}: {source}")]
    OnlineCpus {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// perf_event_open failed on a CPU.
    #[error("perf_event_open({event:?}) on cpu {cpu} failed: {}{}", chain(.source), perf_paranoid_hint())]
    Perf {
        /// The software event.
        event: SoftwareEvent,
        /// The CPU.
        cpu: u32,
        /// What the kernel said.
        source: Box<ProgramError>,
    },
    /// No kernel BTF to type a tracing program with.
    #[error("BPF tracing programs need kernel BTF: {0}")]
    NoBtf(#[source] aya::BtfError),
    /// The kernel refused an fentry/fexit program.
    #[error(
        "the kernel refused {kind} on {function} ({release}): {}; this kernel does not permit \
         BPF tracing programs (fentry/fexit trampolines)",
        chain(.source)
    )]
    Tracing {
        /// fentry or fexit.
        kind: &'static str,
        /// Kernel function.
        function: &'static str,
        /// `uname -r`.
        release: String,
        /// What the kernel said.
        source: Box<ProgramError>,
    },
}

/// `attach_point` as `--probes` shows it.
pub(super) fn describe(attach: Attach) -> String {
    match attach {
        Attach::Tracepoint { category, name } => format!("tracepoint:{category}:{name}"),
        Attach::RawTracepoint { category, name } => format!("raw_tracepoint:{category}:{name}"),
        Attach::PerfSoftware(ev) => format!("perf:software:{ev:?}"),
        Attach::Kprobe { function } => format!("kprobe:{function}"),
        Attach::Tracing { function, exit } => {
            format!("{}:{function}", if exit { "fexit" } else { "fentry" })
        }
    }
}

/// Loads `spec`'s program (once) and attaches it at `attach`; `btf` is the
/// kernel's, parsed at load (None: parsed again if a tracing program needs
/// it).
pub(super) fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    attach: Attach,
    tracefs: &Path,
    btf: Option<&aya::Btf>,
) -> Result<(), AttachError> {
    let program = ebpf
        .program_mut(spec.program)
        .ok_or(AttachError::MissingProgram(spec.program))?;
    let verifier = |source| AttachError::Verifier {
        program: spec.program,
        source: Box::new(source),
    };
    match attach {
        Attach::Tracepoint { category, name } => {
            if !tracefs::exists(tracefs, category, name) {
                return Err(AttachError::NoTracepoint {
                    category,
                    name,
                    release: kernel_release(),
                });
            }
            check_fixed_layout(tracefs, category, name)?;
            let tp: &mut TracePoint = program
                .try_into()
                .map_err(|e| AttachError::Kind(Box::new(e)))?;
            // One program may serve several tracepoints (reclaim begin/end
            // for direct and memcg reclaim): load it once.
            if tp.fd().is_err() {
                tp.load().map_err(verifier)?;
            }
            tp.attach(category, name)
                .map_err(|source| AttachError::Tracepoint {
                    category,
                    name,
                    source: Box::new(source),
                })?;
        }
        Attach::RawTracepoint { category, name } => {
            if !tracefs::exists(tracefs, category, name) || name.contains('\0') {
                return Err(AttachError::NoTracepoint {
                    category,
                    name,
                    release: kernel_release(),
                });
            }
            let tp: &mut RawTracePoint = program
                .try_into()
                .map_err(|e| AttachError::Kind(Box::new(e)))?;
            tp.load().map_err(verifier)?;
            tp.attach(name)
                .map_err(|source| AttachError::RawTracepoint {
                    name,
                    source: Box::new(source),
                })?;
        }
        Attach::Kprobe { function } => {
            let kp: &mut KProbe = program
                .try_into()
                .map_err(|e| AttachError::Kind(Box::new(e)))?;
            kp.load().map_err(verifier)?;
            kp.attach(function, 0)
                .map_err(|source| AttachError::Kprobe {
                    function,
                    release: kernel_release(),
                    source: Box::new(source),
                })?;
        }
        Attach::PerfSoftware(event) => {
            let pe: &mut PerfEvent = program
                .try_into()
                .map_err(|e| AttachError::Kind(Box::new(e)))?;
            pe.load().map_err(verifier)?;
            let cpus =
                online_cpus().map_err(|(path, source)| AttachError::OnlineCpus { path, source })?;
            for cpu in cpus {
                pe.attach(
                    PerfEventConfig::Software(event),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(1),
                    false,
                )
                .map_err(|source| AttachError::Perf {
                    event,
                    cpu,
                    source: Box::new(source),
                })?;
            }
        }
        Attach::Tracing { function, exit } => {
            // Parsed again only for a probe resumed after load (the
            // parsed BTF is tens of MiB: it is not kept).
            let parsed;
            let btf = match btf {
                Some(btf) => btf,
                None => {
                    parsed = aya::Btf::from_sys_fs().map_err(AttachError::NoBtf)?;
                    &parsed
                }
            };
            let kind = if exit { "fexit" } else { "fentry" };
            let refused = |source| AttachError::Tracing {
                kind,
                function,
                release: kernel_release(),
                source: Box::new(source),
            };
            if exit {
                let p: &mut aya::programs::FExit = program
                    .try_into()
                    .map_err(|e| AttachError::Kind(Box::new(e)))?;
                p.load(function, btf).map_err(refused)?;
                p.attach().map_err(refused)?;
            } else {
                let p: &mut aya::programs::FEntry = program
                    .try_into()
                    .map_err(|e| AttachError::Kind(Box::new(e)))?;
                p.load(function, btf).map_err(refused)?;
                p.attach().map_err(refused)?;
            }
        }
    }
    Ok(())
}

/// The test-only overrides in `$MEMMON_TEST_TRACEPOINT_OVERRIDE`.
pub(super) fn tracepoint_overrides() -> Vec<(String, Attach)> {
    let Ok(spec) = std::env::var(TRACEPOINT_OVERRIDE_ENV) else {
        return Vec::new();
    };
    spec.split(',')
        .filter_map(|item| {
            let (probe, tp) = item.split_once('=')?;
            let (category, name) = tp.split_once(':')?;
            let spec = super::catalog::find(probe)?;
            // Leaked once per process start: test-only, a handful of bytes.
            let category: &'static str = Box::leak(category.to_string().into_boxed_str());
            let name: &'static str = Box::leak(name.to_string().into_boxed_str());
            let attach = match spec.attach {
                Attach::RawTracepoint { .. } => Attach::RawTracepoint { category, name },
                _ => Attach::Tracepoint { category, name },
            };
            Some((probe.to_string(), attach))
        })
        .collect()
}

/// An overridden tracepoint as the kind of program `like` attaches (the
/// raw rss_stat variant is chosen after overrides are parsed).
pub(super) fn same_kind(a: Attach, like: Attach) -> Attach {
    match (a, like) {
        (
            Attach::Tracepoint { category, name } | Attach::RawTracepoint { category, name },
            Attach::RawTracepoint { .. },
        ) => Attach::RawTracepoint { category, name },
        (Attach::RawTracepoint { category, name }, _) => Attach::Tracepoint { category, name },
        (other, _) => other,
    }
}

/// What to do when perf_event_open is refused at Debian's
/// kernel.perf_event_paranoid=3, which wants CAP_SYS_ADMIN even where
/// CAP_PERFMON is given (as memmon.service gives it); empty otherwise.
fn perf_paranoid_hint() -> String {
    let level = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match level {
        Some(level) if level >= 3 => format!(
            " (kernel.perf_event_paranoid is {level}, Debian's default: perf_event_open then \
             needs CAP_SYS_ADMIN; run `sysctl -w kernel.perf_event_paranoid=2`, as the memmon \
             package's /usr/lib/sysctl.d/60-memmon.conf does, or run memmon as full root)"
        ),
        _ => String::new(),
    }
}

/// An error and its sources on one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
