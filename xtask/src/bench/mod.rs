//! `cargo xtask bench`: each benchmark runs its configurations A/B
//! interleaved over several rounds on this machine and returns a
//! [`Section`]; the sections are written to BENCHMARKS.md with the machine,
//! the kernel and the command that produced them.

mod cgroups;
mod cgroups_daemon;
mod churn;
mod daemon_cost;
mod fault_storm;
mod hostile;
mod http;
pub mod kills;
mod monitor;
mod plot;
mod report;
mod scale;
mod stacks;
mod stacks_guest;
mod startup;
mod stats;
mod store;
mod syscall_storms;

use std::{path::PathBuf, process::Command};

use crate::{
    cmd::{self, BuildEnv},
    packages,
};

/// What every benchmark needs.
pub struct Ctx {
    /// Release memmon binary.
    pub memmon: PathBuf,
    /// Release memmon-workload binary.
    pub workload: PathBuf,
    /// Rounds per benchmark (>= 5 for the record).
    pub rounds: usize,
    /// Smaller sizes, one round: a smoke run.
    pub quick: bool,
    /// memmon's `cgroup_scan` example (release): the cgroup reader alone.
    pub cgroup_scan: PathBuf,
    /// Another memmon binary measured beside this one where the daemon's
    /// cost is (`--baseline`), interleaved.
    pub baseline: Option<PathBuf>,
}

impl Ctx {
    /// The memmon command that watches in the background, and the text it
    /// prints once its probes are attached. `detail`: every probe,
    /// per-fault programs included.
    pub fn memmon_monitor(&self, detail: bool) -> (Command, &'static str) {
        let flags: &[&str] = if detail {
            &["--fault-detail", "--alloc-detail"]
        } else {
            &[]
        };
        self.memmon_daemon(flags)
    }

    /// `memmon daemon` on a free loopback port, unpinned, with `flags`, and
    /// the text it prints once serving. No probe CPU budget: the cost of
    /// each configuration is measured as is, never cut by the governor.
    pub fn memmon_daemon(&self, flags: &[&str]) -> (Command, &'static str) {
        self.daemon_of(&self.memmon, flags)
    }

    /// [`Ctx::memmon_daemon`] of another memmon binary (`--baseline`).
    pub fn daemon_of(&self, memmon: &std::path::Path, flags: &[&str]) -> (Command, &'static str) {
        let mut c = Command::new(memmon);
        c.args(["daemon", "--listen", "127.0.0.1:0", "--no-pin"])
            .args(["--probe-cpu-budget", "0"])
            .args(flags);
        (c, "serving http://")
    }
}

/// One benchmark's results.
pub struct Section {
    /// Heading.
    pub title: String,
    /// What was run, how.
    pub what: String,
    /// Table header.
    pub header: Vec<&'static str>,
    /// Table rows.
    pub rows: Vec<Vec<String>>,
    /// Remarks (profiles, misses and what would close them).
    pub notes: Vec<String>,
}

/// The benchmark groups `--only` can name.
pub const GROUPS: &[&str] = &[
    "faults",
    "syscalls",
    "startup",
    "daemon",
    "churn",
    "cgroups",
    "stacks",
    "stacks-guest",
    "store",
    "scale",
    "kills",
    "cgroups-daemon",
    "hostile-clients",
];

/// `xtask stacks-guest-inner`: the guest's half of `stacks-guest`.
pub fn stacks_guest_inner(out: &std::path::Path, pairs: u64, rounds: usize) -> anyhow::Result<()> {
    stacks_guest::inner(out, pairs, rounds)
}

/// Runs every benchmark (or the `only` groups) and writes BENCHMARKS.md;
/// with `only`, the re-run sections replace theirs in the existing file
/// (the others stay); with `quick` (a smoke run) BENCHMARKS.md is left
/// alone and the sections go to target/BENCHMARKS.quick.md.
pub fn run(
    env: &BuildEnv,
    quick: bool,
    only: &[String],
    baseline: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(b) = &baseline
        && !b.is_file()
    {
        anyhow::bail!(
            "--baseline {}: no such file; give a memmon binary (e.g. target/release/memmon of a worktree of main)",
            b.display()
        );
    }
    if let Some(bad) = only.iter().find(|g| !GROUPS.contains(&g.as_str())) {
        anyhow::bail!(
            "unknown benchmark group `{bad}`; groups: {}",
            GROUPS.join(", ")
        );
    }
    let wanted = |g: &str| only.is_empty() || only.iter().any(|o| o == g);
    let mut actions = Vec::new();
    packages::ensure(packages::BENCH_PACKAGES, &mut actions)?;
    let mut build = cmd::cargo(env);
    build.args(["build", "--release", "--package", "memmon", "--bins"]);
    cmd::run(&mut build)?;
    let workload = cmd::build_workload(env, true)?;
    if wanted("cgroups") {
        let mut example = cmd::cargo(env);
        example.args([
            "build",
            "--release",
            "--package",
            "memmon",
            "--example",
            "cgroup_scan",
        ]);
        cmd::run(&mut example)?;
    }
    let memmon = cmd::binary("memmon", true);
    let cgroup_scan = memmon
        .parent()
        .map(|d| d.join("examples/cgroup_scan"))
        .unwrap_or_default();
    let ctx = Ctx {
        memmon,
        cgroup_scan,
        workload,
        rounds: if quick { 1 } else { 5 },
        quick,
        baseline,
    };
    let mut sections = Vec::new();
    if wanted("faults") {
        sections.push(fault_storm::run(&ctx)?);
    }
    if wanted("syscalls") {
        sections.extend(syscall_storms::run(&ctx)?);
    }
    if wanted("startup") {
        sections.push(startup::run(&ctx)?);
    }
    if wanted("daemon") {
        sections.extend(daemon_cost::run(&ctx)?);
    }
    if wanted("churn") {
        sections.push(churn::run(&ctx)?);
    }
    if wanted("cgroups") {
        sections.push(cgroups::run(&ctx)?);
    }
    if wanted("stacks") {
        sections.extend(stacks::run(&ctx)?);
    }
    if wanted("stacks-guest") {
        sections.push(stacks_guest::run(&ctx)?);
    }
    if wanted("store") {
        sections.push(store::run(&ctx)?);
    }
    if wanted("scale") {
        sections.push(scale::run(&ctx)?);
    }
    if wanted("kills") {
        sections.push(kills::run(&ctx)?);
    }
    if wanted("cgroups-daemon") {
        sections.push(cgroups_daemon::run(&ctx)?);
    }
    if wanted("hostile-clients") {
        sections.push(hostile::run(&ctx)?);
    }
    // A smoke run (`--quick`, one round) never touches BENCHMARKS.md: its
    // figures are not for the record. It goes to target/ instead.
    if quick {
        let path = cmd::workspace().join("target/BENCHMARKS.quick.md");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, report::render(&sections, true))?;
        eprintln!(
            "bench: --quick is a smoke run: BENCHMARKS.md left as it was; its sections are in {}",
            path.display()
        );
        return Ok(());
    }
    let path = cmd::workspace().join("BENCHMARKS.md");
    let text = match std::fs::read_to_string(&path) {
        Ok(existing) if !only.is_empty() => {
            report::merge(&existing, &sections, &only.join(" --only "))
        }
        _ => report::render(&sections, false),
    };
    std::fs::write(&path, text)?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}
