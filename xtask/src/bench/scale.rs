//! Benchmark 12: cost curves. The daemon's CPU, RSS and /metrics p99 at
//! 100, 1,000, 5,000, 10,000 and 30,000 idle processes and at 10, 100,
//! 500 and 1,000 memory cgroups (1 s refresh, /metrics scraped every
//! second, steady state after a warm-up), with node_exporter measured the
//! same way at 1,000, 10,000 and 30,000 processes and
//! prometheus-process-exporter at 1,000 and 10,000; the slope of memmon's
//! CPU and RSS per idle process (least squares over its points); draws the
//! curves into BENCHMARKS-scale.svg (plot.rs).

use std::{
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    Ctx, Section,
    cgroups::BenchCgroups,
    daemon_cost::{Held, usage},
    http,
    monitor::Monitor,
    plot, stats,
};
use crate::cmd;

/// The plot, next to BENCHMARKS.md.
pub const SVG: &str = "BENCHMARKS-scale.svg";

/// One measured point.
#[derive(Clone)]
struct Point {
    tool: &'static str,
    /// Processes in /proc during the run.
    processes: usize,
    /// Memory cgroups made for the run (0: none).
    cgroups: usize,
    /// The x of its curve (idle processes or cgroups asked for).
    x: usize,
    cpu_pct: f64,
    rss: u64,
    p99_ms: f64,
    /// Seconds from spawn until its port answered.
    ready_s: f64,
    /// Seconds of warm-up before the window.
    warm_s: u64,
}

/// How long each phase lasts.
struct Timing {
    /// memmon's shortest warm-up (it goes on until the cost guard's first
    /// round is done, see [`warm_memmon`]), so the window is the steady
    /// state a long-running daemon pays.
    memmon_warm: u64,
    /// Its longest.
    memmon_warm_max: u64,
    /// The exporters keep no state between scrapes: a short warm-up.
    exporter_warm: u64,
    window: u64,
    burst: usize,
}

