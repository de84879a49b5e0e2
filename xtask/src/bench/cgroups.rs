//! Benchmark 9: the cgroup reader at 500 memory cgroups, 1 s refresh.
//! Makes 500 memcgs under `memmon-bench/` (v1 memory controller, or v2
//! with `+memory` delegated), each holding one sleeping process, and runs
//! memmon's `cgroup_scan` example over them, the cost guard on
//! (`guarded`: memory.stat and limits every 10 s or when usage moved) and
//! off (`full`: memory.stat every pass), interleaved over the rounds; the
//! figure is the reader's own CPU time (getrusage) over the wall time.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::{Ctx, Section, stats};

/// Cgroups made.
const CGROUPS: usize = 500;

/// The cgroups and their sleepers, removed on drop.
pub(super) struct BenchCgroups {
    parent: PathBuf,
    dirs: Vec<PathBuf>,
    sleepers: Vec<Child>,
}

/// Writes `value` to a cgroup control file (the error names both).
pub(super) fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .with_context(|| format!("writing {value} to {}", path.display()))
}

impl BenchCgroups {
    pub(super) fn create(count: usize) -> anyhow::Result<(BenchCgroups, &'static str)> {
        Self::create_under("memmon-bench", count)
    }

    /// The same under `name` (a name of its own, so a run of another
    /// group beside it does not collide).
    pub(super) fn create_under(
        name: &str,
        count: usize,
    ) -> anyhow::Result<(BenchCgroups, &'static str)> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (mount, version) = if v1.join("memory.usage_in_bytes").exists() {
            (v1.to_path_buf(), "v1")
        } else {
            let v2 = PathBuf::from("/sys/fs/cgroup");
            write(&v2.join("cgroup.subtree_control"), "+memory")?;
            (v2, "v2")
        };
        let parent = mount.join(name);
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("mkdir {} (needs root)", parent.display()))?;
        if version == "v2" {
            write(&parent.join("cgroup.subtree_control"), "+memory")?;
        }
        let mut cg = BenchCgroups {
            parent,
            dirs: Vec::new(),
            sleepers: Vec::new(),
        };
        for i in 0..count {
            let dir = cg.parent.join(format!("cg{i:03}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            cg.dirs.push(dir.clone());
            let child = Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .spawn()
                .context("spawning sleep")?;
            let pid = child.id();
            cg.sleepers.push(child);
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok((cg, version))
    }
}

impl Drop for BenchCgroups {
    fn drop(&mut self) {
        for c in &mut self.sleepers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in &self.dirs {
            for _ in 0..20 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// One run of the example: (core share, median pass ms, full reads per
/// pass, samples per pass, first pass ms).
fn scan(ctx: &Ctx, policy: &str, seconds: u64) -> anyhow::Result<(f64, f64, f64, u64, f64)> {
    let out = Command::new(&ctx.cgroup_scan)
        .args(["--under", "/memmon-bench", "--policy", policy])
        .args(["--seconds", &seconds.to_string(), "--interval-ms", "1000"])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", ctx.cgroup_scan.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "cgroup_scan --policy {policy} failed: {}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("cgroup_scan output")?;
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("cgroup_scan: no {k}"))
    };
    let passes = num("passes")?.max(1.0);
    Ok((
        num("core_share")?,
        num("median_pass_ms")?,
        num("full_reads")? / passes,
        num("samples_per_pass")? as u64,
        num("first_pass_ms")?,
    ))
}

/// Runs the benchmark.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let (cgroups, version) = BenchCgroups::create(CGROUPS)?;
    // Long enough for the guarded policy's 30 s interval to come round.
    let seconds = |policy: &str| match (ctx.quick, policy) {
        (true, _) => 5,
        (false, "guarded") => 40,
        (false, _) => 20,
    };
    let policies = ["guarded", "full"];
    let mut share = [Vec::new(), Vec::new()];
    let mut pass_ms = [Vec::new(), Vec::new()];
    let mut full = [Vec::new(), Vec::new()];
    let mut first_ms = Vec::new();
    let mut samples = 0;
    for _ in 0..ctx.rounds {
        for (i, p) in policies.iter().enumerate() {
            let (s, ms, f, n, first) = scan(ctx, p, seconds(p))?;
            share[i].push(s * 100.0);
            pass_ms[i].push(ms);
            full[i].push(f);
            first_ms.push(first);
            samples = n;
        }
    }
    let first = stats::summarize(&first_ms).context("no runs")?;
    drop(cgroups);
    let mut rows = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        let s = stats::summarize(&share[i]).context("no runs")?;
        let ms = stats::summarize(&pass_ms[i]).context("no runs")?;
        let f = stats::summarize(&full[i]).context("no runs")?;
        let target = if i == 0 {
            format!("<= 1%: {}", if s.median <= 1.0 { "met" } else { "MISSED" })
        } else {
            String::new()
        };
        rows.push(vec![
            (*p).to_string(),
            format!("{:.2}", s.median),
            format!("{:.2}–{:.2}", s.min, s.max),
            format!("{:.2}", ms.median),
            format!("{:.1}", f.median),
            target,
        ]);
    }
    Ok(Section {
        title: format!("9. Cgroup reader, {CGROUPS} memory cgroups, 1 s refresh"),
        what: format!(
            "{CGROUPS} cgroup {version} memcgs under `memmon-bench/`, one sleeping process each; memmon's `cgroup_scan` \
             example reads them and their {} ancestors every second, after a first pass that reads everything (median \
             {:.0} ms, not counted), for {} s per run (`guarded`) or {} s (`full`), CPU from getrusage over the wall \
             time, {} round(s), the two policies interleaved. `guarded` is the daemon's: usage and swap every \
             pass from files kept open (pread), the rest (peak, limits, events, PSI and memory.stat, which flushes \
             the kernel's per-cpu stats) every 30 s (spread over the passes) or when usage moved by more than 1% and 1 MiB; `full` reads everything \
             every pass.",
            samples.saturating_sub(CGROUPS as u64),
            first.median,
            seconds("guarded"),
            seconds("full"),
            ctx.rounds
        ),
        header: vec![
            "policy",
            "CPU, % of one core",
            "min–max",
            "median pass, ms",
            "full reads per pass",
            "target",
        ],
        rows,
        notes: Vec::new(),
    })
}
