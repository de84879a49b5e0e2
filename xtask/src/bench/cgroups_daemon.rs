//! Benchmark 14: what 500 memory cgroups add to the daemon's own cost,
//! A/B on the daemon itself: 500 sleeping processes, each in a memcg of
//! its own under `memmon-bench-daemon-PID/` (A), against the same 500 sleepers in
//! memmon's own cgroup (B), `memmon daemon --interval 1 --max-cgroups
//! 500` (every cgroup its own series), /metrics scraped every 15 s as
//! Prometheus would; the daemon's CPU time (utime + stime) over the
//! window after a warm-up, the configurations interleaved over the rounds.
//! Against issue 13's target: <= 1% of one core added at 500 cgroups.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    Ctx, Section, cgroups::BenchCgroups, daemon_cost::usage, http, monitor::Monitor, stats,
};

/// Cgroups (and sleepers).
const CGROUPS: usize = 500;

/// 500 sleepers in the current cgroup, killed on drop.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn start(n: usize) -> anyhow::Result<Sleepers> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(
                Command::new("sleep")
                    .arg("3600")
                    .stdin(Stdio::null())
                    .spawn()
                    .context("spawning sleep")?,
            );
        }
        Ok(Sleepers(v))
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One daemon run: its CPU share of one core (%) over `window` after
/// `warmup`, and its resident set at the end.
fn daemon_share(ctx: &Ctx, warmup: Duration, window: Duration) -> anyhow::Result<(f64, u64)> {
    let (cmd, ready) = ctx.memmon_daemon(&["--interval", "1", "--max-cgroups", "500"]);
    let daemon = Monitor::start(cmd, ready)?;
    let addr = daemon.http_addr().context("daemon address")?;
    std::thread::sleep(warmup);
    let (cpu0, _) = usage(daemon.pid())?;
    let t0 = Instant::now();
    while t0.elapsed() < window {
        http::get(&addr, "/metrics")?;
        std::thread::sleep(Duration::from_secs(15).min(window.saturating_sub(t0.elapsed())));
    }
    let (cpu1, rss) = usage(daemon.pid())?;
    let share = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    daemon.stop()?;
    Ok((share, rss))
}

/// Runs the benchmark.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let (warmup, window) = if ctx.quick {
        (Duration::from_secs(3), Duration::from_secs(10))
    } else {
        (Duration::from_secs(5), Duration::from_secs(45))
    };
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut added = Vec::new();
    let mut rss = (0, 0);
    let mut version = "";
    for _ in 0..ctx.rounds {
        let b = {
            let _sleepers = Sleepers::start(CGROUPS)?;
            daemon_share(ctx, warmup, window)?
        };
        let a = {
            let (cgroups, v) = BenchCgroups::create_under(
                &format!("memmon-bench-daemon-{}", std::process::id()),
                CGROUPS,
            )?;
            version = v;
            let a = daemon_share(ctx, warmup, window)?;
            drop(cgroups);
            a
        };
        with.push(a.0);
        without.push(b.0);
        added.push(a.0 - b.0);
        rss = (a.1, b.1);
    }
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let w = stats::summarize(&with).context("no runs")?;
    let wo = stats::summarize(&without).context("no runs")?;
    let d = stats::summarize(&added).context("no runs")?;
    let verdict = if d.median <= 1.0 { "met" } else { "MISSED" };
    let mib = |b: u64| format!("{:.1}", b as f64 / (1 << 20) as f64);
    Ok(Section {
        title: format!("14. Daemon cost with {CGROUPS} memory cgroups, 1 s refresh (A/B)"),
        what: format!(
            "{CGROUPS} sleeping processes, each in a cgroup {version} memcg of its own under `memmon-bench-daemon-PID/` (with), or \
             all in the benchmark's own cgroup (without), and `memmon daemon --interval 1 --max-cgroups {CGROUPS}` \
             (every cgroup its own series; defaults otherwise: no per-fault probes), `/metrics` scraped every 15 s; \
             the daemon's CPU time (utime + stime from /proc/PID/stat) over {} s after a {} s warm-up (the first \
             pass reads every cgroup in full), {} round(s), the two configurations interleaved (without, then \
             with). The added cost is the difference within each round. Unlike benchmark 9 (the cgroup reader \
             alone), this is the whole daemon: the reader, the rollups, the forecast windows, the publication and \
             the scrapes.",
            window.as_secs(),
            warmup.as_secs(),
            ctx.rounds
        ),
        header: vec![
            "configuration",
            "daemon CPU, % of one core (median)",
            "min–max",
            "RSS at the end, MiB",
            "target",
        ],
        rows: vec![
            vec![
                format!("without cgroups ({CGROUPS} sleepers)"),
                format!("{:.2}", wo.median),
                format!("{:.2}–{:.2}", wo.min, wo.max),
                mib(rss.1),
                String::new(),
            ],
            vec![
                format!("with {CGROUPS} memcgs"),
                format!("{:.2}", w.median),
                format!("{:.2}–{:.2}", w.min, w.max),
                mib(rss.0),
                String::new(),
            ],
            vec![
                "added by the cgroups (paired difference)".into(),
                format!("{:.2}", d.median),
                format!("{:.2}–{:.2}", d.min, d.max),
                String::new(),
                format!("<= 1% of a core: {verdict}"),
            ],
        ],
        notes: vec![format!(
            "Load average before and after: {} / {} (other sessions build and benchmark on this machine at the \
             same time; the paired difference is what to read).",
            load0.trim(),
            load1.trim()
        )],
    })
}
