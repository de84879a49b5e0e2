//! `cargo xtask test`: formatting, lints, unit tests, the root integration
//! tests that load real probes (MEMMON_REQUIRE_BPF=1 makes a test that
//! cannot load them fail instead of skipping), a short fuzz run, then the
//! package lane (`dist` + `package_test`: the .deb installed and purged,
//! the image inspected, the Kubernetes manifests validated), then the
//! focused integration tests in a qemu guest on Debian's kernel with two
//! NUMA nodes (`vm_test`). Ends with one line counting every test that ran:
//! `test: N passed, N failed, N skipped` (a test that skipped, recorded by
//! the tests' `skip` helper in `$MEMMON_SKIP_LOG`, counts as skipped, not
//! as passed).

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{self, BuildEnv},
    dist, fuzz, package_test, packages,
    totals::{SKIP_LOG_ENV, Totals},
    vm_test,
};

/// Seconds per fuzz target in the test lane (`cargo xtask fuzz` runs longer).
const FUZZ_SECONDS: u32 = 10;

/// Runs a cargo test command, echoing its output and counting results.
fn run_counted(mut c: std::process::Command, totals: &mut Totals) -> anyhow::Result<()> {
    eprintln!("+ {}", cmd::display(&c));
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let out = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        println!("{line}");
        totals.add_line(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        totals.failed = totals.failed.max(1);
        println!("test: {}", totals.summary());
        bail!("{} failed: {status}", cmd::display(&c));
    }
    Ok(())
}

/// Runs the root integration tests (command `c`) with a fresh skip log,
/// then counts its records as skipped and lists them.
fn run_with_skips(mut c: std::process::Command, totals: &mut Totals) -> anyhow::Result<()> {
    let log = cmd::workspace().join("target/test-skips.log");
    let _ = std::fs::remove_file(&log);
    c.env(SKIP_LOG_ENV, &log);
    let result = run_counted(c, totals);
    let skips = totals.add_skips(&std::fs::read_to_string(&log).unwrap_or_default());
    for (test, reason) in &skips {
        eprintln!("test: skipped {test}: {reason}");
    }
    result
}

/// Runs every lane in order, stopping at the first failure; `vm`: end
/// with the focused subset in a qemu guest (two NUMA nodes, Debian's
/// kernel), skipped when test names were given.
pub fn run(env: &BuildEnv, extra: &[String], vm: bool) -> anyhow::Result<()> {
    let mut actions = Vec::new();
    packages::ensure(packages::TEST_PACKAGES, &mut actions)?;
    cmd::run(cmd::cargo(env).args(["fmt", "--all", "--", "--check"]))?;
    cmd::run(cmd::cargo(env).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut totals = Totals::default();
    let mut unit = cmd::cargo(env);
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "memmon",
        "--lib",
        "--bins",
    ]);
    run_counted(unit, &mut totals)?;
    // Built once here rather than by each test binary.
    let workload = cmd::build_workload(env, false)?;
    let mut it = cmd::cargo(env);
    it.env(cmd::WORKLOAD_ENV, &workload);
    // memmon's unit tests run here too (with its integration tests).
    it.args(["test", "--package", "memmon", "--lib", "--bins", "--tests"]);
    // As root, a probe test that cannot load its probes fails rather than
    // skips (MEMMON_REQUIRE_BPF=0 allows the skip, e.g. in a container).
    // SAFETY: geteuid has no inputs.
    let root = unsafe { libc::geteuid() } == 0;
    if std::env::var_os("MEMMON_REQUIRE_BPF").is_none() && root {
        it.env("MEMMON_REQUIRE_BPF", "1");
    }
    if !extra.is_empty() {
        it.arg("--").args(extra);
        run_with_skips(it, &mut totals)?;
    } else {
        run_with_skips(it, &mut totals)?;
        fuzz::run(env, FUZZ_SECONDS, &[])?;
        // The package lane: dist's .deb installed, checked and purged
        // here; the image inspected; the Kubernetes manifests validated.
        let artifacts = dist::run(env, false)?;
        let o = package_test::run_checks(&artifacts)?;
        totals.passed += o.passed;
        totals.failed += o.failures.len() as u64;
        for why in &o.skipped {
            println!("package: skipped {why}");
        }
        if !o.failures.is_empty() {
            println!("test: {} passed, {} failed", totals.passed, totals.failed);
            bail!("package checks failed: {}", o.failures.join("; "));
        }
        if vm {
            let vm = vm_test::run(
                env,
                &vm_test::Options {
                    all: false,
                    kernels: vm_test::parse_kernels(Some(vm_test::CI_KERNELS))?,
                    filters: Vec::new(),
                },
            )?;
            totals.passed += vm.passed;
            totals.failed += vm.failed;
            totals.skipped += vm.skipped;
            if vm.failed > 0 {
                println!("test: {}", totals.summary());
                bail!("{} failed in the qemu guests (target/vm-test)", vm.failed);
            }
        }
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    println!("test: {}", totals.summary());
    Ok(())
}
