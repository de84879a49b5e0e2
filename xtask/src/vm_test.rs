//! `cargo xtask vm-test`: memmon's root integration tests inside qemu
//! guests running Debian's stock kernels — 5.10, 6.1 or 6.12 (the
//! matrix, see `kernels`), all three in turn, or any image — with two NUMA
//! nodes, under TCG (no KVM needed). virtme-ng boots the kernel on the
//! host's own root filesystem (shared read-only over 9p), so the guest runs
//! the test binaries built here; results come back through one writable
//! directory per kernel and are counted on the host, skips included.
//!
//! Inside the guest: cgroup v1 memory controller at /sys/fs/cgroup/memory
//! (as the host tests expect), bpffs, tracefs; then, after every other
//! binary, the cgroup reader's tests once more on cgroup v2 (the v1 memory
//! hierarchy unmounted, cgroup2 mounted, `MEMMON_CGROUP_ROOT` naming it;
//! reported as `cgroupfs_v2`). MEMMON_REQUIRE_BPF=1 and
//! MEMMON_REQUIRE_NUMA2=1 so nothing skips for want of root or nodes, and
//! MEMMON_REQUIRE_FENTRY=1 when the kernel's config allows BPF tracing
//! programs. Each guest also reports every probe's state and the formats of
//! the tracepoints memmon uses; the states make the kernel × probe table
//! (target/vm-test/matrix.md) that README.md's must match.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{self, BuildEnv},
    kernels::{self, Debian},
    packages,
    totals::Totals,
};

/// What the guest needs on the host (its root filesystem is the host's;
/// kmod: depmod for the unpacked kernels' modules, modprobe in the guest).
const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "python3-venv", "kmod"];

/// virtme-ng, pinned: the version the recipe was proven with.
const VIRTME_NG: &str = "virtme-ng==1.42";

/// The focused subset (CI): NUMA on two nodes, the fault-latency
/// histogram, fault counts against the kernel's, a memcg OOM kill, the
/// cgroup reader, and the task-iterator scan against /proc.
pub const FOCUSED: &[&str] = &[
    "numa_two_nodes",
    "fault_latency",
    "faults",
    "oom",
    "cgroupfs",
    "task_iter",
];

/// Test binaries run a second time on cgroup v2, as `<name>_v2`.
const ON_V2: &[&str] = &["cgroupfs"];
/// Suffix of those second runs.
const V2_SUFFIX: &str = "_v2";
/// Where the guest mounts cgroup v2 for them.
pub const V2_MOUNT: &str = "/tmp/memmon-cgroup2";

/// The kernel `vm-test` boots without `--kernel`: Debian 12's.
pub const DEFAULT_KERNEL: &str = "6.1";

/// What `cargo xtask test` (and so `.ci/run`) boots: the whole matrix.
pub const CI_KERNELS: &str = "all";

/// The tracepoints memmon attaches to: their format files come back from
/// each guest (`target/vm-test/KERNEL/tracefs`), the source of the
/// fixtures under memmon/tests/fixtures/tracefs/linux-VERSION.
const TRACEPOINTS: &[&str] = &[
    "exceptions/page_fault_user",
    "exceptions/page_fault_kernel",
    "kmem/kmalloc",
    "kmem/kmem_cache_alloc",
    "kmem/kmem_cache_free",
    "kmem/mm_page_alloc",
    "kmem/mm_page_alloc_extfrag",
    "vmscan/mm_vmscan_direct_reclaim_begin",
    "vmscan/mm_vmscan_direct_reclaim_end",
    "vmscan/mm_vmscan_memcg_reclaim_begin",
    "vmscan/mm_vmscan_memcg_reclaim_end",
    "oom/mark_victim",
    "migrate/mm_migrate_pages",
    "sched/sched_move_numa",
    "sched/sched_swap_numa",
    "sched/sched_process_exit",
    "sched/sched_switch",
    "syscalls/sys_enter_mmap",
    "syscalls/sys_exit_mmap",
    "syscalls/sys_enter_munmap",
    "syscalls/sys_enter_mremap",
    "syscalls/sys_enter_brk",
    "syscalls/sys_exit_brk",
    "signal/signal_generate",
    "cgroup/cgroup_attach_task",
];

