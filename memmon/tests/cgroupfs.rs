//! The cgroup reader against the kernel's own files, on whichever memory
//! controller this machine has: cgroup v1 here, v2 in the qemu guest
//! (`MEMMON_CGROUP_ROOT` names a v2 mount there; `cargo xtask vm-test`
//! runs this binary a second time that way). A 256 MiB cgroup holding a
//! child with 100 MiB of anonymous memory and 50 MiB of page cache: usage
//! within 1% of the kernel's file, the limit exact, the working set within
//! 2% of usage − inactive_file, the peak between the kernel's own read
//! before and after (absent where the kernel has no peak file);
//! throttling events (v2 `high`, v1 `failcnt`) equal to the kernel's, and
//! v2 PSI totals between the kernel's before and after; a forecast of the OOM kill of a child
//! growing at 8 MiB/s within 25% of when the kill comes; a removed cgroup
//! read as gone.

mod common;

use std::{
    io::Write as _,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{Workload, assert_within, require_bpf};
use memmon::{
    cgroupfs::{CgroupRead, CgroupReader, CgroupRoot, CgroupSample, Detail, DetailPolicy, Version},
    model::forecast::Window,
};

const MIB: u64 = 1 << 20;

/// The memory controller under test: `MEMMON_CGROUP_ROOT` (a mount
/// point) or /sys/fs/cgroup.
fn root() -> CgroupRoot {
    let r = match std::env::var_os("MEMMON_CGROUP_ROOT") {
        Some(p) => CgroupRoot::detect_at(PathBuf::from(p)),
        None => CgroupRoot::detect(),
    };
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("cgroup {:?} at {}", r.version(), r.dir().display());
    r
}

/// A cgroup made for one test (with its parent when nested), removed on
/// drop after its processes are gone.
struct TestCgroup {
    dir: PathBuf,
    path: String,
    version: Version,
}

impl TestCgroup {
    fn create(root: &CgroupRoot, rel: &str) -> TestCgroup {
        if root.version() == Version::V2 {
            // The memory files appear in a child once its parent delegates.
            let mut parent = root.dir().to_path_buf();
            for comp in Path::new(rel).parent().into_iter().flat_map(|p| p.iter()) {
                write(&parent.join("cgroup.subtree_control"), "+memory");
                parent.push(comp);
            }
            write(&parent.join("cgroup.subtree_control"), "+memory");
        }
        let dir = root.dir().join(rel);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup {
            dir,
            path: format!("/{rel}"),
            version: root.version(),
        }
    }

    fn set_limit(&self, bytes: u64) {
        let file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        write(&self.dir.join(file), &bytes.to_string());
    }

    /// No swap for this cgroup's memory (v1 swappiness 0, v2 swap.max 0),
    /// so its limit is where the OOM killer runs even when the machine has
    /// swap on (another test's, or a user's).
    fn no_swap(&self) {
        match self.version {
            Version::V1 => write(&self.dir.join("memory.swappiness"), "0"),
            Version::V2 => {
                if self.dir.join("memory.swap.max").exists() {
                    write(&self.dir.join("memory.swap.max"), "0");
                }
            }
        }
    }

    fn add(&self, pid: u32) {
        write(&self.dir.join("cgroup.procs"), &pid.to_string());
    }

    fn read(&self, file: &str) -> String {
        let p = self.dir.join(file);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    fn u64(&self, file: &str) -> u64 {
        let t = self.read(file);
        t.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{file}: {t:?}: {e}"))
    }

    /// A `name value` line of a keyed file.
    fn keyed(&self, file: &str, key: &str) -> u64 {
        let t = self.read(file);
        t.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{file} has no {key} line:\n{t}"))
    }

    fn usage(&self) -> u64 {
        self.u64(match self.version {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        })
    }

    /// anon + shmem + unreclaimable kernel memory as the kernel's own
    /// memory.stat reports them right now (v1 has no kernel breakdown:
    /// `total_rss` + `total_shmem`).
    fn kernel_unreclaimable(&self) -> u64 {
        let t = self.read("memory.stat");
        let get = |k: &str| {
            t.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        match self.version {
            Version::V1 => {
                get("total_rss").expect("total_rss") + get("total_shmem").expect("total_shmem")
            }
            Version::V2 => [
                "slab_unreclaimable",
                "kernel_stack",
                "pagetables",
                "sec_pagetables",
                "percpu",
            ]
            .into_iter()
            .filter_map(get)
            .fold(
                get("anon").expect("anon") + get("shmem").expect("shmem"),
                |a, b| a + b,
            ),
        }
    }

    /// inactive_file, hierarchical (v1 `total_inactive_file`).
    fn inactive_file(&self) -> u64 {
        match self.version {
            Version::V1 => self.keyed("memory.stat", "total_inactive_file"),
            Version::V2 => self.keyed("memory.stat", "inactive_file"),
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // A nested test cgroup's parent goes too (it was made for it).
        if let Some(parent) = self.dir.parent()
            && parent
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("memmon-cgtest-"))
        {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn write(path: &Path, value: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .unwrap_or_else(|e| panic!("write {value} to {}: {e}", path.display()));
}

fn name(tag: &str) -> String {
    format!("memmon-cgtest-{tag}-{}", std::process::id())
}

fn sample(root: &CgroupRoot, path: &str) -> CgroupSample {
    match root.read(path, Detail::Full) {
        Ok(CgroupRead::Sample(s)) => *s,
        other => panic!("reading {path}: {other:?}"),
    }
}

/// A file of `mib` MiB on a disk-backed filesystem, not in the page cache
/// (so the first read charges it to the reader's cgroup).
struct ColdFile(PathBuf);

impl ColdFile {
    fn create(tag: &str, mib: u64) -> ColdFile {
        // The guest's root is 9p and /tmp tmpfs: use the ext4 it mounts.
        let dir = std::env::var_os("MEMMON_TEST_SWAP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let path = dir.join(format!("{}.data", name(tag)));
        let mut f = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let chunk = vec![0x5au8; MIB as usize];
        for _ in 0..mib {
            f.write_all(&chunk).expect("write data file");
        }
        f.sync_all().expect("fsync data file");
        // SAFETY: advising the kernel about our own open file.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise DONTNEED");
        ColdFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for ColdFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn usage_limit_and_working_set_match_the_kernel() {
    if !require_bpf("cgroupfs usage") {
        return;
    }
    let root = root();
    let parent_rel = name("ws");
    let parent = TestCgroup::create(&root, &parent_rel);
    parent.set_limit(256 * MIB);
    let child = TestCgroup::create(&root, &format!("{parent_rel}/child"));
    let data = ColdFile::create("ws", 50);

    let mut anon = Workload::start(&["touch", "25600"]);
    child.add(anon.pid);
    assert_eq!(anon.go()["pages"], 25600);
    let mut cache = Workload::start(&["read-file", data.path()]);
    child.add(cache.pid);
    cache.go();

    // Nothing runs in the cgroup now: the reader and the kernel's files,
    // read one right after the other, see the same memory. The peak only
    // grows: the reader's lies between the kernel's before and after.
    let peak_file = match root.version() {
        Version::V1 => "memory.max_usage_in_bytes",
        Version::V2 => "memory.peak",
    };
    let has_peak = child.dir.join(peak_file).exists();
    let peak_before = has_peak.then(|| child.u64(peak_file));
    let s = sample(&root, &child.path);
    let peak_after = has_peak.then(|| child.u64(peak_file));
    let usage = child.usage();
    let inactive_file = child.inactive_file();
    let unreclaimable = child.kernel_unreclaimable();
    let p = sample(&root, &parent.path);
    eprintln!(
        "child: usage {:?} (kernel {usage}) working_set {:?} (kernel usage - inactive_file {}) \
         unreclaimable {:?} (kernel {unreclaimable}) anon {:?} stat.file {:?} missing {:?}",
        s.usage,
        s.working_set,
        usage.saturating_sub(inactive_file),
        s.unreclaimable,
        s.stat.as_ref().and_then(|st| st.anon),
        s.stat.as_ref().and_then(|st| st.file),
        s.missing
    );
    let got = s.usage.expect("usage");
    assert!(got > 140 * MIB, "the child holds 150 MiB; usage is {got}");
    match (peak_before, peak_after) {
        (Some(before), Some(after)) => {
            let peak = s.peak.expect("peak where the kernel has the file");
            assert!(
                before <= peak && peak <= after && peak >= got,
                "peak {peak} not between the kernel's {before} and {after}, or below usage {got}"
            );
        }
        _ => assert_eq!(s.peak, None, "no {peak_file} on this kernel: absent, not 0"),
    }
    assert_within("usage", got, usage, 0.01);
    assert_within(
        "working set",
        s.working_set.expect("working set"),
        usage.saturating_sub(inactive_file),
        0.02,
    );
    let st = s.stat.as_ref().expect("memory.stat");
    assert_within("anon", st.anon.expect("anon"), 100 * MIB, 0.05);
    assert!(
        st.file.expect("file") >= 49 * MIB,
        "50 MiB of page cache read: file is {:?}",
        st.file
    );
    // What reclaim cannot give back: at least the anon the kernel counts
    // (within the 5% above of the 100 MiB touched), and the same sum as
    // the kernel's own memory.stat gives.
    let got_unreclaimable = s.unreclaimable.expect("unreclaimable");
    assert!(
        got_unreclaimable >= st.anon.expect("anon"),
        "unreclaimable {got_unreclaimable} below the child's anon {:?}",
        st.anon
    );
    assert_within(
        "unreclaimable (anon + shmem + kernel)",
        got_unreclaimable,
        unreclaimable,
        0.02,
    );
    let limits = p.limits.as_ref().expect("parent limits");
    assert_eq!(limits.max, Some(256 * MIB), "the parent's limit, exact");
    assert_eq!(
        s.limits.as_ref().and_then(|l| l.max),
        None,
        "the child has none of its own"
    );
    // Usage is hierarchical: the parent counts the child's.
    assert!(p.usage.expect("parent usage") >= got);

    // The scan: ancestors read too, the parent's limit inherited.
    let mut reader = CgroupReader::new(root.clone(), DetailPolicy::default());
    let scan = reader.scan([child.path.as_str()]);
    let paths: Vec<&str> = scan.samples.iter().map(|s| s.path.as_str()).collect();
    assert!(
        paths.contains(&parent.path.as_str()) && paths.contains(&"/"),
        "{paths:?}"
    );
    let scanned = scan
        .samples
        .iter()
        .find(|s| s.path == child.path)
        .expect("child scanned");
    assert_eq!(
        scanned.limits.as_ref().and_then(|l| l.effective_max),
        Some(256 * MIB)
    );
    anon.finish();
    cache.finish();
}

#[test]
fn throttling_events_equal_the_kernels() {
    if !require_bpf("cgroupfs events") {
        return;
    }
    let root = root();
    let cg = TestCgroup::create(&root, &name("ev"));
    // Reading 96 MiB of page cache into 32 MiB: reclaim, no OOM.
    match root.version() {
        Version::V1 => cg.set_limit(32 * MIB),
        Version::V2 => write(&cg.dir.join("memory.high"), &(32 * MIB).to_string()),
    }
    let data = ColdFile::create("ev", 96);
    let mut w = Workload::start(&["read-file", data.path()]);
    cg.add(w.pid);
    w.go();
    // The counts are compared once the workload is gone: after its report
    // it still runs code on its way out, and a page it faults in there at
    // the limit is one more failed charge (5.10 guest: 7,517 against a
    // reading of 7,516 taken a moment before).
    w.finish();
    let s = sample(&root, &cg.path);
    let ev = s.events.as_ref().expect("events");
    match root.version() {
        Version::V1 => {
            let kernel = cg.u64("memory.failcnt");
            eprintln!("v1 failcnt: reader {:?} kernel {kernel}", ev.failcnt);
            assert!(
                kernel > 0,
                "no charge failed: the test did not hit the limit"
            );
            assert_eq!(ev.failcnt, Some(kernel));
            assert_eq!(
                ev.oom_kill,
                Some(cg.keyed("memory.oom_control", "oom_kill"))
            );
        }
        Version::V2 => {
            let kernel = cg.keyed("memory.events", "high");
            let local = cg.keyed("memory.events.local", "high");
            eprintln!("v2 high: reader {:?} kernel {kernel}", ev.high);
            assert!(
                kernel > 0,
                "no high event: the test did not pass memory.high"
            );
            assert_eq!(ev.high, Some(kernel));
            assert_eq!(s.events_local.as_ref().and_then(|e| e.high), Some(local));
            assert_eq!(
                s.limits.as_ref().and_then(|l| l.high),
                Some(32 * MIB),
                "memory.high exact"
            );
            // Stall time only grows: the reader's totals lie between the
            // kernel's read before and after it.
            let total = |kind: &str| {
                cg.read("memory.pressure").lines().find_map(|l| {
                    let mut it = l.split_whitespace();
                    (it.next()? == kind).then_some(())?;
                    it.find_map(|kv| kv.strip_prefix("total=")?.parse::<u64>().ok())
                })
            };
            let before = (total("some"), total("full"));
            let p = sample(&root, &cg.path)
                .pressure
                .expect("memory.pressure on a v2 kernel with PSI");
            let after = (total("some"), total("full"));
            eprintln!("v2 PSI: reader {p:?}, kernel before {before:?} after {after:?}");
            let some = (before.0.expect("some"), after.0.expect("some"));
            assert!(
                some.0 <= p.some_total_us && p.some_total_us <= some.1,
                "some {} not within the kernel's {some:?}",
                p.some_total_us
            );
            match (before.1, after.1, p.full_total_us) {
                (Some(b), Some(a), Some(full)) => {
                    assert!(b <= full && full <= a, "full {full} not within {b}..{a}")
                }
                (None, None, None) => {}
                other => panic!("full line: kernel vs reader {other:?}"),
            }
        }
    }
}

#[test]
fn forecast_of_a_steady_grower_and_none_for_a_flat_one() {
    if !require_bpf("cgroupfs forecast") {
        return;
    }
    let root = root();
    let grow = TestCgroup::create(&root, &name("grow"));
    grow.set_limit(256 * MIB);
    grow.no_swap();
    let flat = TestCgroup::create(&root, &name("flat"));
    flat.set_limit(256 * MIB);
    let mut f = Workload::start(&["touch", "12800"]);
    flat.add(f.pid);
    f.go();
    // 1 MiB every 125 ms: 8 MiB/s until the OOM killer stops it.
    let mut g = Workload::start(&["grow", "1024", "125"]);
    grow.add(g.pid);
    g.send_go();
    let started = Instant::now();
    let mut grow_w = Window::new(60, 30.0);
    let mut flat_w = Window::new(60, 30.0);
    let mut t = 0.0;
    while t < 10.0 {
        std::thread::sleep(Duration::from_secs(1));
        t = started.elapsed().as_secs_f64();
        let (CgroupRead::Sample(gs), CgroupRead::Sample(fs)) = (
            root.read(&grow.path, Detail::Full).expect("read"),
            root.read(&flat.path, Detail::Full).expect("read"),
        ) else {
            panic!("a test cgroup vanished");
        };
        grow_w.push(t, gs.unreclaimable.expect("unreclaimable"));
        flat_w.push(t, fs.unreclaimable.expect("unreclaimable"));
    }
    let eta = grow_w.seconds_to_limit(Some(256 * MIB)).map(|s| t + s);
    let flat_eta = flat_w.seconds_to_limit(Some(256 * MIB));
    eprintln!(
        "after {t:.1} s: slope {:.1} MiB/s, level {:.0} MiB, kill forecast at {eta:?} s",
        grow_w.slope().unwrap_or(f64::NAN) / MIB as f64,
        grow_w.level().unwrap_or(f64::NAN) / MIB as f64
    );
    // Wait for the kill (the grower cannot finish 1 GiB under 256 MiB).
    let status = g.child.wait().expect("wait grower");
    let killed_at = started.elapsed().as_secs_f64();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the grower should die of the OOM killer: {status}"
    );
    let eta = eta.expect("a growing cgroup with a limit has a forecast");
    eprintln!("killed at {killed_at:.1} s, forecast {eta:.1} s");
    assert!(
        (eta - killed_at).abs() <= 0.25 * killed_at,
        "forecast {eta:.1} s vs the kill at {killed_at:.1} s: off by more than 25%"
    );
    assert_eq!(flat_eta, None, "a flat cgroup has no forecast");
    f.finish();
}

#[test]
fn a_removed_cgroup_reads_as_gone() {
    if !require_bpf("cgroupfs gone") {
        return;
    }
    let root = root();
    let mut reader = CgroupReader::new(root.clone(), DetailPolicy::default());
    let path = {
        let cg = TestCgroup::create(&root, &name("gone"));
        assert!(matches!(
            root.read(&cg.path, Detail::Full),
            Ok(CgroupRead::Sample(_))
        ));
        // Twice: the second pass re-reads the usage files it keeps open.
        for _ in 0..2 {
            let scan = reader.scan([cg.path.as_str()]);
            assert!(scan.samples.iter().any(|s| s.path == cg.path), "{scan:?}");
        }
        cg.path.clone()
    };
    assert_eq!(root.read(&path, Detail::Full).ok(), Some(CgroupRead::Gone));
    // The files it kept open now fail with ENODEV: gone, not an error.
    let scan = reader.scan([path.as_str()]);
    assert_eq!(scan.gone, [path]);
    assert!(scan.notices.is_empty(), "{:?}", scan.notices);
}
