//! Benchmark 13: kill record latency. N `kill -9`s of idle processes and
//! N memcg OOM kills, one at a time, each timed from the kernel's own
//! timestamp of the kill (the record's `boot_ns`: CLOCK_BOOTTIME when the
//! signal was generated, or when the OOM killer marked its victim) to the
//! moment the record is seen (CLOCK_BOOTTIME): in the daemon's
//! `/api/v1/events` (polled every 10 ms; the daemon at its default 1 s
//! pass) and on `memmon events --json`'s stdout (read as written). On this
//! machine, and in a qemu guest (Debian's 6.12, cgroup v2, TCG: the same
//! measurement run there by `xtask kill-latency`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{Ctx, Section, cgroups::write, http, monitor::Monitor};
use crate::cmd;

/// CLOCK_BOOTTIME now, ns: the clock of the records' `boot_ns`.
fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Latencies of one kind of kill through one output, ms.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// `kill -9` or `OOM kill`.
    pub kind: String,
    /// `/api/v1/events` or `memmon events --json`.
    pub output: String,
    /// One latency per kill, ms.
    pub ms: Vec<f64>,
    /// Kills whose record never showed (within 30 s).
    pub missing: usize,
}

/// What one run measured (written as JSON by the guest).
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// `uname -r`.
    pub kernel: String,
    /// `v1` or `v2`.
    pub cgroup: String,
    /// The series.
    pub series: Vec<Series>,
    /// /proc/loadavg before and after.
    pub load: (String, String),
}

impl Run {
    /// As JSON (what the guest writes).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kernel": self.kernel,
            "cgroup": self.cgroup,
            "load": [self.load.0, self.load.1],
            "series": self.series.iter().map(|s| serde_json::json!({
                "kind": s.kind, "output": s.output, "ms": s.ms, "missing": s.missing,
            })).collect::<Vec<_>>(),
        })
    }

    /// From [`Run::to_json`]'s JSON.
    pub fn from_json(v: &serde_json::Value) -> anyhow::Result<Run> {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let series = v["series"]
            .as_array()
            .context("no series")?
            .iter()
            .map(|s| Series {
                kind: text(&s["kind"]),
                output: text(&s["output"]),
                ms: s["ms"]
                    .as_array()
                    .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                    .unwrap_or_default(),
                missing: s["missing"].as_u64().unwrap_or(0) as usize,
            })
            .collect();
        Ok(Run {
            kernel: text(&v["kernel"]),
            cgroup: text(&v["cgroup"]),
            series,
            load: (text(&v["load"][0]), text(&v["load"][1])),
        })
    }
}

/// A memory cgroup with a limit and no swap, removed on drop.
struct Memcg {
    dir: PathBuf,
}

