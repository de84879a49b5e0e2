//! The package lane (`cargo xtask dist --check`, and part of `cargo xtask
//! test`): installs the .deb on this machine with apt-get, checks what a
//! user meets — `memmon --version` from /usr/bin, `man memmon-daemon`,
//! Tab completion in bash, zsh and fish, the conffile, the enabled unit —
//! then purges it and checks every file is gone. It also opens the image
//! archive (entrypoint, tag, `memmon --version` from its root) and
//! validates the Kubernetes manifests. Each check is one counted test.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cmd, dist, image, k8s, packages};

/// What the checks need beyond the package itself.
const CHECK_PACKAGES: &[&str] = &["bash-completion", "zsh", "fish", "man-db", "systemd"];

/// Outcome of the checks.
#[derive(Default)]
pub struct Outcome {
    /// Checks that passed.
    pub passed: u64,
    /// Checks that failed, with why.
    pub failures: Vec<String>,
    /// Checks that could not run here, with why (printed, counted).
    pub skipped: Vec<String>,
}

impl Outcome {
    fn check(&mut self, name: &str, result: anyhow::Result<()>) {
        match result {
            Ok(()) => {
                println!("test package::{name} ... ok");
                self.passed += 1;
            }
            Err(e) => {
                println!("test package::{name} ... FAILED: {e:#}");
                self.failures.push(format!("{name}: {e:#}"));
            }
        }
    }
}

/// (success, stdout + stderr) of a command.
fn run(c: &mut Command) -> anyhow::Result<(bool, String)> {
    let out = c
        .output()
        .with_context(|| format!("cannot start {}", cmd::display(c)))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Stdout of a command that must succeed.
fn must(c: &mut Command) -> anyhow::Result<String> {
    let (ok, text) = run(c)?;
    if !ok {
        bail!("{} failed: {}", cmd::display(c), text.trim());
    }
    Ok(text)
}

/// Text without terminal overstrike (`X\u{8}X` bold, `_\u{8}X` underline).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-c", script]);
    c
}

fn installed_status() -> Option<String> {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", "memmon"]))
}

/// Paths (absolute) the .deb holds, from `dpkg-deb -c`, files only.
fn deb_files(deb: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let list = must(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    Ok(list
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| PathBuf::from(p.trim_start_matches('.')))
        .collect())
}

/// The paths the issue asks for, each of which must be in the package.
pub const EXPECTED: &[&str] = &[
    "/usr/bin/memmon",
    "/lib/systemd/system/memmon.service",
    "/etc/memmon/memmon.toml",
    "/usr/share/man/man1/memmon.1.gz",
    "/usr/share/man/man1/memmon-daemon.1.gz",
    "/usr/share/bash-completion/completions/memmon",
    "/usr/share/zsh/vendor-completions/_memmon",
    "/usr/share/fish/vendor_completions.d/memmon.fish",
    "/usr/lib/sysctl.d/60-memmon.conf",
];

const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/memmon.service";