/// README.md's generated kernel table sits between these lines.
const MATRIX_BEGIN: &str = "<!-- kernel-matrix: written by `cargo xtask vm-test --kernel all` \
                            (target/vm-test/matrix.md); vm-test checks it -->";
const MATRIX_END: &str = "<!-- /kernel-matrix -->";

/// The emulator's mode: one host thread runs both vCPUs in turn. With a
/// thread per vCPU (qemu's default), the 6.12 guest twice died of `Oops:
/// int3` in `__alloc_pages_noprof` and once stopped mid-suite in CI: a
/// vCPU ran a stale breakpoint byte after the kernel had patched a
/// tracepoint's static key (each probe attach and detach rewrites kernel
/// text) on the other vCPU. One thread has no such race. The systemd
/// lane's guest (vm_systemd.rs) boots with it too.
pub const TCG_ACCEL: &str = "tcg,thread=single";

/// Guest memory per NUMA node, MiB.
const NODE_MIB: u32 = 1024;

/// One kernel to boot.
#[derive(Clone, Debug)]
pub enum Kernel {
    /// A kernel of the matrix (fetched into .tools/kernels on first use).
    Matrix(Debian),
    /// An image file given by path.
    Image(PathBuf),
}

impl Kernel {
    /// What results are filed under (target/vm-test/LABEL).
    pub fn label(&self) -> String {
        match self {
            Kernel::Matrix(k) => k.version.to_string(),
            Kernel::Image(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().replace("vmlinuz-", ""))
                .unwrap_or_else(|| "image".into()),
        }
    }

    /// The image to boot, fetched first for a matrix kernel.
    pub fn image(&self) -> anyhow::Result<PathBuf> {
        match self {
            Kernel::Matrix(k) => k.ensure(),
            Kernel::Image(p) => Ok(p.clone()),
        }
    }
}

/// `--kernel VALUE`: a matrix version, `all`, or an image path; none: the
/// default kernel.
pub fn parse_kernels(value: Option<&str>) -> anyhow::Result<Vec<Kernel>> {
    let versions = || {
        kernels::MATRIX
            .iter()
            .map(|k| k.version)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let value = value.unwrap_or(DEFAULT_KERNEL);
    if value == "all" {
        return Ok(kernels::MATRIX
            .iter()
            .copied()
            .map(Kernel::Matrix)
            .collect());
    }
    if let Some(k) = kernels::find(value) {
        return Ok(vec![Kernel::Matrix(k)]);
    }
    let path = Path::new(value);
    if path.is_file() {
        return Ok(vec![Kernel::Image(path.to_path_buf())]);
    }
    bail!(
        "--kernel {value}: not a kernel of the matrix ({}), `all`, nor an image file; \
         pass one of those or the path of a vmlinuz",
        versions()
    )
}

/// Options from the command line.
pub struct Options {
    /// Every integration test binary, not the focused subset.
    pub all: bool,
    /// The kernels to boot, in turn.
    pub kernels: Vec<Kernel>,
    /// Passed to every test binary (test name filters).
    pub filters: Vec<String>,
}

/// What one kernel's guest gave.
struct KernelRun {
    label: String,
    /// `uname -r` in the guest.
    release: Option<String>,
    totals: Totals,
    /// Each probe's (state, reason) from `snapshot --probes` in the guest.
    probes: Option<Vec<(String, String, String)>>,
    /// A kernel of the matrix: README.md's table must agree with it (an
    /// image given by path is reported in matrix.md only).
    in_matrix: bool,
}

/// Runs the tests in a guest for each kernel in turn and reports them
/// here: one result line per kernel, then the total. Errors are for what
/// stops every kernel (packages, builds); a kernel whose guest fails
/// counts as a failure and the next one still runs.
pub fn run(env: &BuildEnv, opts: &Options) -> anyhow::Result<Totals> {
    let mut actions = Vec::new();
    packages::ensure(packages::TEST_PACKAGES, &mut actions)?;
    packages::ensure(VM_PACKAGES, &mut actions)?;
    let vng = ensure_virtme_ng()?;
    let tests = build_tests(env)?;
    // The guests run it from the debug build, beside memmon (guest_script).
    cmd::build_workload(env, false)?;
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
    let memmon = cmd::binary("memmon", false);
    let mut runs = Vec::new();
    for kernel in &opts.kernels {
        let label = kernel.label();
        let out = cmd::workspace().join("target/vm-test").join(&label);
        let run = match run_kernel(&vng, kernel, &out, &memmon, &selected, opts) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("vm-test {label}: {e:#}");
                KernelRun {
                    label: label.clone(),
                    release: None,
                    totals: Totals {
                        failed: 1,
                        ..Totals::default()
                    },
                    probes: None,
                    in_matrix: false,
                }
            }
        };
        println!(
            "vm-test {label}{}: {}",
            run.release
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            run.totals.summary()
        );
        runs.push(run);
    }
    let mut total = Totals::default();
    for r in &runs {
        total.passed += r.totals.passed;
        total.failed += r.totals.failed;
        total.skipped += r.totals.skipped;
    }
    if runs.iter().any(|r| r.probes.is_some() && r.in_matrix) {
        let matrix = matrix_block(&runs, opts.all || !opts.filters.is_empty());
        let path = cmd::workspace().join("target/vm-test/matrix.md");
        std::fs::write(&path, &matrix).with_context(|| format!("writing {}", path.display()))?;
        let readme = std::fs::read_to_string(cmd::workspace().join("README.md"))
            .context("reading README.md")?;
        let problems = check_readme(&readme, &runs);
        if problems.is_empty() {
            eprintln!("vm-test: README.md's kernel table agrees with this run");
        } else {
            for p in &problems {
                eprintln!("vm-test: README.md's kernel table: {p}");
            }
            eprintln!(
                "vm-test: README.md's kernel table does not match this run; replace it with {}",
                path.display()
            );
            total.failed += 1;
        }
    }
    println!("vm-test: {}", total.summary());
    Ok(total)
}

