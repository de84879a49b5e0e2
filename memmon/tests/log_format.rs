//! The daemon's log as it lands: captured to a file it carries no
//! terminal escape byte; with `JOURNAL_STREAM` naming that file (as
//! systemd sets it when stderr is the journal) every log line starts with
//! its syslog priority (`<4>` a warning, `<6>` info) and no timestamp of
//! its own. A web config key memmon ignores makes a known warning.

mod common;

use std::{
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

/// Runs the daemon with stderr in `log` until it serves, then stops it:
/// the log's bytes.
fn daemon_log(dir: &Path, log: &Path, journal: bool) -> Vec<u8> {
    let web = dir.join("web.yml");
    std::fs::write(&web, "http_server_config:\n  http2: true\n").expect("web.yml");
    let file = std::fs::File::create(log).expect("log file");
    let meta = file.metadata().expect("stat log");
    let mut cmd = Command::new(MEMMON);
    cmd.args([
        "daemon",
        "--listen",
        "127.0.0.1:0",
        "--no-pin",
        "--log",
        "info",
    ])
    .arg("--web.config.file")
    .arg(&web)
    .env_remove("JOURNAL_STREAM")
    .env_remove("NO_COLOR")
    .stdout(Stdio::null())
    .stderr(file);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = cmd.spawn().expect("spawn memmon");
    let started = Instant::now();
    while !std::fs::read_to_string(log).is_ok_and(|t| t.contains("serving http")) {
        assert!(
            started.elapsed() < STARTUP && child.try_wait().ok().flatten().is_none(),
            "the daemon did not serve; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait memmon");
    assert!(status.success(), "memmon: {status}");
    std::fs::read(log).expect("read log")
}

#[test]
fn a_log_in_a_file_has_no_escape_bytes_and_the_journal_gets_priorities() {
    if !require_bpf("a_log_in_a_file_has_no_escape_bytes_and_the_journal_gets_priorities") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");

    let plain = daemon_log(dir.path(), &dir.path().join("plain.log"), false);
    let text = String::from_utf8_lossy(&plain);
    assert!(!plain.contains(&0x1b), "an escape byte in a file:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" WARN ") && l.contains("http_server_config.http2")),
        "the web config warning:\n{text}"
    );

    let journal = daemon_log(dir.path(), &dir.path().join("journal.log"), true);
    let text = String::from_utf8_lossy(&journal);
    assert!(
        !journal.contains(&0x1b),
        "an escape byte for the journal:\n{text}"
    );
    // Log lines (not the ready line memmon prints itself, which journald
    // takes at the unit's default priority, info).
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("memmon: "))
        .collect();
    assert!(logged.len() >= 2, "{text}");
    for l in &logged {
        let prio = l
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .and_then(|(n, _)| n.parse::<u8>().ok());
        assert!(
            matches!(prio, Some(3 | 4 | 6 | 7)),
            "a line without a priority: {l:?}\n{text}"
        );
        // The journal stamps lines itself: no RFC 3339 time of ours.
        assert!(!l.contains("Z "), "a timestamp in {l:?}");
    }
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("http_server_config.http2")),
        "the warning at priority 4:\n{text}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("listening on")),
        "an info line at priority 6:\n{text}"
    );
}
