//! Loads the embedded eBPF object with this kernel's BTF offsets and
//! attaches every probe independently: one that fails is recorded as
//! unavailable with its reason, and the others still run.

use std::{collections::BTreeSet, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{
        PerfEvent, RawTracePoint, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy},
    },
    util::online_cpus,
};
use memmon_common::{KernelConfig, layouts::TracepointOffsets};

use super::{
    btf_offsets,
    catalog::{Attach, PROBES, ProbeSpec},
    pins,
    status::{ProbeState, ProbeStatus},
    tracefs,
};

/// The kernel programs, built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memmon-probes"));

/// Test-only: `probe=category:name,...` attaches a probe to another
/// tracepoint (e.g. one that does not exist) to prove the others survive.
pub const TRACEPOINT_OVERRIDE_ENV: &str = "MEMMON_TEST_TRACEPOINT_OVERRIDE";

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Attach the per-fault programs (read/write/copy-on-write split).
    pub fault_detail: bool,
    /// Attach the per-allocation programs (slab, kmalloc, page allocator).
    pub alloc_detail: bool,
    /// Probe names not to attach.
    pub disabled: BTreeSet<String>,
    /// Capacity of the per-process counters map.
    pub max_processes: u32,
    /// Pin the cumulative maps under this bpffs directory (the daemon), so
    /// a restart keeps counting from where it stopped. None: private maps.
    pub pin_root: Option<std::path::PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            fault_detail: true,
            alloc_detail: true,
            disabled: BTreeSet::new(),
            max_processes: 32768,
            pin_root: None,
        }
    }
}

