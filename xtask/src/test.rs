//! `cargo xtask test`: formatting, lints, unit tests, the root integration
//! tests that load real probes (MEMMON_REQUIRE_BPF=1 makes a test that
//! cannot load them fail instead of skipping), a short fuzz run, then the
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

use crate::{cmd, fuzz, packages, setup::BuildEnv, vm_test};

/// Seconds per fuzz target in the test lane (`cargo xtask fuzz` runs longer).
const FUZZ_SECONDS: u32 = 10;

/// Passed/failed/skipped totals over cargo test's `test result:` lines
/// and the tests' skip log.
#[derive(Default)]
pub struct Totals {
    /// Tests passed.
    pub passed: u64,
    /// Tests failed.
    pub failed: u64,
    /// Tests that reported themselves skipped (counted by cargo as passed).
    pub skipped: u64,
}

impl Totals {
    /// The closing line: `test: N passed, N failed, N skipped`.
    pub fn line(&self) -> String {
        format!("test: {}", self.summary())
    }

    /// Moves the skips listed in `log` (one line each) from passed to
    /// skipped, printing them.
    pub fn take_skips(&mut self, log: &std::path::Path) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in self.count_skips(&text) {
            println!("skipped: {line}");
        }
        let _ = std::fs::remove_file(log);
    }

    /// Moves the skips in a skip log's `text` (one `TEST: REASON` line
    /// each) from passed to skipped; returns those lines.
    pub fn count_skips<'a>(&mut self, text: &'a str) -> Vec<&'a str> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        self.skipped += lines.len() as u64;
        self.passed = self.passed.saturating_sub(lines.len() as u64);
        lines
    }
}

impl Totals {
    /// Adds one line of cargo test output (other lines are ignored).
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        let num = |word: &str| {
            rest.split(';')
                .find_map(|part| part.trim().strip_suffix(word).map(str::trim))
                .and_then(|n| n.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.passed += num("passed");
        self.failed += num("failed");
    }

    /// `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

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
        println!("{}", totals.line());
        bail!("{} failed: {status}", cmd::display(&c));
    }
    Ok(())
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
    // Tests that skip write why to this file; the closing line counts them.
    let skip_log = cmd::workspace().join("target/test-skips.log");
    let _ = std::fs::remove_file(&skip_log);
    // As root, a probe test that cannot load its probes fails rather than
    // skips (MEMMON_REQUIRE_BPF=0 allows the skip, e.g. in a container).
    // SAFETY: geteuid has no inputs.
    let root = unsafe { libc::geteuid() } == 0;
    let require_bpf = std::env::var("MEMMON_REQUIRE_BPF")
        .unwrap_or_else(|_| if root { "1" } else { "0" }.to_string());
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
    let mut it = cmd::cargo(env);
    // memmon's unit tests run here too (with its integration tests).
    it.args(["test", "--package", "memmon", "--lib", "--bins", "--tests"]);
    it.env("MEMMON_SKIP_LOG", &skip_log)
        .env("MEMMON_REQUIRE_BPF", &require_bpf);
    if !extra.is_empty() {
        it.arg("--").args(extra);
        let r = run_counted(it, &mut totals);
        totals.take_skips(&skip_log);
        r?;
    } else {
        let r = run_counted(it, &mut totals);
        totals.take_skips(&skip_log);
        r?;
        fuzz::run(env, FUZZ_SECONDS, &[])?;
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
                println!("{}", totals.line());
                bail!("{} failed in the qemu guests (target/vm-test)", vm.failed);
            }
        }
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    println!("{}", totals.line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cargo_result_lines() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 37 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s");
        t.add_line(
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!((t.passed, t.failed), (39, 1));
        let dir = std::env::temp_dir().join(format!("xtask-skips-{}", std::process::id()));
        std::fs::write(&dir, "a: needs root\nb: no fentry\n").expect("write");
        t.take_skips(&dir);
        assert_eq!((t.passed, t.failed, t.skipped), (37, 1, 2));
        assert_eq!(t.line(), "test: 37 passed, 1 failed, 2 skipped");
    }
}
