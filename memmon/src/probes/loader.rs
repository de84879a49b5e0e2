//! Loads the embedded eBPF object with this kernel's BTF offsets and
//! attaches every probe independently: one that fails is recorded as
//! unavailable with its reason, and the others still run.

use std::{collections::BTreeSet, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{
        KProbe, PerfEvent, RawTracePoint, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy},
    },
    util::online_cpus,
};
use memmon_common::{
    KernelConfig,
    layouts::TracepointOffsets,
    names::{self, Map, Probe},
};

use super::{
    ProbeState, ProbeStatus, btf_offsets,
    catalog::{Attach, PROBES, ProbeSpec},
    pins, tracefs,
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
    /// When set, attach only these probes (a command that needs a few,
    /// such as `memmon events`); the others are disabled, saying why.
    pub only: Option<(&'static [&'static Probe], &'static str)>,
    /// Capacity of the per-process counters map.
    pub max_processes: u32,
    /// Pin the cumulative maps under this bpffs directory (the daemon), so
    /// a restart keeps counting from where it stopped. None: private maps.
    pub pin_root: Option<std::path::PathBuf>,
    /// Room for this many sampled stacks (`memmon profile`, `memmon
    /// leaks`); None: the stack maps keep one entry (nobody samples).
    pub stack_entries: Option<u32>,
}

/// Live allocations `memmon leaks` can track at once.
pub const LIVE_ALLOCS_MAX: u32 = 1 << 20;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            fault_detail: true,
            alloc_detail: true,
            disabled: BTreeSet::new(),
            only: None,
            max_processes: 32768,
            pin_root: None,
            stack_entries: None,
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
    MissingMap(&'static Map),
    /// The pin directory could not be prepared.
    #[error("{0}")]
    Pins(String),
    /// The embedded object could not be adapted to this kernel.
    #[error("{0}")]
    Object(String),
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
    /// SIGKILL records drained from the ring buffer, not yet taken.
    pub(super) pending_kill: Vec<memmon_common::KillEvent>,
    /// Capacity of PROC_COUNTERS, for map-fill reporting.
    pub max_processes: u32,
    /// Where tracefs is mounted (to attach a resumed probe).
    pub(super) tracefs: std::path::PathBuf,
    /// Which probes run as raw tracepoints (`catalog::for_kernel`).
    pub(super) variants: super::catalog::Variants,
    /// The task iterator program that was loaded (it is attached per
    /// read), or why none was.
    pub(super) task_iter_loaded: Result<&'static str, String>,
}

