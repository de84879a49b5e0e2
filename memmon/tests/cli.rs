//! Bad input never crashes memmon: missing privileges, bad flag values,
//! unknown pids and a missing tracepoint each get a clear message and the
//! documented exit code. The man pages and completion scripts the binary
//! generates render and name its real commands and flags.

mod common;

use std::process::Command;

use common::*;

#[test]
fn without_capabilities_names_them_and_exits_1() {
    if !require_bpf("without_capabilities_names_them_and_exits_1") {
        return;
    }
    // Drop to nobody with an empty capability set.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .args([MEMMON, "snapshot", "--duration", "0"])
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("CAP_BPF") && stderr.contains("CAP_PERFMON"),
        "{stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// Runs memmon with `args`, which must be refused as bad input (exit 2,
/// no panic); its stderr.
fn bad_input(args: &[&str]) -> String {
    let out = Command::new(MEMMON)
        .args(args)
        .output()
        .expect("run memmon");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

#[test]
fn bad_flag_values_exit_2() {
    for args in [
        vec!["snapshot", "--duration", "-1"],
        vec!["snapshot", "--duration", "nan"],
        vec!["snapshot", "--pid", "abc"],
        vec!["snapshot", "--disable-probe", "no_such_probe"],
        vec!["snapshot", "--no-such-flag"],
    ] {
        let stderr = bad_input(&args);
        assert!(!stderr.is_empty(), "{args:?}: no message");
    }
}

/// A cgroup root given by hand that holds no memory controller (or does
/// not exist) exits 2 before any probe loads, naming the flag; the
/// variable alone is ignored by a snapshot that does not show cgroups.
#[test]
fn bad_cgroup_root_names_the_flag_and_exits_2() {
    let empty = tempfile::tempdir().expect("tmp");
    let empty = empty.path().to_str().expect("utf-8");
    for args in [
        vec!["snapshot", "--cgroups", "--cgroup-root", "/nonexistent"],
        vec!["snapshot", "--cgroups", "--cgroup-root", empty],
        vec![
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--cgroup-root",
            "/nonexistent",
        ],
        vec![
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--cgroup-root",
            empty,
        ],
    ] {
        let stderr = bad_input(&args);
        assert!(
            stderr.contains("--cgroup-root") && stderr.contains(args[args.len() - 1]),
            "{args:?}: {stderr}"
        );
    }
    let out = Command::new(MEMMON)
        .args(["snapshot", "--duration", "nan"])
        .env("MEMMON_CGROUP_ROOT", "/nonexistent")
        .output()
        .expect("run memmon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--duration") && !stderr.contains("cgroup"),
        "{stderr}"
    );
}

#[test]
fn unknown_pid_is_reported_not_found() {
    if !require_bpf("unknown_pid_is_reported_not_found") {
        return;
    }
    // pid_max is at most 4194304: this pid cannot exist.
    let out = Command::new(MEMMON)
        .args([
            "snapshot",
            "--duration",
            "0.2",
            "--json",
            "--pid",
            "4194305",
        ])
        .output()
        .expect("run memmon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("pid 4194305 not found"), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(0));
}

/// `Pss:` of /proc/PID/smaps_rollup, bytes.
fn rollup_pss(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("Pss line")
        * 1024
}

#[test]
fn snapshot_pid_reports_an_idle_process_memory() {
    if !require_bpf("snapshot_pid_reports_an_idle_process_memory") {
        return;
    }
    // 100 MiB touched, then idle: no memory events in the window.
    let mut w = Workload::start(&["touch", "25600"]);
    w.go();
    let pid = w.pid.to_string();
    let rss = status_kb(w.pid, "VmRSS") * 1024;
    let pss = rollup_pss(w.pid);
    let rows = snapshot_json(&["-d", "0.2", "--pid", &pid], || {});
    let row = row_for(&rows, w.pid);
    assert!(rss >= 100 << 20, "the workload holds {rss} B");
    assert_within("rss_bytes vs VmRSS", field(row, "rss_bytes"), rss, 0.02);
    assert_within(
        "pss_bytes vs smaps_rollup Pss",
        field(row, "pss_bytes"),
        pss,
        0.02,
    );
    // Idle in the window: its rates are measured, and zero.
    assert_eq!(row["minor_faults"].as_u64(), Some(0), "{row}");
    // Every process is listed without --pid, largest RSS first.
    let all = snapshot_json(&["-d", "0.2"], || {});
    assert!(all.len() > 5, "only {} rows", all.len());
    let rss_of = |r: &serde_json::Value| r["rss_bytes"].as_u64().unwrap_or(0);
    assert!(
        all.windows(2).all(|p| rss_of(&p[0]) >= rss_of(&p[1])),
        "not sorted by rss"
    );
    assert!(
        all.iter()
            .any(|r| r["pid"].as_u64() == Some(u64::from(w.pid)))
    );
    w.finish();
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("status key")
}

#[test]
fn missing_tracepoint_leaves_other_probes_working() {
    if !require_bpf("missing_tracepoint_leaves_other_probes_working") {
        return;
    }
    let env = [(
        "MEMMON_TEST_TRACEPOINT_OVERRIDE",
        "page_fault_kernel=exceptions:does_not_exist",
    )];
    const N: u64 = 20_000;
    let mut w = Workload::start(&["touch", &N.to_string()]);
    let pid = w.pid;
    let m = Memmon::start_with_env(
        &[
            "snapshot",
            "--json",
            "--duration",
            "3",
            "--pid",
            &pid.to_string(),
        ],
        &env,
    );
    let report = w.go();
    assert_eq!(report["pages"].as_u64(), Some(N));
    let (stdout, stderr) = m.output();
    w.finish();
    assert!(
        stderr.contains("probe page_fault_kernel unavailable: tracepoint exceptions:does_not_exist does not exist"),
        "{stderr}"
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let rows = rows.as_array().expect("array");
    let row = row_for(rows, pid);
    assert!(
        field(row, "minor_faults") >= N,
        "user-fault probe still counts: {row}"
    );

    // And the probe report says why.
    let out = Command::new(MEMMON)
        .args(["snapshot", "--probes", "--json", "--duration", "0"])
        .env(env[0].0, env[0].1)
        .output()
        .expect("run memmon");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("probes JSON");
    let probes = report["probes"].as_array().expect("probes");
    let state = |name: &str| {
        probes
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {report}"))["state"]
            .clone()
    };
    assert_eq!(state("page_fault_kernel"), "unavailable");
    assert_eq!(state("page_fault_user"), "attached");
    assert_eq!(state("major_faults"), "attached");
    assert_eq!(state("process_exit"), "attached");
}

#[test]
fn man_pages_render_with_the_daemon_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(MEMMON)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run memmon man");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "memmon.1",
        "memmon-daemon.1",
        "memmon-top.1",
        "memmon-snapshot.1",
    ] {
        assert!(dir.path().join(page).exists(), "{page} not written");
    }
    // man-db renders it as `man memmon-daemon` would (plain text: not a tty).
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("memmon-daemon.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "120")
        .env_remove("MAN_KEEP_FORMATTING")
        .output()
        .expect("run man -l (Debian package man-db)");
    let text: String = {
        let raw = String::from_utf8_lossy(&out.stdout);
        let mut t = String::new();
        for c in raw.chars() {
            if c == '\u{8}' {
                t.pop();
            } else {
                t.push(c);
            }
        }
        t
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in ["--top-k", "--listen", "--web.config.file", "MEMMON_TOP_K"] {
        assert!(
            text.contains(want),
            "man -l memmon-daemon.1 lacks {want}:\n{text}"
        );
    }
}

#[test]
fn completion_scripts_name_real_commands() {
    for (shell, want) in [
        ("bash", "complete -F _memmon"),
        ("zsh", "#compdef memmon"),
        ("fish", "complete -c memmon"),
        ("elvish", "edit:completion:arg-completer[memmon]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Command::new(MEMMON)
            .args(["completions", shell])
            .output()
            .expect("run memmon completions");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(script.contains(want), "{shell} script lacks {want:?}");
        // fish spells a long flag `-l top-k`.
        let flag = if shell == "fish" {
            "-l top-k"
        } else {
            "--top-k"
        };
        for word in ["daemon", "snapshot", "top", flag] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let out = Command::new(MEMMON)
        .args(["completions", "tcsh"])
        .output()
        .expect("run memmon completions");
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad input");
}

/// `memmon explain` refuses what it cannot judge with exit 2 and a message
/// that names the fix, before any probe loads: no target, two targets, a
/// pid not running, a bad window, a store that is not there, a daemon
/// address without a port, `--oom` with a live flag or a malformed id.
/// `--thresholds` prints the table the README holds, and exits 0.
#[test]
fn explain_bad_input_exits_2_naming_the_fix() {
    let missing = tempfile::tempdir().expect("tmp");
    let missing = missing.path().join("never-recorded");
    let missing = missing.to_str().expect("utf-8");
    for (args, needle) in [
        (vec!["explain"], "name one target"),
        (
            vec!["explain", "1", "--cgroup", "/a"],
            "cannot be used with",
        ),
        (vec!["explain", "4194304"], "is not running"),
        (vec!["explain", "1", "--store", missing], "--store DIR"),
        (
            vec!["explain", "1", "--store", missing, "--window", "soon"],
            "--window soon",
        ),
        (
            vec!["explain", "1", "--connect", "localhost"],
            "http://HOST:PORT",
        ),
        (
            vec!["explain", "1", "--duration=-3"],
            "--duration -3 is out of range",
        ),
        (
            vec!["explain", "--oom", "latest", "--profile"],
            "cannot be used with",
        ),
        (
            vec!["explain", "--oom", "nosuch", "--store", missing],
            "give `latest` or an incident id",
        ),
    ] {
        let stderr = bad_input(&args);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let out = Command::new(MEMMON)
        .args(["explain", "--thresholds"])
        .output()
        .expect("run memmon");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        table.contains("| `limit.forecast_critical` | 300 s |"),
        "{table}"
    );
}
