//! The task iterator (`iter/task`) as the every-pass scan: one read walks
//! every task in the kernel and returns what /proc/PID/stat would say of
//! each process (faults, resident and virtual size, start time, parent,
//! comm), instead of a readdir of /proc and a pread per process. Loaded
//! once at start; a kernel that refuses it leaves /proc as the source
//! (`procfs::stat_files`).
//!
//! Each pass creates an iterator file from the program's link, reads it
//! to the end and folds the records into [`Identity`]s: a leader's record
//! carries the group's totals of reaped threads, every other thread adds
//! its own faults, as /proc sums them. A process whose values did not
//! change since the last pass is returned marked not fresh, with no comm
//! (nothing is allocated for it).

use std::io::Read as _;

use aya::programs::{Iter, ProgramError};
use memmon_common::{
    names::{Program, program},
    task_iter::{TASK_LEADER, TaskRecord},
};

use super::{ProbeSet, attach::chain, set::TaskIterUnavailable as Unavailable};
use crate::fast_hash::{FastMap, FastSet};
use crate::sample::{
    Identity,
    key::{ProcessKey, boottime_ns_to_ticks},
};

/// Why the iterator cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TaskIterError {
    /// Not loaded: offsets missing from this kernel's BTF, or the kernel
    /// refused the program.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The program is not in the embedded object.
    #[error("{} is not in the object", program::TASK_ITER)]
    Missing,
    /// The program is not an iterator.
    #[error("{0}")]
    Kind(#[source] ProgramError),
    /// Attaching it failed.
    #[error("attach: {0}")]
    Attach(#[source] ProgramError),
    /// Its link could not be taken.
    #[error("link: {0}")]
    Link(#[source] ProgramError),
    /// Its output could not be opened.
    #[error("open: {0}")]
    Open(#[source] aya::programs::links::LinkError),
    /// Its output could not be read.
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    /// A process read alone could not be read.
    #[error(transparent)]
    Process(#[from] super::task_iter_pid::ProcessReadError),
}

/// The state kept between passes.
#[derive(Debug, Default)]
pub struct TaskScan {
    /// Last values of each process, to tell what changed.
    last: FastMap<u32, Seen>,
    /// Raw bytes of the last read (kept: no allocation per pass).
    buf: Vec<u8>,
    /// Index of each tgid's entry in this pass's output.
    index: FastMap<u32, usize>,
    /// Per-process sums of this pass, before change detection.
    folded: Vec<Folded>,
    ticks_per_second: u64,
    page_size: u64,
    /// Tasks the last read walked (records written).
    pub last_records: usize,
    /// A pass walks every task every this many passes (0: only when
    /// forced); in between it reads the processes that ran alone.
    pub full_every: u64,
    /// Passes since the last walk of every task.
    passes_since_full: u64,
    /// Per-process reads are possible (`ProbeSet::per_process_reads`).
    pub per_process: bool,
    /// The tgids marked as having run, taken this pass.
    marked: Vec<u32>,
}

/// What one pass of the scan read.
#[derive(Debug, Default)]
pub struct Pass {
    /// The processes whose values changed since their last reading (new
    /// ones included).
    pub changed: Vec<Identity>,
    /// Processes found gone: missing from a walk of every task, or read
    /// alone and not found.
    pub gone: Vec<u32>,
    /// Every task was walked (else only the processes that ran).
    pub full: bool,
    /// Processes read (all live ones after a full walk).
    pub read: usize,
    /// Not full: the processes read, each alone (those that ran).
    pub marked: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    start_time_ticks: u64,
    signature: u64,
}

/// Scratch space kept between passes, bytes per buffer (more is freed
/// after the walk that needed it).
const SCRATCH_KEEP_BYTES: usize = 64 << 10;

/// One process's values summed over its threads.
#[derive(Debug, Clone, Copy, Default)]
struct Folded {
    leader: TaskRecord,
    min_flt: u64,
    maj_flt: u64,
}

impl TaskScan {
    /// A scan converting start times and sizes with these host constants.
    pub fn new(ticks_per_second: u64, page_size: u64) -> Self {
        TaskScan {
            ticks_per_second,
            page_size,
            ..Default::default()
        }
    }

    /// Every process the iterator walked, as the /proc scan would return
    /// it; those unchanged since the last call are marked not fresh.
    pub fn scan(&mut self, probes: &mut ProbeSet) -> Result<Vec<Identity>, TaskIterError> {
        probes.read_tasks(&mut self.buf)?;
        self.last_records = self.buf.len() / std::mem::size_of::<TaskRecord>();
        let buf = std::mem::take(&mut self.buf);
        self.fold(records(&buf));
        self.buf = buf;
        let all = self.identities();
        self.release_scratch();
        Ok(all)
    }

    /// Frees the walk's scratch space when a walk of every task grew it
    /// (10,000 processes: ~3 MB of records, sums and their index, which
    /// would otherwise stay allocated between the walks, every
    /// `full_every` passes); the passes between read a few processes and
    /// need little.
    fn release_scratch(&mut self) {
        if self.buf.capacity() > SCRATCH_KEEP_BYTES {
            self.buf = Vec::new();
        }
        if self.folded.capacity() * std::mem::size_of::<Folded>() > SCRATCH_KEEP_BYTES {
            self.folded = Vec::new();
        }
        if self.index.capacity() * std::mem::size_of::<(u32, usize)>() > SCRATCH_KEEP_BYTES {
            self.index = FastMap::default();
        }
    }

    fn fold(&mut self, records: impl Iterator<Item = TaskRecord>) {
        self.index.clear();
        self.folded.clear();
        let mut threads = Vec::new();
        for r in records {
            if r.flags & TASK_LEADER != 0 {
                self.index.insert(r.tgid, self.folded.len());
                self.folded.push(Folded {
                    leader: r,
                    min_flt: r.min_flt,
                    maj_flt: r.maj_flt,
                });
            } else {
                threads.push(r);
            }
        }
        // A thread's tid may be below its leader's (pid wrap-around), so
        // threads are added once every leader is known.
        for t in threads {
            if let Some(&i) = self.index.get(&t.tgid)
                && let Some(f) = self.folded.get_mut(i)
            {
                f.min_flt += t.min_flt;
                f.maj_flt += t.maj_flt;
            }
        }
    }

    /// One pass: the processes that ran since the last pass, each read
    /// alone, or (every `full_every` passes, when marks are unavailable or
    /// too many, or when `force_full`) every task in one walk. Only what
    /// changed is returned, with what is gone.
    pub fn pass(&mut self, probes: &mut ProbeSet, force_full: bool) -> Result<Pass, TaskIterError> {
        self.marked.clear();
        let marks = self.per_process && probes.take_ran(&mut self.marked);
        let due = self.full_every != 0 && self.passes_since_full + 1 >= self.full_every;
        // A process read alone costs about twice a task of a full walk.
        let too_many = self.marked.len() > self.last.len() / 3;
        if !marks || force_full || due || too_many || self.last.is_empty() {
            self.passes_since_full = 0;
            let before: Vec<u32> = self.last.keys().copied().collect();
            let all = self.scan(probes)?;
            let read = all.len();
            let gone = before
                .into_iter()
                .filter(|pid| !self.last.contains_key(pid))
                .collect();
            let mut changed: Vec<Identity> = all.into_iter().filter(|i| i.fresh).collect();
            // Collected in place: the walk's whole allocation otherwise.
            changed.shrink_to_fit();
            return Ok(Pass {
                changed,
                gone,
                full: true,
                read,
                marked: Vec::new(),
            });
        }
        self.passes_since_full += 1;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut failed = None;
        for &pid in &self.marked {
            if let Err(e) = probes.read_process_tasks(pid, &mut buf) {
                failed = Some(e);
                break;
            }
        }
        self.last_records = buf.len() / std::mem::size_of::<TaskRecord>();
        self.fold(records(&buf));
        self.buf = buf;
        if let Some(e) = failed {
            return Err(TaskIterError::Process(e));
        }
        let read = self.folded.len();
        let changed = self.identities_of_folded(false);
        let mut gone = Vec::new();
        for &pid in &self.marked {
            if !self.index.contains_key(&pid) && self.last.remove(&pid).is_some() {
                gone.push(pid);
            }
        }
        Ok(Pass {
            changed: changed.into_iter().filter(|i| i.fresh).collect(),
            gone,
            full: false,
            read,
            marked: self.marked.clone(),
        })
    }

    fn identities(&mut self) -> Vec<Identity> {
        self.identities_of_folded(true)
    }

    /// The folded processes as identities, marked fresh where they changed;
    /// `all`: they are every live process (the others are forgotten).
    fn identities_of_folded(&mut self, all: bool) -> Vec<Identity> {
        let mut out = Vec::with_capacity(self.folded.len());
        for f in &self.folded {
            let r = &f.leader;
            let key = ProcessKey {
                pid: r.tgid,
                start_time_ticks: boottime_ns_to_ticks(r.start_boottime_ns, self.ticks_per_second),
            };
            let rss_pages = r.rss_pages[memmon_common::rss::RSS_FILE].max(0)
                + r.rss_pages[memmon_common::rss::RSS_ANON].max(0)
                + r.rss_pages[memmon_common::rss::RSS_SHMEM].max(0);
            let seen = Seen {
                start_time_ticks: key.start_time_ticks,
                signature: signature(f, rss_pages),
            };
            let fresh = self.last.insert(key.pid, seen) != Some(seen);
            out.push(Identity {
                pid: key.pid,
                comm: if fresh {
                    crate::sample::comm_string(&r.comm)
                } else {
                    String::new()
                },
                ppid: r.ppid,
                start_time_ticks: key.start_time_ticks,
                minflt: f.min_flt,
                majflt: f.maj_flt,
                rss_pages: rss_pages as u64,
                vsize_bytes: r.total_vm_pages.saturating_mul(self.page_size),
                rss_members: Some(r.rss_pages.map(|p| p.max(0) as u64)),
                fresh,
            });
        }
        if all && self.last.len() > out.len() {
            let live: FastSet<u32> = out.iter().map(|i| i.pid).collect();
            self.last.retain(|pid, _| live.contains(pid));
            if self.last.capacity() > 2 * self.last.len() + 1024 {
                self.last.shrink_to_fit();
            }
        }
        out
    }
}

/// What makes a process's reading differ from the last one.
fn signature(f: &Folded, rss_pages: i64) -> u64 {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    let r = &f.leader;
    BuildHasherDefault::<DefaultHasher>::default().hash_one((
        f.min_flt,
        f.maj_flt,
        rss_pages,
        r.rss_pages,
        r.total_vm_pages,
        r.ppid,
        r.comm,
    ))
}

/// The records in `buf` (whole records only).
pub(super) fn records(buf: &[u8]) -> impl Iterator<Item = TaskRecord> + '_ {
    buf.chunks_exact(std::mem::size_of::<TaskRecord>())
        .map(|chunk| {
            // SAFETY: the chunk holds size_of::<TaskRecord>() bytes and
            // TaskRecord is plain old data (any bytes are a valid value).
            unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<TaskRecord>()) }
        })
}

/// The iterator programs, fastest first: direct loads through the BTF
/// task pointer, then `bpf_probe_read_kernel` for verifiers that refuse
/// those.
const PROGRAMS: [&Program; 2] = [program::TASK_ITER, program::TASK_ITER_PROBE];

/// Loads the first iterator program this kernel accepts (at probe load,
/// while the kernel's BTF is parsed); it is attached for each read. The
/// program's name, or why neither loads.
pub(super) fn load_program(
    ebpf: &mut aya::Ebpf,
    btf: &aya::Btf,
) -> Result<&'static str, Unavailable> {
    let mut refused = Vec::new();
    for name in PROGRAMS {
        let program: Result<&mut Iter, _> = ebpf
            .program_mut(name)
            .ok_or(Unavailable::Missing(name))?
            .try_into();
        let loaded = match program {
            Ok(program) => program.load("task", btf),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(()) => return Ok(name.name()),
            Err(e) => refused.push(format!("{name}: {}", chain(&e))),
        }
    }
    Err(Unavailable::Refused(refused.join("; ")))
}

