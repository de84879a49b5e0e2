//! `cargo xtask bench`: benchmarks, A/B interleaved, written to
//! BENCHMARKS.md with the machine, kernel and commands.

use crate::{packages, setup::BuildEnv};

/// Runs the benchmarks.
pub fn run(_env: &BuildEnv, _quick: bool) -> anyhow::Result<()> {
    let mut actions = Vec::new();
    packages::ensure(packages::BENCH_PACKAGES, &mut actions)?;
    anyhow::bail!("benchmarks are not written yet (see the benchmarks issue)")
}
