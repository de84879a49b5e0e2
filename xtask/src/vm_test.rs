//! `cargo xtask vm-test`: memmon's root integration tests inside a qemu
//! guest running Debian's stock kernel (package linux-image-amd64) with two
//! NUMA nodes, under TCG (no KVM needed). virtme-ng boots the kernel on the
//! host's own root filesystem (shared read-only over 9p), so the guest runs
//! the test binaries built here; results come back through one writable
//! directory and are counted on the host.
//!
//! Inside the guest: cgroup v1 memory controller at /sys/fs/cgroup/memory
//! (as the host tests expect), bpffs, tracefs; then, after every other
//! binary, the cgroup reader's tests once more on cgroup v2 (the v1 memory
//! hierarchy unmounted, cgroup2 mounted, `MEMMON_CGROUP_ROOT` naming it;
//! reported as `cgroupfs_v2`). MEMMON_REQUIRE_BPF=1 and
//! MEMMON_REQUIRE_NUMA2=1 so nothing skips, and MEMMON_REQUIRE_FENTRY=1
//! when the kernel's config allows BPF tracing programs.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{cmd, packages, setup::BuildEnv};

/// What the guest needs on the host (its root filesystem is the host's).
const VM_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "linux-image-amd64",
    "busybox-static",
    "python3-venv",
];

/// virtme-ng, pinned: the version the recipe was proven with.
const VIRTME_NG: &str = "virtme-ng==1.42";

/// The focused subset (CI): NUMA on two nodes, the fault-latency
/// histogram, fault counts against the kernel's, and a memcg OOM kill.
pub const FOCUSED: &[&str] = &[
    "numa_two_nodes",
    "fault_latency",
    "faults",
    "oom",
    "cgroupfs",
];

/// Test binaries run a second time on cgroup v2, as `<name>_v2`.
const ON_V2: &[&str] = &["cgroupfs"];
/// Suffix of those second runs.
const V2_SUFFIX: &str = "_v2";
/// Where the guest mounts cgroup v2 for them.
const V2_MOUNT: &str = "/tmp/memmon-cgroup2";

/// Guest memory per NUMA node, MiB.
const NODE_MIB: u32 = 1024;

/// Options from the command line.
pub struct Options {
    /// Every integration test binary, not the focused subset.
    pub all: bool,
    /// Kernel image (default: the newest /boot/vmlinuz-*).
    pub kernel: Option<PathBuf>,
    /// Passed to every test binary (test name filters).
    pub filters: Vec<String>,
}

/// Runs the tests in the guest and reports them here: (passed, failed).
/// Errors are for a guest that could not run them at all.
pub fn run(env: &BuildEnv, opts: &Options) -> anyhow::Result<(u64, u64)> {
    let mut actions = Vec::new();
    packages::ensure(packages::TEST_PACKAGES, &mut actions)?;
    packages::ensure(VM_PACKAGES, &mut actions)?;
    let vng = ensure_virtme_ng()?;
    let kernel = match &opts.kernel {
        Some(k) => k.clone(),
        None => newest_kernel()?,
    };
    let tests = build_tests(env)?;
    let mut selected: Vec<(String, PathBuf)> = tests
        .into_iter()
        .filter(|(name, _)| opts.all || FOCUSED.contains(&name.as_str()))
        .collect();
    let again: Vec<(String, PathBuf)> = selected
        .iter()
        .filter(|(name, _)| ON_V2.contains(&name.as_str()))
        .map(|(name, exe)| (format!("{name}{V2_SUFFIX}"), exe.clone()))
        .collect();
    selected.extend(again);
    if selected.is_empty() {
        bail!("no integration test binaries were built");
    }
    let out = cmd::workspace().join("target/vm-test");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let fentry = allows_tracing_programs(&kernel);
    std::fs::write(
        out.join("guest.sh"),
        guest_script(&out, &selected, &opts.filters, fentry),
    )?;

    let limit = Duration::from_secs(if opts.all { 80 * 60 } else { 30 * 60 });
    eprintln!(
        "vm-test: booting {} (2 vCPUs, 2 NUMA nodes, TCG) for {} test binaries: {}",
        kernel.display(),
        selected.len(),
        selected
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let started = Instant::now();
    boot(&vng, &kernel, &out, limit)?;
    let wall = started.elapsed();
    report(&out, &selected, wall)
}

/// virtme-ng in `.tools/venv`, installed on first use.
fn ensure_virtme_ng() -> anyhow::Result<PathBuf> {
    let venv = cmd::tools_dir().join("venv");
    let vng = venv.join("bin/vng");
    if vng.exists() {
        return Ok(vng);
    }
    cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .context("creating a Python venv for virtme-ng (Debian package python3-venv)")?;
    cmd::run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", VIRTME_NG]))
        .context("pip install virtme-ng")?;
    Ok(vng)
}

/// The newest /boot/vmlinuz-* (Debian's kernel package puts it there).
fn newest_kernel() -> anyhow::Result<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .context("reading /boot")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort_by_key(|p| version_key(p));
    kernels
        .pop()
        .context("no /boot/vmlinuz-*: install linux-image-amd64 or pass --kernel")
}

