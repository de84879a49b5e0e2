//! Benchmarks 2, 3 and 3b: an mmap/munmap storm, a fork/exit storm and a
//! context-switch storm (two processes passing a byte back and forth),
//! alone and beside memmon (defaults, then full detail), A/B interleaved;
//! the workload measures its own ns per operation.

use anyhow::Context as _;

use super::{
    Ctx, Section,
    fault_storm::{Watcher, storm},
    stats,
};

struct Spec {
    title: &'static str,
    args: Vec<String>,
    key: &'static str,
    unit: &'static str,
    target_pct: f64,
}

/// Runs both storms.
pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Section>> {
    let pairs: u64 = if ctx.quick { 100_000 } else { 1_000_000 };
    let forks: u64 = if ctx.quick { 2_000 } else { 20_000 };
    let trips: u64 = if ctx.quick { 100_000 } else { 1_000_000 };
    let specs = [
        Spec {
            title: "2. mmap/munmap storm",
            args: vec!["mmap-storm".into(), pairs.to_string()],
            key: "ns_per_pair",
            unit: "ns/pair",
            target_pct: 3.0,
        },
        Spec {
            title: "3. fork/exit storm",
            args: vec!["spawn".into(), forks.to_string()],
            key: "ns_per_spawn",
            unit: "ns/fork+exit",
            target_pct: 5.0,
        },
        // Every switch runs the ran_switch probe: the defaults' one
        // program on a hook that is not a syscall, a fault or an exit.
        Spec {
            title: "3b. context-switch storm",
            args: vec!["pingpong".into(), trips.to_string()],
            key: "ns_per_round_trip",
            unit: "ns/round trip",
            target_pct: 5.0,
        },
    ];
    specs.iter().map(|s| run_one(ctx, s)).collect()
}

fn run_one(ctx: &Ctx, spec: &Spec) -> anyhow::Result<Section> {
    let watchers = [Watcher::Alone, Watcher::MemmonDefaults, Watcher::MemmonFull];
    let args: Vec<&str> = spec.args.iter().map(String::as_str).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); watchers.len()];
    for round in 0..ctx.rounds {
        for (i, w) in watchers.iter().enumerate() {
            let monitor = w.start(ctx)?;
            let v = storm(ctx, &args, spec.key)?;
            if let Some(m) = monitor {
                m.stop()?;
            }
            eprintln!(
                "bench: {} round {round} {}: {v:.1} {}",
                spec.title,
                w.label(),
                spec.unit
            );
            samples[i].push(v);
        }
    }
    let base = stats::summarize(&samples[0]).context("no baseline")?;
    let mut rows = Vec::new();
    for (i, w) in watchers.iter().enumerate() {
        let s = stats::summarize(&samples[i]).context("no samples")?;
        let slow = stats::slowdown_pct(s.median, base.median);
        let target = if *w == Watcher::MemmonDefaults {
            format!(
                "<= {}%: {}",
                spec.target_pct,
                if slow <= spec.target_pct {
                    "met"
                } else {
                    "MISSED"
                }
            )
        } else {
            String::new()
        };
        rows.push(vec![
            w.label().to_string(),
            format!("{:.1}", s.median),
            format!("{:.1}–{:.1}", s.min, s.max),
            if i == 0 {
                "—".into()
            } else {
                format!("{slow:+.1}%")
            },
            target,
        ]);
    }
    Ok(Section {
        title: spec.title.into(),
        what: format!(
            "`memmon-workload --no-wait {}`, {} rounds, configurations interleaved in each round; \
             the workload reports {} measured inside itself.",
            spec.args.join(" "),
            ctx.rounds,
            spec.unit
        ),
        header: vec![
            "configuration",
            "median",
            "min–max",
            "slowdown vs alone",
            "target",
        ],
        rows,
        notes: Vec::new(),
    })
}
