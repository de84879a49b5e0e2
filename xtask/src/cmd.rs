//! Running commands: echo them, fail with the command line on error, the
//! environment builds run in, and the workspace paths and version every
//! task uses.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// What builds need in their environment.
pub struct BuildEnv {
    /// rustup toolchain that builds the eBPF crate.
    pub ebpf_toolchain: String,
}

impl BuildEnv {
    /// Puts `.tools/bin` first on PATH and names the eBPF toolchain.
    pub fn apply(&self, c: &mut Command) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![tools_dir().join("bin")];
        paths.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            c.env("PATH", joined);
        }
        c.env("MEMMON_EBPF_TOOLCHAIN", &self.ebpf_toolchain);
    }
}

/// The version every artifact carries: the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The workspace root (parent of xtask/).
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// `.tools/` in the workspace: bpf-linker, LLVM links, toolchain choice.
pub fn tools_dir() -> PathBuf {
    workspace().join(".tools")
}

/// Runs `cmd`, echoing it; errors carry the command line.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", display(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or None when it fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line as text.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `cargo` from the toolchain running xtask, in the workspace, with the
/// eBPF build environment.
pub fn cargo(env: &BuildEnv) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(workspace());
    env.apply(&mut c);
    c
}

/// `cargo build -p memmon --bins [--release]`.
pub fn build_memmon(env: &BuildEnv, release: bool) -> anyhow::Result<()> {
    let mut c = cargo(env);
    c.args(["build", "--package", "memmon", "--bins"]);
    if release {
        c.arg("--release");
    }
    run(&mut c)
}

/// The environment variable the root tests read the workload's path from
/// (`memmon/tests/common`: without it they build the workload themselves).
pub const WORKLOAD_ENV: &str = "MEMMON_WORKLOAD";

/// `cargo build -p memmon-workload [--release]`: the test workload
/// (memmon/workload, not part of the product); returns its path.
pub fn build_workload(env: &BuildEnv, release: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo(env);
    c.args(["build", "--package", "memmon-workload"]);
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    Ok(binary("memmon-workload", release))
}

/// Path of a built binary.
pub fn binary(name: &str, release: bool) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target
        .join(if release { "release" } else { "debug" })
        .join(name)
}

/// Runs the built memmon with `args`, passing its exit status through.
pub fn run_memmon(release: bool, args: &[String]) -> anyhow::Result<()> {
    let bin = binary("memmon", release);
    let status = Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if !status.success() {
        bail!("memmon exited with {status}");
    }
    Ok(())
}
