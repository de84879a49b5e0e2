//! The store for real: `memmon record` for 60 s while a workload's RSS
//! steps from 50 to 150 MiB; `memmon dump --format json` and `memmon
//! replay --at` (in tmux, read with capture-pane) show its RSS within 5% of
//! what /proc/PID/status said before and after the step; the OpenMetrics
//! dump backfills into a real Prometheus (promtool) that then returns the
//! workload's series. `kill -9` of `memmon record` 50 times at random
//! moments never costs a written frame; a full disk (a small tmpfs) leaves
//! the daemon serving /metrics, logs once and records again when space
//! returns; a flipped byte skips one frame, named by shard and offset; a
//! newer format is refused with both versions named.

mod common;
#[path = "common/tmux.rs"]
mod tmux;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::*;
use memmon::store::{
    format,
    reader::Store,
    writer::{Writer, WriterSettings, list_shards},
};
use tmux::{Tmux, rss_cell};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// VmRSS of `pid`, bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

fn memmon(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(MEMMON)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run memmon {args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Seconds with milliseconds, as `--from`/`--to`/`--at` take them.
fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The 60 s recording, made once and shared by the tests that read it.
struct Recording {
    dir: tempfile::TempDir,
    pid: u32,
    /// (Unix ms, VmRSS bytes) before and after the step.
    before: (u64, u64),
    after: (u64, u64),
    /// Keeps the workload (and its /proc) alive until the tests end.
    _workload: std::sync::Mutex<Option<Workload>>,
}

fn recording() -> &'static Recording {
    static R: OnceLock<Recording> = OnceLock::new();
    R.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let mut w = Workload::start(&["step", "50", "150"]);
        w.go();
        let pid = w.pid;
        let rec = Memmon::start(&[
            "record",
            dir.path().to_str().expect("utf-8 path"),
            "--interval",
            "1",
            "--duration",
            "60",
            "--no-fault-detail",
            "--no-alloc-detail",
        ]);
        let begun = Instant::now();
        let at =
            |s: u64| std::thread::sleep(Duration::from_secs(s).saturating_sub(begun.elapsed()));
        at(20);
        let before = (now_ms(), vm_rss(pid));
        at(30);
        w.send_go();
        let report = w.read_json_line();
        assert_eq!(report["phase"], "to", "{report}");
        at(45);
        let after = (now_ms(), vm_rss(pid));
        let (_, stderr) = rec.output();
        assert!(!stderr.contains("not recorded"), "frames dropped: {stderr}");
        assert!(
            after.1 > before.1 + (90 << 20),
            "the workload did not step: {before:?} → {after:?}"
        );
        Recording {
            dir,
            pid,
            before,
            after,
            _workload: std::sync::Mutex::new(Some(w)),
        }
    })
}