/// Boots one kernel and runs the selected tests in it.
fn run_kernel(
    vng: &Path,
    kernel: &Kernel,
    out: &Path,
    memmon: &Path,
    selected: &[(String, PathBuf)],
    opts: &Options,
) -> anyhow::Result<KernelRun> {
    let image = kernel.image()?;
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).with_context(|| format!("mkdir {}", out.display()))?;
    let fentry = allows_tracing_programs(&image);
    // The cgroup v2 runs get a boot of their own: a controller is bound to
    // one hierarchy at a time, and after the v1 runs the v1 memory
    // hierarchy lives on while its removed cgroups are still dying.
    let (v2, v1): (Vec<_>, Vec<_>) = selected
        .iter()
        .cloned()
        .partition(|(n, _)| n.ends_with(V2_SUFFIX));
    std::fs::write(
        out.join("guest.sh"),
        guest_script(out, memmon, &v1, &opts.filters, fentry, false),
    )?;
    std::fs::write(
        out.join("guest-v2.sh"),
        guest_script(out, memmon, &v2, &opts.filters, fentry, true),
    )?;
    let limit = Duration::from_secs(if opts.all { 80 * 60 } else { 30 * 60 });
    eprintln!(
        "vm-test: booting {} (2 vCPUs, 2 NUMA nodes, TCG) for {} test binaries: {}",
        image.display(),
        selected.len(),
        selected
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let started = Instant::now();
    let mut booted = boot(vng, &image, out, limit, "guest.sh", "done");
    if !v2.is_empty() {
        eprintln!("vm-test: booting it again for the cgroup v2 runs");
        let again = boot(vng, &image, out, limit, "guest-v2.sh", "done-v2");
        booted = booted.and(again);
    }
    let mut totals = report(out, selected, started.elapsed()).unwrap_or_else(|e| {
        eprintln!("vm-test {}: {e:#}", kernel.label());
        Totals {
            failed: 1,
            ..Totals::default()
        }
    });
    if let Err(e) = booted {
        eprintln!("vm-test {}: {e:#}", kernel.label());
        totals.failed = totals.failed.max(1);
    }
    let release = std::fs::read_to_string(out.join("release"))
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    Ok(KernelRun {
        label: kernel.label(),
        release,
        totals,
        probes: read_probes(&out.join("probes.json")),
        in_matrix: matches!(kernel, Kernel::Matrix(_)),
    })
}

