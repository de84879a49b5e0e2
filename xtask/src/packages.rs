//! Debian packages the tests and benchmarks use, installed when missing.

use std::process::Command;

use crate::cmd;

/// Packages the root integration tests need.
pub const TEST_PACKAGES: &[&str] = &[
    "smem",       // PSS reference for the procfs tests
    "prometheus", // a real scraper and promtool for the daemon tests
    "tmux",       // drives `memmon top` in the TUI test
    "numactl",    // NUMA binding in the NUMA tests
    "systemd",    // systemd-analyze verify/security for the unit file
    "golang-go",  // `go tool pprof` reads memmon's pprof in the resident test
    "gcc",        // builds the resident test's C workloads
];

/// Extra packages for `cargo xtask bench`.
pub const BENCH_PACKAGES: &[&str] = &[
    "bpftrace",
    "wrk",
    "hyperfine",
    "prometheus-process-exporter",
    "prometheus-node-exporter",
];

/// True when dpkg reports `pkg` installed.
fn installed(pkg: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs whichever of `pkgs` are missing; records what it did.
pub fn ensure(pkgs: &[&str], actions: &mut Vec<String>) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)?;
    actions.push(format!("installed Debian packages: {}", missing.join(" ")));
    Ok(())
}

/// `apt-get update` then `apt-get install -y` of `pkgs`.
pub fn apt_install(pkgs: &[&str]) -> anyhow::Result<()> {
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(pkgs),
    )
}