/// `dump --format json` rows of `pid` in [from, to] ms.
fn dump_rows(store: &Path, pid: u32, from: u64, to: u64) -> Vec<serde_json::Value> {
    let (ok, out, err) = memmon(&[
        "dump",
        "--store",
        store.to_str().expect("utf-8"),
        "--from",
        &secs(from),
        "--to",
        &secs(to),
        "--pid",
        &pid.to_string(),
        "--fields",
        "rss_bytes,pss_bytes",
        "--format",
        "json",
    ]);
    assert!(ok, "dump failed: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_recorded_rss_step_reads_back_in_dump_and_replay() {
    if !require_bpf("a_recorded_rss_step_reads_back_in_dump_and_replay") {
        return;
    }
    let r = recording();
    let store = r.dir.path();
    for (what, (t, rss)) in [("before the step", r.before), ("after the step", r.after)] {
        let rows = dump_rows(store, r.pid, t - 1500, t + 1500);
        let nearest = rows
            .iter()
            .min_by_key(|row| row["unix_ms"].as_u64().expect("unix_ms").abs_diff(t))
            .unwrap_or_else(|| panic!("dump has no row of pid {} {what}", r.pid));
        assert!(
            nearest["unix_ms"].as_u64().expect("ms").abs_diff(t) <= 1000,
            "no frame within 1 s {what}: {nearest}"
        );
        assert_within(
            &format!("dumped rss_bytes {what}"),
            nearest["rss_bytes"].as_u64().expect("rss_bytes"),
            rss,
            0.05,
        );
        assert!(nearest["pss_bytes"].is_u64() || nearest["pss_bytes"].is_null());
    }
    // 60 s at 1 s: about 60 frames, none lost.
    let s = Store::open(store, None).expect("store opens");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(
        (55..=62).contains(&s.frames.len()),
        "{} frames",
        s.frames.len()
    );

    // replay --at before the step, then `g` to a time after it.
    let t = Tmux::new(
        "replay",
        &format!(
            "{MEMMON} replay --store {} --at {} --filter memmon-work; echo EXITED:$?",
            store.display(),
            secs(r.before.0)
        ),
    );
    let screen = t.wait_for("the workload's row", |s| {
        s.contains("replay ") && rss_cell(s, r.pid).is_some()
    });
    let banner_time = |s: &str| -> u64 {
        let stamp = s
            .lines()
            .find_map(|l| l.trim().strip_prefix("replay "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no replay banner:\n{s}"));
        humantime::parse_rfc3339(stamp)
            .map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            })
            .unwrap_or_else(|e| panic!("banner time {stamp}: {e}"))
    };
    assert!(
        banner_time(&screen).abs_diff(r.before.0) <= 2000,
        "{screen}"
    );
    assert_within(
        "replayed RSS before the step (KiB)",
        (rss_cell(&screen, r.pid).expect("cell") * 1024.0) as u64,
        r.before.1 / 1024,
        0.05,
    );
    t.keys(&["g"]);
    t.wait_for("the time prompt", |s| s.contains("go to time"));
    t.keys(&[&secs(r.after.0), "Enter"]);
    let screen = t.wait_for("the frame after the step", |s| {
        s.contains("replay ") && banner_time(s).abs_diff(r.after.0) <= 2000
    });
    assert_within(
        "replayed RSS after the step (KiB)",
        (rss_cell(&screen, r.pid).expect("cell") * 1024.0) as u64,
        r.after.1 / 1024,
        0.05,
    );
    let frame_no = |s: &str| -> u64 {
        s.split("frame ")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no frame number:\n{s}"))
    };
    let n = frame_no(&screen);
    t.keys(&["Left"]);
    t.wait_for("the previous frame", |s| frame_no(s) == n - 1);
    t.keys(&["q"]);
    let after = t.wait_for("replay to exit", |s| {
        s.lines().any(|l| l.starts_with("EXITED:"))
    });
    assert!(after.lines().any(|l| l == "EXITED:0"), "{after}");
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn url_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_openmetrics_dump_backfills_into_prometheus() {
    if !require_bpf("the_openmetrics_dump_backfills_into_prometheus") {
        return;
    }
    let r = recording();
    let tmp = tempfile::tempdir().expect("tmp");
    let (ok, om, err) = memmon(&[
        "dump",
        "--store",
        r.dir.path().to_str().expect("utf-8"),
        "--from",
        "0",
        "--format",
        "openmetrics",
    ]);
    assert!(ok, "{err}");
    assert!(om.ends_with("# EOF\n"), "no # EOF");
    let file = tmp.path().join("dump.om");
    std::fs::write(&file, &om).expect("write");
    let data = tmp.path().join("data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(&data)
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("config");
    let web = format!("127.0.0.1:{}", free_port());
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (Debian package prometheus)"),
    );
    let query = format!("memmon_process_rss_bytes{{pid=\"{}\"}}", r.pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (what, (t, rss)) in [("before", r.before), ("after", r.after)] {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            url_encode(&query),
            secs(t)
        );
        let value = loop {
            let got = try_http_get(&web, &path)
                .filter(|(s, _)| *s == 200)
                .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .map(str::to_string)
                });
            if let Some(v) = got {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never returned {query} at {t}"
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        let v: f64 = value.parse().expect("number");
        assert_within(
            &format!("backfilled RSS {what} the step"),
            v as u64,
            rss,
            0.05,
        );
    }
}

#[test]
fn kill_9_fifty_times_never_loses_a_written_frame() {
    if !require_bpf("kill_9_fifty_times_never_loses_a_written_frame") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut seen = 0usize;
    let mut runs_with_frames = 0;
    let mut late: Vec<String> = Vec::new();
    for run in 0..50 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let args = [
            "record",
            d,
            "--interval",
            "0.1",
            "--no-fault-detail",
            "--no-alloc-detail",
        ];
        if run % 5 == 4 {
            // Now and then while it still loads its probes.
            let mut c = Command::new(MEMMON)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(Duration::from_millis(rng % 400));
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        } else {
            let mut m = Memmon::start(&args);
            std::thread::sleep(Duration::from_millis(rng % 1000));
            m.child.kill().expect("SIGKILL");
            let _ = m.child.wait();
        }
        let killed = now_ms();
        let s = match Store::open(dir.path(), None) {
            Ok(s) => s,
            Err(e) if seen == 0 => {
                assert!(
                    e.to_string().contains("no recorded frames"),
                    "run {run}: {e}"
                );
                continue;
            }
            Err(e) => panic!("run {run}: the store does not open: {e}"),
        };
        for w in &s.warnings {
            assert!(
                w.contains("torn frame") || w.contains("empty shard"),
                "run {run}: {w}"
            );
        }
        assert!(
            s.frames.len() >= seen,
            "run {run}: frames lost ({} < {seen})",
            s.frames.len()
        );
        for i in seen..s.frames.len() {
            let f = s
                .frame(i)
                .unwrap_or_else(|e| panic!("run {run}: frame {i}: {e}"));
            assert!(
                f["processes"].as_array().is_some_and(|p| !p.is_empty()),
                "run {run}: frame {i}"
            );
        }
        if s.frames.len() > seen && run % 5 != 4 {
            runs_with_frames += 1;
            // What a kill may cost: the frames of the last second, and the
            // pass still running (a frame not made yet is not lost): the
            // run's slowest pass, as its frames say (`sample_seconds`).
            let last = s.frames[s.frames.len() - 1].unix_ms;
            let slowest_ms = (seen..s.frames.len())
                .filter_map(|i| s.frame(i).ok()?["sample_seconds"].as_f64())
                .fold(0.0, f64::max)
                * 1000.0;
            // A loaded machine may delay the recorder thread itself: one
            // or two kills of the 50 may land while it waits for a CPU.
            let lag = killed.saturating_sub(last) as f64;
            if lag > 1000.0 + slowest_ms + 100.0 {
                late.push(format!(
                    "run {run}: the last frame is {lag} ms older than the kill (slowest pass {slowest_ms:.0} ms)"
                ));
            }
        }
        seen = s.frames.len();
    }
    assert!(
        runs_with_frames >= 20,
        "only {runs_with_frames} runs recorded before their kill"
    );
    eprintln!("kills that cost more than the last second: {late:?}");
    assert!(
        late.len() <= 2,
        "{} of {runs_with_frames} kills lost more than the last second's frames: {late:#?}",
        late.len()
    );
}

/// A tmpfs of `mib` MiB mounted on a temporary directory; unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(mib: u32) -> Tmpfs {
        let d = tempfile::tempdir().expect("tmp");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(d.path())
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount tmpfs");
        Tmpfs(d)
    }

    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_pauses_recording_and_the_daemon_keeps_serving() {
    if !require_bpf("a_full_disk_pauses_recording_and_the_daemon_keeps_serving") {
        return;
    }
    let fs = Tmpfs::mount(8);
    let store = fs.path().join("store");
    std::fs::create_dir(&store).expect("mkdir");
    // Fill it.
    let filler = fs.path().join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![7u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    let mut d = Daemon::start(&[
        "--no-pin",
        "--interval",
        "0.2",
        "--record",
        store.to_str().expect("utf-8"),
    ]);
    d.memmon
        .wait_for_stderr("store: cannot write", Duration::from_secs(20));
    for _ in 0..5 {
        let (status, body) = d.get("/metrics");
        assert_eq!(status, 200);
        assert!(
            body.contains("memmon_process_rss_bytes"),
            "no process series"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::fs::remove_file(&filler).expect("free the space");
    let freed = now_ms();
    d.memmon
        .wait_for_stderr("recording into", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let stderr = d.stop();
    assert_eq!(
        stderr.matches("store: cannot write").count(),
        1,
        "logged more than once:\n{stderr}"
    );
    let s = Store::open(&store, None).expect("store opens");
    assert!(
        s.frames.len() >= 3,
        "{} frames after space returned",
        s.frames.len()
    );
    assert!(
        s.frames.iter().all(|f| f.unix_ms + 500 >= freed),
        "a frame from while full?"
    );
    for i in 0..s.frames.len() {
        s.frame(i).unwrap_or_else(|e| panic!("frame {i}: {e}"));
    }
}

/// A store of `n` synthetic frames (one process whose RSS is the frame
/// number in MiB), written by the real writer.
fn synthetic(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let mut w = Writer::new(WriterSettings {
        key_every: 4,
        ..WriterSettings::new(dir.path().to_path_buf())
    })
    .expect("writer");
    for i in 0..n {
        let ms = 1_700_000_000_000 + i * 1000;
        w.write(
            ms,
            serde_json::json!({"unix_ms": ms, "processes": [
                {"pid": 42, "start_time_ticks": 1, "comm": "a,b", "cgroup": "/x", "rss_bytes": i << 20, "pss_bytes": null}]}),
        )
        .expect("write");
    }
    dir
}

#[test]
fn a_flipped_byte_skips_one_frame_named_by_shard_and_offset() {
    let dir = synthetic(10);
    let clean = Store::open(dir.path(), None).expect("opens");
    let victim = clean.frames[5];
    let (shard, _, _) = list_shards(dir.path()).expect("shards").remove(0);
    let mut bytes = std::fs::read(&shard).expect("read");
    bytes[victim.offset + format::FRAME_HEADER + 1] ^= 0x01;
    std::fs::write(&shard, &bytes).expect("write");
    let (ok, out, err) = memmon(&[
        "dump",
        "--store",
        dir.path().to_str().expect("utf-8"),
        "--from",
        "1700000000",
        "--to",
        "1700000100",
        "--fields",
        "rss_bytes,pss_bytes",
        "--format",
        "csv",
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&shard.display().to_string())
            && err.contains(&format!("offset {}", victim.offset)),
        "the warning names neither shard nor offset: {err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "time,unix_ms,pid,start_time_ticks,comm,cgroup,rss_bytes,pss_bytes"
    );
    let rss: Vec<u64> = lines[1..]
        .iter()
        .map(|l| {
            l.rsplit(',')
                .nth(1)
                .and_then(|v| v.parse().ok())
                .expect("rss")
        })
        .collect();
    let want: Vec<u64> = [0, 1, 2, 3, 4, 6, 7, 8, 9]
        .iter()
        .map(|i| i << 20)
        .collect();
    assert_eq!(rss, want, "{out}");
    assert!(
        lines[1].contains(",\"a,b\",/x,0,"),
        "CSV quoting / null as empty: {}",
        lines[1]
    );
}

#[test]
fn a_newer_store_format_is_refused_with_both_versions_named() {
    let dir = synthetic(2);
    let (shard, _, _) = list_shards(dir.path()).expect("shards").remove(0);
    let mut bytes = std::fs::read(&shard).expect("read");
    bytes[8..12].copy_from_slice(&(format::FORMAT_VERSION + 1).to_le_bytes());
    std::fs::write(&shard, &bytes).expect("write");
    let out = Command::new(MEMMON)
        .args(["dump", "--store"])
        .arg(dir.path())
        .args(["--from", "0"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("format version {}", format::FORMAT_VERSION + 1))
            && err.contains(&format!("versions up to {}", format::FORMAT_VERSION)),
        "{err}"
    );
}