impl Memcg {
    fn create(limit: u64) -> anyhow::Result<(Memcg, &'static str)> {
        let v2_root = std::env::var_os("MEMMON_CGROUP_ROOT").map(PathBuf::from);
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (root, version) = match v2_root {
            Some(r) if r.join("cgroup.controllers").exists() => (r, "v2"),
            _ if v1.join("memory.usage_in_bytes").exists() => (v1.to_path_buf(), "v1"),
            _ => (PathBuf::from("/sys/fs/cgroup"), "v2"),
        };
        if version == "v2" {
            let _ = write(&root.join("cgroup.subtree_control"), "+memory");
        }
        let dir = root.join(format!("memmon-bench-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let cg = Memcg { dir };
        if version == "v2" {
            write(&cg.dir.join("memory.max"), &limit.to_string())?;
            let _ = write(&cg.dir.join("memory.swap.max"), "0");
        } else {
            write(&cg.dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            let _ = write(&cg.dir.join("memory.swappiness"), "0");
            let _ = write(
                &cg.dir.join("memory.memsw.limit_in_bytes"),
                &limit.to_string(),
            );
        }
        Ok((cg, version))
    }
}

impl Drop for Memcg {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Lines of `memmon events --json` with the CLOCK_BOOTTIME they were read
/// at.
struct EventsStream {
    child: Child,
    lines: Arc<Mutex<Vec<(u64, String)>>>,
}

impl EventsStream {
    fn start(memmon: &Path) -> anyhow::Result<EventsStream> {
        let mut child = Command::new(memmon)
            .args(["events", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("memmon events")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().context("stdout")?;
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let at = boottime_ns();
                if let Ok(mut l) = sink.lock() {
                    l.push((at, line));
                }
            }
        });
        let err = child.stderr.take().context("stderr")?;
        let mut err = BufReader::new(err);
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line)? == 0 {
                bail!("memmon events ended before attaching its probes");
            }
            if line.contains("probes attached") {
                break;
            }
        }
        std::thread::spawn(move || for _ in err.lines() {});
        Ok(EventsStream { child, lines })
    }

    /// Stops it (SIGINT: it drains what arrived first) and returns its
    /// lines.
    fn finish(mut self) -> Vec<(u64, String)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The record of `pid` in `/api/v1/events` → `key`: its `boot_ns`, once
/// there (polled every 10 ms, up to 30 s), with the CLOCK_BOOTTIME it was
/// first seen at.
fn wait_record(addr: &str, key: &str, pid_key: &str, pid: u32) -> Option<(u64, u64)> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let seen = boottime_ns();
        if let Ok(body) = http::get(addr, "/api/v1/events")
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(boot_ns) = v[key].as_array().and_then(|a| {
                a.iter()
                    .find(|r| r[pid_key].as_u64() == Some(u64::from(pid)))
                    .and_then(|r| r["boot_ns"].as_u64())
            })
        {
            return Some((boot_ns, seen));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn ms(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e6
}

/// The memmon-workload `oom 128` in `cg`: started, moved in, let go, and
/// waited for (the OOM killer ends it); its pid.
fn oom_kill(workload: &Path, cg: &Memcg) -> anyhow::Result<u32> {
    let mut c = Command::new(workload)
        .args(["oom", "128"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("memmon-workload oom")?;
    let mut out = BufReader::new(c.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let pid = c.id();
    write(&cg.dir.join("cgroup.procs"), &pid.to_string())?;
    c.stdin.as_mut().context("stdin")?.write_all(b"go\n")?;
    let status = c.wait()?;
    anyhow::ensure!(!status.success(), "the OOM victim survived: {status}");
    Ok(pid)
}

/// Runs the measurement here: `sigkills` kill -9s and `ooms` OOM kills,
/// with the daemon and `memmon events --json` both watching.
pub fn measure(
    memmon: &Path,
    workload: &Path,
    sigkills: usize,
    ooms: usize,
) -> anyhow::Result<Run> {
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut cmd = Command::new(memmon);
    cmd.args(["daemon", "--listen", "127.0.0.1:0", "--no-pin"])
        .args(["--interval", "1", "--probe-cpu-budget", "0"]);
    let daemon = Monitor::start(cmd, "serving http://")?;
    let addr = daemon.http_addr().context("daemon address")?;
    let events = EventsStream::start(memmon)?;
    let (cg, version) = Memcg::create(32 << 20)?;
    let mut api = [Series::default(), Series::default()];
    let mut kills: Vec<(&'static str, u32)> = Vec::new();
    // Spread over the daemon's pass: a kill every 0.25–0.75 s after the
    // last record was seen.
    let mut jitter = 0x9e37_79b9_u32;
    let mut pause = || {
        jitter ^= jitter << 13;
        jitter ^= jitter >> 17;
        jitter ^= jitter << 5;
        std::thread::sleep(Duration::from_millis(250 + u64::from(jitter % 500)));
    };
    for _ in 0..sigkills {
        let mut c = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .context("sleep")?;
        std::thread::sleep(Duration::from_millis(20));
        let pid = c.id();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let _ = c.wait();
        kills.push(("kill -9", pid));
        match wait_record(&addr, "sigkills", "target_pid", pid) {
            Some((boot, seen)) => api[0].ms.push(ms(boot, seen)),
            None => api[0].missing += 1,
        }
        pause();
    }
    for _ in 0..ooms {
        let pid = oom_kill(workload, &cg)?;
        kills.push(("OOM kill", pid));
        match wait_record(&addr, "oom_kills", "pid", pid) {
            Some((boot, seen)) => api[1].ms.push(ms(boot, seen)),
            None => api[1].missing += 1,
        }
        pause();
    }
    let lines = events.finish();
    daemon.stop()?;
    drop(cg);
    let mut stream = [Series::default(), Series::default()];
    for (kind, pid) in &kills {
        let (i, ty, pid_key) = match *kind {
            "kill -9" => (0, "sigkill", "target_pid"),
            _ => (1, "oom_kill", "pid"),
        };
        let found = lines.iter().find_map(|(at, l)| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["type"] == ty && v[pid_key].as_u64() == Some(u64::from(*pid)))
                .then(|| v["boot_ns"].as_u64().map(|b| ms(b, *at)))
                .flatten()
        });
        match found {
            Some(m) => stream[i].ms.push(m),
            None => stream[i].missing += 1,
        }
    }
    let mut series = Vec::new();
    for (i, kind) in ["kill -9", "OOM kill"].into_iter().enumerate() {
        for (s, output) in [
            (&api[i], "/api/v1/events"),
            (&stream[i], "memmon events --json"),
        ] {
            series.push(Series {
                kind: kind.into(),
                output: output.into(),
                ..s.clone()
            });
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Ok(Run {
        kernel: kernel.trim().to_string(),
        cgroup: version.to_string(),
        series,
        load: (
            load0.trim().to_string(),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    })
}

/// `q` quantile (nearest rank) of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn table_rows(where_: &str, run: &Run) -> Vec<Vec<String>> {
    run.series
        .iter()
        .map(|s| {
            let mut v = s.ms.clone();
            v.sort_by(f64::total_cmp);
            vec![
                format!("{where_} ({}, cgroup {})", run.kernel, run.cgroup),
                s.kind.clone(),
                format!("`{}`", s.output),
                format!(
                    "{}{}",
                    v.len(),
                    if s.missing > 0 {
                        format!(" ({} missing)", s.missing)
                    } else {
                        String::new()
                    }
                ),
                format!("{:.1}", quantile(&v, 0.5)),
                format!("{:.1}", quantile(&v, 0.99)),
                format!("{:.1}", v.last().copied().unwrap_or(f64::NAN)),
            ]
        })
        .collect()
}

/// Runs the benchmark here and in a 6.12 guest.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let (sigkills, ooms) = if ctx.quick { (10, 3) } else { (100, 30) };
    let host = measure(&ctx.memmon, &ctx.workload, sigkills, ooms)?;
    let mut rows = table_rows("host", &host);
    let mut notes = vec![format!(
        "Load average on the host before and after its run: {} / {} (other sessions build and benchmark here at the same time).",
        host.load.0, host.load.1
    )];
    match run_in_guest("6.12", sigkills / 2, ooms / 2) {
        Ok(guest) => {
            rows.extend(table_rows("qemu guest, TCG, 2 vCPUs", &guest));
            notes.push(format!(
                "The guest ({} kill -9s and {} OOM kills, half the host's: TCG is slow) runs the same measurement \
                 (`xtask kill-latency`) on Debian's {} kernel; load average inside it before and after: {} / {}.",
                sigkills / 2,
                ooms / 2,
                guest.kernel,
                guest.load.0,
                guest.load.1
            ));
        }
        Err(e) => notes.push(format!("The guest run failed: {e:#}")),
    }
    Ok(Section {
        title: "13. Kill record latency: kill -9 and OOM kill to the record".into(),
        what: format!(
            "{sigkills} `kill -9`s of idle `sleep`s, then {ooms} OOM kills (`memmon-workload oom 128` in a 32 MiB \
             memcg without swap), one at a time, 0.25–0.75 s apart (so kills fall anywhere in the daemon's pass), \
             with `memmon daemon --interval 1` and `memmon events --json` both running. Latency: from the kernel's \
             own time of the kill (the record's `boot_ns`, CLOCK_BOOTTIME at signal generation or at \
             `oom:mark_victim`) to when the record is seen: `/api/v1/events` polled every 10 ms (the daemon \
             applies kill records once per pass, so up to one interval; the poll adds up to 10 ms), \
             `memmon events --json` lines as read (it drains the ring buffer every 20 ms). p99 is the \
             nearest-rank quantile: of {sigkills} kills the {p99_rank}th smallest, of {ooms} (and of the guest's \
             smaller counts) the largest.",
            p99_rank = (sigkills * 99).div_ceil(100)
        ),
        header: vec![
            "where",
            "kill",
            "output",
            "kills",
            "median, ms",
            "p99, ms",
            "max, ms",
        ],
        rows,
        notes,
    })
}
/// Runs `xtask kill-latency` (benchmark 13's measurement) in a guest of
/// `kernel` (a matrix label), on cgroup v2, and returns what it measured.
fn run_in_guest(kernel: &str, sigkills: usize, ooms: usize) -> anyhow::Result<Run> {
    use crate::vm_test::{V2_MOUNT, boot, ensure_vm, parse_kernels};
    let vng = ensure_vm()?;
    let [k] = &parse_kernels(Some(kernel))?[..] else {
        bail!("one kernel, not {kernel}");
    };
    let image = k.image()?;
    let out = cmd::workspace()
        .join("target/vm-test")
        .join(format!("bench-{}", k.label()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("mkdir {}", out.display()))?;
    let xtask = std::env::current_exe().context("the xtask binary")?;
    let script = format!(
        "#!/bin/sh\n# Written by `cargo xtask bench --only kills`: runs in the guest.\n\
         exec >{o}/bench.log 2>&1\n\
         mkdir -p {V2_MOUNT} && mount -t cgroup2 none {V2_MOUNT} \\\n\
           && echo +memory >{V2_MOUNT}/cgroup.subtree_control\n\
         mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
         mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing\n\
         export MEMMON_CGROUP_ROOT={V2_MOUNT} HOME=/tmp\n\
         {x} kill-latency --memmon {m} --workload {w} --sigkills {sigkills} --ooms {ooms} --out {o}/kill-latency.json\n\
         echo finished >{o}/done\n",
        o = out.display(),
        x = xtask.display(),
        m = cmd::binary("memmon", true).display(),
        w = cmd::binary("memmon-workload", true).display(),
    );
    std::fs::write(out.join("bench.sh"), script)?;
    eprintln!(
        "bench: booting {} (TCG) for the guest's kill latency",
        image.display()
    );
    boot(
        &vng,
        &image,
        &out,
        Duration::from_secs(40 * 60),
        "bench.sh",
        "done",
    )?;
    let path = out.join("kill-latency.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (see {}/bench.log)", path.display(), out.display()))?;
    Run::from_json(&serde_json::from_str(&text)?)
}
