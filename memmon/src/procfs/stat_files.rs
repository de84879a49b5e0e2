//! The every-pass /proc scan with its /proc/PID/stat files kept open: a
//! pread() on an open file costs about 2.5 µs per process here, an
//! open+read+close about 6 µs (the path lookup in procfs dominates), and
//! the scan runs for every process every second.
//!
//! An open stat file belongs to one process, not to its pid: once that
//! process is reaped, reads fail with ESRCH (a zombie still reads), so a
//! reused pid is never read through the old file. Files are closed when the
//! pid leaves /proc or its exit event arrives ([`StatFiles::forget`]). At
//! most [`fd_budget`] files stay open (their share of RLIMIT_NOFILE, raised
//! to its hard limit at start: `crate::fd_budget`); processes beyond it are
//! read by path.
//!
//! Idle processes are read less often: one whose stat line came back
//! byte-identical [`QUIET_READS`] times in a row (it neither ran, faulted
//! nor changed size) is read every second pass, after [`SLEEPER_READS`]
//! identical reads every [`MAX_SKIP`]th pass; the first change brings it
//! back to every pass. A pass in between repeats its last reading, marked
//! not fresh. New pids are always read.

use std::{collections::HashMap, fs::File, os::unix::fs::FileExt as _};

use super::{
    ProcRoot, ReadFailure,
    identity::{Identity, parse_stat},
};

/// Identical reads in a row after which a process is read every 2nd pass.
pub const QUIET_READS: u32 = 3;
/// Identical reads in a row after which it is read every [`MAX_SKIP`]th pass.
pub const SLEEPER_READS: u32 = 10;
/// Longest gap between two reads of a process, in passes.
pub const MAX_SKIP: u64 = 4;

/// What is kept of one process between passes.
#[derive(Debug)]
struct Tracked {
    /// Its open stat file (None past the budget).
    file: Option<File>,
    /// The last reading.
    last: Identity,
    /// Hash of the last stat line.
    hash: u64,
    /// Identical readings in a row.
    unchanged: u32,
    /// Pass at which it is read next.
    next_read: u64,
}

/// Open stat files and last readings by pid, and the buffer reads go through.
#[derive(Debug)]
pub struct StatFiles {
    tracked: HashMap<u32, Tracked>,
    budget: usize,
    open: usize,
    pass: u64,
    buf: Vec<u8>,
}

impl Default for StatFiles {
    fn default() -> Self {
        Self::with_budget(fd_budget())
    }
}

impl StatFiles {
    /// At most `budget` files kept open (0: read every file by path).
    pub fn with_budget(budget: usize) -> Self {
        StatFiles {
            tracked: HashMap::new(),
            budget,
            open: 0,
            pass: 0,
            buf: vec![0; 1024],
        }
    }

    /// How many are open now.
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Gives back the room a burst of processes left; true when it shrank.
    pub fn shrink(&mut self) -> bool {
        let shrink = self.tracked.capacity() > 2 * self.tracked.len() + 1024;
        if shrink {
            self.tracked.shrink_to_fit();
        }
        shrink
    }

    /// Drops what is kept of `pid` (its exit event arrived): the next scan
    /// reads the pid afresh, whoever holds it by then.
    pub fn forget(&mut self, pid: u32) {
        if let Some(t) = self.tracked.remove(&pid)
            && t.file.is_some()
        {
            self.open -= 1;
        }
    }

