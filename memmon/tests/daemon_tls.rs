//! The endpoint's optional TLS and basic auth (exporter-toolkit web config):
//! a certificate made by openssl, a bcrypt user, curl and a real Prometheus
//! server as clients; a SIGHUP swaps the user list; a bad certificate stops
//! the daemon with exit 2 before any probe loads.

mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

fn web_config(dir: &Path, user: &str, password: &str) {
    let hash = bcrypt::hash(password, 6).expect("bcrypt");
    // Relative paths: resolved from the web config file's directory.
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  {user}: {hash}\n"
        ),
    )
    .expect("write web.yml");
}

/// curl's HTTP status for `url` (0 when no HTTP response came back).
fn curl(url: &str, ca: &Path, user: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "20", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .arg(url);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tls_and_basic_auth_guard_the_endpoint() {
    if !require_bpf("tls_and_basic_auth_guard_the_endpoint") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    tls::make_certs(dir.path());
    web_config(dir.path(), "prometheus", "s3cret");
    let web = dir.path().join("web.yml");
    let web_arg = web.to_str().expect("utf-8 path");
    let mut w = Workload::start(&["touch", "8192"]);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "1", "--web.config.file", web_arg]);
    let ready = d
        .memmon
        .stderr_line("serving https://")
        .expect("ready line");
    assert!(ready.contains("TLS, basic auth (1 users)"), "{ready}");
    let url = format!("https://{}/metrics", d.addr);
    let ca = dir.path().join("ca.crt");

    assert_eq!(curl(&url, &ca, None).0, 401, "no credentials");
    assert_eq!(
        curl(&url, &ca, Some("prometheus:wrong")).0,
        401,
        "wrong password"
    );
    assert_eq!(
        curl(&url, &ca, Some("nobody:s3cret")).0,
        401,
        "unknown user"
    );
    let (code, body) = curl(&url, &ca, Some("prometheus:s3cret"));
    assert_eq!(code, 200, "{body}");
    let rss = metric_value(
        &body,
        "memmon_process_rss_bytes",
        &[&format!("pid=\"{}\"", w.pid)],
    )
    .expect("the workload's series over TLS");
    assert!(rss >= 32.0 * 1024.0 * 1024.0, "{rss}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let (plain, _) = curl(
        &format!("http://{}/metrics", d.addr),
        &ca,
        Some("prometheus:s3cret"),
    );
    assert_ne!(plain, 200, "plain HTTP must not be served on the TLS port");

    // A real Prometheus scrapes it over TLS with basic auth.
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir(&prom_dir).expect("prom dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let prom_web = format!("127.0.0.1:{port}");
    let config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: memmon\n    scheme: https\n    \
             tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      password: s3cret\n    \
             static_configs:\n      - targets: [\"{}\"]\n",
            ca.display(),
            d.addr
        ),
    )
    .expect("prometheus.yml");
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (Debian package prometheus)"),
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = String::new();
    let up = loop {
        std::thread::sleep(Duration::from_secs(2));
        if std::net::TcpStream::connect(&prom_web).is_ok() {
            let (status, body) =
                http_get(&prom_web, "/api/v1/query?query=up%7Bjob%3D%22memmon%22%7D");
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus JSON");
                last = v.to_string();
                if v["data"]["result"][0]["value"][1] == "1" {
                    break true;
                }
            }
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(up, "Prometheus never scraped memmon over TLS: {last}");

    // SIGHUP re-reads the web config: the old password stops working.
    web_config(dir.path(), "prometheus", "n3w-secret");
    d.memmon.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&url, &ca, Some("prometheus:n3w-secret")).0 != 200 {
        assert!(Instant::now() < deadline, "the new password never worked");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        curl(&url, &ca, Some("prometheus:s3cret")).0,
        401,
        "old password after reload"
    );
    d.stop();
    w.finish();
}

/// `memmon daemon --web.config.file F` with `web_yml` as F: it must exit
/// with code 2; returns its stderr.
fn daemon_fails(web_yml: &str, dir: &Path) -> String {
    let path = dir.join("web.yml");
    std::fs::write(&path, web_yml).expect("write web.yml");
    let out = Command::new(MEMMON)
        .args([
            "daemon",
            "--no-pin",
            "--listen",
            "127.0.0.1:0",
            "--web.config.file",
        ])
        .arg(&path)
        .output()
        .expect("run memmon");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

#[test]
fn bad_certificate_exits_2_before_any_probe() {
    if !require_bpf("bad_certificate_exits_2_before_any_probe") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let err = daemon_fails(
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
        dir.path(),
    );
    assert!(
        err.contains("missing.crt") && err.contains("cannot read"),
        "{err}"
    );
    assert!(!err.contains("probe"), "probes must not load first: {err}");

    std::fs::write(dir.path().join("junk.crt"), "not a certificate\n").expect("junk");
    std::fs::write(dir.path().join("junk.key"), "not a key\n").expect("junk");
    let err = daemon_fails(
        "tls_server_config:\n  cert_file: junk.crt\n  key_file: junk.key\n",
        dir.path(),
    );
    assert!(
        err.contains("junk.crt") && err.contains("no PEM certificate"),
        "{err}"
    );

    let err = daemon_fails("basic_auth_users:\n  admin: hunter2\n", dir.path());
    assert!(err.contains("admin") && err.contains("bcrypt"), "{err}");

    let err = daemon_fails("tls_server_config:\n  certfile: a\n", dir.path());
    assert!(err.contains("certfile") && err.contains("line 2"), "{err}");
}