/// Sort key of `vmlinuz-6.1.0-56-amd64`: its numbers.
fn version_key(p: &Path) -> Vec<u64> {
    p.to_string_lossy()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Whether the kernel's config (next to it in /boot) has what BPF
/// trampolines (fentry/fexit) need.
fn allows_tracing_programs(kernel: &Path) -> bool {
    let config = kernel.to_string_lossy().replacen("vmlinuz-", "config-", 1);
    std::fs::read_to_string(config).is_ok_and(|c| {
        [
            "CONFIG_BPF_JIT=y",
            "CONFIG_DEBUG_INFO_BTF=y",
            "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS=y",
        ]
        .iter()
        .all(|k| c.lines().any(|l| l == *k))
    })
}

/// Builds the integration test binaries: (name, executable).
fn build_tests(env: &BuildEnv) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut c = cmd::cargo(env);
    c.args([
        "test",
        "--package",
        "memmon",
        "--tests",
        "--no-run",
        "--message-format=json",
    ])
    .stdout(Stdio::piped());
    eprintln!("+ {}", cmd::display(&c));
    let out = c.output().context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the integration tests failed: {}", out.status);
    }
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = v["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            is_test,
            v["target"]["name"].as_str(),
            v["executable"].as_str(),
        ) {
            tests.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    tests.sort();
    Ok(tests)
}