impl ProbeSet {
    /// Whether the task iterator can run here (loaded with this kernel's
    /// offsets); an error says why not.
    pub fn task_iter_ready(&mut self) -> Result<&'static str, TaskIterError> {
        Ok(self.task_iter_loaded.clone()?)
    }

    /// Runs the loaded iterator once: every task's record into `buf`.
    pub fn read_tasks(&mut self, buf: &mut Vec<u8>) -> Result<(), TaskIterError> {
        let name = self.task_iter_loaded.clone()?;
        let program: &mut Iter = self
            .ebpf
            .program_mut(name)
            .ok_or(TaskIterError::Missing)?
            .try_into()
            .map_err(TaskIterError::Kind)?;
        let id = program.attach().map_err(TaskIterError::Attach)?;
        let link = program.take_link(id).map_err(TaskIterError::Link)?;
        let mut file = link.into_file().map_err(TaskIterError::Open)?;
        buf.clear();
        file.read_to_end(buf).map_err(TaskIterError::Read)?;
        if !self.swap_counting {
            self.start_swap_counting();
        }
        Ok(())
    }

    /// Whether a pass can read only the processes that ran: the marking
    /// probes attached, their bitmap mapped, and this kernel's task
    /// iterator able to walk one process (Linux 6.1+; before, the link's
    /// process is ignored and every task comes back, so memmon's own
    /// process is read as a test). Why not, otherwise.
    pub fn per_process_reads(&mut self) -> Result<(), super::task_iter_pid::PerProcessUnavailable> {
        use memmon_common::names::probe;
        for p in [probe::RAN_SWITCH, probe::RAN_TICK] {
            if !self.is_attached(p) {
                return Err(super::task_iter_pid::PerProcessUnavailable::NotAttached(p));
            }
        }
        if self.ran.is_none() {
            return Err(super::task_iter_pid::PerProcessUnavailable::NoBitmap);
        }
        let me = std::process::id();
        let mut buf = Vec::new();
        self.read_process_tasks(me, &mut buf)?;
        let records = records(&buf);
        let (mine, others) =
            records.fold(
                (0, 0),
                |(m, o), r| {
                    if r.tgid == me { (m + 1, o) } else { (m, o + 1) }
                },
            );
        if mine == 0 || others > 0 {
            return Err(super::task_iter_pid::PerProcessUnavailable::Ignored { mine, others });
        }
        Ok(())
    }

    /// After the first full walk (the processes' swap baselines), a
    /// process first seen with swap entries has swapped them out since.
    fn start_swap_counting(&mut self) {
        let Some(map) = self.ebpf.map_mut(memmon_common::names::TASK_ITER_STATE) else {
            return;
        };
        match aya::maps::Array::<&mut aya::maps::MapData, u64>::try_from(map) {
            Ok(mut state) => match state.set(memmon_common::task_iter::STATE_COUNTING, 1, 0) {
                Ok(()) => self.swap_counting = true,
                Err(e) => tracing::warn!("the task iterator cannot count swap: {e}"),
            },
            Err(e) => tracing::warn!("the task iterator cannot count swap: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmon_common::task_iter::TASK_HAS_MM;

    fn leader(tgid: u32, min: u64) -> TaskRecord {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"work");
        TaskRecord {
            tgid,
            pid: tgid,
            ppid: 1,
            flags: TASK_LEADER | TASK_HAS_MM,
            start_boottime_ns: 2_500_000_000,
            min_flt: min,
            maj_flt: 1,
            total_vm_pages: 100,
            rss_pages: [10, 20, 5, -1],
            comm,
        }
    }

    fn thread(tgid: u32, pid: u32, min: u64) -> TaskRecord {
        TaskRecord {
            tgid,
            pid,
            min_flt: min,
            maj_flt: 2,
            ..Default::default()
        }
    }

    fn bytes(records: &[TaskRecord]) -> Vec<u8> {
        records
            .iter()
            .flat_map(|r| {
                // SAFETY: plain old data viewed as bytes.
                unsafe {
                    std::slice::from_raw_parts(
                        (r as *const TaskRecord).cast::<u8>(),
                        std::mem::size_of::<TaskRecord>(),
                    )
                }
                .to_vec()
            })
            .collect()
    }

    fn scan(s: &mut TaskScan, records: &[TaskRecord]) -> Vec<Identity> {
        let buf = bytes(records);
        s.fold(super::records(&buf));
        s.identities()
    }

    #[test]
    fn threads_add_their_faults_to_the_process_as_proc_sums_them() {
        let mut s = TaskScan::new(100, 4096);
        // A thread listed before its leader (tid below the tgid).
        let ids = scan(
            &mut s,
            &[thread(50, 7, 30), leader(50, 100), thread(50, 51, 5)],
        );
        assert_eq!(ids.len(), 1);
        let id = &ids[0];
        assert_eq!((id.pid, id.minflt, id.majflt), (50, 135, 5));
        assert_eq!(id.start_time_ticks, 250);
        assert_eq!(id.comm, "work");
        // file + anon + shmem (negative clamped), not swap entries.
        assert_eq!(id.rss_pages, 30);
        assert_eq!(id.rss_members, Some([10, 20, 5, 0]));
        assert_eq!(id.vsize_bytes, 100 * 4096);
        assert!(id.fresh);
    }

    #[test]
    fn an_unchanged_process_is_not_fresh_and_a_change_is() {
        let mut s = TaskScan::new(100, 4096);
        assert!(scan(&mut s, &[leader(9, 1)])[0].fresh);
        let again = scan(&mut s, &[leader(9, 1)]);
        assert!(!again[0].fresh);
        assert!(again[0].comm.is_empty(), "nothing allocated for it");
        assert_eq!(again[0].minflt, 1);
        assert!(scan(&mut s, &[leader(9, 2)])[0].fresh);
        // Gone, then back (a new process under the same pid): fresh.
        assert!(scan(&mut s, &[]).is_empty());
        assert!(scan(&mut s, &[leader(9, 2)])[0].fresh);
    }

    #[test]
    fn a_torn_tail_is_ignored() {
        let mut buf = bytes(&[leader(3, 1)]);
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(records(&buf).count(), 1);
    }
}
