//! deploy/: the systemd unit is hardened (exposure <= 3.0) and verifies,
//! the Prometheus config and rules check, every metric the rules and the
//! Grafana dashboard use exists in a real scrape, and a real Prometheus
//! server scrapes the daemon and sees a known workload's series.

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::*;

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = deploy("memmon.service");
    let (ok, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit));
    assert!(ok, "{text}");
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for memmon.service:").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure line:\n{text}"));
    assert!(exposure <= 3.0, "exposure {exposure} > 3.0:\n{text}");

    // verify needs the ExecStart binary to exist: point it at the build.
    let dir = tempfile::tempdir().expect("tmp");
    let copy = dir.path().join("memmon.service");
    let content = std::fs::read_to_string(&unit)
        .expect("unit")
        .replace("/usr/bin/memmon", MEMMON);
    std::fs::write(&copy, content).expect("write");
    let (ok, text) = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
}

#[test]
fn prometheus_config_and_rules_check() {
    let (ok, text) = run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(deploy("prometheus/memmon-rules.yml")));
    assert!(ok, "{text}");
    let (ok, text) = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(deploy("prometheus/prometheus.yml")));
    assert!(ok, "{text}");
}

/// Every `memmon_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("memmon_") {
        let start = i + pos;
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        if boundary {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn rules_and_dashboard_use_only_real_metrics() {
    if !require_bpf("rules_and_dashboard_use_only_real_metrics") {
        return;
    }
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    std::thread::sleep(Duration::from_millis(1200));
    let (_, scrape) = d.get("/metrics");
    d.stop();
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for file in [
        "prometheus/memmon-rules.yml",
        "grafana/memmon-dashboard.json",
    ] {
        let text = std::fs::read_to_string(deploy(file)).expect("read");
        for name in metric_names(&text) {
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which /metrics does not export"
            );
        }
    }
}

struct Killed(Child);

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

#[test]
fn a_real_prometheus_scrapes_the_daemon() {
    if !require_bpf("a_real_prometheus_scrapes_the_daemon") {
        return;
    }
    // 96 MiB resident: a top process by RSS.
    let mut w = Workload::start(&["touch", "24576"]);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "1"]);
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\nscrape_configs:\n  - job_name: memmon\n    static_configs:\n      - targets: [\"{}\"]\n",
            d.addr
        ),
    )
    .expect("write config");
    let port = free_port();
    let web = format!("127.0.0.1:{port}");
    let prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (Debian package prometheus)"),
    );
    std::thread::sleep(Duration::from_secs(20));
    let query = |q: &str| -> serde_json::Value {
        let (status, body) = http_get(&web, &format!("/api/v1/query?query={q}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("prometheus JSON")
    };
    let up = query("up%7Bjob%3D%22memmon%22%7D");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let series = query(&format!(
        "memmon_process_resident_bytes%7Bpid%3D%22{}%22%7D",
        w.pid
    ));
    let result = series["data"]["result"].as_array().expect("result");
    assert!(
        !result.is_empty(),
        "no memmon series for the workload: {series}"
    );
    let value: f64 = result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(value >= 96.0 * 1024.0 * 1024.0, "{value}");
    drop(prom);
    d.stop();
    w.finish();
}
