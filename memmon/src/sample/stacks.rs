//! Sampled stacks as the readers hand them on: raw addresses from the
//! kernel maps (`probes::stacks`), then the same stacks with names
//! (`symbols`), which `model::profile` folds into a profile.

/// What a stack's weight measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StackEvent {
    /// Page faults (weight: faults, the samples times the period).
    Faults,
    /// Program-break growth (weight: bytes).
    Brk,
    /// Bytes still mapped by mmap (weight: bytes).
    Mmap,
    /// Outstanding heap allocations (weight: bytes).
    Leaks,
    /// Private anonymous memory still resident (or swapped) by the stack
    /// whose fault first touched it (weight: bytes).
    Resident,
}

impl StackEvent {
    /// The name used in flags, outputs and the pprof sample type.
    pub fn name(self) -> &'static str {
        match self {
            StackEvent::Faults => "faults",
            StackEvent::Brk => "brk",
            StackEvent::Mmap => "mmap",
            StackEvent::Leaks => "leaks",
            StackEvent::Resident => "resident",
        }
    }

    /// The unit of its weight.
    pub fn unit(self) -> &'static str {
        match self {
            StackEvent::Faults => "count",
            _ => "bytes",
        }
    }
}

/// A stack as read from the kernel: addresses, innermost first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawStack {
    /// Process (tgid).
    pub tgid: u32,
    /// User frames (empty: not walked or lost).
    pub user: Vec<u64>,
    /// Kernel frames.
    pub kernel: Vec<u64>,
}

/// An executable file mapping of a process (a `r-xp` line of
/// /proc/PID/maps), kept while its samples are, so its frames can be named
/// from the file after the process is gone (an OOM victim's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The file, as the process saw it.
    pub path: std::path::PathBuf,
}

impl Mapping {
    /// The mapping of `maps` holding `addr`, and `addr`'s offset in its
    /// file.
    pub fn find(maps: &[Mapping], addr: u64) -> Option<(&Mapping, u64)> {
        let m = maps.iter().find(|m| m.start <= addr && addr < m.end)?;
        Some((m, addr - m.start + m.offset))
    }
}

/// A weighted raw stack.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSample {
    /// What the weight measures.
    pub event: StackEvent,
    /// The stack.
    pub stack: RawStack,
    /// Weight (faults or bytes); for leaks, already scaled by the sample rate.
    pub weight: i64,
    /// Allocations behind the weight (leaks; 0 otherwise).
    pub count: u64,
    /// Change of the weight over the selected window (resident; 0 otherwise).
    pub growth: i64,
}

/// A sampled fault of the resident mode: the page it touched and the
/// stack that touched it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResidentPage {
    /// The stack (addresses) and its process.
    pub stack: RawStack,
    /// The faulting address.
    pub addr: u64,
    /// Faults per sample when it was taken.
    pub period: u64,
}

/// What /proc/PID/pagemap says of a sampled page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// Present in RAM, private anonymous memory.
    Resident,
    /// Swapped out (still the process's memory).
    Swapped,
    /// A file page or shared memory (not what the resident mode counts).
    FileOrShared,
    /// Neither present nor swapped: unmapped, released (MADV_DONTNEED,
    /// munmap, a trimmed heap) or never made resident.
    Released,
}

/// What a check of one process's sampled pages found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PagesRead {
    /// Each page's state, in the order asked.
    States(Vec<PageState>),
    /// The process (the address space sampled) is gone: its pages go.
    Gone,
    /// The pages could not be read (no file descriptor left, no
    /// permission): they are kept as they were.
    Unknown,
}

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// Function name (demangled), or `module+0xoffset` when unknown.
    pub name: String,
    /// The ELF file it is in (None: kernel or unknown).
    pub module: Option<String>,
    /// A kernel frame.
    pub kernel: bool,
    /// Whether `name` is a symbol (false: module+offset or a raw address).
    pub symbolized: bool,
}

/// A weighted stack with names, innermost frame first.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedSample {
    /// What the weight measures.
    pub event: StackEvent,
    /// Process (tgid).
    pub tgid: u32,
    /// Frames, innermost first (kernel frames before user frames).
    pub frames: Vec<Frame>,
    /// Weight.
    pub weight: i64,
    /// Allocations behind the weight (leaks).
    pub count: u64,
    /// Change of the weight over the selected window (resident; 0 otherwise).
    pub growth: i64,
}
