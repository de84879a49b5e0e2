//! The eBPF toolchain: a compiler that can build `core` for
//! `bpfel-unknown-none`, and bpf-linker.
//!
//! Route 0 (upstream): rustup's nightly with rust-src. Route 1 (fallback,
//! ../shared/TOOLCHAIN.md): Debian's rustc-web 1.96 with its sources,
//! linked into rustup as `memmon-debian`, built with RUSTC_BOOTSTRAP=1.
//! bpf-linker 0.13 is built into `.tools/bin` against LLVM 22: the shared
//! library a rustup toolchain ships, or Debian's llvm-22-dev.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{cmd, packages};

/// Name of the rustup toolchain linked to Debian's compiler.
const DEBIAN_TOOLCHAIN: &str = "memmon-debian";
/// bpf-linker version known to work with LLVM 22 here.
const BPF_LINKER: &str = "bpf-linker@0.13.0";

/// Picks (installing if needed) the toolchain that builds the eBPF crate.
/// `MEMMON_EBPF_ROUTE=debian` forces the fallback.
pub fn ensure_compiler(actions: &mut Vec<String>) -> anyhow::Result<String> {
    let forced_debian = std::env::var("MEMMON_EBPF_ROUTE").as_deref() == Ok("debian");
    if !forced_debian {
        match nightly_with_src(actions) {
            Ok(()) => return Ok("nightly".into()),
            Err(e) => {
                eprintln!("xtask: nightly with rust-src unavailable ({e:#}); using Debian's rustc")
            }
        }
    }
    debian_toolchain(actions)?;
    Ok(DEBIAN_TOOLCHAIN.into())
}

fn sysroot(toolchain: &str) -> Option<PathBuf> {
    cmd::output(Command::new("rustup").args(["run", toolchain, "rustc", "--print", "sysroot"]))
        .map(|s| PathBuf::from(s.trim()))
}

fn has_core_src(sysroot: &std::path::Path) -> bool {
    sysroot
        .join("lib/rustlib/src/rust/library/core/Cargo.toml")
        .exists()
}

fn nightly_with_src(actions: &mut Vec<String>) -> anyhow::Result<()> {
    if sysroot("nightly").is_none() {
        cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
        actions.push("installed rustup nightly with rust-src".into());
    }
    let root = sysroot("nightly").context("nightly toolchain still missing")?;
    if !has_core_src(&root) {
        cmd::run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
        actions.push("added rust-src to nightly".into());
    }
    if !has_core_src(&root) {
        bail!("rust-src not found under {}", root.display());
    }
    Ok(())
}

fn debian_toolchain(actions: &mut Vec<String>) -> anyhow::Result<()> {
    if sysroot(DEBIAN_TOOLCHAIN).is_some_and(|r| has_core_src(&r)) {
        return Ok(());
    }
    packages::ensure(&["rustc-web", "cargo-web", "rust-web-src"], actions)?;
    let dir = cmd::tools_dir().join("debian-toolchain");
    fs::create_dir_all(dir.join("bin"))?;
    fs::create_dir_all(dir.join("lib"))?;
    for tool in ["cargo", "rustc", "rustdoc"] {
        let link = dir.join("bin").join(tool);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    cmd::run(
        Command::new("rustup")
            .arg("toolchain")
            .arg("link")
            .arg(DEBIAN_TOOLCHAIN)
            .arg(&dir),
    )?;
    actions.push(format!(
        "linked Debian's rustc into rustup as {DEBIAN_TOOLCHAIN}"
    ));
    let root = sysroot(DEBIAN_TOOLCHAIN).context("linked toolchain does not run")?;
    if !has_core_src(&root) {
        bail!(
            "Debian's rust-web-src did not provide core sources under {}",
            root.display()
        );
    }
    Ok(())
}

/// `.tools/bin/bpf-linker`.
pub fn bpf_linker_path() -> PathBuf {
    cmd::tools_dir().join("bin/bpf-linker")
}

fn bpf_linker_works() -> bool {
    cmd::output(Command::new(bpf_linker_path()).arg("--version")).is_some()
}

/// Builds bpf-linker into `.tools` unless a working one is there.
pub fn ensure_bpf_linker(toolchain: &str, actions: &mut Vec<String>) -> anyhow::Result<()> {
    if bpf_linker_works() {
        return Ok(());
    }
    let tools = cmd::tools_dir();
    let llvm_prefix = llvm_prefix(toolchain, actions)?;
    let install = |cargo_toolchain: Option<&str>| {
        let mut c = Command::new("cargo");
        if let Some(t) = cargo_toolchain {
            c.arg(format!("+{t}"));
        }
        c.args([
            "install",
            "--locked",
            BPF_LINKER,
            "--no-default-features",
            "--features",
            "llvm-22",
            "--force",
            "--root",
        ])
        .arg(&tools)
        .env("LLVM_PREFIX", &llvm_prefix)
        .env_remove("RUSTC")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(std::env::temp_dir());
        cmd::run(&mut c)
    };
    install(None).or_else(|e| {
        eprintln!(
            "xtask: building bpf-linker with the default cargo failed ({e:#}); trying nightly"
        );
        install(Some("nightly"))
    })?;
    if !bpf_linker_works() {
        bail!(
            "bpf-linker was built but does not run: {}",
            bpf_linker_path().display()
        );
    }
    actions.push(format!(
        "built {BPF_LINKER} into {}",
        tools.join("bin").display()
    ));
    Ok(())
}

/// An LLVM 22 to link bpf-linker against: the shared library rustup's
/// toolchain ships (linked into .tools/llvm/lib), else Debian's llvm-22-dev.
fn llvm_prefix(toolchain: &str, actions: &mut Vec<String>) -> anyhow::Result<PathBuf> {
    for tc in [toolchain, "nightly", "stable"] {
        let Some(root) = sysroot(tc) else { continue };
        let lib = root.join("lib");
        let Ok(entries) = fs::read_dir(&lib) else {
            continue;
        };
        let llvm = entries.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.22"))
        });
        if let Some(llvm) = llvm {
            let prefix = cmd::tools_dir().join("llvm");
            let dest = prefix.join("lib");
            fs::create_dir_all(&dest)?;
            let name = llvm.file_name().context("LLVM library has no name")?;
            for link in [dest.join(name), dest.join("libLLVM.so")] {
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(&llvm, &link)
                    .with_context(|| format!("linking {}", link.display()))?;
            }
            return Ok(prefix);
        }
    }
    packages::ensure(&["llvm-22-dev"], actions)?;
    Ok(PathBuf::from("/usr/lib/llvm-22"))
}
