//! Benchmark 15: the endpoint under hostile clients. `memmon daemon`
//! (release) under a 1024 file limit (soft and hard, as systemd's default
//! soft limit leaves a unit that sets none), one attack at a time by
//! `memmon-hostile` (the workload package's) with two well-behaved
//! scrapers beside it fetching /metrics every 250 ms, one keeping its
//! connection alive (as Prometheus does), one on a new connection per
//! scrape; the attacks interleaved within each round, with an unattacked
//! run (`none`, plain and TLS) among them. Figures: the connections the
//! daemon held (its sockets, /proc/PID/fd), each scraper's p99 and worst
//! latency, RSS at the start and at its highest, log lines written during
//! the attack, the daemon's CPU time, and what the attackers saw.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{Ctx, Section, stats};

/// The daemon's file limit during the attacks.
const FILE_LIMIT: u64 = 1024;

/// One attack: (name, clients, seconds, needs --profile, over TLS).
const ATTACKS: &[(&str, u32, f64, bool, bool)] = &[
    ("none", 0, 10.0, false, false),
    ("idle", 3000, 10.0, false, false),
    ("slowloris", 200, 15.0, false, false),
    ("slowloris", 1000, 10.0, false, false),
    ("big-head", 50, 5.0, false, false),
    ("big-line", 50, 5.0, false, false),
    ("profile", 32, 10.0, true, false),
    ("no-read", 200, 10.0, false, false),
    ("tls-stall", 200, 15.0, false, true),
    ("tls-stall", 2000, 10.0, false, true),
    ("none", 0, 10.0, false, true),
];

struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Daemon {
    fn start(ctx: &Ctx, dir: &Path, profile: bool, tls: bool) -> anyhow::Result<Daemon> {
        let log = dir.join(format!("daemon-{}.log", std::process::id()));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&ctx.memmon);
        cmd.args([
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--log",
            "info",
        ]);
        if profile {
            cmd.arg("--profile");
        }
        if tls {
            cmd.arg("--web.config.file").arg(dir.join("web.yml"));
        }
        cmd.env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(file);
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: FILE_LIMIT,
                    rlim_max: FILE_LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd.spawn().context("starting memmon daemon")?;
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.split("serving http").nth(1))
                .and_then(|r| r.split("://").nth(1))
                .and_then(|r| r.split('/').next())
            {
                return Ok(Daemon {
                    child,
                    addr: addr.to_string(),
                    log,
                });
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the daemon did not serve:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A CA and a certificate for 127.0.0.1 in `dir` (`memmon-hostile
/// certs`), and web.yml using them.
fn make_tls(ctx: &Ctx, dir: &Path) -> anyhow::Result<()> {
    let out = Command::new(hostile(ctx))
        .arg("certs")
        .arg(dir)
        .output()
        .context("memmon-hostile certs")?;
    if !out.status.success() {
        bail!(
            "memmon-hostile certs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )?;
    Ok(())
}

/// The hostile client, beside the workload.
fn hostile(ctx: &Ctx) -> PathBuf {
    ctx.workload.with_file_name("memmon-hostile")
}

/// One attack's figures.
struct Figures {
    held: f64,
    /// The keep-alive scraper's.
    kept_p99_ms: f64,
    kept_max_ms: f64,
    /// Connections the keep-alive scraper opened (1: never closed on it).
    kept_connections: f64,
    /// The fresh-connection scraper's.
    fresh_p99_ms: f64,
    fresh_max_ms: f64,
    failures: usize,
    rss_start_mib: f64,
    rss_max_mib: f64,
    log_lines: usize,
    cpu_s: f64,
    attacker: String,
}

fn attack(ctx: &Ctx, dir: &Path, a: &(&str, u32, f64, bool, bool)) -> anyhow::Result<Figures> {
    let (name, clients, seconds, profile, tls) = *a;
    let d = Daemon::start(ctx, dir, profile, tls)?;
    // Let the first passes settle.
    std::thread::sleep(Duration::from_secs(2));
    let lines0 = d.lines();
    let mut cmd = Command::new(hostile(ctx));
    cmd.args([
        d.addr.as_str(),
        &d.child.id().to_string(),
        name,
        &clients.to_string(),
        &seconds.to_string(),
    ]);
    if tls {
        cmd.arg("--tls-ca").arg(dir.join("ca.crt"));
    }
    let out = cmd.output().context("memmon-hostile")?;
    let log_lines = d.lines().saturating_sub(lines0);
    d.stop();
    if !out.status.success() {
        bail!(
            "memmon-hostile {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).context("report JSON")?;
    let dm = &r["daemon"];
    let f = |k: &str| dm[k].as_f64().unwrap_or(f64::NAN);
    let (kept, fresh) = (&dm["keep_alive"], &dm["fresh"]);
    let g = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let failed = |v: &serde_json::Value| v["scrape_failures"].as_array().map_or(0, Vec::len);
    let at = &r["attacker"];
    Ok(Figures {
        held: f("sockets_max"),
        kept_p99_ms: g(kept, "scrape_ms_p99"),
        kept_max_ms: g(kept, "scrape_ms_max"),
        kept_connections: g(kept, "connections"),
        fresh_p99_ms: g(fresh, "scrape_ms_p99"),
        fresh_max_ms: g(fresh, "scrape_ms_max"),
        failures: failed(kept) + failed(fresh),
        rss_start_mib: f("rss_kib_start") / 1024.0,
        rss_max_mib: f("rss_kib_max") / 1024.0,
        log_lines,
        cpu_s: f("cpu_seconds"),
        attacker: format!(
            "{} connects, {} closed by the daemon, statuses {}",
            at["connects"], at["closed_by_daemon"], at["statuses"]
        ),
    })
}

/// Runs every attack `ctx.rounds` times (interleaved by round).
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let dir = tempfile_dir()?;
    make_tls(ctx, &dir)?;
    let rounds = if ctx.quick { 1 } else { 3 };
    let mut all: Vec<Vec<Figures>> = ATTACKS.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, a) in ATTACKS.iter().enumerate() {
            eprintln!(
                "bench hostile: round {} of {rounds}, {} × {}",
                round + 1,
                a.1,
                a.0
            );
            all[i].push(attack(ctx, &dir, a)?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    for (a, figs) in ATTACKS.iter().zip(&all) {
        let who = if a.1 == 0 {
            String::new()
        } else {
            format!("{} × ", a.1)
        };
        let s = |f: fn(&Figures) -> f64| {
            stats::summarize(&figs.iter().map(f).collect::<Vec<_>>()).map_or("-".into(), |s| {
                format!("{:.1} ({:.1}–{:.1})", s.median, s.min, s.max)
            })
        };
        let held = figs.iter().map(|f| f.held).fold(0.0, f64::max);
        let failures: usize = figs.iter().map(|f| f.failures).sum();
        let lines = figs.iter().map(|f| f.log_lines).max().unwrap_or(0);
        rows.push(vec![
            format!("{who}{}{}", a.0, if a.4 { " (TLS)" } else { "" }),
            format!("{:.0} s", a.2),
            format!("{held:.0}"),
            s(|f| f.kept_p99_ms),
            s(|f| f.kept_max_ms),
            s(|f| f.kept_connections),
            s(|f| f.fresh_p99_ms),
            s(|f| f.fresh_max_ms),
            failures.to_string(),
            s(|f| f.rss_start_mib),
            s(|f| f.rss_max_mib),
            lines.to_string(),
            s(|f| f.cpu_s),
            figs.last().map_or(String::new(), |f| f.attacker.clone()),
        ]);
    }
    Ok(Section {
        title: "15. The endpoint under hostile clients".into(),
        what: format!(
            "`memmon daemon` (release, defaults, `--log info`; `--profile` for the profile flood; TLS for tls-stall) under a {FILE_LIMIT} file limit (soft and hard: its connection cap is then 256), attacked by `memmon-hostile ADDR PID ATTACK N SECONDS` (memmon/workload): idle connections, slowloris (a request head one byte a second), 64 KiB of headers or of request line, GET /api/v1/profile?seconds=60 in a loop, 64 pipelined /api/v1/snapshot never read, TLS handshakes stalled after 9 bytes; each client reconnects 1 s after the daemon closes it. Two well-behaved scrapers fetch /metrics every 250 ms beside it (60 s hang guard): one keeps its connection alive from scrape to scrape, as Prometheus does (a request the daemon closed before answering is sent again once on a new connection, as Go's client does), one opens a new connection per scrape. `none` is the same run with no attacker (plain and TLS), interleaved with the attacks. {rounds} round(s), the attacks interleaved in each; medians with min–max. \"Held\" is the daemon's most sockets at once (listener and its own included); log lines are those written during the attack."
        ),
        header: vec![
            "attack",
            "for",
            "held (most)",
            "keep-alive /metrics p99, ms",
            "keep-alive worst, ms",
            "keep-alive connections",
            "new-connection /metrics p99, ms",
            "new-connection worst, ms",
            "failed scrapes",
            "RSS at start, MiB",
            "RSS highest, MiB",
            "log lines (most)",
            "daemon CPU, s",
            "attackers saw (last round)",
        ],
        rows,
        notes: vec![
            "Before these limits (issue 26): ~1,000 half-sent request lines under the 1024 limit took /metrics down (5 s timeouts) and the accept loop wrote 5.6 million warnings in seconds; 3,000 held connections took RSS from 12 to 63 MiB and were still open 22 s later.".into(),
            "The profile flood's RSS is the symbolizer's caches of every binary on the host (the continuous profile's own cost, whoever asks), not the connections'.".into(),
            "A round's p99 is the nearest rank of its ~40 scrapes, so it is that round's worst; the attacker (thousands of connections, reconnecting) runs on the same two cores as the daemon and the scraper. The `none` rows are the unattacked baseline of the same run; a connection that has had a request answered is closed to make room only after every one that has not, so the keep-alive scraper keeps its one connection under the floods (keep-alive connections 1).".into(),
        ],
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("memmon-bench-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