impl ProbeSet {
    /// Loads the object and attaches every probe the options allow.
    pub fn load(opts: &LoadOptions) -> Result<Self, LoadError> {
        raise_memlock_limit();
        let tracefs = tracefs::ensure_mounted().map_err(LoadError::Tracefs)?;
        // The kernel's BTF is parsed once for the offsets (btf_rs) and
        // once by aya for loading: in a TCG guest each parse of a
        // non-mmapped BTF takes seconds.
        let FromBtf {
            config,
            rss,
            oom,
            raw_kill,
            task_iter,
        } = from_btf(&tracefs);
        let task_iter_config = task_iter.clone().unwrap_or_default();
        let btf = aya::Btf::from_sys_fs().ok();
        let pin_dir = match &opts.pin_root {
            Some(root) => Some(pins::prepare(root).map_err(LoadError::Pins)?),
            None => None,
        };
        let mut loader = EbpfLoader::new();
        loader
            .btf(btf.as_ref())
            .override_global(memmon_common::names::CONFIG, &config, true)
            .override_global(memmon_common::names::RSS_CONFIG, &rss, true)
            .override_global(
                memmon_common::names::TASK_ITER_CONFIG,
                &task_iter_config,
                true,
            )
            .override_global(memmon_common::names::OOM_CONFIG, &oom, true)
            .map_max_entries(memmon_common::names::PROC_COUNTERS, opts.max_processes);
        if let Some(n) = opts.stack_entries {
            use memmon_common::names;
            loader
                .map_max_entries(names::STACK_TRACES, n)
                .map_max_entries(names::STACK_COUNTS, n)
                .map_max_entries(names::PROFILE_PIDS, 1024)
                .map_max_entries(names::LIVE_ALLOCS, LIVE_ALLOCS_MAX)
                .map_max_entries(names::PENDING_ALLOCS, 65536)
                .map_max_entries(names::MMAP_CHARGES, 1 << 18)
                .map_max_entries(names::STACK_BRK_LAST, 32768);
        }
        let pin_paths: Vec<(&str, std::path::PathBuf)> = pin_dir
            .iter()
            .flat_map(|dir| {
                pins::PINNED_MAPS
                    .iter()
                    .map(|m| (m.name.name(), dir.join(m.name.name())))
            })
            .collect();
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let object = object_for_this_kernel(&kernel_release()).map_err(LoadError::Object)?;
        let mut ebpf = loader.load(object.bytes())?;
        let events = ebpf
            .take_map(memmon_common::names::EVENTS)
            .ok_or(LoadError::MissingMap(memmon_common::names::EVENTS))?;
        let events = RingBuf::try_from(events).map_err(LoadError::RingBuf)?;
        let overrides = tracepoint_overrides();
        let mut statuses = Vec::with_capacity(PROBES.len());
        let mut variants = super::catalog::Variants {
            raw_rss: rss.valid == 1,
            raw_kill,
        };
        for spec in PROBES {
            let mut spec = super::catalog::for_kernel(spec, variants);
            let mut attach = overrides
                .iter()
                .find(|(probe, _)| probe == spec.name.name())
                .map(|(_, a)| same_kind(*a, spec.attach))
                .unwrap_or(spec.attach);
            let state = if opts.disabled.contains(spec.name.name()) {
                ProbeState::Disabled {
                    reason: "disabled by --disable-probe".into(),
                }
            } else if let Some((only, who)) = opts.only
                && !only.contains(&spec.name)
            {
                ProbeState::Disabled {
                    reason: format!("not needed by {who}"),
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
                match attach_one(&mut ebpf, spec, attach, &tracefs, btf.as_ref()) {
                    Ok(()) => ProbeState::Attached,
                    // A raw variant this kernel refuses: the classic
                    // tracepoint still gives the rest of the record.
                    Err(reason) if spec.program == super::catalog::KILL_SIGNAL_RAW.program => {
                        tracing::info!(
                            "kill_signal as a raw tracepoint refused ({}); the classic tracepoint \
                             runs, without the target's cgroup",
                            reason.lines().next().unwrap_or("")
                        );
                        variants.raw_kill = false;
                        spec = super::catalog::find(spec.name).unwrap_or(spec);
                        attach = spec.attach;
                        match attach_one(&mut ebpf, spec, attach, &tracefs, btf.as_ref()) {
                            Ok(()) => ProbeState::Attached,
                            Err(classic) => ProbeState::Unavailable {
                                reason: format!("{classic} (as a raw tracepoint: {reason})"),
                            },
                        }
                    }
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
        let task_iter_loaded = match (&task_iter, btf.as_ref()) {
            (Ok(_), Some(btf)) => super::task_iter::load_program(&mut ebpf, btf),
            (Ok(_), None) => Err(format!("{} could not be read", btf_offsets::VMLINUX_BTF)),
            (Err(e), _) => Err(e.clone()),
        };
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
            pending_kill: Vec::new(),
            max_processes: opts.max_processes,
            tracefs: tracefs.to_path_buf(),
            variants,
            task_iter_loaded,
        })
    }

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

fn describe(attach: Attach) -> String {
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

pub(super) fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    attach: Attach,
    tracefs: &Path,
    btf: Option<&aya::Btf>,
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
        Attach::Kprobe { function } => {
            let kp: &mut KProbe = program.try_into().map_err(|e| format!("{e}"))?;
            kp.load()
                .map_err(|e| format!("verifier rejected {}: {e}", spec.program))?;
            kp.attach(function, 0).map_err(|e| {
                format!(
                    "kprobe on {function} refused on this kernel ({}): {}",
                    kernel_release(),
                    error_chain(&e)
                )
            })?;
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
            // Parsed again only for a probe resumed after load (the
            // parsed BTF is tens of MiB: it is not kept).
            let parsed;
            let btf = match btf {
                Some(btf) => btf,
                None => {
                    parsed = aya::Btf::from_sys_fs()
                        .map_err(|e| format!("BPF tracing programs need kernel BTF: {e}"))?;
                    &parsed
                }
            };
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
                p.load(function, btf).map_err(refused)?;
                p.attach().map_err(refused)?;
            } else {
                let p: &mut aya::programs::FEntry =
                    program.try_into().map_err(|e| format!("{e}"))?;
                p.load(function, btf).map_err(refused)?;
                p.attach().map_err(refused)?;
            }
        }
    }
    Ok(())
}

/// The eBPF object as loaded: the embedded one, or a copy adapted to this
/// kernel.
enum ObjectBytes {
    Embedded,
    /// u64 words keep the ELF image 8-byte aligned, as the parser needs.
    Patched(Vec<u64>, usize),
}

impl ObjectBytes {
    fn bytes(&self) -> &[u8] {
        match self {
            ObjectBytes::Embedded => OBJECT,
            // SAFETY: the Vec holds at least `len` initialised bytes.
            ObjectBytes::Patched(words, len) => unsafe {
                std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len)
            },
        }
    }
}

