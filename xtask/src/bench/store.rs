//! Benchmark 10: the recorder (`memmon daemon --record`) with 1,000 idle
//! processes at 1 s: bytes per hour (key frames and deltas measured from
//! the shards, extrapolated to an hour at the writer's key-frame spacing)
//! and the recorder thread's own CPU (/proc/PID/task/TID/stat of
//! `memmon-recorder`, which serializes, diffs, compresses and writes).

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{Ctx, Section, monitor::Monitor};

/// utime + stime seconds of the thread of `pid` named `name`.
fn thread_cpu(pid: u32, name: &str) -> anyhow::Result<f64> {
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = e?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat"))?;
        let rest = stat.rsplit_once(')').context("stat")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |n: usize| {
            f.get(n - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        return Ok((t(14) + t(15)) / 100.0);
    }
    anyhow::bail!("no thread {name} in pid {pid}")
}

/// (key frame sizes, delta frame sizes) in the store's shards.
fn frame_sizes(dir: &std::path::Path) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut keys, mut deltas) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir)? {
        let b = std::fs::read(e?.path())?;
        if b.len() < 14 || &b[..8] != b"MEMMONST" {
            continue;
        }
        let mut off = 14 + u16::from_le_bytes([b[12], b[13]]) as usize;
        while off + 32 <= b.len() && &b[off..off + 4] == b"MMFR" {
            let len =
                u32::from_le_bytes([b[off + 24], b[off + 25], b[off + 26], b[off + 27]]) as usize;
            let size = (32 + len) as f64;
            if b[off + 4] == 0 {
                keys.push(size)
            } else {
                deltas.push(size)
            }
            off += 32 + len;
        }
    }
    Ok((keys, deltas))
}

/// Runs the benchmark.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let idle = super::daemon_cost::Held::start(ctx, &["idle", "1000"])?;
    let store = tempfile_dir()?;
    let dir = store.join("store");
    let dir_s = dir.to_str().context("utf-8 path")?.to_string();
    let (cmd, ready) = ctx.memmon_daemon(&["--record", &dir_s]);
    let daemon = Monitor::start(cmd, ready)?;
    std::thread::sleep(Duration::from_secs(3));
    let window = if ctx.quick { 20 } else { 120 };
    let cpu0 = thread_cpu(daemon.pid(), "memmon-recorder")?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(window));
    let cpu1 = thread_cpu(daemon.pid(), "memmon-recorder")?;
    let secs = t0.elapsed().as_secs_f64();
    daemon.stop()?;
    drop(idle);
    let (keys, deltas) = frame_sizes(&dir)?;
    let _ = std::fs::remove_dir_all(&store);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (key, delta) = (mean(&keys), mean(&deltas));
    // The writer starts a key frame when a delta outgrows a quarter of its
    // key, so the measured mix (first-minute keys included) is the rate.
    let frames = (keys.len() + deltas.len()).max(1) as f64;
    let per_hour = (keys.iter().sum::<f64>() + deltas.iter().sum::<f64>()) / frames * 3600.0;
    let cpu_pct = (cpu1 - cpu0) / secs * 100.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    Ok(Section {
        title: "10. Recorder, 1,000 idle processes, 1 s refresh".into(),
        what: format!(
            "`memmon daemon --record DIR` on its defaults with 1,000 idle processes (`memmon-workload idle 1000`) for {window} s; frame sizes read from the shards ({} key, {} delta frames), an hour = 3,600 frames at the measured mean frame size, keys included; CPU of the `memmon-recorder` thread from /proc/PID/task/TID/stat.",
            keys.len(),
            deltas.len(),
        ),
        header: vec!["figure", "value", "target"],
        rows: vec![
            vec![
                "key frame".into(),
                format!("{:.1} KiB", key / 1024.0),
                String::new(),
            ],
            vec![
                "delta frame".into(),
                format!("{:.1} KiB", delta / 1024.0),
                String::new(),
            ],
            vec![
                "store per hour".into(),
                format!("{:.1} MiB", per_hour / 1048576.0),
                format!("<= 40 MiB: {}", verdict(per_hour <= 40.0 * 1048576.0)),
            ],
            vec![
                "recorder CPU, % of one core".into(),
                format!("{cpu_pct:.2}"),
                format!("<= 0.5%: {}", verdict(cpu_pct <= 0.5)),
            ],
        ],
        notes: Vec::new(),
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("memmon-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