/// The script the guest runs: mounts, then each test binary, one test at a
/// time (two TCG vCPUs), its output and exit status into `out`.
fn guest_script(
    out: &Path,
    tests: &[(String, PathBuf)],
    filters: &[String],
    fentry: bool,
) -> String {
    let out = out.display();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#!/bin/sh\n# Written by `cargo xtask vm-test`; runs inside the guest.\n\
         exec >{out}/guest.log 2>&1\n\
         uname -a\n\
         ls -d /sys/devices/system/node/node*\n\
         umount /sys/fs/cgroup 2>/dev/null\n\
         mount -t tmpfs cgroup_root /sys/fs/cgroup\n\
         mkdir -p /sys/fs/cgroup/memory\n\
         mount -t cgroup -o memory memory /sys/fs/cgroup/memory || echo 'no cgroup v1 memory controller'\n\
         mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
         mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing\n\
         # Swap files need a real filesystem (the root is 9p): ext4 on zram.\n\
         if modprobe zram num_devices=1 && echo 768M >/sys/block/zram0/disksize \\\n\
            && mkfs.ext4 -q /dev/zram0 && mkdir -p /tmp/memmon-swap && mount /dev/zram0 /tmp/memmon-swap; then\n\
           export MEMMON_TEST_SWAP_DIR=/tmp/memmon-swap\n\
         fi\n\
         export MEMMON_REQUIRE_BPF=1 MEMMON_REQUIRE_NUMA2=1 RUST_BACKTRACE=1 HOME=/tmp"
    );
    if fentry {
        let _ = writeln!(s, "export MEMMON_REQUIRE_FENTRY=1");
    }
    let filters: String = filters.iter().map(|f| format!(" '{f}'")).collect();
    // The v1 runs first; the v2 runs last, after the v1 memory hierarchy
    // is gone (a controller is bound to one hierarchy at a time).
    let (v2, v1): (Vec<_>, Vec<_>) = tests.iter().partition(|(n, _)| n.ends_with(V2_SUFFIX));
    let v2_start = v1.len();
    let mut ordered = v1;
    ordered.extend(v2);
    for (i, (name, exe)) in ordered.into_iter().enumerate() {
        if i == v2_start {
            let _ = writeln!(
                s,
                "umount /sys/fs/cgroup/memory || echo 'the v1 memory hierarchy is busy: cgroup v2 runs will fail'\n\
                 mkdir -p {V2_MOUNT} && mount -t cgroup2 none {V2_MOUNT} || echo 'cannot mount cgroup2'"
            );
        }
        let env = if name.ends_with(V2_SUFFIX) {
            format!("MEMMON_CGROUP_ROOT={V2_MOUNT} ")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "echo \"=== {name}\"\nstart=$(date +%s)\n\
             {env}{} --test-threads=1 --nocapture{filters} >{out}/{name}.log 2>&1\n\
             echo \"{name} $? $(( $(date +%s) - start ))\" >>{out}/status",
            exe.display()
        );
    }
    let _ = writeln!(s, "echo finished >{out}/done");
    s
}

/// Boots the guest and waits for it (killing it past `limit`).
fn boot(vng: &Path, kernel: &Path, out: &Path, limit: Duration) -> anyhow::Result<()> {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = vng.parent() {
        let mut p = bin.as_os_str().to_owned();
        p.push(":");
        p.push(&path);
        path = p;
    }
    let qemu_numa = format!(
        "-object memory-backend-ram,id=m0,size={NODE_MIB}M -object memory-backend-ram,id=m1,size={NODE_MIB}M \
         -numa node,memdev=m0,cpus=0,nodeid=0 -numa node,memdev=m1,cpus=1,nodeid=1"
    );
    let mut c = Command::new(vng);
    c.env("PATH", path)
        .current_dir(out)
        .arg("--run")
        .arg(kernel)
        .args(["--disable-kvm", "--cpus", "2", "--memory"])
        .arg(format!("{}M", 2 * NODE_MIB))
        .arg(format!("--qemu-opts={qemu_numa}"))
        .arg("--rwdir")
        .arg(out)
        .arg("--exec")
        .arg(format!("sh {}/guest.sh", out.display()))
        .stdin(Stdio::null());
    // The guest's console (boot messages, terminal resets) goes to a file,
    // not into the test log.
    let console = std::fs::File::create(out.join("console.log"))
        .with_context(|| format!("creating {}/console.log", out.display()))?;
    c.stdout(console.try_clone()?).stderr(console);
    eprintln!("+ {}", cmd::display(&c));
    let mut child = c.spawn().context("starting vng (virtme-ng)")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() && !out.join("done").exists() {
                bail!(
                    "the guest failed ({status}); see {}/guest.log",
                    out.display()
                );
            }
            return Ok(());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the guest ran past {} min and was stopped; partial results in {}",
                limit.as_secs() / 60,
                out.display()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Counts the guest's results and prints failures: (passed, failed).
fn report(out: &Path, tests: &[(String, PathBuf)], wall: Duration) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(out.join("status")).unwrap_or_default();
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut problems = Vec::new();
    for (name, _) in tests {
        let line = status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()));
        let log = std::fs::read_to_string(out.join(format!("{name}.log"))).unwrap_or_default();
        let (p, f) = counts(&log);
        passed += p;
        failed += f;
        let code = line.and_then(|l| l.split_whitespace().nth(1));
        let secs = line
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("?");
        eprintln!(
            "vm-test: {name}: {p} passed, {f} failed in {secs} s (exit {})",
            code.unwrap_or("none")
        );
        if code != Some("0") {
            problems.push(name.clone());
            for l in log.lines().filter(|l| {
                l.contains("FAILED") || l.contains("panicked") || l.starts_with("  left")
            }) {
                eprintln!("    {l}");
            }
            if code.is_none() {
                failed += 1;
            }
        }
    }
    println!(
        "vm-test: {passed} passed, {failed} failed ({:.1} min in the guest)",
        wall.as_secs_f64() / 60.0
    );
    if !out.join("done").exists() {
        bail!("the guest did not finish; see {}/guest.log", out.display());
    }
    if passed == 0 && failed == 0 {
        bail!("no test ran in the guest; see {}/guest.log", out.display());
    }
    if !problems.is_empty() {
        eprintln!(
            "vm-test: failing in the guest: {}; logs in {}",
            problems.join(", "),
            out.display()
        );
    }
    Ok((passed, failed.max(u64::from(!problems.is_empty()))))
}

