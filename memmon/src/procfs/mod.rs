//! Readers of /proc with a swappable root, so tests can point them at
//! recorded files. They return plain structs; the model interprets them.
//! Built on the `procfs` crate; a process that vanishes mid-read is
//! reported as [`ReadFailure::Gone`] and skipped by callers.

pub mod cgroup;
pub mod cost_guard;
pub mod identity;
pub mod maps;
pub mod memory;
pub mod numa;
pub mod pagemap;
pub mod stat_files;
pub mod system;
pub mod unit;

use std::path::{Path, PathBuf};

/// The root of a proc filesystem (normally `/proc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcRoot(PathBuf);

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot(PathBuf::from("/proc"))
    }
}

impl ProcRoot {
    /// A proc tree rooted elsewhere (tests, containers).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ProcRoot(path.into())
    }

    /// The root path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `/proc/PID`.
    pub fn pid_dir(&self, pid: u32) -> PathBuf {
        self.0.join(pid.to_string())
    }
}

/// Why a read of one process failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// The process exited (ENOENT/ESRCH): skip it silently.
    #[error("process {0} is gone")]
    Gone(u32),
    /// Not allowed to read it (EACCES): leave its fields empty.
    #[error("permission denied reading {0}")]
    Denied(PathBuf),
    /// Anything else, with the path and the parser's message.
    #[error("reading {path}: {message}")]
    Other {
        /// File that failed.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ReadFailure {
    /// Maps an I/O error reading `path` of process `pid`: ENOENT and ESRCH
    /// mean it is gone, EACCES denied, anything else names the path.
    pub fn from_io(pid: u32, path: &Path, e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => ReadFailure::Gone(pid),
            std::io::ErrorKind::PermissionDenied => ReadFailure::Denied(path.to_path_buf()),
            _ if e.raw_os_error() == Some(libc::ESRCH) => ReadFailure::Gone(pid),
            _ => ReadFailure::Other {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
        }
    }

    /// Maps a procfs-crate error for process `pid` read under `dir`.
    pub fn from_procfs(pid: u32, dir: &Path, e: ::procfs::ProcError) -> Self {
        use ::procfs::ProcError;
        match e {
            ProcError::NotFound(_) => ReadFailure::Gone(pid),
            ProcError::PermissionDenied(p) => {
                ReadFailure::Denied(p.unwrap_or_else(|| dir.to_path_buf()))
            }
            ProcError::Io(ref io, _) if io.raw_os_error() == Some(libc::ESRCH) => {
                ReadFailure::Gone(pid)
            }
            other => ReadFailure::Other {
                path: dir.to_path_buf(),
                message: other.to_string(),
            },
        }
    }
}
