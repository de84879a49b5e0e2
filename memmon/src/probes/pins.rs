//! Kernel maps pinned under bpffs (default /sys/fs/bpf/memmon), so a daemon
//! restart (systemd restart, crash) keeps cumulative counters and Prometheus
//! sees no counter reset.
//!
//! Pins live in a directory named after the layout of the shared types
//! (`v<LAYOUT_VERSION>-c<sizeof ProcCounters>`): pins left by a memmon with
//! another layout are removed with a warning, and a pin whose key/value size
//! does not match is replaced.

use std::{
    fs,
    path::{Path, PathBuf},
};

use memmon_common::{
    LAYOUT_VERSION, MemcgExits, ProcCounters,
    names::{self, Map},
};

/// Default root of memmon's pins.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/memmon";

/// A map that survives restarts: name, key size, value size.
pub struct PinnedMap {
    /// Map name in the eBPF object.
    pub name: &'static Map,
    /// Expected key size in bytes.
    pub key_size: u32,
    /// Expected value size in bytes.
    pub value_size: u32,
}

/// The maps memmon pins: per-process counters, the statistics slots and
/// the per-memory-cgroup totals of exited processes.
pub const PINNED_MAPS: &[PinnedMap] = &[
    PinnedMap {
        name: names::PROC_COUNTERS,
        key_size: 4,
        value_size: std::mem::size_of::<ProcCounters>() as u32,
    },
    PinnedMap {
        name: names::STATS,
        key_size: 4,
        value_size: 8,
    },
    PinnedMap {
        name: names::MEMCG_EXITS,
        key_size: 8,
        value_size: std::mem::size_of::<MemcgExits>() as u32,
    },
];

/// The pin directory cannot be prepared (the fix is in the message).
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A directory could not be made.
    #[error("cannot create pin directory {}: {source}", path.display())]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// bpffs is not mounted and could not be.
    #[error(
        "bpffs is not mounted at /sys/fs/bpf and mounting it failed ({0}); run: mount -t bpf \
         bpffs /sys/fs/bpf, or use --no-pin"
    )]
    NoBpffs(#[source] std::io::Error),
}

/// This build's layout directory name.
pub fn layout_id() -> String {
    format!("v{LAYOUT_VERSION}-c{}", std::mem::size_of::<ProcCounters>())
}

/// Prepares `root` for this build: mounts bpffs if needed, removes other
/// layouts' pins (warning once), drops mismatched pins, and returns the
/// directory the loader pins into.
pub fn prepare(root: &Path) -> Result<PathBuf, PinError> {
    ensure_bpffs(root)?;
    let mkdir = |path: &Path| {
        fs::create_dir_all(path).map_err(|source| PinError::Mkdir {
            path: path.to_path_buf(),
            source,
        })
    };
    mkdir(root)?;
    let mine = layout_id();
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != mine {
                tracing::warn!(
                    "replacing maps pinned by an incompatible memmon ({}/{name}); their counters start over",
                    root.display()
                );
                remove_pins(&entry.path());
            }
        }
    }
    let dir = root.join(&mine);
    mkdir(&dir)?;
    for map in PINNED_MAPS {
        let path = dir.join(map.name.name());
        if !path.exists() {
            continue;
        }
        match aya::maps::MapInfo::from_pin(&path) {
            Ok(info) if info.key_size() == map.key_size && info.value_size() == map.value_size => {}
            Ok(info) => {
                tracing::warn!(
                    "pinned map {} has key/value size {}/{} (want {}/{}); replacing it",
                    path.display(),
                    info.key_size(),
                    info.value_size(),
                    map.key_size,
                    map.value_size
                );
                let _ = fs::remove_file(&path);
            }
            Err(e) => {
                tracing::warn!("unreadable pin {} ({e}); replacing it", path.display());
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(dir)
}

/// Removes a directory of pins (files first, then the directory).
fn remove_pins(path: &Path) {
    if path.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                remove_pins(&e.path());
            }
        }
        let _ = fs::remove_dir(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

/// bpffs magic number (statfs f_type).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts bpffs at /sys/fs/bpf when `root` is not on one.
fn ensure_bpffs(root: &Path) -> Result<(), PinError> {
    let base = Path::new("/sys/fs/bpf");
    if !root.starts_with(base) {
        return Ok(());
    }
    if is_bpffs(base) {
        return Ok(());
    }
    // SAFETY: constant NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"bpffs".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 && is_bpffs(base) {
        return Ok(());
    }
    Err(PinError::NoBpffs(std::io::Error::last_os_error()))
}

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-buffer; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