/// `BPF_F_NO_PREALLOC`, the flag the counters map is declared with.
const BPF_F_NO_PREALLOC: u32 = 1;
/// Offset of `map_flags` in a legacy `bpf_map_def` (type, key_size,
/// value_size, max_entries, map_flags, ...: u32 each).
const MAP_DEF_FLAGS: u64 = 16;
/// The map the major-fault perf_event program writes to.
const COUNTERS_MAP: &Map = names::PROC_COUNTERS;

/// The object for a kernel of `release`. Linux before 6.1 lets perf_event
/// programs use only preallocated hash maps (the verifier says "perf_event
/// programs can only use preallocated hash map"; 6.1's BPF memory
/// allocator lifted that), so there the counters map is declared
/// preallocated: its `max_processes` entries take memory up front instead
/// of as processes come.
fn object_for_this_kernel(release: &str) -> Result<ObjectBytes, String> {
    if !before(release, (6, 1)) {
        return Ok(ObjectBytes::Embedded);
    }
    tracing::debug!("Linux {release} < 6.1: {COUNTERS_MAP} preallocated for perf_event programs");
    preallocated(OBJECT, COUNTERS_MAP)
}

/// True when kernel `release` (`5.10.0-32-amd64`) is older than `version`.
fn before(release: &str, version: (u32, u32)) -> bool {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < version,
        _ => false,
    }
}

/// A copy of ELF object `object` with map `map`'s BPF_F_NO_PREALLOC
/// cleared in its `maps` section definition.
fn preallocated(object: &[u8], map: &str) -> Result<ObjectBytes, String> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let file = object::File::parse(object)
        .map_err(|e| format!("cannot parse memmon's eBPF object: {e}"))?;
    let symbol = file
        .symbols()
        .find(|s| s.name() == Ok(map))
        .ok_or_else(|| format!("memmon's eBPF object has no map {map}"))?;
    let section = symbol
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or_else(|| format!("map {map} has no section in memmon's eBPF object"))?;
    let (start, size) = section
        .file_range()
        .ok_or_else(|| format!("map {map}'s section has no data"))?;
    let within = symbol.address().saturating_sub(section.address()) + MAP_DEF_FLAGS;
    if within + 4 > size {
        return Err(format!("map {map}'s definition lies outside its section"));
    }
    let at = usize::try_from(start + within).map_err(|e| e.to_string())?;
    let flags = object
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| format!("map {map}'s flags lie outside the object"))?;
    if flags != BPF_F_NO_PREALLOC {
        return Err(format!(
            "map {map} has flags {flags:#x} in memmon's eBPF object, expected BPF_F_NO_PREALLOC"
        ));
    }
    let mut words = vec![0u64; object.len().div_ceil(8)];
    // SAFETY: `words` holds at least object.len() bytes.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), object.len()) };
    bytes.copy_from_slice(object);
    bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    Ok(ObjectBytes::Patched(words, object.len()))
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
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Everything read from the kernel's BTF at load (opened once: a kernel
/// before 6.16 parses it whole).
struct FromBtf {
    config: KernelConfig,
    rss: memmon_common::RssOffsets,
    oom: memmon_common::OomOffsets,
    raw_kill: bool,
    /// The task iterator's offsets, or why they are missing.
    task_iter: Result<memmon_common::task_iter::TaskIterOffsets, String>,
}

