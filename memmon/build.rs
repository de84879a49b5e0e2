//! Builds the kernel programs (memmon-ebpf) for the BPF target with aya-build
//! and leaves the object in OUT_DIR, where `probes::loader` embeds it.
//!
//! Which toolchain builds them is decided by `cargo xtask setup` and written
//! to `.tools/ebpf-toolchain` (`nightly` with rust-src, or a Debian rustc
//! linked into rustup); `MEMMON_EBPF_TOOLCHAIN` overrides it. bpf-linker is
//! looked up in `.tools/bin` first.
use std::{env, fs, path::PathBuf};

use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("memmon crate has no parent directory"))?
        .to_path_buf();
    let tools = workspace.join(".tools");
    let toolchain_file = tools.join("ebpf-toolchain");
    println!("cargo:rerun-if-env-changed=MEMMON_EBPF_TOOLCHAIN");
    println!("cargo:rerun-if-changed={}", toolchain_file.display());

    let toolchain = env::var("MEMMON_EBPF_TOOLCHAIN")
        .ok()
        .or_else(|| fs::read_to_string(&toolchain_file).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "nightly".to_string());

    let tools_bin = tools.join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![tools_bin];
    paths.extend(env::split_paths(&path));
    let new_path = env::join_paths(paths)?;
    // SAFETY: the build script is single-threaded at this point.
    unsafe {
        env::set_var("PATH", new_path);
        if toolchain != "nightly" {
            // A stable (Debian) rustc needs this to build `core` for BPF.
            env::set_var("RUSTC_BOOTSTRAP", "1");
        }
    }

    let ebpf_dir = workspace.join("memmon-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    let package = Package {
        name: "memmon-ebpf",
        root_dir,
        ..Default::default()
    };
    let tc = if toolchain == "nightly" {
        Toolchain::Nightly
    } else {
        Toolchain::Custom(&toolchain)
    };
    aya_build::build_ebpf([package], tc)
}