/// (name, state, reason) of each probe in a `snapshot --probes --json`
/// report.
fn read_probes(path: &Path) -> Option<Vec<(String, String, String)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let probes = v["probes"].as_array()?;
    Some(
        probes
            .iter()
            .filter_map(|p| {
                Some((
                    p["name"].as_str()?.to_string(),
                    p["state"].as_str()?.to_string(),
                    p["reason"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect(),
    )
}

/// One table cell: `attached`, or the state and its reason with the
/// kernel's exact release taken out (it changes with Debian's updates;
/// the column names the kernel).
fn cell(state: &str, reason: &str, release: Option<&str>) -> String {
    if state == "attached" {
        return "attached".into();
    }
    let mut reason = reason.to_string();
    if let Some(r) = release {
        reason = reason
            .replace(&format!(" ({r})"), "")
            .replace(r, "this kernel");
    }
    let reason = reason.replace('|', "\\|");
    if reason.is_empty() {
        state.to_string()
    } else {
        format!("{state}: {reason}")
    }
}

/// The README block for these runs: kernel × probe, then the lowest
/// kernel on which the focused subset passed with nothing skipped.
/// `partial`: the run was not the plain focused subset (no claim made).
fn matrix_block(runs: &[KernelRun], partial: bool) -> String {
    let runs: Vec<&KernelRun> = runs.iter().filter(|r| r.probes.is_some()).collect();
    let mut names: Vec<String> = Vec::new();
    for r in &runs {
        for (name, _, _) in r.probes.iter().flatten() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "{MATRIX_BEGIN}");
    let _ = write!(s, "| probe |");
    for r in &runs {
        let _ = write!(s, " {} |", r.label);
    }
    let _ = write!(s, "\n|---|");
    for _ in &runs {
        let _ = write!(s, "---|");
    }
    s.push('\n');
    for name in &names {
        let _ = write!(s, "| `{name}` |");
        for r in &runs {
            let c = r
                .probes
                .iter()
                .flatten()
                .find(|(n, _, _)| n == name)
                .map(|(_, state, reason)| cell(state, reason, r.release.as_deref()))
                .unwrap_or_else(|| "-".into());
            let _ = write!(s, " {c} |");
        }
        s.push('\n');
    }
    s.push('\n');
    let clean = runs
        .iter()
        .find(|r| r.totals.failed == 0 && r.totals.skipped == 0 && r.totals.passed > 0);
    let _ = match (partial, clean) {
        (true, _) => writeln!(s, "(A partial run: no claim about the focused subset.)"),
        (false, Some(r)) => writeln!(
            s,
            "Lowest kernel on which the whole focused subset passes, nothing skipped: {}.",
            r.label
        ),
        (false, None) => writeln!(
            s,
            "No kernel of this run passed the whole focused subset without a skip."
        ),
    };
    let _ = writeln!(s, "{MATRIX_END}");
    s
}

/// Differences between README.md's kernel table and these runs: each
/// kernel that ran must have a column whose cells are this run's.
fn check_readme(readme: &str, runs: &[KernelRun]) -> Vec<String> {
    let Some(block) = readme
        .split_once(MATRIX_BEGIN)
        .and_then(|(_, rest)| rest.split_once(MATRIX_END))
        .map(|(b, _)| b)
    else {
        return vec![format!(
            "no block between `{MATRIX_BEGIN}` and `{MATRIX_END}`"
        )];
    };
    let rows: Vec<Vec<String>> = block
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(split_row)
        .collect();
    let Some((header, body)) = rows.split_first() else {
        return vec!["the table has no header row".into()];
    };
    let table: BTreeMap<(String, String), String> = body
        .iter()
        .flat_map(|row| {
            header.iter().zip(row).skip(1).map(|(kernel, c)| {
                (
                    (row[0].trim_matches('`').to_string(), kernel.clone()),
                    c.clone(),
                )
            })
        })
        .collect();
    let mut problems = Vec::new();
    for r in runs.iter().filter(|r| r.in_matrix) {
        let Some(probes) = &r.probes else { continue };
        if !header.contains(&r.label) {
            problems.push(format!("no column for kernel {}", r.label));
            continue;
        }
        for (name, state, reason) in probes {
            let want = cell(state, reason, r.release.as_deref());
            match table.get(&(name.clone(), r.label.clone())) {
                Some(got) if *got == want => {}
                got => problems.push(format!(
                    "{name} on {}: README says {:?}, the run says {want:?}",
                    r.label,
                    got.map(String::as_str).unwrap_or("nothing")
                )),
            }
        }
    }
    problems
}

/// Cells of a markdown table row (`\|` kept inside a cell).
fn split_row(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push_str("\\|");
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        cells.push(cur.trim().to_string());
    }
    cells
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

/// The script the guest runs: mounts; the kernel's release, its probe
/// states (`memmon snapshot --probes --json`) and the format files of the
/// tracepoints memmon uses; then each test binary, one test at a time (two
/// TCG vCPUs), its output and exit status into `out`, skips into `skips`.
fn guest_script(
    out: &Path,
    memmon: &Path,
    tests: &[(String, PathBuf)],
    filters: &[String],
    fentry: bool,
    v2_boot: bool,
) -> String {
    let out = out.display();
    let mut s = String::new();
    if v2_boot {
        // The second boot: cgroup v2 with the memory controller, nothing else
        // to record.
        let _ = writeln!(
            s,
            "#!/bin/sh\n# Written by `cargo xtask vm-test`; the cgroup v2 boot.\n\
             exec >{out}/guest-v2.log 2>&1\n\
             mkdir -p {V2_MOUNT} && mount -t cgroup2 none {V2_MOUNT} \\\n\
               && echo +memory >{V2_MOUNT}/cgroup.subtree_control \\\n\
               || echo 'cannot mount cgroup2 with the memory controller'\n\
             mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
             mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing\n\
             # Page cache needs a real filesystem (the root is 9p): ext4 on zram.\n\
             if modprobe zram num_devices=1 && echo 768M >/sys/block/zram0/disksize \\\n\
                && mkfs.ext4 -q /dev/zram0 && mkdir -p /tmp/memmon-swap && mount /dev/zram0 /tmp/memmon-swap; then\n\
               export MEMMON_TEST_SWAP_DIR=/tmp/memmon-swap\n\
             fi\n\
             export MEMMON_REQUIRE_BPF=1 RUST_BACKTRACE=1 HOME=/tmp\n\
             export MEMMON_SKIP_LOG={out}/skips"
        );
    } else {
        guest_prelude(&mut s, &out.to_string(), memmon);
    }
    // The guests have no cargo: the tests run the workload built beside memmon.
    let _ = writeln!(
        s,
        "export {}={}",
        cmd::WORKLOAD_ENV,
        memmon.with_file_name("memmon-workload").display()
    );
    if fentry {
        let _ = writeln!(s, "export MEMMON_REQUIRE_FENTRY=1");
    }
    let filters: String = filters.iter().map(|f| format!(" '{f}'")).collect();
    for (name, exe) in tests {
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
    let done = if v2_boot { "done-v2" } else { "done" };
    let _ = writeln!(s, "echo finished >{out}/{done}");
    s
}

/// The first boot's setup: cgroups (v1 memory where the kernel has it),
/// bpffs, tracefs, swap space, the tracefs formats and the probe report.
fn guest_prelude(s: &mut String, out: &str, memmon: &Path) {
    let _ = writeln!(
        s,
        "#!/bin/sh\n# Written by `cargo xtask vm-test`; runs inside the guest.\n\
         exec >{out}/guest.log 2>&1\n\
         uname -a\n\
         uname -r >{out}/release\n\
         ls -d /sys/devices/system/node/node*\n\
         umount /sys/fs/cgroup 2>/dev/null\n\
         mount -t tmpfs cgroup_root /sys/fs/cgroup\n\
         mkdir -p /sys/fs/cgroup/memory\n\
         if ! mount -t cgroup -o memory memory /sys/fs/cgroup/memory; then\n\
           # No v1 memory controller (CONFIG_MEMCG_V1 off, as in 6.12): the\n\
           # memory cgroup tests run on cgroup v2.\n\
           echo 'no cgroup v1 memory controller: memory cgroup tests use cgroup v2 at {V2_MOUNT}'\n\
           rmdir /sys/fs/cgroup/memory\n\
           mkdir -p {V2_MOUNT} && mount -t cgroup2 none {V2_MOUNT} \\\n\
             && echo +memory >{V2_MOUNT}/cgroup.subtree_control && export MEMMON_CGROUP_ROOT={V2_MOUNT}\n\
         else\n\
           # What systemd does at boot, and the only mode 5.11+ has: usage\n\
           # and limits are hierarchical (5.10's root defaults to 0).\n\
           echo 1 >/sys/fs/cgroup/memory/memory.use_hierarchy 2>/dev/null\n\
         fi\n\
         mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
         mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing\n\
         # Swap files need a real filesystem (the root is 9p): ext4 on zram.\n\
         if modprobe zram num_devices=1 && echo 768M >/sys/block/zram0/disksize \\\n\
            && mkfs.ext4 -q /dev/zram0 && mkdir -p /tmp/memmon-swap && mount /dev/zram0 /tmp/memmon-swap; then\n\
           export MEMMON_TEST_SWAP_DIR=/tmp/memmon-swap\n\
         fi\n\
         for tp in {tps}; do\n\
           mkdir -p {out}/tracefs/events/$tp\n\
           cp /sys/kernel/tracing/events/$tp/format {out}/tracefs/events/$tp/format \
             || echo \"no tracepoint $tp\"\n\
         done\n\
         {memmon} snapshot --probes --json --duration 1 >{out}/probes.json 2>{out}/probes.err\n\
         export MEMMON_REQUIRE_BPF=1 MEMMON_REQUIRE_NUMA2=1 RUST_BACKTRACE=1 HOME=/tmp\n\
         export MEMMON_SKIP_LOG={out}/skips",
        tps = TRACEPOINTS.join(" "),
        memmon = memmon.display(),
    );
}

/// The guest's packages and virtme-ng, installed when missing.
pub fn ensure_vm() -> anyhow::Result<PathBuf> {
    let mut actions = Vec::new();
    packages::ensure(VM_PACKAGES, &mut actions)?;
    ensure_virtme_ng()
}

/// Boots `kernel` to run `out/script` until it writes `out/done` (the
/// test lanes here, and the stacks-guest benchmark); a guest that exits
/// before its script ever started (no `guest*.log`: qemu or virtme-ng gave
/// up at start, as a fresh machine's first 6.12 boot once did with status
/// 255 and an empty console) is booted once more, and says so.
pub fn boot(
    vng: &Path,
    kernel: &Path,
    out: &Path,
    limit: Duration,
    script: &str,
    done: &str,
) -> anyhow::Result<()> {
    let first = boot_once(vng, kernel, out, limit, script, done);
    let log = out.join(script.replace(".sh", ".log"));
    match first {
        Err(e) if !log.exists() => {
            let console = script.replace("guest", "console").replace(".sh", ".log");
            let kept = console.replace(".log", ".first-boot.log");
            let _ = std::fs::rename(out.join(&console), out.join(&kept));
            eprintln!(
                "vm-test: {e:#} before its script started (console kept as {kept}); booting it once more"
            );
            boot_once(vng, kernel, out, limit, script, done)
        }
        other => other,
    }
}

/// The guest kernel's own report of what went wrong (an oops, a panic, a
/// hung task), from its console: up to 24 lines from the first such line,
/// so that a CI log shows the cause without the file. Empty when the
/// console has none.
fn kernel_trouble(console: &Path) -> String {
    const MARKS: &[&str] = &[
        "Oops",
        "BUG:",
        "Kernel panic",
        "general protection fault",
        "blocked for more than",
        "watchdog:",
    ];
    let Ok(text) = std::fs::read(console) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    match lines
        .iter()
        .position(|l| MARKS.iter().any(|m| l.contains(m)))
    {
        Some(first) => {
            let end = lines.len().min(first + 24);
            format!(
                "; its console ({}) says:\n{}",
                console.display(),
                lines[first..end].join("\n")
            )
        }
        None => String::new(),
    }
}

/// One boot of the guest, waited for (killed past `limit`).
fn boot_once(
    vng: &Path,
    kernel: &Path,
    out: &Path,
    limit: Duration,
    script: &str,
    done: &str,
) -> anyhow::Result<()> {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = vng.parent() {
        let mut p = bin.as_os_str().to_owned();
        p.push(":");
        p.push(&path);
        path = p;
    }
    let qemu_numa = format!(
        "-object memory-backend-ram,id=m0,size={NODE_MIB}M -object memory-backend-ram,id=m1,size={NODE_MIB}M \
         -numa node,memdev=m0,cpus=0,nodeid=0 -numa node,memdev=m1,cpus=1,nodeid=1 -accel {TCG_ACCEL}"
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
        .arg(format!("sh {}/{script}", out.display()))
        .stdin(Stdio::null());
    // The guest's console (boot messages, terminal resets) goes to a file,
    // not into the test log.
    let console_name = script.replace("guest", "console").replace(".sh", ".log");
    let console = std::fs::File::create(out.join(&console_name))
        .with_context(|| format!("creating {}/{console_name}", out.display()))?;
    c.stdout(console.try_clone()?).stderr(console);
    eprintln!("+ {}", cmd::display(&c));
    let mut child = c.spawn().context("starting vng (virtme-ng)")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() && !out.join(done).exists() {
                bail!(
                    "the guest failed ({status}); see {}/{}{}",
                    out.display(),
                    script.replace(".sh", ".log"),
                    kernel_trouble(&out.join(&console_name))
                );
            }
            return Ok(());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the guest ran past {} min and was stopped; partial results in {}{}",
                limit.as_secs() / 60,
                out.display(),
                kernel_trouble(&out.join(&console_name))
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Counts the guest's results and prints failures and skips.
fn report(out: &Path, tests: &[(String, PathBuf)], wall: Duration) -> anyhow::Result<Totals> {
    let status = std::fs::read_to_string(out.join("status")).unwrap_or_default();
    let mut totals = Totals::default();
    let mut problems = Vec::new();
    for (name, _) in tests {
        let line = status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()));
        let log = std::fs::read_to_string(out.join(format!("{name}.log"))).unwrap_or_default();
        let mut t = Totals::default();
        for l in log.lines() {
            t.add_line(l);
        }
        totals.passed += t.passed;
        totals.failed += t.failed;
        let code = line.and_then(|l| l.split_whitespace().nth(1));
        let secs = line
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("?");
        eprintln!(
            "vm-test: {name}: {} passed, {} failed in {secs} s (exit {})",
            t.passed,
            t.failed,
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
                totals.failed += 1;
            }
        }
    }
    let skips = std::fs::read_to_string(out.join("skips")).unwrap_or_default();
    for line in totals.count_skips(&skips) {
        eprintln!("vm-test: skipped {line}");
    }
    eprintln!(
        "vm-test: {} ({:.1} min in the guest)",
        totals.summary(),
        wall.as_secs_f64() / 60.0
    );
    if !out.join("done").exists() {
        bail!("the guest did not finish; see {}/guest.log", out.display());
    }
    if totals.passed == 0 && totals.failed == 0 && totals.skipped == 0 {
        bail!("no test ran in the guest; see {}/guest.log", out.display());
    }
    if !problems.is_empty() {
        eprintln!(
            "vm-test: failing in the guest: {}; logs in {}",
            problems.join(", "),
            out.display()
        );
        totals.failed = totals.failed.max(1);
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_result_lines() {
        let log = "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored\n\
                   test result: FAILED. 1 passed; 3 failed; 0 ignored\n";
        let mut t = Totals::default();
        for l in log.lines() {
            t.add_line(l);
        }
        assert_eq!((t.passed, t.failed), (3, 3));
    }

    #[test]
    fn script_runs_each_binary_with_filters() {
        let s = guest_script(
            Path::new("/o"),
            Path::new("/t/memmon"),
            &[("faults".into(), PathBuf::from("/t/faults-1"))],
            &["minor".into()],
            true,
            false,
        );
        assert!(s.contains("/t/faults-1 --test-threads=1 --nocapture 'minor' >/o/faults.log"));
        assert!(s.contains("MEMMON_REQUIRE_FENTRY=1"));
        assert!(s.contains("mount -t cgroup -o memory memory /sys/fs/cgroup/memory"));
        assert!(s.contains("/t/memmon snapshot --probes --json --duration 1 >/o/probes.json"));
        assert!(s.contains("export MEMMON_SKIP_LOG=/o/skips"));
        assert!(s.contains("events/$tp/format"));
        // cgroup2 only where the v1 memory controller cannot be mounted.
        assert_eq!(s.matches("mount -t cgroup2").count(), 1, "{s}");
        assert!(s.contains("if ! mount -t cgroup -o memory memory /sys/fs/cgroup/memory; then"));
        assert!(s.contains("export MEMMON_CGROUP_ROOT=/tmp/memmon-cgroup2"));
    }

    fn run(label: &str, release: &str, probes: &[(&str, &str, &str)], skipped: u64) -> KernelRun {
        KernelRun {
            label: label.into(),
            release: Some(release.into()),
            totals: Totals {
                passed: 10,
                failed: 0,
                skipped,
            },
            probes: Some(
                probes
                    .iter()
                    .map(|(n, s, r)| (n.to_string(), s.to_string(), r.to_string()))
                    .collect(),
            ),
            in_matrix: true,
        }
    }

    #[test]
    fn the_readme_table_is_checked_cell_by_cell() {
        let runs = [
            run(
                "5.10",
                "5.10.0-32-amd64",
                &[
                    ("migrate_pages", "attached", ""),
                    (
                        "oom_kill",
                        "unavailable",
                        "tracepoint oom:mark_victim has no field `comm` on this kernel (5.10.0-32-amd64)",
                    ),
                ],
                1,
            ),
            run(
                "6.1",
                "6.1.0-50-amd64",
                &[
                    ("migrate_pages", "attached", ""),
                    ("oom_kill", "attached", ""),
                ],
                0,
            ),
        ];
        let block = matrix_block(&runs, false);
        assert!(
            block.contains("| probe | 5.10 | 6.1 |\n|---|---|---|\n"),
            "{block}"
        );
        assert!(
            block.contains(
                "| `oom_kill` | unavailable: tracepoint oom:mark_victim has no field `comm` on this kernel | attached |"
            ),
            "{block}"
        );
        assert!(
            block.contains("whole focused subset passes, nothing skipped: 6.1."),
            "{block}"
        );
        let readme = format!("# memmon\n\n{block}\nmore\n");
        assert_eq!(check_readme(&readme, &runs), Vec::<String>::new());
        let stale = readme.replace(
            "on this kernel | attached |",
            "on this kernel | unavailable: gone |",
        );
        let problems = check_readme(&stale, &runs);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("oom_kill on 6.1"), "{problems:?}");
        assert_eq!(check_readme("no table", &runs).len(), 1);
    }

    #[test]
    fn a_pipe_in_a_reason_stays_in_its_cell() {
        let c = cell("unavailable", "a | b", None);
        assert_eq!(c, "unavailable: a \\| b");
        assert_eq!(
            split_row(&format!("| `x` | {c} | attached |")),
            ["`x`", c.as_str(), "attached"]
        );
    }

    #[test]
    fn kernel_values_name_the_matrix_a_path_or_fail_clearly() {
        assert_eq!(parse_kernels(None).expect("default").len(), 1);
        let all = parse_kernels(Some("all")).expect("all");
        let labels: Vec<String> = all.iter().map(Kernel::label).collect();
        assert_eq!(labels, ["5.10", "6.1", "6.12"]);
        let e = parse_kernels(Some("4.19")).expect_err("not in the matrix");
        assert!(format!("{e}").contains("5.10, 6.1, 6.12"), "{e}");
    }

    #[test]
    fn v2_runs_boot_on_their_own_with_cgroup2() {
        let v2 = guest_script(
            Path::new("/o"),
            Path::new("/t/memmon"),
            &[("cgroupfs_v2".into(), PathBuf::from("/t/cg"))],
            &[],
            false,
            true,
        );
        let mount = v2
            .find("mount -t cgroup2 none /tmp/memmon-cgroup2")
            .expect("cgroup2 mount");
        let run = v2
            .find("MEMMON_CGROUP_ROOT=/tmp/memmon-cgroup2 /t/cg --test-threads=1 --nocapture >/o/cgroupfs_v2.log")
            .expect("v2 run");
        assert!(mount < run, "{v2}");
        assert!(
            !v2.contains("-o memory"),
            "no v1 memory mount in the v2 boot: {v2}"
        );
        assert!(v2.contains("echo finished >/o/done-v2"), "{v2}");
        assert!(v2.contains("exec >/o/guest-v2.log"), "{v2}");
        // Page cache in the v2 runs too: ext4 on zram, not the 9p root.
        assert!(
            v2.contains("export MEMMON_TEST_SWAP_DIR=/tmp/memmon-swap"),
            "{v2}"
        );
    }
}
