//! The `RAN` bitmap as userspace sees it: the kernel's array mapped into
//! memmon (`BPF_F_MMAPABLE`), one bit per tgid, set by the `ran_switch`
//! and `ran_tick` probes when a process runs. A pass takes the set bits
//! with one atomic swap per non-zero word: no syscall, and a bit the
//! kernel sets meanwhile is either taken now or left for the next pass.

use std::{
    os::fd::{AsRawFd as _, BorrowedFd},
    sync::atomic::{AtomicU64, Ordering},
};

/// Words of the bitmap for a kernel whose pids stay below `pid_max`.
pub fn words_for(pid_max: u32) -> u32 {
    pid_max.div_ceil(64).max(1)
}

/// The kernel's `pid_max` (pids stay below it); the default 32768 when
/// unreadable.
pub fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768)
}

/// The highest pid among /proc's processes (0 when unreadable): a process
/// keeps a pid above a pid_max lowered after it started, and the bitmap
/// must hold it too.
pub fn highest_live_pid() -> u32 {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The mapped bitmap.
#[derive(Debug)]
pub struct RanBitmap {
    words: *const AtomicU64,
    len: usize,
    mapped: usize,
}

// SAFETY: the mapping is owned by this value and only read or swapped
// atomically.
unsafe impl Send for RanBitmap {}

impl RanBitmap {
    /// Maps the array of `words` u64s behind `fd` (read-write, shared with
    /// the kernel).
    pub fn map(fd: BorrowedFd<'_>, words: usize) -> std::io::Result<RanBitmap> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mapped = (words * 8).div_ceil(page) * page;
        // SAFETY: a shared mapping of a BPF array map the kernel sized to
        // at least `words * 8` bytes (rounded up to a page).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RanBitmap {
            words: ptr.cast::<AtomicU64>().cast_const(),
            len: words,
            mapped,
        })
    }

    /// Appends the tgids marked since the last call to `out`, clearing
    /// their bits.
    pub fn take(&self, out: &mut Vec<u32>) {
        // SAFETY: `len` words are mapped; AtomicU64 has u64's layout.
        let words = unsafe { std::slice::from_raw_parts(self.words, self.len) };
        take_words(words, out);
    }
}

/// The set bits of `words` as indexes, each word cleared as it is taken.
fn take_words(words: &[AtomicU64], out: &mut Vec<u32>) {
    for (i, w) in words.iter().enumerate() {
        if w.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let mut bits = w.swap(0, Ordering::AcqRel);
        while bits != 0 {
            let b = bits.trailing_zeros();
            out.push(i as u32 * 64 + b);
            bits &= bits - 1;
        }
    }
}

impl Drop for RanBitmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe {
            libc::munmap(self.words.cast_mut().cast(), self.mapped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_bits_are_taken_once_as_tgids() {
        let words: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        words[0].store(1 << 1 | 1 << 63, Ordering::Relaxed);
        words[2].store(1 << 5, Ordering::Relaxed);
        let mut out = Vec::new();
        take_words(&words, &mut out);
        assert_eq!(out, vec![1, 63, 133]);
        out.clear();
        take_words(&words, &mut out);
        assert!(out.is_empty(), "taken bits are cleared");
        assert_eq!(words_for(32768), 512);
        assert_eq!(words_for(4_194_304), 65536);
        assert_eq!(words_for(100), 2);
    }
}
