//! Maps shared by the probes, the load-time configuration, and the two
//! helpers every probe uses: bump a statistics slot, find or create the
//! current process's counters.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use memmon_common::{
    KernelConfig, MemcgExits, ProcCounters, Stat,
    stacks::{
        LiveAlloc, MAX_STACK_DEPTH, MmapCharge, MmapKey, NO_STACK, PendingAlloc, ResidentSample,
        StackFrames, StackKey, setting, stack_hash,
    },
    stats::STATS_LEN,
};

/// Default capacity of `PROC_COUNTERS`; userspace may resize it at load.
const PROC_COUNTERS_MAX: u32 = 32768;
/// `BPF_F_NO_PREALLOC`: memory follows the number of live processes.
const BPF_F_NO_PREALLOC: u32 = 1;
const EEXIST: i32 = 17;

/// Per-process counters keyed by tgid; removed at process exit.
#[map]
pub static PROC_COUNTERS: HashMap<u32, ProcCounters> =
    HashMap::with_max_entries(PROC_COUNTERS_MAX, BPF_F_NO_PREALLOC);

/// Memory cgroups whose exited processes are summed in `MEMCG_EXITS`.
pub const MEMCG_EXITS_MAX: u32 = 16384;

/// Per memory cgroup (key: memcg id), what its exited processes left:
/// pinned, so the totals survive a restart of memmon.
#[map]
pub static MEMCG_EXITS: HashMap<u64, MemcgExits> =
    HashMap::with_max_entries(MEMCG_EXITS_MAX, BPF_F_NO_PREALLOC);

/// One zeroed `MemcgExits`, never written: the value a new `MEMCG_EXITS`
/// entry is created from (the struct is too large for the BPF stack of the
/// exit probe on 5.10, 512 bytes for all its frames).
#[map]
pub static MEMCG_EXITS_ZERO: Array<MemcgExits> = Array::with_max_entries(1, 0);

/// Events that must not be lost or merged (process exits).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

/// Per-CPU statistics slots, indexed by [`Stat`].
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);

/// Filled in by userspace before load (BTF offsets, tracepoint layout).
#[unsafe(no_mangle)]
pub static CONFIG: KernelConfig = KernelConfig::unknown();

/// The load-time configuration (a volatile read so the compiler does not
/// fold the compiled-in zeros).
#[inline(always)]
pub fn config() -> KernelConfig {
    // SAFETY: CONFIG is a plain static in .rodata.
    unsafe { core::ptr::read_volatile(&CONFIG) }
}

/// Adds one to a statistics slot on this CPU.
#[inline(always)]
pub fn bump_stat(stat: Stat) {
    if let Some(slot) = STATS.get_ptr_mut(stat as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it.
        unsafe { *slot += 1 };
    }
}

/// The counters of process `tgid`, created zeroed on first use. `None` when
/// the map is full (counted in [`Stat::ProcMapFull`]).
#[inline(always)]
pub fn proc_counters(tgid: u32) -> Option<*mut ProcCounters> {
    if let Some(entry) = PROC_COUNTERS.get_ptr_mut(tgid) {
        return Some(entry);
    }
    // An exiting task still allocates (signals, page tables, slab) after
    // the exit probe removed its entry: never create one for it, or dead
    // processes would keep entries.
    let cfg = config();
    if cfg.task.valid != 0 && crate::task::Task::current().exiting(&cfg.task) {
        return None;
    }
    let zero = ProcCounters::default();
    match PROC_COUNTERS.insert(tgid, zero, BPF_NOEXIST as u64) {
        Ok(()) => {}
        Err(err) if err == -EEXIST => {}
        Err(_) => {
            bump_stat(Stat::ProcMapFull);
            return None;
        }
    }
    PROC_COUNTERS.get_ptr_mut(tgid)
}

