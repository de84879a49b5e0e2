//! `/proc/PID/pagemap` for just the pages the resident mode sampled: one
//! 8-byte entry per page, read with `pread` at `page / page_size * 8`.
//! Only bits that need no CAP_SYS_ADMIN are used (present, swapped,
//! file-or-shared; the frame number is zeroed without it): opening another
//! process's pagemap needs ptrace-read access to it, which root has.
//! Files stay open per process, so a read through them sees the address
//! space that was sampled: after the process exits (or execs) the read
//! returns nothing, and the pages are reported gone with it.

use std::{collections::HashMap, fs::File, io, os::unix::fs::FileExt as _, path::PathBuf};

use crate::sample::stacks::{PageState, PagesRead};

/// Bit 63: the page is present in RAM.
const PRESENT: u64 = 1 << 63;
/// Bit 62: the page is swapped out.
const SWAPPED: u64 = 1 << 62;
/// Bit 61: a file page or shared anonymous memory.
const FILE_OR_SHARED: u64 = 1 << 61;
/// Open pagemap files kept at most (past it, or past a quarter of the
/// open-file limit, files are opened per read).
const MAX_OPEN: usize = 4096;

/// What one pagemap entry says of its page.
pub fn state_of(entry: u64) -> PageState {
    if entry & FILE_OR_SHARED != 0 && entry & (PRESENT | SWAPPED) != 0 {
        PageState::FileOrShared
    } else if entry & PRESENT != 0 {
        PageState::Resident
    } else if entry & SWAPPED != 0 {
        PageState::Swapped
    } else {
        PageState::Released
    }
}

/// The open pagemap files, by process.
#[derive(Debug)]
pub struct Pagemaps {
    root: PathBuf,
    page_size: u64,
    files: HashMap<u32, File>,
    max_open: usize,
}

impl Pagemaps {
    /// Reader of `/proc` (or `root`) for pages of `page_size` bytes.
    pub fn new(root: impl Into<PathBuf>, page_size: u64) -> Self {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: writes into `limit`.
        let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
        } else {
            1024
        };
        Pagemaps {
            root: root.into(),
            page_size: page_size.max(1),
            files: HashMap::new(),
            max_open: MAX_OPEN.min(nofile / 4),
        }
    }

    /// The state of each of `pages` (addresses, any byte of the page) of
    /// process `pid`; `None` when the process (the address space first
    /// opened) is gone. Other errors (no permission) are returned.
    pub fn states(&mut self, pid: u32, pages: &[u64]) -> io::Result<Option<Vec<PageState>>> {
        let file = match self.files.get(&pid) {
            Some(f) => f,
            None => {
                let path = self.root.join(pid.to_string()).join("pagemap");
                let f = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
                    Err(e) => return Err(e),
                };
                if self.files.len() >= self.max_open {
                    return read_all(&f, pages, self.page_size);
                }
                self.files.entry(pid).or_insert(f)
            }
        };
        let got = read_all(file, pages, self.page_size);
        if matches!(got, Ok(None)) {
            self.files.remove(&pid);
        }
        got
    }

    /// [`Pagemaps::states`] as a check's answer: an error (no file
    /// descriptor left, no permission) is said at debug level and leaves
    /// the pages as they were.
    pub fn read(&mut self, pid: u32, pages: &[u64]) -> PagesRead {
        match self.states(pid, pages) {
            Ok(Some(states)) => PagesRead::States(states),
            Ok(None) => PagesRead::Gone,
            Err(e) => {
                tracing::debug!("pagemap of {pid}: {e}; its pages are kept unchecked");
                PagesRead::Unknown
            }
        }
    }

    /// Closes the files of processes `keep` rejects.
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.files.retain(|pid, _| keep(*pid));
    }

    /// Pagemap files held open.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }
}

/// Reads the entries of `pages` from one pagemap file; `None` when the
/// address space is gone (a read returned nothing).
fn read_all(file: &File, pages: &[u64], page_size: u64) -> io::Result<Option<Vec<PageState>>> {
    let mut out = Vec::with_capacity(pages.len());
    let mut buf = [0u8; 8];
    for page in pages {
        let offset = page / page_size * 8;
        match file.read_at(&mut buf, offset) {
            Ok(8) => out.push(state_of(u64::from_le_bytes(buf))),
            Ok(_) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_bits_decode() {
        assert_eq!(state_of(PRESENT | 1234), PageState::Resident);
        assert_eq!(state_of(SWAPPED | 7), PageState::Swapped);
        assert_eq!(state_of(PRESENT | FILE_OR_SHARED), PageState::FileOrShared);
        assert_eq!(state_of(0), PageState::Released);
        // A not-present file page's entry is 0 too: released.
        assert_eq!(state_of(FILE_OR_SHARED), PageState::Released);
    }

    #[test]
    fn our_own_pages_read_as_they_are() {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        let mut touched = vec![0u8; 4 * page as usize];
        for b in touched.iter_mut().step_by(page as usize) {
            *b = 1;
        }
        std::hint::black_box(&mut touched);
        let addr = touched.as_ptr() as u64;
        let mut maps = Pagemaps::new("/proc", page);
        let me = std::process::id();
        let states = maps
            .states(me, &[addr, addr + 2 * page])
            .expect("our own pagemap is readable")
            .expect("we are alive");
        assert_eq!(states, vec![PageState::Resident; 2]);
        assert_eq!(maps.states(u32::MAX - 1, &[addr]).ok().flatten(), None);
    }
}
