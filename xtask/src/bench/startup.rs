//! Benchmark 6: start to first data. `memmon snapshot --duration 0 --json`
//! (load, attach, read once, print) against the bpftrace one-liner run
//! around `/bin/true` (parse, compile, attach, print its map), wall time of
//! each whole command, interleaved.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, bail};

use super::{Ctx, Section, fault_storm::BPFTRACE, stats};

/// Target for memmon's start to first data.
const TARGET_MS: f64 = 300.0;

fn time(cmd: &mut Command) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(ms)
}

/// Runs the benchmark.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let reps = if ctx.quick { 3 } else { 5 * ctx.rounds.max(1) };
    let mut memmon = Vec::new();
    let mut bpftrace = Vec::new();
    for _ in 0..reps {
        memmon.push(time(Command::new(&ctx.memmon).args([
            "snapshot",
            "--duration",
            "0",
            "--json",
        ]))?);
        bpftrace.push(time(Command::new("bpftrace").args([
            "-e",
            BPFTRACE,
            "-c",
            "/bin/true",
        ]))?);
    }
    let m = stats::summarize(&memmon).context("no samples")?;
    let b = stats::summarize(&bpftrace).context("no samples")?;
    Ok(Section {
        title: "6. Start to first data".into(),
        what: format!(
            "Wall time of the whole command, {reps} runs each, interleaved: \
             `memmon snapshot --duration 0 --json` vs `bpftrace -e '{BPFTRACE}' -c /bin/true`."
        ),
        header: vec!["command", "median ms", "min–max ms", "target"],
        rows: vec![
            vec![
                "memmon snapshot --duration 0".into(),
                format!("{:.0}", m.median),
                format!("{:.0}–{:.0}", m.min, m.max),
                format!(
                    "<= {TARGET_MS} ms: {}",
                    if m.median <= TARGET_MS {
                        "met"
                    } else {
                        "MISSED"
                    }
                ),
            ],
            vec![
                "bpftrace one-liner".into(),
                format!("{:.0}", b.median),
                format!("{:.0}–{:.0}", b.min, b.max),
                String::new(),
            ],
        ],
        notes: Vec::new(),
    })
}