/// Runs every check on the artifacts `dist` made.
pub fn run_checks(artifacts: &dist::Artifacts) -> anyhow::Result<Outcome> {
    let mut actions = Vec::new();
    packages::ensure(CHECK_PACKAGES, &mut actions)?;
    if installed_status().is_some_and(|s| s.contains("installed")) {
        bail!(
            "a memmon package is already installed here; this lane installs and purges its own: \
             remove it first (apt-get remove --purge memmon)"
        );
    }
    let mut o = Outcome::default();
    let deb = &artifacts.deb;
    let files = deb_files(deb)?;
    o.check("deb_holds_binary_unit_config_man_completions", {
        let missing: Vec<&str> = EXPECTED
            .iter()
            .copied()
            .filter(|p| !files.iter().any(|f| f == Path::new(p)))
            .collect();
        let test_only = files.iter().find(|f| f.ends_with("memmon-workload"));
        if let Some(f) = test_only {
            Err(anyhow::anyhow!(
                "the test workload is in the .deb: {}",
                f.display()
            ))
        } else if missing.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!("not in the .deb: {}", missing.join(", ")))
        }
    });

    o.check("tarball_holds_binary_unit_config_man_completions", {
        must(Command::new("tar").arg("-tzf").arg(&artifacts.tarball)).and_then(|list| {
            let top = format!("memmon-{}-x86_64-linux", dist::VERSION);
            let missing: Vec<String> = [
                "memmon",
                "memmon.service",
                "memmon.toml",
                "man/memmon-daemon.1",
                "completions/memmon",
                "completions/_memmon",
                "completions/memmon.fish",
            ]
            .iter()
            .map(|f| format!("{top}/{f}"))
            .filter(|f| !list.lines().any(|l| l == f))
            .collect();
            if let Some(f) = list.lines().find(|l| l.ends_with("memmon-workload")) {
                Err(anyhow::anyhow!("the test workload is in the tarball: {f}"))
            } else if missing.is_empty() {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "not in the tarball: {}",
                    missing.join(", ")
                ))
            }
        })
    });
    o.check(
        "apt_get_installs_the_deb",
        must(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .arg(deb),
        )
        .map(drop),
    );
    o.check("version_runs_from_usr_bin", {
        must(Command::new("/usr/bin/memmon").arg("--version")).and_then(|v| {
            if v.trim() == format!("memmon {}", dist::VERSION) {
                Ok(())
            } else {
                Err(anyhow::anyhow!("memmon --version printed {v:?}"))
            }
        })
    });
    o.check("man_memmon_daemon_renders_its_flags", {
        must(Command::new("man").args(["-w", "memmon-daemon"])).and_then(|path| {
            if path.trim() != "/usr/share/man/man1/memmon-daemon.1.gz" {
                bail!("man -w memmon-daemon: {path:?}");
            }
            let page = must(
                Command::new("man")
                    .env("MANPAGER", "cat")
                    .env("MANWIDTH", "120")
                    .env_remove("MAN_KEEP_FORMATTING")
                    .arg("memmon-daemon"),
            )?;
            let page = plain(&page);
            for want in ["--top-k", "--listen", "--web.config.file", "MEMMON_TOP_K"] {
                if !page.contains(want) {
                    bail!("man memmon-daemon has no {want}:\n{page}");
                }
            }
            Ok(())
        })
    });
    o.check("bash_completes_memmon_da_to_daemon", {
        // What an interactive bash does: bash-completion's loader finds
        // the script by command name in its completions directory.
        let script = r#"source /usr/share/bash-completion/bash_completion
_completion_loader memmon
spec=$(complete -p memmon) || exit 3
fn=$(echo "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_WORDS=(memmon da); COMP_CWORD=1; COMP_LINE="memmon da"; COMP_POINT=${#COMP_LINE}
"$fn" memmon da memmon
echo "sub:${COMPREPLY[*]}"
COMP_WORDS=(memmon daemon --top-); COMP_CWORD=2; COMP_LINE="memmon daemon --top-"; COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" memmon --top- daemon
echo "flag:${COMPREPLY[*]}""#;
        must(&mut sh(script)).and_then(|out| {
            let sub = out.lines().find_map(|l| l.strip_prefix("sub:"));
            let flag = out.lines().find_map(|l| l.strip_prefix("flag:"));
            if sub.map(str::trim) != Some("daemon") {
                bail!("memmon da<TAB> gave {sub:?}:\n{out}");
            }
            let flags: Vec<&str> = flag.unwrap_or_default().split_whitespace().collect();
            if !(flags.contains(&"--top-k") && flags.contains(&"--top-by")) {
                bail!("memmon daemon --top-<TAB> gave {flags:?}");
            }
            Ok(())
        })
    });
    o.check("zsh_finds_the_completion", {
        must(Command::new("zsh").args([
            "-fc",
            // Debian's zsh has vendor-completions in its built-in fpath.
            "autoload -Uz compinit; compinit -u -d /tmp/memmon-zcompdump; \
             print -r -- ${_comps[memmon]}",
        ]))
        .and_then(|out| {
            if out.trim() == "_memmon" {
                Ok(())
            } else {
                Err(anyhow::anyhow!("zsh _comps[memmon] = {:?}", out.trim()))
            }
        })
    });
    o.check("fish_completes_memmon_da_to_daemon", {
        must(Command::new("fish").args(["-c", "complete -C 'memmon da'"])).and_then(|out| {
            if out.lines().any(|l| l.split('\t').next() == Some("daemon")) {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "fish: complete -C 'memmon da' gave {out:?}"
                ))
            }
        })
    });
    o.check("config_is_a_conffile_the_daemon_accepts", {
        must(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "memmon"])).and_then(|c| {
            if !c.contains("/etc/memmon/memmon.toml") {
                bail!("conffiles: {c:?}");
            }
            must(Command::new("/usr/bin/memmon").args([
                "config",
                "--check",
                "/etc/memmon/memmon.toml",
            ]))
            .map(drop)
        })
    });
    o.check("unit_is_enabled_and_verifies", {
        let link = std::fs::read_link(WANTS);
        match link {
            Err(e) => Err(anyhow::anyhow!("{WANTS}: {e} (postinst did not enable it)")),
            Ok(_) => must(
                Command::new("systemd-analyze")
                    .arg("verify")
                    .arg("/lib/systemd/system/memmon.service"),
            )
            .and_then(|t| {
                if t.trim().is_empty() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("systemd-analyze verify: {t}"))
                }
            }),
        }
    });
    o.check("purge_removes_every_file", {
        must(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["remove", "--purge", "-y", "-qq", "memmon"]),
        )
        .and_then(|_| {
            let left: Vec<String> = files
                .iter()
                .map(|p| p.as_path())
                .chain([Path::new(WANTS), Path::new("/etc/memmon")])
                .filter(|p| p.symlink_metadata().is_ok())
                .map(|p| p.display().to_string())
                .collect();
            if !left.is_empty() {
                bail!("left after purge: {}", left.join(", "));
            }
            if installed_status().is_some_and(|s| !s.contains("not-installed")) {
                bail!("dpkg still knows memmon: {:?}", installed_status());
            }
            Ok(())
        })
    });
    // If a check failed before the purge ran, do not leave it installed.
    if installed_status().is_some_and(|s| s.contains("installed") && !s.contains("not-installed")) {
        let _ = run(Command::new("dpkg").args(["--purge", "memmon"]));
    }

    match &artifacts.image {
        Some(archive) => {
            let work = cmd::workspace().join("target/dist/image-check");
            o.check("image_entrypoint_tag_and_binary", {
                image::inspect(archive, &work).and_then(|i| {
                    let want: Vec<String> =
                        image::ENTRYPOINT.iter().map(|s| s.to_string()).collect();
                    if i.entrypoint != want {
                        bail!("entrypoint {:?}, want {want:?}", i.entrypoint);
                    }
                    if i.ref_name != image::tag() && !i.ref_name.ends_with(&image::tag()) {
                        bail!("image ref {:?}, want {}", i.ref_name, image::tag());
                    }
                    if i.version_output != format!("memmon {}", dist::VERSION) {
                        bail!("memmon --version in the image: {:?}", i.version_output);
                    }
                    Ok(())
                })
            });
            let _ = std::fs::remove_dir_all(&work);
        }
        None => {
            println!("test package::image_entrypoint_tag_and_binary ... skipped (--no-image)");
            o.skipped
                .push("image_entrypoint_tag_and_binary: --no-image".into());
        }
    }
    if artifacts.image.is_some() {
        // One run with exactly the DaemonSet's capabilities and mounts.
        match image::run_like_the_daemonset() {
            Ok(image::RunOutcome::Ran(version)) => o.check(
                "image_runs_with_the_daemonset_capabilities",
                if version == format!("memmon {}", dist::VERSION) {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "memmon --version in the container: {version:?}"
                    ))
                },
            ),
            Ok(image::RunOutcome::CannotRunHere(why)) => {
                println!(
                    "test package::image_runs_with_the_daemonset_capabilities ... skipped: {why}"
                );
                o.skipped
                    .push(format!("image_runs_with_the_daemonset_capabilities: {why}"));
            }
            Err(e) => o.check("image_runs_with_the_daemonset_capabilities", Err(e)),
        }
    }
    o.check(
        "kubernetes_refers_to_the_image_tag",
        k8s::check_image_tag(&image::tag()),
    );
    o.check("kubernetes_manifests_validate", k8s::validate());
    Ok(o)
}

#[cfg(test)]
mod tests {
    #[test]
    fn overstrike_is_removed() {
        assert_eq!(super::plain("-\u{8}--\u{8}-t\u{8}top_\u{8}N"), "--topN");
    }
}