/// Failure to load the object at all (attach failures are per probe).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel refused the object or a map.
    #[error("cannot load memmon's eBPF programs: {0}")]
    Load(#[from] aya::EbpfError),
    /// tracefs missing and not mountable.
    #[error("{0}")]
    Tracefs(String),
    /// A map the object must have is missing or of the wrong type.
    #[error("eBPF object is missing map {0}")]
    MissingMap(&'static str),
    /// The pin directory could not be prepared.
    #[error("{0}")]
    Pins(String),
    /// The ring buffer could not be opened.
    #[error("cannot open ring buffer EVENTS: {0}")]
    RingBuf(aya::maps::MapError),
}

/// The loaded programs, their maps and each probe's state.
pub struct ProbeSet {
    pub(super) ebpf: Ebpf,
    pub(super) events: RingBuf<MapData>,
    statuses: Vec<ProbeStatus>,
    /// OOM events drained from the ring buffer, not yet taken.
    pub(super) pending_oom: Vec<memmon_common::OomEvent>,
    /// Capacity of PROC_COUNTERS, for map-fill reporting.
    pub max_processes: u32,
}

impl ProbeSet {
    /// Loads the object and attaches every probe the options allow.
    pub fn load(opts: &LoadOptions) -> Result<Self, LoadError> {
        raise_memlock_limit();
        let tracefs = tracefs::ensure_mounted().map_err(LoadError::Tracefs)?;
        let config = kernel_config(&tracefs);
        let pin_dir = match &opts.pin_root {
            Some(root) => Some(pins::prepare(root).map_err(LoadError::Pins)?),
            None => None,
        };
        let mut loader = EbpfLoader::new();
        loader
            .override_global("CONFIG", &config, true)
            .map_max_entries("PROC_COUNTERS", opts.max_processes);
        let pin_paths: Vec<(&str, std::path::PathBuf)> = pin_dir
            .iter()
            .flat_map(|dir| pins::PINNED_MAPS.iter().map(|m| (m.name, dir.join(m.name))))
            .collect();
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        let events = ebpf
            .take_map("EVENTS")
            .ok_or(LoadError::MissingMap("EVENTS"))?;
        let events = RingBuf::try_from(events).map_err(LoadError::RingBuf)?;
        let overrides = tracepoint_overrides();
        let mut statuses = Vec::with_capacity(PROBES.len());
        for spec in PROBES {
            let attach = overrides
                .iter()
                .find(|(probe, _)| probe == spec.name)
                .map(|(_, a)| *a)
                .unwrap_or(spec.attach);
            let state = if opts.disabled.contains(spec.name) {
                ProbeState::Disabled {
                    reason: "disabled by --disable-probe".into(),
                }
            } else if spec.per_fault && !opts.fault_detail {
                ProbeState::Disabled {
                    reason: "per-fault probe; enable with --fault-detail".into(),
                }
            } else if spec.per_alloc && !opts.alloc_detail {
                ProbeState::Disabled {
                    reason: "per-allocation probe; enable with --alloc-detail".into(),
                }
            } else {
                match attach_one(&mut ebpf, spec, attach, &tracefs) {
                    Ok(()) => ProbeState::Attached,
                    Err(reason) => {
                        tracing::debug!("probe {} unavailable: {reason}", spec.name);
                        ProbeState::Unavailable { reason }
                    }
                }
            };
            statuses.push(ProbeStatus {
                name: spec.name.to_string(),
                attach_point: describe(attach),
                state,
            });
        }
        if config.task.valid == 0 {
            tracing::warn!(
                "kernel BTF offsets unknown: exited processes lose start time and kernel fault totals"
            );
        }
        Ok(ProbeSet {
            ebpf,
            events,
            statuses,
            pending_oom: Vec::new(),
            max_processes: opts.max_processes,
        })
    }

    /// Each probe's state, in catalog order.
    pub fn statuses(&self) -> &[ProbeStatus] {
        &self.statuses
    }

    /// True when `name` is attached.
    pub fn is_attached(&self, name: &str) -> bool {
        self.statuses
            .iter()
            .any(|s| s.name == name && s.is_attached())
    }
}

fn describe(attach: Attach) -> String {
    match attach {
        Attach::Tracepoint { category, name } => format!("tracepoint:{category}:{name}"),
        Attach::RawTracepoint { category, name } => format!("raw_tracepoint:{category}:{name}"),
        Attach::PerfSoftware(ev) => format!("perf:software:{ev:?}"),
        Attach::Tracing { function, exit } => {
            format!("{}:{function}", if exit { "fexit" } else { "fentry" })
        }
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    attach: Attach,
    tracefs: &Path,
) -> Result<(), String> {
    let program = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| format!("program {} missing from the eBPF object", spec.program))?;
    match attach {
        Attach::Tracepoint { category, name } => {
            if !tracefs::exists(tracefs, category, name) {
                return Err(format!(
                    "tracepoint {category}:{name} does not exist on this kernel ({})",
                    kernel_release()
                ));
            }
            check_fixed_layout(tracefs, category, name)?;
            let tp: &mut TracePoint = program.try_into().map_err(|e| format!("{e}"))?;
            // One program may serve several tracepoints (reclaim begin/end
            // for direct and memcg reclaim): load it once.
            if tp.fd().is_err() {
                tp.load()
                    .map_err(|e| format!("verifier rejected {}: {e}", spec.program))?;
            }
            tp.attach(category, name).map_err(|e| {
                format!(
                    "attach to {category}:{name} failed: {}{}",
                    error_chain(&e),
                    perf_paranoid_hint()
                )
            })?;
        }
        Attach::RawTracepoint { category, name } => {
            if !tracefs::exists(tracefs, category, name) || name.contains('\0') {
                return Err(format!(
                    "tracepoint {category}:{name} does not exist on this kernel ({})",
                    kernel_release()
                ));
            }
            let tp: &mut RawTracePoint = program.try_into().map_err(|e| format!("{e}"))?;
            tp.load()
                .map_err(|e| format!("verifier rejected {}: {e}", spec.program))?;
            tp.attach(name)
                .map_err(|e| format!("attach to raw tracepoint {name} failed: {e}"))?;
        }
        Attach::PerfSoftware(event) => {
            let pe: &mut PerfEvent = program.try_into().map_err(|e| format!("{e}"))?;
            pe.load()
                .map_err(|e| format!("verifier rejected {}: {e}", spec.program))?;
            let cpus = online_cpus().map_err(|(path, e)| format!("cannot read {path}: {e}"))?;
            for cpu in cpus {
                pe.attach(
                    PerfEventConfig::Software(event),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(1),
                    false,
                )
                .map_err(|e| {
                    format!(
                        "perf_event_open({event:?}) on cpu {cpu} failed: {}{}",
                        error_chain(&e),
                        perf_paranoid_hint()
                    )
                })?;
            }
        }
        Attach::Tracing { function, exit } => {
            let btf = aya::Btf::from_sys_fs()
                .map_err(|e| format!("BPF tracing programs need kernel BTF: {e}"))?;
            let kind = if exit { "fexit" } else { "fentry" };
            let refused = |e: aya::programs::ProgramError| {
                format!(
                    "the kernel refused {kind} on {function} ({}): {}; this kernel does \
                     not permit BPF tracing programs (fentry/fexit trampolines)",
                    kernel_release(),
                    error_chain(&e)
                )
            };
            if exit {
                let p: &mut aya::programs::FExit =
                    program.try_into().map_err(|e| format!("{e}"))?;
                p.load(function, &btf).map_err(refused)?;
                p.attach().map_err(refused)?;
            } else {
                let p: &mut aya::programs::FEntry =
                    program.try_into().map_err(|e| format!("{e}"))?;
                p.load(function, &btf).map_err(refused)?;
                p.attach().map_err(refused)?;
            }
        }
    }
    Ok(())
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
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// BTF offsets and tracepoint layout for the running kernel.
fn kernel_config(tracefs: &Path) -> KernelConfig {
    let mut config = KernelConfig::unknown();
    match btf_offsets::kernel_btf() {
        Ok(btf) => {
            match btf_offsets::resolve(&btf) {
                Ok(task) => config.task = task,
                Err(e) => tracing::warn!("{e}"),
            }
            match btf_offsets::resolve_cgroup(&btf) {
                Ok(cgroup) => config.cgroup = cgroup,
                Err(e) => tracing::info!("OOM events will not name the memory cgroup: {e}"),
            }
        }
        Err(e) => tracing::warn!("{e}"),
    }
    config.exit_group_dead_offset =
        tracefs::field_offset(tracefs, "sched", "sched_process_exit", "group_dead").unwrap_or(0);
    config.tp = tracepoint_offsets(tracefs);
    config
}

/// The tracepoint fields whose place moved between kernels, from this
/// kernel's formats (the built-in layout where a format cannot be read).
fn tracepoint_offsets(tracefs: &Path) -> TracepointOffsets {
    let mut tp = TracepointOffsets::default_layout();
    let field = |category: &str, event: &str, name: &str| {
        tracefs::field_offset(tracefs, category, event, name)
    };
    if let (Some(s), Some(f), Some(r)) = (
        field("migrate", "mm_migrate_pages", "succeeded"),
        field("migrate", "mm_migrate_pages", "failed"),
        field("migrate", "mm_migrate_pages", "reason"),
    ) {
        (tp.migrate_succeeded, tp.migrate_failed, tp.migrate_reason) = (s, f, r);
    }
    if let (Some(req), Some(alloc)) = (
        field("kmem", "kmem_cache_alloc", "bytes_req"),
        field("kmem", "kmem_cache_alloc", "bytes_alloc"),
    ) {
        tp.slab_req = req;
        tp.slab_alloc = alloc;
        tp.slab_name = field("kmem", "kmem_cache_alloc", "name").unwrap_or(0);
    }
    tp
}

/// Checks a tracepoint's fields that memmon reads at fixed offsets against
/// this kernel's format file.
fn check_fixed_layout(tracefs: &Path, category: &str, name: &str) -> Result<(), String> {
    let Some((_, _, fields)) = memmon_common::layouts::FIXED
        .iter()
        .find(|(c, n, _)| *c == category && *n == name)
    else {
        return Ok(());
    };
    for (field, want) in fields.iter() {
        match tracefs::field_offset(tracefs, category, name, field) {
            Some(got) if got == *want => {}
            Some(got) => {
                return Err(format!(
                    "tracepoint {category}:{name} has `{field}` at offset {got}, memmon reads it at \
                     {want}: this kernel's record layout ({}) is not supported yet",
                    kernel_release()
                ));
            }
            None => {
                return Err(format!(
                    "tracepoint {category}:{name} has no field `{field}` on this kernel ({})",
                    kernel_release()
                ));
            }
        }
    }
    Ok(())
}

fn tracepoint_overrides() -> Vec<(String, Attach)> {
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

/// `uname -r`, for error messages.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into())
}

/// Older kernels charge BPF maps to RLIMIT_MEMLOCK; newer ones to the memcg.
/// Failing to raise it is harmless on the latter, so it is logged at debug.
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        tracing::debug!(
            "setrlimit(RLIMIT_MEMLOCK) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(release: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tracefs")
            .join(release)
    }

    #[test]
    fn fixed_layouts_match_both_recorded_kernels() {
        for release in ["linux-6.18", "linux-6.1"] {
            for (category, name, _) in memmon_common::layouts::FIXED {
                if let Err(e) = check_fixed_layout(&kernel(release), category, name) {
                    panic!("{release}: {e}");
                }
            }
        }
    }

    #[test]
    fn moved_fields_are_read_from_the_kernel() {
        let new = tracepoint_offsets(&kernel("linux-6.18"));
        assert_eq!(new, TracepointOffsets::default_layout());
        let old = tracepoint_offsets(&kernel("linux-6.1"));
        assert_eq!(old.migrate_reason, 52);
        assert_eq!((old.slab_name, old.slab_req, old.slab_alloc), (0, 24, 32));
    }

    #[test]
    fn a_moved_fixed_field_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let ev = dir.path().join("events/kmem/kmalloc");
        std::fs::create_dir_all(&ev).expect("mkdir");
        std::fs::write(
            ev.join("format"),
            "format:\n\tfield:size_t bytes_req;\toffset:20;\tsize:8;\tsigned:0;\n",
        )
        .expect("write");
        let err = check_fixed_layout(dir.path(), "kmem", "kmalloc").expect_err("moved");
        assert!(err.contains("`bytes_req` at offset 20"), "{err}");
    }
}