    /// Every process under `root`; processes that vanish mid-scan are
    /// skipped, other failures logged at debug and skipped.
    pub fn scan(&mut self, root: &ProcRoot) -> Vec<Identity> {
        self.pass += 1;
        let Ok(dir) = std::fs::read_dir(root.path()) else {
            self.tracked.clear();
            self.open = 0;
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.tracked.len() + 16);
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(t) = self.tracked.get(&pid)
                && t.next_read > self.pass
            {
                out.push(Identity {
                    fresh: false,
                    ..t.last.clone()
                });
                continue;
            }
            match self.read(root, pid) {
                Ok(id) => out.push(id),
                Err(ReadFailure::Gone(_)) => {}
                Err(e) => tracing::debug!("{e}"),
            }
        }
        if self.tracked.len() > out.len() {
            let live: std::collections::HashSet<u32> = out.iter().map(|i| i.pid).collect();
            let gone: Vec<u32> = self
                .tracked
                .keys()
                .filter(|p| !live.contains(p))
                .copied()
                .collect();
            for pid in gone {
                self.forget(pid);
            }
        }
        out
    }

    /// One process: through its open file, or by path (kept open when the
    /// budget allows); updates what is kept of it.
    fn read(&mut self, root: &ProcRoot, pid: u32) -> Result<Identity, ReadFailure> {
        let mut kept = self.tracked.remove(&pid);
        let mut file = kept.as_mut().and_then(|t| t.file.take());
        if file.is_some() {
            self.open -= 1;
        }
        let mut n = None;
        if let Some(f) = &file {
            // ESRCH: reaped since the last pass; the pid may already be
            // someone else's, so it is opened again by path below.
            n = read_all(f, &mut self.buf).ok();
            if n.is_none() {
                file = None;
                kept = None;
            }
        }
        let path = root.pid_dir(pid).join("stat");
        let n = match n {
            Some(n) => n,
            None => {
                let f = File::open(&path).map_err(|e| ReadFailure::from_io(pid, &path, e))?;
                let n =
                    read_all(&f, &mut self.buf).map_err(|e| ReadFailure::from_io(pid, &path, e))?;
                file = Some(f);
                n
            }
        };
        let line = &self.buf[..n];
        let id = parse_stat(pid, line).ok_or_else(|| ReadFailure::Other {
            path,
            message: "malformed stat line".into(),
        })?;
        let hash = hash_of(line);
        let unchanged = match &kept {
            Some(k) if k.hash == hash && k.last.start_time_ticks == id.start_time_ticks => {
                k.unchanged.saturating_add(1)
            }
            _ => 0,
        };
        let skip = if unchanged >= SLEEPER_READS {
            MAX_SKIP
        } else if unchanged >= QUIET_READS {
            2
        } else {
            1
        };
        let file = if self.open < self.budget { file } else { None };
        if file.is_some() {
            self.open += 1;
        }
        self.tracked.insert(
            pid,
            Tracked {
                file,
                last: id.clone(),
                hash,
                unchanged,
                next_read: next_read(self.pass, skip, pid),
            },
        );
        Ok(id)
    }
}

/// The first pass after `pass` in the pid's phase of a `skip`-pass cycle:
/// idle processes that started together are not all read in one pass.
fn next_read(pass: u64, skip: u64, pid: u32) -> u64 {
    let next = pass + 1;
    next + (u64::from(pid) % skip + skip - next % skip) % skip
}

fn hash_of(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(bytes)
}

/// Reads the whole file from offset 0 into `buf` (grown as needed).
fn read_all(file: &File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let got = file.read_at(&mut buf[n..], n as u64)?;
        if got == 0 {
            return Ok(n);
        }
        n += got;
    }
}

