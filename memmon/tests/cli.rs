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

#[test]
fn bad_flag_values_exit_2() {
    for args in [
        vec!["snapshot", "--duration", "-1"],
        vec!["snapshot", "--duration", "nan"],
        vec!["snapshot", "--pid", "abc"],
        vec!["snapshot", "--disable-probe", "no_such_probe"],
        vec!["snapshot", "--no-such-flag"],
    ] {
        let out = Command::new(MEMMON)
            .args(&args)
            .output()
            .expect("run memmon");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn unknown_pid_is_reported_not_seen() {
    if !require_bpf("unknown_pid_is_reported_not_seen") {
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
    assert!(stderr.contains("pid 4194305 was not seen"), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(0));
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