/// The exit totals of memory cgroup `id`, created zeroed on first use;
/// `None` when the map is full (counted in [`Stat::MemcgExitsFull`]).
#[inline(always)]
pub fn memcg_exits(id: u64) -> Option<*mut MemcgExits> {
    if let Some(entry) = MEMCG_EXITS.get_ptr_mut(&id) {
        return Some(entry);
    }
    let zero = MEMCG_EXITS_ZERO.get(0)?;
    match MEMCG_EXITS.insert(&id, zero, BPF_NOEXIST as u64) {
        Ok(()) => {}
        Err(err) if err == -EEXIST => {}
        Err(_) => {
            bump_stat(Stat::MemcgExitsFull);
            return None;
        }
    }
    MEMCG_EXITS.get_ptr_mut(&id)
}

/// Atomically adds `n` to a counter field shared by all CPUs.
#[inline(always)]
pub fn add(field: *mut u64, n: u64) {
    // SAFETY: `field` points into a live map value; BPF atomic add.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            field, n,
        )
    };
}

/// The current thread group id.
#[inline(always)]
pub fn current_tgid() -> u32 {
    (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32
}

/// log2 bucket of `v`: index of its highest set bit (0 for 0 and 1),
/// without loops so the verifier sees a straight line.
#[inline(always)]
pub fn log2_bucket(mut v: u64) -> u32 {
    let mut r = 0u32;
    if v >= 1 << 32 {
        v >>= 32;
        r += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        r += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        r += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        r += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        r += 2;
    }
    if v >= 1 << 1 {
        r += 1;
    }
    r
}

/// Base pointer of a program context (for __data_loc fields).
pub trait EbpfContextExt {
    /// The context as a byte pointer.
    fn base(&self) -> *const u8;
}

impl EbpfContextExt for aya_ebpf::programs::TracePointContext {
    fn base(&self) -> *const u8 {
        use aya_ebpf::EbpfContext as _;
        self.as_ptr() as *const u8
    }
}

/// Stacks of the sampling probes: frames keyed by their `stack_hash`, so
/// a stack keeps its frames whatever else is stored (the kernel's
/// BPF_MAP_TYPE_STACK_TRACE keys stacks by a bucket of a small table and
/// drops a stack whose bucket is taken). Preallocated (perf_event programs
/// before 6.1). One entry by default (the daemon loads but never uses
/// them); `memmon profile` / `memmon leaks` / `--profile` resize it.
#[map]
pub static STACK_TRACES: HashMap<u64, StackFrames> = HashMap::with_max_entries(1, 0);

/// Where `bpf_get_stack` writes a stack before it is hashed (1016 bytes:
/// too large for the BPF stack). Per CPU: the programs that use it never
/// nest on a CPU (tracing and perf_event programs share bpf_prog_active).
#[map]
pub static STACK_SCRATCH: PerCpuArray<StackFrames> = PerCpuArray::with_max_entries(1, 0);

/// Weight per sampled stack. Preallocated: perf_event programs before
/// Linux 6.1 may use only preallocated hash maps. Resized at load.
#[map]
pub static STACK_COUNTS: HashMap<StackKey, i64> = HashMap::with_max_entries(1, 0);

/// The processes sampled when the target is `TARGET_PIDS`.
#[map]
pub static PROFILE_PIDS: HashMap<u32, u32> = HashMap::with_max_entries(1, 0);

/// `stacks::setting` slots, written by userspace before attaching.
#[map]
pub static PROFILE_SETTINGS: Array<u64> = Array::with_max_entries(setting::LEN, 0);

/// Processes the fault sampler walks 1 in N runs of, N of their own
/// (the daemon's growing processes); the others take
/// `setting::WALK_EVERY`. Preallocated (perf_event programs before 6.1).
#[map]
pub static PROFILE_WALK_EVERY: HashMap<u32, u64> =
    HashMap::with_max_entries(memmon_common::stacks::MAX_WALK_EVERY_ENTRIES, 0);

/// Live allocations of the traced allocator, by address.
#[map]
pub static LIVE_ALLOCS: HashMap<u64, LiveAlloc> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// Allocations between entry and return, by pid_tgid.
#[map]
pub static PENDING_ALLOCS: HashMap<u64, PendingAlloc> =
    HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// Mappings charged to a stack, for munmap to subtract.
#[map]
pub static MMAP_CHARGES: HashMap<MmapKey, MmapCharge> =
    HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// Process → last program break seen by the brk sampler.
#[map]
pub static STACK_BRK_LAST: HashMap<u32, u64> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// The fault sampler's addresses in resident mode (`ResidentSample`s).
/// One page by default; resized at load with the other stack maps.
#[map]
pub static RESIDENT_SAMPLES: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Sends one resident-mode sample (counted in `ResidentLost` when the
/// ring buffer is full).
#[inline(always)]
pub fn send_resident(sample: &ResidentSample) {
    if RESIDENT_SAMPLES
        .output::<ResidentSample>(sample, 0)
        .is_err()
    {
        bump_stat(Stat::ResidentLost);
    }
}

/// A settings slot (0 when unset).
#[inline(always)]
pub fn profile_setting(slot: u32) -> u64 {
    PROFILE_SETTINGS.get(slot).copied().unwrap_or(0)
}

/// True when the current process is one the sampling probes want.
#[inline(always)]
pub fn profile_target(tgid: u32) -> bool {
    match profile_setting(setting::TARGET) {
        setting::TARGET_PIDS => {
            // SAFETY: plain read of a map value.
            unsafe { PROFILE_PIDS.get(&tgid) }.is_some()
        }
        setting::TARGET_CGROUP => {
            // SAFETY: helper with no arguments.
            let id = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
            id == profile_setting(setting::CGROUP_ID)
        }
        _ => true,
    }
}

/// Adds `weight` to `key`'s stack, creating it.
#[inline(always)]
pub fn add_stack_weight(key: &StackKey, weight: i64) {
    if let Some(v) = STACK_COUNTS.get_ptr_mut(key) {
        add(v.cast::<u64>(), weight as u64);
        return;
    }
    match STACK_COUNTS.insert(key, &weight, BPF_NOEXIST as u64) {
        Ok(()) => {}
        Err(err) if err == -EEXIST => {
            if let Some(v) = STACK_COUNTS.get_ptr_mut(key) {
                add(v.cast::<u64>(), weight as u64);
            }
        }
        Err(_) => bump_stat(Stat::StackMapFull),
    }
}

/// Walks the current stack (`flags`: 0 for the kernel's,
/// `BPF_F_USER_STACK` for the user's) into the scratch buffer, stores its
/// frames in STACK_TRACES under their hash unless already there, and
/// returns the hash; `NO_STACK` when there was nothing to walk or the walk
/// failed (`Err(walk failed)`) or STACK_TRACES is full (counted).
#[inline(always)]
pub fn store_stack<C: aya_ebpf::EbpfContext>(ctx: &C, flags: u64) -> Result<u64, ()> {
    let Some(buf) = STACK_SCRATCH.get_ptr_mut(0) else {
        return Err(());
    };
    // SAFETY: buf is this CPU's scratch value, StackFrames-sized.
    let n = unsafe {
        aya_ebpf::helpers::bpf_get_stack(
            ctx.as_ptr(),
            buf.cast(),
            core::mem::size_of::<StackFrames>() as u32,
            flags,
        )
    };
    if n < 0 {
        return Err(());
    }
    let depth = n as usize / 8;
    if depth == 0 {
        return Ok(NO_STACK);
    }
    // SAFETY: the scratch value is valid and only this program uses it on
    // this CPU now.
    let frames = unsafe { &*buf };
    let hash = stack_hash(frames, depth.min(MAX_STACK_DEPTH));
    // SAFETY: presence check only.
    if unsafe { STACK_TRACES.get(&hash) }.is_some() {
        return Ok(hash);
    }
    match STACK_TRACES.insert(&hash, frames, BPF_NOEXIST as u64) {
        Ok(()) => Ok(hash),
        Err(err) if err == -EEXIST => Ok(hash),
        Err(_) => {
            bump_stat(Stat::StackMapFull);
            Ok(NO_STACK)
        }
    }
}