/// How many stat files may stay open: the share `crate::fd_budget` leaves
/// them (the limit raised to the hard one first).
pub fn fd_budget() -> usize {
    crate::fd_budget::limit().stat_files()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_proc(pids: &[u32]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for pid in pids {
            let d = dir.path().join(pid.to_string());
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(
                d.join("stat"),
                include_str!("../../tests/fixtures/proc/4242/stat"),
            )
            .expect("write");
        }
        fs::create_dir_all(dir.path().join("sys")).expect("non-pid dir");
        dir
    }

    #[test]
    fn keeps_files_open_within_budget_and_closes_them_when_pids_leave() {
        let dir = fake_proc(&[10, 11, 12]);
        let root = ProcRoot::new(dir.path());
        let mut files = StatFiles::with_budget(2);
        let mut ids = files.scan(&root);
        ids.sort_by_key(|i| i.pid);
        assert_eq!(ids.iter().map(|i| i.pid).collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!(ids[0].minflt, 50_123);
        assert_eq!(files.open_count(), 2, "budget caps open files");
        // Second pass reads through the open files and by path for the rest.
        assert_eq!(files.scan(&root).len(), 3);
        fs::remove_dir_all(dir.path().join("10")).expect("rm");
        fs::remove_dir_all(dir.path().join("11")).expect("rm");
        let ids = files.scan(&root);
        assert_eq!(ids.len(), 1);
        assert!(files.open_count() <= 1, "files of departed pids closed");
    }

    #[test]
    fn idle_processes_are_read_less_often_until_they_change() {
        let dir = fake_proc(&[10]);
        let root = ProcRoot::new(dir.path());
        let mut files = StatFiles::with_budget(10);
        let fresh: Vec<bool> = (0..30).map(|_| files.scan(&root)[0].fresh).collect();
        // Reads 1-4 every pass (the 4th is the 3rd identical one), then
        // every 2nd pass until 10 identical reads, then every 4th.
        let reads: Vec<usize> = (0..30).filter(|&i| fresh[i]).collect();
        assert_eq!(&reads[..4], [0, 1, 2, 3], "{fresh:?}");
        assert!(reads.len() < 15, "idle: fewer reads than passes {fresh:?}");
        let gaps: Vec<usize> = reads.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps.last(), Some(&(MAX_SKIP as usize)), "{fresh:?}");
        assert!(gaps.iter().all(|&g| g as u64 <= MAX_SKIP));
        // A change is seen within MAX_SKIP passes, then read every pass.
        let stat = dir.path().join("10/stat");
        let changed = fs::read_to_string(&stat)
            .expect("read")
            .replace(" 50123 ", " 60123 ");
        fs::write(&stat, changed).expect("write");
        let mut waited = 0;
        loop {
            let id = files.scan(&root).remove(0);
            waited += 1;
            if id.fresh {
                assert_eq!(id.minflt, 60_123);
                break;
            }
            assert_eq!(id.minflt, 50_123, "a repeated reading");
            assert!(
                waited <= MAX_SKIP,
                "change not read within {MAX_SKIP} passes"
            );
        }
        assert!(files.scan(&root)[0].fresh, "changed: read every pass");
        // Forgetting a pid (its exit arrived) makes the next pass read it.
        for _ in 0..12 {
            files.scan(&root);
        }
        files.forget(10);
        assert!(files.scan(&root)[0].fresh);
    }

    #[test]
    fn sleepers_are_spread_over_the_cycle() {
        for pass in 0..20 {
            for pid in 0..40u32 {
                let n = next_read(pass, MAX_SKIP, pid);
                assert!(n > pass && n <= pass + MAX_SKIP);
                assert_eq!(n % MAX_SKIP, u64::from(pid) % MAX_SKIP);
            }
        }
        assert_eq!(next_read(7, 1, 3), 8);
    }

    #[test]
    fn reads_a_long_stat_line_completely() {
        let file = tempfile::tempfile().expect("tmp");
        let long = "x".repeat(5000);
        file.write_all_at(long.as_bytes(), 0).expect("write");
        let mut buf = vec![0; 16];
        assert_eq!(read_all(&file, &mut buf).expect("read"), 5000);
    }

    #[test]
    fn reused_pid_is_read_from_the_new_process() {
        // A real child: read it, reap it, then the cached file says ESRCH
        // and the scan drops it (no /proc entry either).
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let root = ProcRoot::default();
        let mut files = StatFiles::with_budget(100_000);
        assert!(files.scan(&root).iter().any(|i| i.pid == pid));
        assert!(files.tracked.get(&pid).is_some_and(|t| t.file.is_some()));
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(files.read(&root, pid), Err(ReadFailure::Gone(_))));
        assert!(!files.tracked.contains_key(&pid));
    }
}
