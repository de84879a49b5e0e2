//! `cargo xtask test`: formatting, lints, unit tests, the root integration
//! tests that load real probes (MEMMON_REQUIRE_BPF=1 makes a test that
//! cannot load them fail instead of skipping), then a short fuzz run.

use crate::{cmd, fuzz, packages, setup::BuildEnv};

/// Seconds per fuzz target in the test lane (`cargo xtask fuzz` runs longer).
const FUZZ_SECONDS: u32 = 10;

/// Runs every lane in order, stopping at the first failure.
pub fn run(env: &BuildEnv, extra: &[String]) -> anyhow::Result<()> {
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
    cmd::run(cmd::cargo(env).args(["test", "--workspace", "--lib", "--bins"]))?;
    let mut it = cmd::cargo(env);
    it.args(["test", "--package", "memmon", "--tests"]);
    if !extra.is_empty() {
        it.arg("--").args(extra);
        // A filtered run is for iterating on some tests: skip fuzzing.
        return cmd::run(&mut it);
    }
    cmd::run(&mut it)?;
    fuzz::run(env, FUZZ_SECONDS, &[])
}