/// BTF offsets and tracepoint layout for the running kernel: the programs'
/// configuration, the raw rss_stat program's offsets (unknown before 6.2
/// or without BTF: the classic tracepoint runs), the OOM programs'
/// (unknown without BTF: OOM kills are recorded without the kernel's
/// constraint), whether the raw kill_signal program can run, and the task
/// iterator's offsets.
fn from_btf(tracefs: &Path) -> FromBtf {
    let mut out = FromBtf {
        config: KernelConfig::unknown(),
        rss: memmon_common::RssOffsets::unknown(),
        oom: memmon_common::OomOffsets::unknown(),
        raw_kill: false,
        task_iter: Err("kernel BTF unreadable".into()),
    };
    match btf_offsets::kernel_btf() {
        Ok(btf) => {
            match btf_offsets::resolve(&btf) {
                Ok(task) => out.config.task = task,
                Err(e) => tracing::warn!("{e}"),
            }
            match btf_offsets::resolve_cgroup(&btf) {
                Ok(cgroup) => out.config.cgroup = cgroup,
                Err(e) => tracing::info!("OOM events will not name the memory cgroup: {e}"),
            }
            out.task_iter = btf_offsets::resolve_task_iter(&btf);
            match btf_offsets::resolve_rss(&btf) {
                Ok(rss) => out.rss = rss,
                Err(e) => tracing::debug!("rss_stat stays a classic tracepoint: {e}"),
            }
            match btf_offsets::resolve_oom(&btf) {
                Ok(oom) => out.oom = oom,
                Err(e) => tracing::info!("OOM kills will not say which limit was hit: {e}"),
            }
            // The raw kill program reads the target's pid, comm and memory
            // cgroup through these offsets.
            out.raw_kill = out.config.task.valid == 1
                && out.config.cgroup.valid == 1
                && btf_offsets::signal_generate_is_raw_readable(&btf)
                    .map_err(|e| {
                        tracing::info!(
                            "kill_signal stays a classic tracepoint (no target cgroup): {e}"
                        )
                    })
                    .is_ok();
        }
        Err(e) => {
            tracing::warn!("{e}");
            out.task_iter = Err(e);
        }
    }
    out.config.exit_group_dead_offset =
        tracefs::field_offset(tracefs, "sched", "sched_process_exit", "group_dead").unwrap_or(0);
    out.config.tp = tracepoint_offsets(tracefs);
    out
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
    // All or none: a format without one of them keeps the probe off (see
    // check_fixed_layout), so the built-in layout is never misread.
    if let (Some(sig), Some(code), Some(comm), Some(pid), Some(group), Some(result)) = (
        field("signal", "signal_generate", "sig"),
        field("signal", "signal_generate", "code"),
        field("signal", "signal_generate", "comm"),
        field("signal", "signal_generate", "pid"),
        field("signal", "signal_generate", "group"),
        field("signal", "signal_generate", "result"),
    ) {
        (tp.signal_sig, tp.signal_code, tp.signal_comm) = (sig, code, comm);
        (tp.signal_pid, tp.signal_group, tp.signal_result) = (pid, group, result);
    }
    tp
}

