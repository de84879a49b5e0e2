//! The kernels of the vm-test matrix: Debian's stock amd64 kernels of three
//! releases, each fetched once with apt-get from a sources list of its own
//! (the machine's sources are never changed) and unpacked with `dpkg-deb -x`
//! into `.tools/kernels/VERSION`, modules included: the guest runs on the
//! host's root, whose /lib/modules has nothing for these kernels, so
//! virtme-ng finds the modules next to the image (`VERSION/lib/modules` or
//! `VERSION/usr/lib/modules`) and links them into the guest's /lib/modules.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::cmd;

/// One kernel of the matrix: a Debian release's amd64 kernel package.
#[derive(Clone, Copy, Debug)]
pub struct Debian {
    /// What `--kernel` names it by.
    pub version: &'static str,
    /// The Debian release that ships it.
    pub suite: &'static str,
    /// Package name around its ABI number: `PREFIX<digits>SUFFIX`.
    prefix: &'static str,
    suffix: &'static str,
}

/// The matrix, oldest first: Debian 11's 5.10, Debian 12's 6.1 and
/// Debian 13's 6.12 (the host runs 6.18).
pub const MATRIX: &[Debian] = &[
    Debian {
        version: "5.10",
        suite: "bullseye",
        prefix: "linux-image-5.10.0-",
        suffix: "-amd64-unsigned",
    },
    Debian {
        version: "6.1",
        suite: "bookworm",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64-unsigned",
    },
    Debian {
        version: "6.12",
        suite: "trixie",
        prefix: "linux-image-6.12.",
        suffix: "+deb13-amd64-unsigned",
    },
];

/// The matrix kernel named `version`, if any.
pub fn find(version: &str) -> Option<Debian> {
    MATRIX.iter().copied().find(|k| k.version == version)
}

/// Where the matrix kernels live.
fn kernels_dir() -> PathBuf {
    cmd::tools_dir().join("kernels")
}