/// (passed, failed) over a test binary's `test result:` lines.
fn counts(log: &str) -> (u64, u64) {
    let mut totals = crate::test::Totals::default();
    for line in log.lines() {
        totals.add_line(line);
    }
    (totals.passed, totals.failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_kernel_sorts_by_version_numbers() {
        let mut v = [
            PathBuf::from("/boot/vmlinuz-6.1.0-9-amd64"),
            PathBuf::from("/boot/vmlinuz-6.1.0-56-amd64"),
            PathBuf::from("/boot/vmlinuz-5.10.0-30-amd64"),
        ];
        v.sort_by_key(|p| version_key(p));
        assert_eq!(v[2], PathBuf::from("/boot/vmlinuz-6.1.0-56-amd64"));
    }

    #[test]
    fn counts_result_lines() {
        let log = "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored\n\
                   test result: FAILED. 1 passed; 3 failed; 0 ignored\n";
        assert_eq!(counts(log), (3, 3));
    }

    #[test]
    fn script_runs_each_binary_with_filters() {
        let s = guest_script(
            Path::new("/o"),
            &[("faults".into(), PathBuf::from("/t/faults-1"))],
            &["minor".into()],
            true,
        );
        assert!(s.contains("/t/faults-1 --test-threads=1 --nocapture 'minor' >/o/faults.log"));
        assert!(s.contains("MEMMON_REQUIRE_FENTRY=1"));
        assert!(s.contains("mount -t cgroup -o memory memory /sys/fs/cgroup/memory"));
        assert!(!s.contains("cgroup2"), "no v2 runs asked for");
    }

    #[test]
    fn v2_runs_come_last_on_a_cgroup2_mount() {
        let s = guest_script(
            Path::new("/o"),
            &[
                ("cgroupfs".into(), PathBuf::from("/t/cg")),
                ("cgroupfs_v2".into(), PathBuf::from("/t/cg")),
                ("faults".into(), PathBuf::from("/t/faults-1")),
            ],
            &[],
            false,
        );
        let v1 = s.find(">/o/cgroupfs.log").expect("v1 run");
        let faults = s.find(">/o/faults.log").expect("faults run");
        let mount = s.find("mount -t cgroup2").expect("cgroup2 mount");
        let v2 = s
            .find("MEMMON_CGROUP_ROOT=/tmp/memmon-cgroup2 /t/cg --test-threads=1 --nocapture >/o/cgroupfs_v2.log")
            .expect("v2 run");
        assert!(v1 < mount && faults < mount && mount < v2, "{s}");
    }
}
