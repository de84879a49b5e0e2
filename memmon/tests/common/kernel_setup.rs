//! Kernel set-up the swap and OOM tests need, each undone on drop: a memory
//! cgroup with a limit (v1, or v2 where `MEMMON_CGROUP_ROOT` names a cgroup2
//! mount: kernels built without the v1 memory controller, such as Debian's
//! 6.12), and a swap file (or swap in RAM on zram0). Names carry the branch
//! and the test's pid so concurrent runs do not collide.
#![allow(dead_code)]

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// Root of the cgroup v1 memory controller.
pub const MEMCG_ROOT: &str = "/sys/fs/cgroup/memory";

/// A memory cgroup under [`MEMCG_ROOT`] (or the cgroup2 mount
/// `MEMMON_CGROUP_ROOT` names), removed on drop. On v2 the v1 control files
/// the tests write are translated: `memory.limit_in_bytes` is
/// `memory.max`, `memory.memsw.limit_in_bytes` (memory + swap at the memory
/// limit: no swap) is `memory.swap.max` 0, and `memory.swappiness` (no
/// per-cgroup knob on v2) is left alone.
pub struct Memcg {
    pub path: PathBuf,
    v2: bool,
}

/// The memory controller's root: `MEMMON_CGROUP_ROOT` when set, else
/// [`MEMCG_ROOT`]; and whether it is cgroup v2.
fn memcg_root() -> (PathBuf, bool) {
    let root = std::env::var_os("MEMMON_CGROUP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MEMCG_ROOT));
    let v2 = root.join("cgroup.controllers").exists();
    (root, v2)
}

impl Memcg {
    /// Creates `memmon-test-TAG-PID` with `limit` bytes.
    pub fn create(tag: &str, limit: u64) -> Memcg {
        let (root, v2) = memcg_root();
        if v2 {
            let controllers =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            assert!(
                controllers.split_whitespace().any(|c| c == "memory"),
                "cgroup v2 at {} has no memory controller: {controllers:?}",
                root.display()
            );
            // Children get memory files once the parent delegates them.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
        } else {
            assert!(
                root.join("memory.limit_in_bytes").exists(),
                "the cgroup v1 memory controller is not mounted at {}: \
                 mount -t cgroup -o memory memory {MEMCG_ROOT} (or set MEMMON_CGROUP_ROOT \
                 to a cgroup2 mount)",
                root.display()
            );
        }
        let path = root.join(format!("memmon-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let cg = Memcg { path, v2 };
        cg.write("memory.limit_in_bytes", &limit.to_string());
        cg
    }

    /// Writes `value` to a control file (panics with the file's name).
    pub fn write(&self, file: &str, value: &str) {
        let (file, value) = match (self.v2, file) {
            (true, "memory.limit_in_bytes") => ("memory.max", value),
            (true, "memory.memsw.limit_in_bytes") => ("memory.swap.max", "0"),
            (true, "memory.swappiness") => return,
            _ => (file, value),
        };
        let p = self.path.join(file);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .unwrap_or_else(|e| panic!("write {value} to {}: {e}", p.display()));
    }

    /// True when the control file exists (memsw needs swap accounting).
    pub fn has(&self, file: &str) -> bool {
        let file = match (self.v2, file) {
            (true, "memory.memsw.limit_in_bytes") => "memory.swap.max",
            _ => file,
        };
        self.path.join(file).exists()
    }

    /// A numeric control file.
    pub fn read_u64(&self, file: &str) -> u64 {
        let p = self.path.join(file);
        let text =
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", p.display()))
    }

    /// The kernel's usage of this cgroup: v1 `memory.usage_in_bytes`, v2
    /// `memory.current`.
    pub fn usage(&self) -> u64 {
        self.read_u64(if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        })
    }

    /// `oom_kill N` from memory.oom_control (v2: memory.events): kills in
    /// this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.keyed(file, "oom_kill")
    }

    /// The value of the `key N` line of a keyed control file (panics
    /// naming the file when it cannot be read or has no such line).
    pub fn keyed(&self, file: &str, key: &str) -> u64 {
        keyed_value(&self.path.join(file), key, ' ')
    }

    /// True on cgroup v2.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The kernel's own count of memcg OOMs at this cgroup's limit: v2
    /// memory.events `oom` (hierarchical); v1 has no such count, so its
    /// memory.failcnt plus memory.memsw.failcnt (charges that failed at
    /// this cgroup's memory or memory+swap limit, which every memcg OOM
    /// here starts with; the memory+swap one is tried first).
    pub fn limit_hits(&self) -> u64 {
        if !self.v2 {
            let memsw = if self.path.join("memory.memsw.failcnt").exists() {
                self.read_u64("memory.memsw.failcnt")
            } else {
                0
            };
            return self.read_u64("memory.failcnt") + memsw;
        }
        self.keyed("memory.events", "oom")
    }

    /// True when the kernel's own files say this cgroup hit its limit
    /// since [`Memcg::limit_hits`] gave `before`: v2 memory.events `oom`
    /// grew; v1 a failcnt grew or, where this kernel keeps no v1 failcnt
    /// (6.18 here counts none), the peak (memory.max_usage_in_bytes)
    /// reached the limit within 1% (the cgroup is the test's own: its peak
    /// is this test's).
    pub fn limit_was_hit(&self, before: u64) -> bool {
        if self.limit_hits() > before {
            return true;
        }
        if self.v2 {
            return false;
        }
        let (peak, limit) = (
            self.read_u64("memory.max_usage_in_bytes"),
            self.read_u64("memory.limit_in_bytes"),
        );
        peak <= limit && limit - peak <= limit / 100
    }

    /// Moves process `pid` into this cgroup.
    /// Its path inside the memory hierarchy, as /proc/PID/cgroup shows it.
    /// A `memory.stat` counter (v1: local to this cgroup).
    pub fn stat(&self, key: &str) -> u64 {
        self.keyed("memory.stat", key)
    }

    pub fn path_in_hierarchy(&self) -> String {
        format!(
            "/{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    }

    pub fn add(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }
}

impl Drop for Memcg {
    fn drop(&mut self) {
        // Tasks that just died may linger a moment in cgroup.procs.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove cgroup {}", self.path.display());
    }
}

/// A swap file under /var/tmp (or MEMMON_TEST_SWAP_DIR, where the qemu
/// guest mounts a filesystem that can hold one), swapped on; swapoff and
/// removed on drop.
pub struct SwapFile {
    pub path: PathBuf,
    /// The host's zram0, reset on drop (else a file, removed on drop).
    zram: bool,
}

/// The host's zram block device (built into this kernel, unused by default).
const ZRAM: &str = "/sys/block/zram0";

impl SwapFile {
    /// Writes `mib` MiB of zeros, mkswap, swapon.
    pub fn create(tag: &str, mib: usize) -> SwapFile {
        let dir = std::env::var("MEMMON_TEST_SWAP_DIR").unwrap_or_else(|_| "/var/tmp".into());
        let path = PathBuf::from(format!(
            "{dir}/memmon-test-{tag}-{}.swap",
            std::process::id()
        ));
        let swap = SwapFile { path, zram: false };
        {
            let mut f = std::fs::File::create(&swap.path)
                .unwrap_or_else(|e| panic!("create {}: {e}", swap.path.display()));
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..mib {
                f.write_all(&chunk).expect("write swap file");
            }
            f.sync_all().expect("sync swap file");
        }
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&swap.path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod swap file");
        run("mkswap", &[swap.path.as_os_str()]);
        run("swapon", &[swap.path.as_os_str()]);
        swap
    }

    /// `mib` MiB of swap in RAM on zram0 when the kernel has it and nobody
    /// uses it, else [`SwapFile::create`]. A test that needs a swap *rate*
    /// (an alert threshold) uses this: zram swaps at CPU speed, a file at
    /// the speed of the machine's virtual disk, which is shared and varies
    /// (a CI run once swapped too slowly for a 10 MiB/s alert for 10 min).
    pub fn in_ram_or_file(tag: &str, mib: usize) -> SwapFile {
        let free =
            std::fs::read_to_string(format!("{ZRAM}/initstate")).is_ok_and(|s| s.trim() == "0");
        if !free || std::fs::write(format!("{ZRAM}/disksize"), format!("{mib}M")).is_err() {
            eprintln!("{tag}: zram0 absent or in use: swap file on disk");
            return SwapFile::create(tag, mib);
        }
        let swap = SwapFile {
            path: PathBuf::from("/dev/zram0"),
            zram: true,
        };
        run("mkswap", &[swap.path.as_os_str()]);
        run("swapon", &[swap.path.as_os_str()]);
        swap
    }
}

impl Drop for SwapFile {
    /// swapoff, then zram0's reset or the file's removal. A test that
    /// failed half-way may still have workloads exiting in a small memcg,
    /// whose swapped pages swapoff cannot bring back yet: retried for 5 s.
    fn drop(&mut self) {
        let undone = |s: &SwapFile| {
            let listed = std::fs::read_to_string("/proc/swaps").is_ok_and(|t| {
                t.lines()
                    .any(|l| l.split_whitespace().next() == s.path.to_str())
            });
            if listed
                && !Command::new("swapoff")
                    .arg(&s.path)
                    .status()
                    .is_ok_and(|st| st.success())
            {
                return false;
            }
            if s.zram {
                std::fs::write(format!("{ZRAM}/reset"), "1").is_ok()
            } else {
                std::fs::remove_file(&s.path).is_ok()
            }
        };
        for _ in 0..50 {
            if undone(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not swapoff and release {}", self.path.display());
    }
}

fn run(cmd: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} not runnable ({e}): install util-linux"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The number after `key` and `sep` on a line of a keyed kernel file
/// (`key N` in memory.stat, memory.events and /proc/vmstat; `Key:  N kB`
/// in /proc/meminfo and /proc/PID/status). Panics naming the file when it
/// cannot be read or has no such line.
fn keyed_value(path: &Path, key: &str, sep: char) -> u64 {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(sep))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{} has no {key} line: {text}", path.display()))
}

/// A `/proc/meminfo` value in kB.
pub fn meminfo_kb(key: &str) -> u64 {
    keyed_value(Path::new("/proc/meminfo"), key, ':')
}

/// A counter from /proc/vmstat.
pub fn vmstat(key: &str) -> u64 {
    keyed_value(Path::new("/proc/vmstat"), key, ' ')
}

/// `VmSwap` of `pid` in kB.
pub fn vmswap_kb(pid: u32) -> u64 {
    status_kb(pid, "VmSwap")
}

/// A kB field of /proc/PID/status (VmSwap, RssAnon, ...).
pub fn status_kb(pid: u32, key: &str) -> u64 {
    keyed_value(Path::new(&format!("/proc/{pid}/status")), key, ':')
}
