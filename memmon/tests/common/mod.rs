//! Shared helpers for the root integration tests: privilege gate, running
//! `memmon` and `memmon-workload`, reading the kernel's own counters.
//!
//! Tests that need root call [`require_bpf`] first: without root it skips
//! (prints why) unless `MEMMON_REQUIRE_BPF=1`, where it fails instead.
//! Every skip goes through [`skip`], which the test lanes count: a skipped
//! test is never counted as passed.
#![allow(dead_code)]

pub mod c_fixture;
pub mod pprof;
pub mod tls;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Path of the memmon binary under test.
pub const MEMMON: &str = env!("CARGO_BIN_EXE_memmon");
/// Where the lanes that built the workload already (`cargo xtask test`,
/// `vm-test`: the guests have no cargo) say it is.
pub const WORKLOAD_ENV: &str = "MEMMON_WORKLOAD";

/// Path of the workload binary (package `memmon-workload` in
/// memmon/workload, not part of the product): `$MEMMON_WORKLOAD` when set,
/// else built once per test binary with `cargo build -p memmon-workload`
/// (a no-op when it is current) beside the memmon binary under test, in
/// the same profile.
pub fn workload() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os(WORKLOAD_ENV) {
            return path.to_string_lossy().into_owned();
        }
        let exe_dir = std::path::Path::new(MEMMON)
            .parent()
            .expect("the memmon binary has a directory");
        let profile = match exe_dir.file_name().and_then(|d| d.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let target_dir = exe_dir
            .parent()
            .expect("the profile directory has a parent");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--package",
                "memmon-workload",
                "--profile",
                profile,
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build memmon-workload: {e}"));
        assert!(
            status.success(),
            "cargo build --package memmon-workload failed ({status}); or set {WORKLOAD_ENV}"
        );
        exe_dir
            .join("memmon-workload")
            .to_string_lossy()
            .into_owned()
    })
}

/// Path of the hostile HTTP client (`memmon-hostile`, the workload
/// package's second program, beside the workload).
pub fn hostile() -> String {
    std::path::Path::new(workload())
        .with_file_name("memmon-hostile")
        .to_string_lossy()
        .into_owned()
}

/// A unique pin root under bpffs (`memmon-test-TAG-PID`), removed on drop.
pub struct PinRoot(pub std::path::PathBuf);

impl PinRoot {
    pub fn new(tag: &str) -> PinRoot {
        PinRoot(std::path::PathBuf::from(format!(
            "/sys/fs/bpf/memmon-test-{tag}-{}",
            std::process::id()
        )))
    }

    /// Its path, for `--pin-dir`.
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for PinRoot {
    fn drop(&mut self) {
        fn rm(p: &std::path::Path) {
            if p.is_dir() {
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    rm(&e.path());
                }
                let _ = std::fs::remove_dir(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
        rm(&self.0);
    }
}

/// True when this test may load eBPF programs. Without root: skip (false)
/// or, with MEMMON_REQUIRE_BPF=1, panic.
pub fn require_bpf(test: &str) -> bool {
    // SAFETY: geteuid has no inputs.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    if std::env::var("MEMMON_REQUIRE_BPF").as_deref() == Ok("1") {
        panic!("{test}: needs root to load eBPF probes, and MEMMON_REQUIRE_BPF=1 forbids skipping");
    }
    skip(
        test,
        "needs root (set MEMMON_REQUIRE_BPF=1 to fail instead)",
    );
    false
}

/// Where [`skip`] records skipped tests, one `TEST<TAB>REASON` line each
/// (set by `cargo xtask test` and `vm-test`, which count them).
pub const SKIP_LOG_ENV: &str = "MEMMON_SKIP_LOG";

/// Reports `test` as skipped for `reason`: on stderr, and as a line in
/// `$MEMMON_SKIP_LOG`, so the lane counts it as skipped, not as passed.
/// The caller returns right after.
pub fn skip(test: &str, reason: &str) {
    eprintln!("{test}: skipped: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        let line = format!("{test}\t{}\n", reason.replace(['\n', '\t'], " "));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!(
                "{test}: cannot record the skip in {}: {e}",
                std::path::Path::new(&path).display()
            );
        }
    }
}