/// Checks a tracepoint's fields that memmon reads at fixed offsets against
/// this kernel's format file, and that the fields read at offsets found at
/// load ([`memmon_common::layouts::READ_AT_LOAD`]) exist.
fn check_fixed_layout(tracefs: &Path, category: &str, name: &str) -> Result<(), String> {
    if let Some((_, _, fields)) = memmon_common::layouts::READ_AT_LOAD
        .iter()
        .find(|(c, n, _)| *c == category && *n == name)
        && let Some(field) = fields
            .iter()
            .find(|f| tracefs::field_offset(tracefs, category, name, f).is_none())
    {
        return Err(format!(
            "tracepoint {category}:{name} has no field `{field}` on this kernel ({})",
            kernel_release()
        ));
    }
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
                    "tracepoint {category}:{name} has no field `{field}` on this kernel ({}); \
                     its record holds only: {}",
                    kernel_release(),
                    tracefs::field_names(tracefs, category, name).join(", ")
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

/// An overridden tracepoint as the kind of program `like` attaches (the
/// raw rss_stat variant is chosen after overrides are parsed).
fn same_kind(a: Attach, like: Attach) -> Attach {
    match (a, like) {
        (
            Attach::Tracepoint { category, name } | Attach::RawTracepoint { category, name },
            Attach::RawTracepoint { .. },
        ) => Attach::RawTracepoint { category, name },
        (Attach::RawTracepoint { category, name }, _) => Attach::Tracepoint { category, name },
        (other, _) => other,
    }
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

    /// Every kernel whose formats are recorded: 6.18 (the host) and the
    /// vm-test matrix (5.10, 6.1, 6.12).
    const RECORDED: &[&str] = &["linux-6.18", "linux-6.12", "linux-6.1", "linux-5.10"];

    #[test]
    fn fixed_layouts_match_every_recorded_kernel_but_5_10_oom() {
        for release in RECORDED {
            for (category, name, _) in memmon_common::layouts::FIXED {
                let checked = check_fixed_layout(&kernel(release), category, name);
                if *release == "linux-5.10" && (*category, *name) == ("oom", "mark_victim") {
                    // 5.10's record holds only the victim's pid: the probe
                    // is refused with that reason rather than misread.
                    let e = checked.expect_err("5.10 mark_victim has no comm");
                    assert!(e.contains("has no field `comm`"), "{e}");
                    assert!(e.ends_with("its record holds only: pid"), "{e}");
                } else if let Err(e) = checked {
                    panic!("{release}: {e}");
                }
            }
        }
    }

    #[test]
    fn moved_fields_are_read_from_the_kernel() {
        let new = tracepoint_offsets(&kernel("linux-6.18"));
        assert_eq!(new, TracepointOffsets::default_layout());
        for release in ["linux-6.1", "linux-5.10"] {
            let old = tracepoint_offsets(&kernel(release));
            assert_eq!(
                (
                    old.migrate_succeeded,
                    old.migrate_failed,
                    old.migrate_reason
                ),
                (8, 16, 52),
                "{release}"
            );
            assert_eq!(
                (old.slab_name, old.slab_req, old.slab_alloc),
                (0, 24, 32),
                "{release}"
            );
        }
        // 6.12: mm_migrate_pages has large_folio_split (reason at 60, as
        // on 6.18), kmem_cache_alloc no name yet.
        let mid = tracepoint_offsets(&kernel("linux-6.12"));
        assert_eq!(
            (
                mid.migrate_succeeded,
                mid.migrate_failed,
                mid.migrate_reason
            ),
            (8, 16, 60)
        );
        assert_eq!((mid.slab_name, mid.slab_req, mid.slab_alloc), (0, 24, 32));
    }

    #[test]
    fn every_recorded_matrix_kernel_has_each_tracepoint_memmon_attaches() {
        // The matrix fixtures (recorded by `cargo xtask vm-test --kernel
        // all`) hold every tracepoint of the catalog; 6.18's (the host's)
        // holds the ones whose layout memmon checks.
        for release in ["linux-5.10", "linux-6.1", "linux-6.12"] {
            for spec in super::super::catalog::PROBES {
                if let Attach::Tracepoint { category, name }
                | Attach::RawTracepoint { category, name } = spec.attach
                {
                    let format = kernel(release)
                        .join("events")
                        .join(category)
                        .join(name)
                        .join("format");
                    let text = std::fs::read_to_string(&format)
                        .unwrap_or_else(|e| panic!("{}: {e}", format.display()));
                    assert!(
                        text.contains(&format!("name: {name}\n")),
                        "{}",
                        format.display()
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_before_6_1_get_a_preallocated_counters_map() {
        assert!(before("5.10.0-32-amd64", (6, 1)));
        assert!(!before("6.1.0-50-amd64", (6, 1)));
        assert!(!before("6.12.117+deb13-amd64", (6, 1)));
        assert!(!before("unknown kernel", (6, 1)));
        let patched = preallocated(OBJECT, COUNTERS_MAP).expect("patch the embedded object");
        let (old, new) = (OBJECT, patched.bytes());
        assert_eq!(old.len(), new.len());
        let changed: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
        assert_eq!(changed.len(), 1, "only the flag byte changes");
        assert_eq!((old[changed[0]], new[changed[0]]), (1, 0));
        assert!(preallocated(OBJECT, "NO_SUCH_MAP").is_err());
    }

    #[test]
    fn signal_generate_fields_are_found_or_the_probe_is_refused() {
        let tp = tracepoint_offsets(&kernel("linux-6.18"));
        assert_eq!(
            (
                tp.signal_sig,
                tp.signal_comm,
                tp.signal_pid,
                tp.signal_result
            ),
            (8, 20, 36, 44)
        );
        check_fixed_layout(&kernel("linux-6.18"), "signal", "signal_generate")
            .expect("6.18 layout");
        check_fixed_layout(&kernel("linux-6.1"), "signal", "signal_generate").expect("6.1 layout");
        let dir = tempfile::tempdir().expect("tmp");
        let ev = dir.path().join("events/signal/signal_generate");
        std::fs::create_dir_all(&ev).expect("mkdir");
        std::fs::write(
            ev.join("format"),
            "format:\n\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;\n",
        )
        .expect("write");
        let err = check_fixed_layout(dir.path(), "signal", "signal_generate").expect_err("no code");
        assert!(err.contains("no field `code`"), "{err}");
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

#[cfg(test)]
mod object_tests {
    use super::*;

    #[test]
    fn the_embedded_object_has_every_catalog_program_and_shared_map() {
        // Parsed, not loaded: no root needed.
        let obj = aya_obj::Object::parse(OBJECT).expect("the embedded eBPF object parses");
        for spec in PROBES.iter().chain([
            &super::super::catalog::RSS_STAT_RAW,
            &super::super::catalog::KILL_SIGNAL_RAW,
        ]) {
            assert!(
                obj.programs.contains_key(spec.program.name()),
                "probe {}: program {} is not in the eBPF object (have: {:?})",
                spec.name,
                spec.program,
                obj.programs.keys().collect::<Vec<_>>()
            );
        }
        for program in memmon_common::names::program::ALL {
            assert!(
                obj.programs.contains_key(program.name()),
                "program {program} is not in the eBPF object"
            );
        }
        for map in memmon_common::names::MAPS {
            assert!(
                obj.maps.contains_key(map.name()),
                "map {map} is not in the eBPF object (have: {:?})",
                obj.maps.keys().collect::<Vec<_>>()
            );
        }
        assert!(
            obj.maps
                .keys()
                .any(|m| m.contains("bss") || m.contains("data") || m.contains("rodata")),
            "no global section for {}",
            memmon_common::names::CONFIG
        );
    }
}
