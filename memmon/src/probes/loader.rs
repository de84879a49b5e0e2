//! Loads the embedded eBPF object with this kernel's BTF offsets and
//! attaches every probe independently: one that fails is recorded as
//! unavailable with its reason, and the others still run. The object and
//! its patching for older kernels are `object.rs`, the kernel offsets
//! `offsets.rs` (with `btf_offsets.rs`, `tracefs.rs`), attaching one probe
//! `attach.rs`; the loaded set `set.rs`.

use std::collections::BTreeSet;

use aya::{EbpfLoader, maps::RingBuf};
use memmon_common::names::{self, Map, Probe};

pub use super::attach::TRACEPOINT_OVERRIDE_ENV;
use super::{
    ProbeSet, ProbeState, ProbeStatus,
    attach::{attach_one, describe, same_kind, tracepoint_overrides},
    btf_offsets,
    catalog::{self, PROBES},
    object::{ObjectError, before, object_for_this_kernel},
    offsets::{FromBtf, from_btf, kernel_release},
    pins::{self, PinError},
    set::TaskIterUnavailable as Unavailable,
    task_iter,
    tracefs::{self, TracefsError},
};

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
/// Bytes of the resident-mode ring buffer (a power of two): about 21,000
/// samples (48 bytes each with the record header) between two reads.
pub const RESIDENT_SAMPLES_BYTES: u32 = 1 << 20;

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
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// A map the object must have is missing or of the wrong type.
    #[error("eBPF object is missing map {0}")]
    MissingMap(&'static Map),
    /// The pin directory could not be prepared.
    #[error(transparent)]
    Pins(#[from] PinError),
    /// The embedded object could not be adapted to this kernel.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The ring buffer could not be opened.
    #[error("cannot open ring buffer EVENTS: {0}")]
    RingBuf(aya::maps::MapError),
}

impl ProbeSet {
    /// Loads the object and attaches every probe the options allow.
    pub fn load(opts: &LoadOptions) -> Result<Self, LoadError> {
        raise_memlock_limit();
        let tracefs = tracefs::ensure_mounted()?;
        // The kernel's BTF is parsed once for the offsets (btf_rs) and
        // once by aya for loading: in a TCG guest each parse of a
        // non-mmapped BTF takes seconds.
        let FromBtf {
            config,
            oom,
            raw_kill,
            task_iter,
        } = from_btf(&tracefs);
        let task_iter_config = task_iter.clone().unwrap_or_default();
        let btf = aya::Btf::from_sys_fs().ok();
        let pin_dir = match &opts.pin_root {
            Some(root) => Some(pins::prepare(root)?),
            None => None,
        };
        let ran_words = super::ran::words_for(
            super::ran::pid_max().max(super::ran::highest_live_pid().saturating_add(1)),
        );
        let mut loader = EbpfLoader::new();
        loader
            .btf(btf.as_ref())
            .override_global(names::CONFIG, &config, true)
            .override_global(names::TASK_ITER_CONFIG, &task_iter_config, true)
            .override_global(names::OOM_CONFIG, &oom, true)
            .map_max_entries(names::PROC_COUNTERS, opts.max_processes)
            .map_max_entries(names::SWAP_SEEN, opts.max_processes)
            .map_max_entries(names::RAN, ran_words);
        if let Some(n) = opts.stack_entries {
            loader
                .map_max_entries(names::STACK_TRACES, n)
                .map_max_entries(names::STACK_COUNTS, n)
                .map_max_entries(names::PROFILE_PIDS, 1024)
                .map_max_entries(names::LIVE_ALLOCS, LIVE_ALLOCS_MAX)
                .map_max_entries(names::PENDING_ALLOCS, 65536)
                .map_max_entries(names::MMAP_CHARGES, 1 << 18)
                .map_max_entries(names::STACK_BRK_LAST, 32768)
                .map_max_entries(names::RESIDENT_SAMPLES, RESIDENT_SAMPLES_BYTES);
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
        let object = object_for_this_kernel(&kernel_release())?;
        let mut ebpf = loader.load(object.bytes())?;
        let events = ebpf
            .take_map(names::EVENTS)
            .ok_or(LoadError::MissingMap(names::EVENTS))?;
        let events = RingBuf::try_from(events).map_err(LoadError::RingBuf)?;
        let overrides = tracepoint_overrides();
        let mut statuses = Vec::with_capacity(PROBES.len());
        let mut to_sample = Vec::new();
        let release = kernel_release();
        let mut variants = catalog::Variants { raw_kill };
        for spec in PROBES {
            let mut spec = catalog::for_kernel(spec, variants);
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
            } else if let Some((version, why)) = catalog::needs_kernel(spec.name)
                && before(&release, version)
            {
                ProbeState::Unavailable {
                    reason: format!(
                        "needs Linux {}.{} ({why}), not {release}",
                        version.0, version.1
                    ),
                }
            } else if let Some(duty) = super::sampled::duty(spec.name) {
                // Attached part of the time by its own thread, started
                // once the set is built.
                to_sample.push((spec, duty));
                ProbeState::Attached
            } else {
                match attach_one(&mut ebpf, spec, attach, &tracefs, btf.as_ref()) {
                    Ok(()) => ProbeState::Attached,
                    // A raw variant this kernel refuses: the classic
                    // tracepoint still gives the rest of the record.
                    Err(reason) if spec.program == catalog::KILL_SIGNAL_RAW.program => {
                        tracing::info!(
                            "kill_signal as a raw tracepoint refused ({}); the classic tracepoint \
                             runs, without the target's cgroup",
                            reason.to_string().lines().next().unwrap_or("")
                        );
                        variants.raw_kill = false;
                        spec = catalog::find(spec.name).unwrap_or(spec);
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
                        ProbeState::Unavailable {
                            reason: reason.to_string(),
                        }
                    }
                }
            };
            let attach_point = match super::sampled::duty(spec.name) {
                Some(duty) => format!("{} (sampled: {})", describe(attach), duty.describe()),
                None => describe(attach),
            };
            statuses.push(ProbeStatus {
                name: spec.name.to_string(),
                attach_point,
                state,
            });
        }
        let task_iter_loaded = match (&task_iter, btf.as_ref()) {
            (Ok(_), Some(btf)) => task_iter::load_program(&mut ebpf, btf),
            (Ok(_), None) => Err(Unavailable::NoBtf(btf_offsets::VMLINUX_BTF)),
            (Err(e), _) => Err(Unavailable::Btf(e.clone())),
        };
        if config.task.valid == 0 {
            tracing::warn!(
                "kernel BTF offsets unknown: exited processes lose start time and kernel fault totals"
            );
        }
        let ran = match ebpf.map(names::RAN) {
            Some(aya::maps::Map::Array(data)) => {
                use std::os::fd::AsFd as _;
                super::ran::RanBitmap::map(data.fd().as_fd(), ran_words as usize)
                    .map_err(|e| {
                        tracing::info!("RAN bitmap not mapped ({e}): every pass walks every task")
                    })
                    .ok()
            }
            _ => None,
        };
        let mut set = ProbeSet {
            ebpf,
            events,
            statuses,
            pending_oom: Vec::new(),
            pending_kill: Vec::new(),
            max_processes: opts.max_processes,
            tracefs: tracefs.to_path_buf(),
            variants,
            task_iter_loaded,
            sampled: Vec::new(),
            swap_counting: false,
            ran,
            ran_overflows: 0,
        };
        for (spec, duty) in to_sample {
            if let Err(reason) = set.start_sampled(spec, duty) {
                tracing::debug!("probe {} unavailable: {reason}", spec.name);
                set.set_state(
                    spec.name,
                    ProbeState::Unavailable {
                        reason: reason.to_string(),
                    },
                );
            }
        }
        Ok(set)
    }
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