/// The `snapshot --probes --json` entry of probe `name`: None when it is
/// attached; else its reason, after reporting `test` skipped for it (a
/// probe the kernel lacks skips the test, counted as skipped).
pub fn probe_unavailable(test: &str, report: &serde_json::Value, name: &str) -> Option<String> {
    let probe = report["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("probe {name} missing from the report: {report}"));
    if probe["state"] == "attached" {
        return None;
    }
    let reason = probe["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| panic!("probe {name} is not attached and gives no reason: {probe}"));
    skip(
        test,
        &format!("probe {name} unavailable on this kernel: {reason}"),
    );
    Some(reason.to_string())
}

/// A running `memmon-workload` that waits for `go`.
pub struct Workload {
    pub child: Child,
    pub pid: u32,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Workload {
    /// Starts `memmon-workload ARGS` and waits for its `ready PID` line.
    pub fn start(args: &[&str]) -> Workload {
        Self::start_under(&[], args)
    }

    /// Same, run through `prefix` (e.g. `numactl --membind=0`), which must
    /// exec the workload (its pid is the one reported).
    pub fn start_under(prefix: &[&str], args: &[&str]) -> Workload {
        let mut cmd = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(workload());
                c
            }
            None => Command::new(workload()),
        };
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn memmon-workload");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("workload stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read ready line");
        let pid = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("workload said {line:?}, expected 'ready PID'"));
        Workload {
            child,
            pid,
            stdin,
            stdout,
        }
    }

    /// Tells it to start and returns its JSON report line.
    pub fn go(&mut self) -> serde_json::Value {
        let stdin = self.stdin.as_mut().expect("workload stdin");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read report");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"))
    }

    /// Tells it to start without waiting for a report (for a workload
    /// that is expected to die, e.g. by the OOM killer).
    pub fn send_go(&mut self) {
        let stdin = self.stdin.as_mut().expect("workload stdin");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush");
    }

    /// Reads one more JSON line the workload printed.
    pub fn read_json_line(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read line");
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"))
    }

    /// Closes stdin (the workload exits) and waits for it.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait workload");
        assert!(status.success(), "workload failed: {status}");
    }
}

