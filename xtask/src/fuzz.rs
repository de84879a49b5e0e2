//! `cargo xtask fuzz`: every cargo-fuzz target in memmon/fuzz, each for a
//! while (default 60 s; `cargo xtask test` runs them for a few seconds).
//! cargo-fuzz is installed into `.tools` on first use; it needs a nightly
//! (or the Debian compiler with RUSTC_BOOTSTRAP=1), the eBPF toolchain.

use std::process::Command;

use anyhow::Context as _;

use crate::cmd::{self, BuildEnv};

const CARGO_FUZZ: &str = "cargo-fuzz@0.13.2";

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let bin = cmd::tools_dir().join("bin/cargo-fuzz");
    if cmd::output(Command::new(&bin).arg("--version")).is_some() {
        return Ok(());
    }
    cmd::run(
        Command::new("cargo")
            .args(["install", "--locked", CARGO_FUZZ, "--root"])
            .arg(cmd::tools_dir())
            .env_remove("CARGO_TARGET_DIR")
            .current_dir(std::env::temp_dir()),
    )
}

fn fuzz_cmd(env: &BuildEnv) -> Command {
    let mut c = Command::new("cargo");
    c.arg(format!("+{}", env.ebpf_toolchain));
    c.arg("fuzz");
    c.current_dir(cmd::workspace().join("memmon"));
    env.apply(&mut c);
    if env.ebpf_toolchain != "nightly" {
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    c
}

/// Runs `targets` (all when empty) for `seconds` each.
pub fn run(env: &BuildEnv, seconds: u32, targets: &[String]) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let targets: Vec<String> = if targets.is_empty() {
        let list = cmd::output(fuzz_cmd(env).arg("list")).context("cargo fuzz list failed")?;
        list.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else {
        targets.to_vec()
    };
    for t in &targets {
        let mut c = fuzz_cmd(env);
        c.args(["run", t, "--", &format!("-max_total_time={seconds}")]);
        cmd::run(&mut c)?;
    }
    eprintln!(
        "fuzz: {} target(s) ran {seconds} s each without a crash",
        targets.len()
    );
    Ok(())
}
