//! Tests of the reader on recorded hierarchies (tests/fixtures/cgroup) and
//! on fake trees in a temp dir.

use super::*;

fn fixtures(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(version)
}

fn sample(read: Result<CgroupRead, CgroupError>) -> CgroupSample {
    match read {
        Ok(CgroupRead::Sample(s)) => *s,
        other => panic!("expected a sample, got {other:?}"),
    }
}

#[test]
fn ancestors_up_to_the_root() {
    assert_eq!(
        with_ancestors("/a/b/c").collect::<Vec<_>>(),
        ["/a/b/c", "/a/b", "/a", "/"]
    );
    assert_eq!(with_ancestors("/").collect::<Vec<_>>(), ["/"]);
    assert_eq!(with_ancestors("a/").collect::<Vec<_>>(), ["/a", "/"]);
}

#[test]
fn paths_that_could_leave_the_root_are_refused() {
    let root = CgroupRoot::new("/nonexistent", Version::V2);
    for bad in ["/a/../b", "/..", "/a/./b", "/a//b", "/a\0"] {
        assert!(
            matches!(root.cgroup_dir(bad), Err(CgroupError::BadPath(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        root.cgroup_dir("/a/b/").ok(),
        Some(PathBuf::from("/nonexistent/a/b"))
    );
    assert_eq!(
        root.cgroup_dir("/").ok(),
        Some(PathBuf::from("/nonexistent"))
    );
}

#[test]
fn detects_v1_and_v2_and_says_what_to_do_without_either() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = CgroupRoot::detect_at(dir.path()).expect_err("empty");
    assert!(e.to_string().contains("cgroup.controllers"), "{e}");
    let e = CgroupRoot::detect_at(dir.path().join("nope")).expect_err("absent");
    assert!(
        e.to_string().contains("nope") && e.to_string().contains("--cgroup-root"),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("unified")).expect("mkdir");
    std::fs::write(dir.path().join("unified/cgroup.controllers"), "cpu io\n").expect("w");
    assert!(
        CgroupRoot::detect_at(dir.path()).is_err(),
        "no memory in unified"
    );
    std::fs::write(
        dir.path().join("unified/cgroup.controllers"),
        "cpu memory\n",
    )
    .expect("w");
    let r = CgroupRoot::detect_at(dir.path()).expect("v2");
    assert_eq!(
        (r.version(), r.dir()),
        (Version::V2, dir.path().join("unified").as_path())
    );
    // A v1 memory hierarchy wins (hybrid: memory is on v1).
    let v1 = fixtures("v1").join("memmon-fixture");
    let r = CgroupRoot::detect_at(&v1).expect("v1 given directly");
    assert_eq!((r.version(), r.dir()), (Version::V1, v1.as_path()));
}

#[test]
fn v1_recorded_child_of_a_256_mib_cgroup() {
    let root = CgroupRoot::new(fixtures("v1"), Version::V1);
    let s = sample(root.read("/memmon-fixture/child", Detail::Full));
    assert_eq!(s.path, "/memmon-fixture/child");
    assert_eq!(s.usage, Some(169_836_544));
    let l = s.limits.as_ref().expect("limits");
    assert_eq!(l.max, None, "the child has no limit of its own");
    assert_eq!(l.effective_max, Some(256 << 20));
    assert_eq!(l.memsw_max, None);
    assert_eq!(l.high, None);
    let st = s.stat.as_ref().expect("stat");
    assert_eq!(st.anon, Some(107_696_128));
    assert!(st.kernel.is_some(), "kmem usage read");
    // working set = usage - inactive_file.
    assert_eq!(s.working_set, Some(169_836_544 - 59_293_696));
    assert_eq!(s.unreclaimable, Some(107_696_128));
    let ev = s.events.as_ref().expect("events");
    assert_eq!((ev.failcnt, ev.oom_kill), (Some(0), Some(0)));
    assert_eq!(s.events_local, None);
    assert_eq!(s.pressure, None);
    assert!(s.missing.is_empty(), "{:?}", s.missing);

    let parent = sample(root.read("/memmon-fixture", Detail::Full));
    let l = parent.limits.expect("limits");
    assert_eq!((l.max, l.soft), (Some(256 << 20), Some(128 << 20)));
}

#[test]
fn usage_detail_reads_no_stat_or_limits() {
    let root = CgroupRoot::new(fixtures("v1"), Version::V1);
    let s = sample(root.read("/memmon-fixture/child", Detail::Usage));
    assert_eq!(s.usage, Some(169_836_544));
    assert_eq!((s.limits, s.stat, s.working_set), (None, None, None));
}

/// A fake v2 tree: `files` under `rel`.
fn v2_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

#[test]
fn v2_missing_files_are_none_and_named() {
    let dir = v2_tree(&[
        ("cgroup.controllers", "memory\n"),
        ("memory.stat", "anon 1\n"),
        ("a/memory.current", "4096\n"),
        ("a/memory.max", "max\n"),
        ("a/memory.high", "bogus\n"),
        (
            "a/memory.stat",
            "anon 100\nshmem 10\nslab_unreclaimable 5\ninactive_file 96\n",
        ),
    ]);
    let root = CgroupRoot::new(dir.path(), Version::V2);
    let s = sample(root.read("/a", Detail::Full));
    assert_eq!(s.usage, Some(4096));
    assert_eq!(s.peak, None);
    let l = s.limits.as_ref().expect("limits");
    assert_eq!((l.max, l.high), (None, None));
    assert_eq!(s.working_set, Some(4000));
    assert_eq!(s.unreclaimable, Some(115));
    let files: Vec<&str> = s.missing.iter().map(|m| m.file).collect();
    assert!(files.contains(&"memory.peak"), "{files:?}");
    assert!(files.contains(&"memory.pressure"), "{files:?}");
    let high = s
        .missing
        .iter()
        .find(|m| m.file == "memory.high")
        .expect("high");
    assert!(high.why.contains("\"bogus\""), "{high:?}");
    // The v2 root has only memory.stat (and PSI): nothing else is missing.
    let r = sample(root.read("/", Detail::Full));
    assert_eq!(r.usage, None);
    assert_eq!(r.stat.as_ref().and_then(|s| s.anon), Some(1));
    assert_eq!(
        r.missing.iter().map(|m| m.file).collect::<Vec<_>>(),
        ["memory.pressure"]
    );
    // Gone: the directory does not exist.
    assert_eq!(root.read("/b", Detail::Full).ok(), Some(CgroupRead::Gone));
}

#[test]
fn v2_cgroup_without_the_memory_controller_is_one_reason() {
    // systemd's udev cgroup: `cgroup.controllers` without `memory`, so no
    // memory.* file but PSI's memory.pressure.
    let dir = v2_tree(&[
        ("cgroup.controllers", "memory pids\n"),
        ("udev/cgroup.controllers", "pids\n"),
        (
            "udev/memory.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        ),
    ]);
    let root = CgroupRoot::new(dir.path(), Version::V2);
    let s = sample(root.read("/udev", Detail::Full));
    assert_eq!((s.usage, s.swap, s.limits.is_none()), (None, None, true));
    assert_eq!(s.missing.len(), 1, "{:?}", s.missing);
    assert_eq!(s.missing[0].file, "memory.current");
    assert!(
        s.missing[0].why.contains("subtree_control"),
        "{:?}",
        s.missing
    );
    // With the controller listed, each absent file is named.
    std::fs::write(dir.path().join("udev/cgroup.controllers"), "memory pids\n").expect("write");
    let s = sample(root.read("/udev", Detail::Full));
    assert!(s.missing.len() > 5, "{:?}", s.missing);
}

#[test]
fn reader_carries_full_detail_until_due_and_says_each_problem_once() {
    let dir = v2_tree(&[
        ("memory.stat", "anon 1\n"),
        ("a/memory.current", "10000000\n"),
        ("a/memory.max", "268435456\n"),
        ("a/b/memory.current", "5000000\n"),
        ("a/b/memory.max", "max\n"),
        (
            "a/b/memory.stat",
            "anon 100\nshmem 0\ninactive_file 1000000\n",
        ),
    ]);
    let root = CgroupRoot::new(dir.path(), Version::V2);
    let mut reader = CgroupReader::new(root, DetailPolicy::default());
    let first = reader.scan(["/a/b"]);
    assert_eq!(
        first
            .samples
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        ["/", "/a", "/a/b"]
    );
    assert_eq!(first.full_reads, 3);
    let b = &first.samples[2];
    // /a/b has no limit; /a's 256 MiB applies.
    assert_eq!(
        b.limits.as_ref().and_then(|l| l.effective_max),
        Some(268_435_456)
    );
    assert!(
        first.notices.iter().any(|n| n.contains("memory.peak")),
        "{:?}",
        first.notices
    );
    // Second pass: usage only, memory.stat carried; nothing said again.
    std::fs::write(dir.path().join("a/b/memory.stat"), "anon 999\n").expect("w");
    std::fs::write(dir.path().join("a/b/memory.current"), "5000100\n").expect("w");
    let second = reader.scan(["/a/b", "/a/b"]);
    assert_eq!((second.full_reads, second.usage_reads), (0, 3));
    assert!(second.notices.is_empty(), "{:?}", second.notices);
    let b = &second.samples[2];
    assert_eq!(b.stat.as_ref().and_then(|s| s.anon), Some(100));
    assert_eq!(b.usage, Some(5_000_100));
    assert_eq!(b.working_set, Some(4_000_100));
    assert!(b.detail_age_ms.is_some());
    // Usage moved by 2 MiB: full detail again for that cgroup.
    std::fs::write(dir.path().join("a/b/memory.current"), "7100100\n").expect("w");
    let third = reader.scan(["/a/b"]);
    assert_eq!((third.full_reads, third.usage_reads), (1, 2));
    assert_eq!(
        third.samples[2].stat.as_ref().and_then(|s| s.anon),
        Some(999)
    );
    assert_eq!(third.samples[2].detail_age_ms, Some(0));
    // Removed: gone, not an error; a bad path is said once.
    std::fs::remove_dir_all(dir.path().join("a/b")).expect("rm");
    let fourth = reader.scan(["/a/b", "/x/../y"]);
    assert_eq!(fourth.gone, ["/a/b"]);
    assert_eq!(fourth.notices.len(), 1, "{:?}", fourth.notices);
    assert!(reader.scan(["/x/../y"]).notices.is_empty());
}

#[test]
fn v2_recorded_child_of_a_256_mib_cgroup() {
    // Recorded in the qemu guest (Debian 6.1): a child holding 100 MiB of
    // anon memory and 50 MiB of page cache under a parent with
    // memory.max 256 MiB and memory.high 200 MiB.
    let root = CgroupRoot::detect_at(fixtures("v2")).expect("v2 root");
    assert_eq!(root.version(), Version::V2);
    let s = sample(root.read("/memmon-fixture/child", Detail::Full));
    assert_eq!(s.usage, Some(159_227_904));
    assert_eq!(s.peak, Some(159_227_904));
    assert_eq!(s.swap, Some(0));
    let l = s.limits.as_ref().expect("limits");
    assert_eq!((l.max, l.high, l.swap_max), (None, None, None));
    assert_eq!((l.low, l.min), (Some(16 << 20), Some(0)));
    let st = s.stat.as_ref().expect("stat");
    assert_eq!(st.anon, Some(105_398_272));
    assert_eq!(st.file, Some(52_789_248));
    assert_eq!(st.inactive_file, Some(52_736_000));
    assert_eq!(s.working_set, Some(159_227_904 - 52_736_000));
    // anon + shmem + slab_unreclaimable + kernel_stack + pagetables.
    assert_eq!(
        s.unreclaimable,
        Some(105_398_272 + 88_880 + 65_536 + 458_752)
    );
    let ev = s.events.as_ref().expect("events");
    assert_eq!(
        (ev.high, ev.max, ev.oom_kill, ev.oom_group_kill),
        (Some(0), Some(0), Some(0), Some(0))
    );
    assert_eq!(ev.failcnt, None);
    assert!(s.events_local.is_some());
    assert_eq!(
        s.pressure,
        Some(Pressure {
            some_total_us: 0,
            full_total_us: Some(0)
        })
    );
    assert!(s.missing.is_empty(), "{:?}", s.missing);

    let mut reader = CgroupReader::new(root, DetailPolicy::default());
    let scan = reader.scan(["/memmon-fixture/child"]);
    assert_eq!(scan.samples.len(), 3);
    let parent = &scan.samples[1];
    let pl = parent.limits.as_ref().expect("parent limits");
    assert_eq!((pl.max, pl.high), (Some(256 << 20), Some(200 << 20)));
    assert_eq!(
        scan.samples[2]
            .limits
            .as_ref()
            .and_then(|l| l.effective_max),
        Some(256 << 20)
    );
    // The root: memory.stat and PSI only, nothing said missing.
    assert!(scan.samples[0].stat.is_some());
    assert!(scan.notices.is_empty(), "{:?}", scan.notices);
}