impl Drop for Memmon {
    /// A test that fails half-way must not leave memmon running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long memmon may take to load its probes before a test gives up: a
/// guard against a hang, not a speed check (in a TCG guest on a loaded
/// host, parsing the kernel's BTF alone has taken over a minute).
pub const STARTUP: Duration = Duration::from_secs(300);

/// A running `memmon` whose stderr is watched for the "watching" line.
pub struct Memmon {
    pub child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    /// Lines before this index were passed by an earlier wait that matched.
    stderr_matched: usize,
}

impl Memmon {
    /// Starts `memmon ARGS` and blocks until it reports its probes attached.
    pub fn start(args: &[&str]) -> Memmon {
        Self::start_with_env(args, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Memmon {
        let mut cmd = Command::new(MEMMON);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::start_command(cmd)
    }

    /// Same for a prepared `memmon` command (arguments, environment,
    /// limits set by the caller).
    pub fn start_command(mut cmd: Command) -> Memmon {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        // The daemon's counter floors go to a directory of this test
        // binary's, never to a real service's /var/lib/memmon.
        if !cmd.get_envs().any(|(k, _)| k == "STATE_DIRECTORY") {
            cmd.env(
                "STATE_DIRECTORY",
                std::env::temp_dir().join(format!("memmon-test-state-{}", std::process::id())),
            );
        }
        let mut child = cmd.spawn().expect("spawn memmon");
        let stderr = child.stderr.take().expect("memmon stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut m = Memmon {
            child,
            stderr_lines: rx,
            stderr_seen: Vec::new(),
            stderr_matched: 0,
        };
        // Readiness is not a match: a line printed before it (a store that
        // cannot write, say) is still there for the test's own first wait.
        m.wait_for("probes attached", STARTUP, false);
        m
    }

    /// Waits for a stderr line containing `needle`, counting lines already
    /// read past by an earlier wait that was looking for something else (a
    /// daemon may print the awaited line before it reports its probes
    /// attached), but not lines at or before the last match.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        self.wait_for(needle, timeout, true);
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration, consume: bool) {
        if let Some(i) = self.stderr_seen[self.stderr_matched..]
            .iter()
            .position(|l| l.contains(needle))
        {
            if consume {
                self.stderr_matched += i + 1;
            }
            return;
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr_seen.push(line);
                    if found {
                        if consume {
                            self.stderr_matched = self.stderr_seen.len();
                        }
                        return;
                    }
                }
                Err(_) => panic!(
                    "memmon never printed {needle:?}; stderr so far:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Every stderr line printed so far (waits for none).
    pub fn stderr_so_far(&mut self) -> &[String] {
        while let Ok(line) = self.stderr_lines.try_recv() {
            self.stderr_seen.push(line);
        }
        &self.stderr_seen
    }

    /// The first stderr line seen so far that contains `needle`.
    pub fn stderr_line(&self, needle: &str) -> Option<String> {
        self.stderr_seen
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    /// Sends `signal` to memmon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for exit; returns (stdout, all stderr). Panics on failure.
    pub fn output(mut self) -> (String, String) {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).expect("read stdout");
        }
        let status = self.child.wait().expect("wait memmon");
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_millis(200)) {
            self.stderr_seen.push(line);
        }
        let stderr = self.stderr_seen.join("\n");
        assert!(
            status.success(),
            "memmon failed ({status}); stderr:\n{stderr}"
        );
        (stdout, stderr)
    }
}

/// A `memmon snapshot` whose window lasts at least its `--duration` and
/// until the test is done with it: the command runs with a long duration
/// and gets SIGINT (which ends its window and prints) when the test asks
/// for its output. A slow machine (the TCG guest) then never closes the
/// window before the workload is done.
pub struct Window {
    memmon: Memmon,
    until: std::time::Instant,
}

impl Window {
    /// Starts `memmon ARGS` (a snapshot; `--duration`/`-d` is the least
    /// window) with `env`.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Window {
        let mut least = 1.0;
        let mut full = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if *a == "--duration" || *a == "-d" {
                least = it.next().and_then(|v| v.parse().ok()).unwrap_or(least);
            } else {
                full.push(*a);
            }
        }
        full.extend(["--duration", "600"]);
        let memmon = Memmon::start_with_env(&full, env);
        Window {
            memmon,
            until: std::time::Instant::now() + Duration::from_secs_f64(least),
        }
    }

    /// Same without extra environment.
    pub fn start(args: &[&str]) -> Window {
        Self::start_with_env(args, &[])
    }

    /// Ends the window (not before its least duration; 300 ms after the
    /// call at the earliest, for events in flight) and returns (stdout,
    /// stderr).
    pub fn output(self) -> (String, String) {
        let now = std::time::Instant::now();
        std::thread::sleep(
            self.until
                .saturating_duration_since(now)
                .max(Duration::from_millis(300)),
        );
        self.memmon.signal(libc::SIGINT);
        self.memmon.output()
    }
}

/// Runs `memmon snapshot --json ARGS` around `during` (called once probes
/// are attached) and returns the parsed rows.
pub fn snapshot_json<F: FnOnce()>(args: &[&str], during: F) -> Vec<serde_json::Value> {
    let mut full = vec!["snapshot", "--json"];
    full.extend_from_slice(args);
    let m = Window::start(&full);
    during();
    let (stdout, stderr) = m.output();
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("snapshot JSON did not parse: {e}\n{stdout}\nstderr:\n{stderr}")
    });
    v.as_array().expect("snapshot JSON is an array").clone()
}

/// The row for `pid` (panics with the rows when absent).
pub fn row_for(rows: &[serde_json::Value], pid: u32) -> &serde_json::Value {
    rows.iter()
        .find(|r| r["pid"].as_u64() == Some(u64::from(pid)))
        .unwrap_or_else(|| panic!("pid {pid} missing from snapshot: {rows:#?}"))
}

/// A u64 field of a JSON row.
pub fn field(row: &serde_json::Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("row has no numeric {key}: {row}"))
}

/// `/proc/PID/stat` field `n` (1-based, as in proc(5)).
pub fn proc_stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