fn processes_in_proc() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits (up to 60 s) until /proc is back to `baseline` processes (plus
/// a few): an idle workload's children exit one by one once their stdin
/// closes, and the next point must not count them.
fn settle(baseline: usize) {
    let t = Instant::now();
    while processes_in_proc() > baseline + 20 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits (up to 120 s) until `addr` accepts a connection: seconds taken.
fn wait_port(addr: &str, child: &mut Child) -> anyhow::Result<f64> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        if TcpStream::connect(addr).is_ok() {
            return Ok(t.elapsed().as_secs_f64());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("{addr}: the exporter exited ({status}) before opening its port");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("{addr}: no port after 120 s")
}

/// Scrapes `addr`/metrics once a second through the warm-up and the
/// window, then `burst` times back to back: (CPU % of one core over the
/// window, RSS at its end, p99 ms of the burst).
fn measure(pid: u32, addr: &str, warm: u64, t: &Timing) -> anyhow::Result<(f64, u64, f64)> {
    for _ in 0..warm {
        std::thread::sleep(Duration::from_secs(1));
        http::get(addr, "/metrics")?;
    }
    measure_window(pid, addr, t)
}

/// memmon's warm-up: at least `min` s of once-a-second scrapes, and until
/// its cost guard has read every process once (no read deferred in 3
/// scrapes in a row, at most `max` s): with 10,000 processes that first
/// round alone takes about half a minute at the guard's 2% budget, and a
/// long-running daemon pays it once. Seconds spent.
fn warm_memmon(addr: &str, min: u64, max: u64) -> anyhow::Result<u64> {
    let mut settled = 0;
    for s in 1..=max {
        std::thread::sleep(Duration::from_secs(1));
        let text = http::get(addr, "/metrics")?;
        let deferred = text
            .lines()
            .find(|l| l.starts_with("memmon_procfs_processes_deferred "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        settled = if deferred == Some(0.0) {
            settled + 1
        } else {
            0
        };
        if s >= min && settled >= 3 {
            return Ok(s);
        }
    }
    Ok(max)
}

/// The measured window after the warm-up: (CPU % of one core over it, RSS
/// at its end, p99 ms of the burst that follows).
fn measure_window(pid: u32, addr: &str, t: &Timing) -> anyhow::Result<(f64, u64, f64)> {
    let (cpu0, _) = usage(pid)?;
    let t0 = Instant::now();
    for _ in 0..t.window {
        std::thread::sleep(Duration::from_secs(1));
        http::get(addr, "/metrics")?;
    }
    let (cpu1, rss) = usage(pid)?;
    let cpu = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let mut lat = Vec::with_capacity(t.burst);
    for _ in 0..t.burst {
        let s = Instant::now();
        http::get(addr, "/metrics")?;
        lat.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let p99 = lat
        .get(((lat.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or(f64::NAN);
    Ok((cpu, rss, p99))
}

fn memmon_point(ctx: &Ctx, t: &Timing, x: usize, cgroups: usize) -> anyhow::Result<Point> {
    point_of(ctx, &ctx.memmon, "memmon", t, x, cgroups)
}

/// The point of the memmon binary `bin`, named `tool` in the table.
fn point_of(
    ctx: &Ctx,
    bin: &std::path::Path,
    tool: &'static str,
    t: &Timing,
    x: usize,
    cgroups: usize,
) -> anyhow::Result<Point> {
    let (cmd, ready) = ctx.daemon_of(bin, &[]);
    let started = Instant::now();
    let daemon = Monitor::start(cmd, ready)?;
    let ready_s = started.elapsed().as_secs_f64();
    let addr = daemon.http_addr().context("daemon address")?;
    let processes = processes_in_proc();
    let warm_s = warm_memmon(&addr, t.memmon_warm, t.memmon_warm_max)?;
    let (cpu_pct, rss, p99_ms) = measure_window(daemon.pid(), &addr, t)?;
    daemon.stop()?;
    Ok(Point {
        tool,
        processes,
        cgroups,
        x,
        cpu_pct,
        rss,
        p99_ms,
        ready_s,
        warm_s,
    })
}

/// Killed and reaped on drop.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exporter_point(tool: &'static str, t: &Timing, x: usize) -> anyhow::Result<Point> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let config = std::env::temp_dir().join("memmon-bench-process-exporter.yml");
    let mut cmd = match tool {
        "process-exporter" => {
            // One group per comm, as in the measurement.
            std::fs::write(
                &config,
                "process_names:\n  - name: \"{{.Comm}}\"\n    cmdline:\n    - '.+'\n",
            )?;
            let mut c = Command::new("prometheus-process-exporter");
            c.args(["-config.path", &config.to_string_lossy()])
                .args(["-web.listen-address", &addr]);
            c
        }
        _ => {
            let mut c = Command::new("prometheus-node-exporter");
            c.arg(format!("--web.listen-address={addr}"));
            c
        }
    };
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?} (apt-get install it)"))?;
    let mut ex = Exporter(child);
    wait_port(&addr, &mut ex.0)?;
    let ready_s = started.elapsed().as_secs_f64();
    let processes = processes_in_proc();
    let (cpu_pct, rss, p99_ms) = measure(ex.0.id(), &addr, t.exporter_warm, t)?;
    drop(ex);
    let _ = std::fs::remove_file(&config);
    Ok(Point {
        tool,
        processes,
        cgroups: 0,
        x,
        cpu_pct,
        rss,
        p99_ms,
        ready_s,
        warm_s: t.exporter_warm,
    })
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// Runs the benchmark; writes the plot.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let t = if ctx.quick {
        Timing {
            memmon_warm: 3,
            memmon_warm_max: 10,
            exporter_warm: 2,
            window: 5,
            burst: 20,
        }
    } else {
        Timing {
            memmon_warm: 35,
            memmon_warm_max: 240,
            exporter_warm: 5,
            window: 30,
            burst: 100,
        }
    };
    let counts: &[usize] = if ctx.quick {
        &[100, 1000]
    } else {
        &[100, 1000, 5000, 10000, 30000]
    };
    let cgroup_counts: &[usize] = if ctx.quick {
        &[10]
    } else {
        &[10, 100, 500, 1000]
    };
    // 30,000 idle processes and the machine's own need more pids than a
    // kernel's default pid_max (32768) leaves: raised for the run.
    let _pids = PidMax::at_least(2 * counts.iter().max().copied().unwrap_or(0) + 4096)?;
    let mut points = Vec::new();
    let mut compared = Vec::new();
    let baseline = processes_in_proc();
    for &n in counts {
        eprintln!("bench: scale: {n} idle processes");
        let idle = Held::start(ctx, &["idle", &n.to_string()])?;
        points.push(memmon_point(ctx, &t, n, 0)?);
        if let Some(before) = &ctx.baseline
            && (n == 1000 || n == 10000)
        {
            compared.push(before_after(ctx, before, &t, n, &points[points.len() - 1])?);
        }
        // process-exporter reads every process's files on each scrape:
        // past 10,000 its scrape alone outlasts the 1 s period.
        if n == 1000 || n == 10000 {
            points.push(exporter_point("process-exporter", &t, n)?);
        }
        if n >= 1000 {
            points.push(exporter_point("node_exporter", &t, n)?);
        }
        drop(idle);
        settle(baseline);
    }
    for &c in cgroup_counts {
        eprintln!("bench: scale: {c} memory cgroups");
        let (cgroups, _) = BenchCgroups::create(c)?;
        points.push(memmon_point(ctx, &t, c, c)?);
        drop(cgroups);
        settle(baseline);
    }
    write_plot(&points)?;

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let node_at = |x: usize| {
        points
            .iter()
            .find(|p| p.tool == "node_exporter" && p.x == x)
            .map(|p| p.cpu_pct)
    };
    let mut rows = Vec::new();
    for p in points.iter().chain(compared.iter().flat_map(|c| &c.before)) {
        let target = if p.tool == "memmon" && p.cgroups == 0 && p.x == 10000 {
            let node = node_at(p.x);
            format!(
                "CPU <= 1% and <= node_exporter's ({}): {}; RSS <= 40 MiB: {}; p99 <= 20 ms: {}",
                node.map_or("-".into(), |n| format!("{n:.2}%")),
                verdict(p.cpu_pct <= 1.0 && node.is_none_or(|n| p.cpu_pct <= n)),
                verdict(p.rss <= 40 << 20),
                verdict(p.p99_ms <= 20.0)
            )
        } else {
            String::new()
        };
        rows.push(vec![
            p.tool.to_string(),
            if p.cgroups == 0 {
                format!("{} idle", p.x)
            } else {
                format!("{} cgroups", p.cgroups)
            },
            p.processes.to_string(),
            format!("{:.2}", p.cpu_pct),
            format!("{:.1}", mib(p.rss)),
            format!("{:.2}", p.p99_ms),
            format!("{:.2}", p.ready_s),
            p.warm_s.to_string(),
            target,
        ]);
    }
    let mut notes = vec![slopes(&points)];
    notes.extend([NOTE.to_string(), PROFILE_10K.to_string()]);
    notes.extend(compared.iter().map(Compared::note));
    Ok(Section {
        title: "12. Cost curves: 100 to 30,000 processes, 10 to 1,000 cgroups, beside process-exporter and node_exporter".into(),
        what: format!(
            "For each point: `memmon-workload idle N` (N sleeping processes) or N cgroup memcgs under `memmon-bench/` with one \
             `sleep` each; the tool starts, /metrics is fetched once a second for a warm-up (memmon: at least {} s and \
             until its cost guard has read every process once, no read deferred in 3 scrapes in a row; exporters: {} s), then CPU (utime+stime from /proc/PID/stat) over the next {} s of once-a-second \
             scrapes and VmRSS at their end; then {} back-to-back scrapes for the p99. memmon: `memmon daemon` on its \
             defaults (1 s refresh). prometheus-process-exporter (Debian) with one group per comm \
             (`name: \"{{{{.Comm}}}}\"`, its defaults otherwise, smaps included); prometheus-node-exporter (Debian) on its \
             defaults. \"processes\" counts /proc at the start (the machine's own are included); \"ready\" is seconds from \
             spawn to an open port (memmon: to its `serving` line). Plot: [{SVG}]({SVG}).",
            t.memmon_warm, t.exporter_warm, t.window, t.burst
        ),
        header: vec![
            "tool",
            "point",
            "processes",
            "CPU, % of one core",
            "RSS, MiB",
            "/metrics p99, ms",
            "ready, s",
            "warm-up, s",
            "target",
        ],
        rows,
        notes,
    })
}

/// Least-squares slope and intercept of `(x, y)`.
fn fit(xy: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = xy.len() as f64;
    if xy.len() < 2 {
        return None;
    }
    let (sx, sy) = xy.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = xy.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xy.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (sxx > 0.0).then(|| (sxy / sxx, my - sxy / sxx * mx))
}

/// What each more idle process (and memory cgroup) costs memmon, from the
/// points of this run.
fn slopes(points: &[Point]) -> String {
    let memmon = |cg: bool| -> Vec<&Point> {
        points
            .iter()
            .filter(|p| p.tool == "memmon" && (p.cgroups > 0) == cg)
            .collect()
    };
    let line = |what: &str, pts: &[&Point]| -> String {
        let cpu: Vec<(f64, f64)> = pts.iter().map(|p| (p.x as f64, p.cpu_pct)).collect();
        let rss: Vec<(f64, f64)> = pts.iter().map(|p| (p.x as f64, mib(p.rss))).collect();
        match (fit(&cpu), fit(&rss)) {
            (Some((c, c0)), Some((r, r0))) => format!(
                "per {what}: CPU {:+.4}% of a core per 1,000 ({:+.0} ns of CPU per {what} per second; \
                 {c0:.2}% at none), RSS {:+.1} KiB per {what} ({r0:.1} MiB at none)",
                c * 1000.0,
                c * 1e7,
                r * 1024.0
            ),
            _ => format!("per {what}: too few points"),
        }
    };
    format!(
        "Slopes (least squares over memmon's points of this run): {}; {}.",
        line("idle process", &memmon(false)),
        line("memory cgroup", &memmon(true))
    )
}

/// `kernel.pid_max` raised for the run, restored on drop.
struct PidMax(Option<String>);

impl PidMax {
    const PATH: &'static str = "/proc/sys/kernel/pid_max";

    fn at_least(want: usize) -> anyhow::Result<PidMax> {
        let old = std::fs::read_to_string(Self::PATH).context("reading pid_max")?;
        let now: usize = old.trim().parse().unwrap_or(0);
        if now >= want {
            return Ok(PidMax(None));
        }
        std::fs::write(Self::PATH, want.to_string())
            .with_context(|| format!("raising {} to {want} (needs root)", Self::PATH))?;
        eprintln!("bench: scale: pid_max {now} -> {want} for the run");
        Ok(PidMax(Some(old.trim().to_string())))
    }
}

impl Drop for PidMax {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old);
        }
    }
}

/// How many (before, after) pairs `--baseline` measures at a point (two:
/// the 10,000-process point alone takes minutes).
const PAIRS: usize = 2;

/// This build and a baseline binary at one point, in pairs.
struct Compared {
    x: usize,
    /// The baseline's points, one per pair.
    before: Vec<Point>,
    /// This build's, one per pair (the first is the section's own point).
    after: Vec<Point>,
}

impl Compared {
    /// The paired differences, after − before, as a note.
    fn note(&self) -> String {
        let diffs = |f: &dyn Fn(&Point) -> f64| -> Vec<f64> {
            self.before
                .iter()
                .zip(&self.after)
                .map(|(b, a)| f(a) - f(b))
                .collect()
        };
        let show = |v: &[f64], digits: usize| {
            let s = stats::summarize(v).map_or("-".into(), |s| {
                format!(
                    "median {:+.*}, min–max {:+.*}–{:+.*}",
                    digits, s.median, digits, s.min, digits, s.max
                )
            });
            let each: Vec<String> = v.iter().map(|d| format!("{d:+.digits$}")).collect();
            format!("{s} (pairs: {})", each.join(", "))
        };
        let cpu = diffs(&|p| p.cpu_pct);
        let rss = diffs(&|p| mib(p.rss));
        let p99 = diffs(&|p| p.p99_ms);
        let med = |f: &dyn Fn(&Point) -> f64, v: &[Point]| {
            stats::summarize(&v.iter().map(f).collect::<Vec<_>>()).map_or(f64::NAN, |s| s.median)
        };
        format!(
            "Before/after at {} idle processes (`--baseline`: \"memmon (baseline)\" rows), {} pairs interleaved \
             (this build first in the first pair, then the order alternates), after − before: CPU {} points of a core; \
             RSS {} MiB; /metrics p99 {} ms. Medians: CPU {:.2}% before, {:.2}% after; RSS {:.1} MiB before, {:.1} MiB after.",
            self.x,
            self.before.len(),
            show(&cpu, 2),
            show(&rss, 1),
            show(&p99, 2),
            med(&|p| p.cpu_pct, &self.before),
            med(&|p| p.cpu_pct, &self.after),
            med(&|p| mib(p.rss), &self.before),
            med(&|p| mib(p.rss), &self.after),
        )
    }
}

/// [`PAIRS`] (before, after) pairs at `x` idle processes (already
/// running): this build's point `first` is the first pair's after, taken
/// before its before; the order alternates from there.
fn before_after(
    ctx: &Ctx,
    baseline: &std::path::Path,
    t: &Timing,
    x: usize,
    first: &Point,
) -> anyhow::Result<Compared> {
    let pairs = if ctx.quick { 1 } else { PAIRS };
    let mut c = Compared {
        x,
        before: Vec::new(),
        after: vec![first.clone()],
    };
    for pair in 0..pairs {
        eprintln!(
            "bench: scale: {x} idle processes, baseline pair {}",
            pair + 1
        );
        let before = || point_of(ctx, baseline, "memmon (baseline)", t, x, 0);
        if pair == 0 {
            c.before.push(before()?);
        } else if pair % 2 == 1 {
            c.before.push(before()?);
            c.after.push(memmon_point(ctx, t, x, 0)?);
        } else {
            c.after.push(memmon_point(ctx, t, x, 0)?);
            c.before.push(before()?);
        }
    }
    Ok(c)
}

/// What the 2026-12-03 run found (kept with the figures on re-runs).
const NOTE: &str = "How 10,000 processes stay cheap: a pass reads only the processes that ran since the last one (the `ran_switch` and `ran_tick` probes mark them in a bitmap shared with memmon; each is read alone through the BPF task iterator), and every 10th pass one read of the iterator walks every task (`iter/task`, ~0.5 µs of kernel time per task here) to catch what changed without running; the cgroup sums, OOM candidates and processes by size live in an index updated per changed process, which also gives the flight recorders their choice and /metrics its top K by RSS; a process unchanged since the last pass keeps its published row (an `Arc`, nothing rebuilt or copied); rows hold their measured values alone (8 bytes each, a bit per field says which) and a process's kernel counters are allocated only once one is non-zero; idle processes are re-read for PSS (smaps_rollup) every 300 s or less often (the cost guard's idle share); free heap is handed back every 60 passes. process-exporter reads every process's /proc files on each scrape; node_exporter stays flat because it reads no per-process files.";

/// Where the 10,000-process pass goes (2026-12-04, kept with the figures
/// on re-runs).
const PROFILE_10K: &str = "Where the cost at 10,000 idle processes goes (`perf record -F 4999 -g -p $(pidof memmon)` for 30 s, 2026-12-07, the build before /metrics read its top K from the index): the walk of every task each 10th pass 18% (the `task_iter` program, `get_pid_task`, `pid_nr_ns`); /metrics 25% (ranking every row for the top K 9%, since read from the index; building and encoding the families; writing the counter floors before each answer 5%); publishing the rows 8% (an `Arc` clone and drop per live process per pass); the cost guard's smaps_rollup reads 4%. Earlier today the two flight recorders chose their processes by sorting every live row each pass (a quarter of the CPU); they read the index now.";

fn write_plot(points: &[Point]) -> anyhow::Result<()> {
    let series =
        |tool: &str, colour: &'static str, y: &dyn Fn(&Point) -> f64, cg: bool| plot::Series {
            name: tool.to_string(),
            colour,
            points: points
                .iter()
                .filter(|p| p.tool == tool && (p.cgroups > 0) == cg)
                .map(|p| (p.x as f64, y(p)))
                .collect(),
        };
    let cpu = |p: &Point| p.cpu_pct;
    let rss = |p: &Point| mib(p.rss);
    let tools = [
        ("memmon", "#1f77b4"),
        ("process-exporter", "#d62728"),
        ("node_exporter", "#2ca02c"),
    ];
    let panels = [
        plot::Panel {
            title: "CPU, idle processes".into(),
            x_label: "processes",
            y_label: "% of one core",
            series: tools
                .iter()
                .map(|(n, c)| series(n, c, &cpu, false))
                .collect(),
        },
        plot::Panel {
            title: "RSS, idle processes".into(),
            x_label: "processes",
            y_label: "MiB",
            series: tools
                .iter()
                .map(|(n, c)| series(n, c, &rss, false))
                .collect(),
        },
        plot::Panel {
            title: "memmon, memory cgroups".into(),
            x_label: "cgroups",
            y_label: "% of one core / MiB",
            series: vec![
                plot::Series {
                    name: "CPU, %".into(),
                    ..series("memmon", "#1f77b4", &cpu, true)
                },
                plot::Series {
                    name: "RSS, MiB".into(),
                    ..series("memmon", "#9467bd", &rss, true)
                },
            ],
        },
    ];
    let path = cmd::workspace().join(SVG);
    std::fs::write(&path, plot::svg(&panels))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}
