//! The container image: built with buildah FROM scratch holding the
//! release binary at /usr/bin/memmon and exactly the shared libraries
//! `ldd` lists for it (with the dynamic loader), entrypoint
//! `memmon daemon --listen 0.0.0.0:9755`, tagged `memmon:VERSION` (the
//! tag deploy/kubernetes uses) and saved as an OCI archive in target/dist/.
//! [`inspect`] opens such an archive without a container runtime: the
//! entrypoint from its config, the layer's files, and `memmon --version`
//! run from the unpacked root with chroot (so a missing library fails it).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{self, VERSION},
    packages,
};

/// Debian packages that build the image (and try to run it).
pub const IMAGE_PACKAGES: &[&str] = &["buildah", "podman"];

/// The image's tag.
pub fn tag() -> String {
    format!("memmon:{VERSION}")
}

/// The entrypoint the image runs.
pub const ENTRYPOINT: &[&str] = &["/usr/bin/memmon", "daemon", "--listen", "0.0.0.0:9755"];

/// buildah with its own storage under target/ (vfs: works without overlay
/// support and without fuse, as on this machine).
fn buildah() -> Command {
    let store = cmd::workspace().join("target/containers");
    let mut c = Command::new("buildah");
    c.arg("--root")
        .arg(store.join("storage"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args(["--storage-driver", "vfs"]);
    c
}

/// The absolute library paths `ldd bin` lists (the loader included).
fn libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = cmd::output(Command::new("ldd").arg(bin)).context("ldd failed")?;
    let mut libs: Vec<PathBuf> = out
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"; vdso has no path.
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    libs.sort();
    libs.dedup();
    if libs.is_empty() {
        bail!("ldd listed no libraries for {}", bin.display());
    }
    Ok(libs)
}

/// Stdout of `c`, failing with its stderr.
fn output(c: &mut Command) -> anyhow::Result<String> {
    eprintln!("+ {}", cmd::display(c));
    let out = c
        .output()
        .with_context(|| format!("cannot start {}", cmd::display(c)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            cmd::display(c),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds the image and writes target/dist/memmon-VERSION.oci.tar.
pub fn build(bin: &Path, dist: &Path) -> anyhow::Result<PathBuf> {
    let mut actions = Vec::new();
    packages::ensure(IMAGE_PACKAGES, &mut actions)?;
    let libs = libraries(bin)?;
    let ctr = output(buildah().args(["from", "--name", "memmon-dist-build", "scratch"])).or_else(
        |_| {
            // A container left by an interrupted run: start over.
            let _ = output(buildah().args(["rm", "memmon-dist-build"]));
            output(buildah().args(["from", "--name", "memmon-dist-build", "scratch"]))
        },
    )?;
    let result = (|| -> anyhow::Result<PathBuf> {
        let stripped = dist.join("memmon.image-bin");
        fs::copy(bin, &stripped)?;
        cmd::run(Command::new("strip").arg("--strip-debug").arg(&stripped))?;
        output(
            buildah()
                .args(["copy", "--chmod", "0755", &ctr])
                .arg(&stripped)
                .arg("/usr/bin/memmon"),
        )?;
        let _ = fs::remove_file(&stripped);
        for lib in &libs {
            // Keep each library at the path the loader looks it up by.
            let real = fs::canonicalize(lib).with_context(|| format!("{}", lib.display()))?;
            output(buildah().args(["copy", &ctr]).arg(&real).arg(lib))?;
        }
        // /tmp for the daemon, the mount points the DaemonSet uses.
        for dir in ["tmp", "proc", "sys", "etc"] {
            let empty = dist.join("image-empty");
            fs::create_dir_all(&empty)?;
            output(
                buildah()
                    .args(["copy", &ctr])
                    .arg(&empty)
                    .arg(format!("/{dir}")),
            )?;
        }
        let entry = serde_json::to_string(ENTRYPOINT)?;
        output(buildah().args([
            "config",
            "--entrypoint",
            &entry,
            "--cmd",
            "",
            "--port",
            "9755/tcp",
            "--label",
            &format!("org.opencontainers.image.version={VERSION}"),
            "--label",
            "org.opencontainers.image.title=memmon",
            &ctr,
        ]))?;
        output(buildah().args(["commit", "--rm", &ctr, &tag()]))?;
        let archive = dist.join(format!("memmon-{VERSION}.oci.tar"));
        let _ = fs::remove_file(&archive);
        output(buildah().args(["push", &tag()]).arg(format!(
            "oci-archive:{}:{}",
            archive.display(),
            tag()
        )))?;
        Ok(archive)
    })();
    if result.is_err() {
        let _ = output(buildah().args(["rm", &ctr]));
    }
    result
}

/// How [`run_like_the_daemonset`] went.
pub enum RunOutcome {
    /// The container ran; `memmon --version` printed this.
    Ran(String),
    /// The OCI runtime refused to start any container here (why).
    CannotRunHere(String),
}

/// `podman run` of the built image with exactly the DaemonSet's security
/// context and mounts (capabilities BPF, PERFMON, SYS_PTRACE,
/// DAC_READ_SEARCH, all others dropped; host PID namespace; read-only
/// root; tracefs, bpffs, BTF, cgroupfs), running `memmon --version`.
/// On this machine the runtime cannot set the container's rlimits (no
/// CAP_SYS_RESOURCE in the bounding set): that is reported, not hidden.
pub fn run_like_the_daemonset() -> anyhow::Result<RunOutcome> {
    let store = cmd::workspace().join("target/containers");
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(store.join("storage"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "run",
            "--rm",
            "--network",
            "none",
        ])
        .args([
            "--cap-drop=ALL",
            "--cap-add=BPF,PERFMON,SYS_PTRACE,DAC_READ_SEARCH",
        ])
        .args([
            "--pid=host",
            "--read-only",
            "--security-opt",
            "no-new-privileges",
        ])
        .args(["-v", "/sys/kernel/tracing:/sys/kernel/tracing:ro"])
        .args(["-v", "/sys/fs/bpf:/sys/fs/bpf"])
        .args(["-v", "/sys/kernel/btf:/sys/kernel/btf:ro"])
        .args(["-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"])
        .args(["--entrypoint", "/usr/bin/memmon"])
        .arg(format!("localhost/{}", tag()))
        .arg("--version");
    eprintln!("+ {}", cmd::display(&c));
    let out = c.output().context("starting podman")?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() {
        return Ok(RunOutcome::Ran(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ));
    }
    if stderr.contains("setrlimit") && stderr.contains("Operation not permitted") {
        return Ok(RunOutcome::CannotRunHere(format!(
            "the OCI runtime cannot start containers on this machine: {stderr}"
        )));
    }
    bail!("podman run failed ({}): {stderr}", out.status)
}

/// What [`inspect`] found in an image archive.
pub struct Inspection {
    /// The config's Entrypoint.
    pub entrypoint: Vec<String>,
    /// The `org.opencontainers.image.ref.name` of the manifest.
    pub ref_name: String,
    /// `memmon --version` run from the unpacked root (chroot).
    pub version_output: String,
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `sha256:abc` → blobs/sha256/abc under `dir`.
fn blob(dir: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let (alg, hex) = digest
        .split_once(':')
        .with_context(|| format!("bad digest {digest}"))?;
    Ok(dir.join("blobs").join(alg).join(hex))
}

/// Unpacks the OCI archive into `work` and checks it from the files alone.
pub fn inspect(archive: &Path, work: &Path) -> anyhow::Result<Inspection> {
    let _ = fs::remove_dir_all(work);
    let layout = work.join("layout");
    fs::create_dir_all(&layout)?;
    cmd::run(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout),
    )?;
    let index = read_json(&layout.join("index.json"))?;
    let desc = &index["manifests"][0];
    let ref_name = desc["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let manifest = read_json(&blob(
        &layout,
        desc["digest"]
            .as_str()
            .context("index.json: no manifest digest")?,
    )?)?;
    let config = read_json(&blob(
        &layout,
        manifest["config"]["digest"]
            .as_str()
            .context("manifest: no config digest")?,
    )?)?;
    let entrypoint = config["config"]["Entrypoint"]
        .as_array()
        .context("config: no Entrypoint")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let rootfs = work.join("rootfs");
    fs::create_dir_all(&rootfs)?;
    for layer in manifest["layers"]
        .as_array()
        .context("manifest: no layers")?
    {
        let path = blob(&layout, layer["digest"].as_str().context("layer digest")?)?;
        // tar detects the compression (gzip or none) itself.
        cmd::run(
            Command::new("tar")
                .arg("-xf")
                .arg(&path)
                .arg("-C")
                .arg(&rootfs),
        )?;
    }
    let out = Command::new("chroot")
        .arg(&rootfs)
        .args(["/usr/bin/memmon", "--version"])
        .output()
        .context("chroot into the unpacked image")?;
    if !out.status.success() {
        bail!(
            "memmon --version in the image's root failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Inspection {
        entrypoint,
        ref_name,
        version_output: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    })
}