/// Asserts `|a - b| <= tol * b`.
pub fn assert_within(what: &str, got: u64, want: u64, tol: f64) {
    let diff = (got as f64 - want as f64).abs();
    assert!(
        diff <= tol * want as f64,
        "{what}: memmon {got} vs kernel {want} differ by {diff} (> {:.1}%)",
        tol * 100.0
    );
}

/// A running `memmon daemon` on a free loopback port.
pub struct Daemon {
    pub memmon: Memmon,
    pub addr: String,
}

impl Daemon {
    /// Starts `memmon daemon --listen 127.0.0.1:0 ARGS` and waits until it
    /// serves.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_command_with(Command::new(MEMMON), args)
    }

    /// Same, under a file limit of `nofile` (soft and hard), as systemd's
    /// default soft limit would leave a service that sets none.
    pub fn start_under_file_limit(args: &[&str], nofile: u64) -> Daemon {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(MEMMON);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Self::start_command_with(cmd, args)
    }

    /// `cmd` (memmon, with its environment and limits) run as `daemon
    /// --listen 127.0.0.1:0 ARGS`.
    pub fn start_command_with(mut cmd: Command, args: &[&str]) -> Daemon {
        cmd.args(["daemon", "--listen", "127.0.0.1:0"]).args(args);
        let memmon = Memmon::start_command(cmd);
        let line = memmon.stderr_line("serving http").expect("ready line");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .expect("address in ready line")
            .to_string();
        Daemon { memmon, addr }
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    /// Waits until the daemon has published process `pid` with its cgroup
    /// (so samples drained after it carry the cgroup, and its resident set
    /// is known from then on); returns the cgroup's path.
    pub fn wait_published(&self, pid: u32) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.get("/api/v1/snapshot");
            let snap: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
            let cgroup = snap["processes"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p["pid"].as_u64() == Some(u64::from(pid)))
                    .and_then(|p| p["cgroup"].as_str().map(str::to_string))
            });
            if let Some(c) = cgroup {
                return c;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never published pid {pid} with a cgroup"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status must be 0.
    pub fn stop(self) -> String {
        self.memmon.signal(libc::SIGTERM);
        let (_, stderr) = self.memmon.output();
        stderr
    }
}

/// A minimal HTTP/1.1 GET over a std TcpStream: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    // A guard against a hang, not a speed check: 30 s once ran out in
    // the 5.10 TCG guest while the host was busy building.
    let (status, _, body) = get_raw(addr, path, Duration::from_secs(120));
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// How long a `/api/v1/profile` answer may take before a test gives up: a
/// guard against a hang, not a speed check. The first request for a
/// selection names all its stacks (blazesym reading each binary's symbols
/// and DWARF; for `cgroup=/` memmon's own 175 MB debug build among them):
/// 0.7 s for every process on the host, 19-30 s in the 6.1 TCG guest, and
/// past the old 60 s there when other work loads the host.
pub const PROFILE_REQUEST: Duration = Duration::from_secs(300);

/// GET `path` keeping the body's bytes: (status, head, body); waits up to
/// [`PROFILE_REQUEST`].
pub fn http_get_bytes(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    get_raw(addr, path, PROFILE_REQUEST)
}

/// One HTTP/1.1 GET with a read timeout: (status, head, body bytes).
fn get_raw(addr: &str, path: &str, timeout: Duration) -> (u16, String, Vec<u8>) {
    use std::io::Read as _;
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {} bytes", raw.len()));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {head}"));
    (status, head, raw[split + 4..].to_vec())
}

/// GET over HTTP/1.0 (no chunked replies): (status, body), or None when
/// nothing answers yet.
pub fn try_http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The value of the exposition line `metric{...labels containing all of
/// `needles`...} VALUE`.
pub fn metric_value(text: &str, metric: &str, needles: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `promtool check metrics` on an exposition: must pass with nothing to say.
pub fn promtool_check_metrics(exposition: &str) {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(tmp.path(), exposition).expect("write scrape");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(tmp.path()).expect("open"))
        .output()
        .expect("promtool (Debian package prometheus)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}"
    );
}
