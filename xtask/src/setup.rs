//! `cargo xtask setup` and the set-up every other task runs first: eBPF
//! toolchain, bpf-linker, tracefs, and (for tests) Debian packages. Each
//! step checks before acting, so a second run does nothing.

use std::{fs, path::Path, process::Command};

use crate::{
    cmd::{self, BuildEnv},
    packages, toolchain,
};

/// Runs the set-up. `full` (the `setup` task, tests, benches) also
/// installs the Debian packages the tests use and reports what it did.
pub fn run(full: bool) -> anyhow::Result<BuildEnv> {
    let mut actions = Vec::new();
    fs::create_dir_all(cmd::tools_dir())?;
    let tc = toolchain::ensure_compiler(&mut actions)?;
    toolchain::ensure_bpf_linker(&tc, &mut actions)?;
    let choice = cmd::tools_dir().join("ebpf-toolchain");
    if fs::read_to_string(&choice).ok().as_deref().map(str::trim) != Some(tc.as_str()) {
        fs::write(&choice, format!("{tc}\n"))?;
        actions.push(format!("eBPF toolchain set to {tc} ({})", choice.display()));
    }
    ensure_tracefs(&mut actions)?;
    if full {
        packages::ensure(packages::TEST_PACKAGES, &mut actions)?;
    }
    if full || !actions.is_empty() {
        if actions.is_empty() {
            eprintln!(
                "setup: nothing to do (eBPF toolchain {tc}, bpf-linker in .tools/bin, tracefs mounted, packages present)"
            );
        } else {
            for a in &actions {
                eprintln!("setup: {a}");
            }
        }
    }
    Ok(BuildEnv { ebpf_toolchain: tc })
}

fn ensure_tracefs(actions: &mut Vec<String>) -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events").exists() {
        return Ok(());
    }
    cmd::run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))?;
    actions.push("mounted tracefs at /sys/kernel/tracing".into());
    Ok(())
}