impl Debian {
    /// The unpacked kernel's image (`.tools/kernels/VERSION/boot/vmlinuz-*`),
    /// fetched and unpacked first when missing.
    pub fn ensure(&self) -> anyhow::Result<PathBuf> {
        let root = kernels_dir().join(self.version);
        if let Some(image) = image_in(&root) {
            return Ok(image);
        }
        let apt = kernels_dir().join(format!(".apt-{}", self.suite));
        let deb = self.download(&apt)?;
        let partial = kernels_dir().join(format!("{}.partial", self.version));
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial).with_context(|| format!("mkdir {}", partial.display()))?;
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        depmod(&partial)?;
        fs::write(
            partial.join("PACKAGE"),
            format!(
                "{}\n",
                deb.file_name().unwrap_or_default().to_string_lossy()
            ),
        )?;
        fs::rename(&partial, &root)
            .with_context(|| format!("renaming {} to {}", partial.display(), root.display()))?;
        // The .deb is no longer needed; the lists are small and kept.
        let _ = fs::remove_file(&deb);
        image_in(&root).with_context(|| {
            format!(
                "{} has no boot/vmlinuz-*: is {} a kernel image package?",
                root.display(),
                deb.display()
            )
        })
    }

    /// apt-get with this release's own sources list, lists and cache under
    /// `apt` (the machine's sources and lists are not touched).
    fn apt(&self, apt: &Path, program: &str) -> Command {
        let mut c = Command::new(program);
        c.arg(format!(
            "-oDir::Etc::SourceList={}",
            apt.join("sources.list").display()
        ))
        .arg("-oDir::Etc::SourceParts=/dev/null")
        .arg(format!(
            "-oDir::State::Lists={}",
            apt.join("lists").display()
        ))
        .arg(format!("-oDir::Cache={}", apt.join("cache").display()))
        // The files are root's and not readable to apt's sandbox user.
        .arg("-oAPT::Sandbox::User=root")
        .arg("-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false")
        .arg("-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false")
        .arg("-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false")
        .arg("-oAcquire::IndexTargets::deb::CNF::DefaultEnabled=false");
        c
    }

    /// Downloads the newest package of this kernel into `apt`; its path.
    fn download(&self, apt: &Path) -> anyhow::Result<PathBuf> {
        fs::create_dir_all(apt.join("lists/partial"))?;
        fs::create_dir_all(apt.join("cache/archives/partial"))?;
        fs::write(
            apt.join("sources.list"),
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
                 http://deb.debian.org/debian {} main\n",
                self.suite
            ),
        )?;
        cmd::run(self.apt(apt, "apt-get").args(["update", "-qq"])).with_context(|| {
            format!(
                "fetching Debian {}'s package lists (needs deb.debian.org)",
                self.suite
            )
        })?;
        let names = cmd::output(self.apt(apt, "apt-cache").args(["pkgnames", self.prefix]))
            .with_context(|| format!("apt-cache pkgnames {}", self.prefix))?;
        let package = self.newest(names.lines()).with_context(|| {
            format!(
                "Debian {} lists no package {}N{}",
                self.suite, self.prefix, self.suffix
            )
        })?;
        let archives = apt.join("cache/archives");
        cmd::run(
            self.apt(apt, "apt-get")
                .current_dir(&archives)
                .args(["download", "-qq", &package]),
        )?;
        fs::read_dir(&archives)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
            .with_context(|| {
                format!(
                    "apt-get download {package} left no .deb in {}",
                    archives.display()
                )
            })
    }

    /// The newest of `names` that is this kernel's package (highest ABI
    /// number).
    fn newest<'a>(&self, names: impl Iterator<Item = &'a str>) -> Option<String> {
        names
            .filter_map(|n| {
                let abi = n.strip_prefix(self.prefix)?.strip_suffix(self.suffix)?;
                let abi: u64 = abi.parse().ok()?;
                Some((abi, n))
            })
            .max()
            .map(|(_, n)| n.to_string())
    }
}

/// `root/boot/vmlinuz-*`, if there.
fn image_in(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
}

/// Writes modules.dep for the unpacked modules (a .deb leaves that to its
/// postinst), so the guest's modprobe finds them.
fn depmod(root: &Path) -> anyhow::Result<()> {
    for base in [root.to_path_buf(), root.join("usr")] {
        let Ok(dir) = fs::read_dir(base.join("lib/modules")) else {
            continue;
        };
        for kver in dir.flatten() {
            let kver = kver.file_name();
            cmd::run(
                Command::new("depmod")
                    .arg("-a")
                    .arg("-b")
                    .arg(&base)
                    .arg(&kver),
            )
            .context("depmod (Debian package kmod)")?;
        }
        return Ok(());
    }
    bail!("{} has no lib/modules", root.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_abi_of_the_right_flavour() {
        let names = [
            "linux-image-6.12.107+deb13-amd64-unsigned",
            "linux-image-6.12.117+deb13-amd64-unsigned",
            "linux-image-6.12.117+deb13-cloud-amd64-unsigned",
            "linux-image-6.12.117+deb13-amd64",
            "linux-image-6.12.99+deb13-amd64-unsigned",
        ];
        let k = find("6.12").expect("6.12 in the matrix");
        assert_eq!(
            k.newest(names.into_iter()).as_deref(),
            Some("linux-image-6.12.117+deb13-amd64-unsigned")
        );
        let k = find("5.10").expect("5.10 in the matrix");
        assert_eq!(
            k.newest(
                [
                    "linux-image-5.10.0-30-amd64-unsigned",
                    "linux-image-5.10.0-32-amd64-unsigned",
                    "linux-image-5.10.0-32-rt-amd64-unsigned"
                ]
                .into_iter()
            )
            .as_deref(),
            Some("linux-image-5.10.0-32-amd64-unsigned")
        );
    }
}
