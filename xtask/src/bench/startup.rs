//! Benchmark 6: start to first data. `memmon snapshot --duration 0 --json`
//! (load, attach, read once, print) against the bpftrace one-liner run
//! around `/bin/true` (parse, compile, attach, print its map): the time from
//! spawning each until its first line of data reaches stdout, interleaved.
//! (Detaching probes at exit is not "first data" and is not counted.)

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::{Ctx, Section, fault_storm::BPFTRACE, stats};

/// Target for memmon's start to first data.
const TARGET_MS: f64 = 300.0;

/// Milliseconds from spawn until a stdout line satisfies `is_data`.
fn time(cmd: &mut Command, is_data: fn(&str) -> bool) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("run {cmd:?}"))?;
    let out = child.stdout.take().context("stdout")?;
    let mut ms = None;
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        if ms.is_none() && is_data(&line) {
            ms = Some(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let status = child.wait()?;
    match ms {
        Some(ms) if status.success() => Ok(ms),
        _ => bail!("{cmd:?} printed no data ({status})"),
    }
}

/// Runs the benchmark.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let reps = if ctx.quick { 3 } else { 5 * ctx.rounds.max(1) };
    let mut memmon = Vec::new();
    let mut bpftrace = Vec::new();
    for _ in 0..reps {
        memmon.push(time(
            Command::new(&ctx.memmon).args(["snapshot", "--duration", "0", "--json"]),
            |l| l.starts_with('['),
        )?);
        bpftrace.push(time(
            Command::new("bpftrace").args(["-e", BPFTRACE, "-c", "/bin/true"]),
            |l| l.starts_with('@'),
        )?);
    }
    let m = stats::summarize(&memmon).context("no samples")?;
    let b = stats::summarize(&bpftrace).context("no samples")?;
    Ok(Section {
        title: "6. Start to first data".into(),
        what: format!(
            "Time from spawn to the first line of data on stdout, {reps} runs each, interleaved: \
             `memmon snapshot --duration 0 --json` (every probe) vs `bpftrace -e '{BPFTRACE}' -c /bin/true`."
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
