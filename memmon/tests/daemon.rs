//! The daemon end to end (root, real probes, real processes): endpoints,
//! keys shared with `snapshot --json`, a known workload's series, bounded
//! cardinality with 1,000 processes (promtool clean), counters surviving a
//! restart, SIGHUP reload, and bad input exiting 2 before probes load.

mod common;

use std::{collections::BTreeSet, process::Command, time::Duration};

use common::*;

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

/// VmRSS of `pid` in bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[test]
fn endpoints_serve_the_model_with_snapshot_keys() {
    if !require_bpf("endpoints_serve_the_model_with_snapshot_keys") {
        return;
    }
    // 1 GiB resident: the largest process around (builds beside it too),
    // so it is in the top K.
    let mut w = Workload::start(&["touch", "262144"]);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "0.5", "--top-k", "5"]);
    std::thread::sleep(Duration::from_millis(1200));

    let (status, body) = d.get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));

    let (status, body) = d.get("/api/v1/snapshot");
    assert_eq!(status, 200);
    let snap: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
    let procs = snap["processes"].as_array().expect("processes");
    let mine = procs
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(w.pid)))
        .unwrap_or_else(|| panic!("workload missing from /api/v1/snapshot"));
    // One key set, the catalog's, in every JSON output.
    let catalog: BTreeSet<String> = memmon::model::view::json_keys().into_iter().collect();
    assert_eq!(
        keys(mine),
        catalog,
        "/api/v1/snapshot keys differ from the catalog"
    );
    let rows = snapshot_json(&["--duration", "0"], || {});
    let cli_keys = keys(rows.first().expect("snapshot --json has rows"));
    assert_eq!(
        cli_keys, catalog,
        "snapshot --json keys differ from the catalog"
    );
    let url = format!("http://{}", d.addr);
    for source in [vec![], vec!["--connect", url.as_str()]] {
        let mut args = vec!["top", "--batch", "--json", "--iterations", "1"];
        args.extend(&source);
        let out = Command::new(MEMMON).args(&args).output().expect("run top");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let frame: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("top --batch --json frame");
        let row = frame["processes"]
            .as_array()
            .and_then(|a| a.first())
            .expect("top has rows");
        assert_eq!(
            keys(row),
            catalog,
            "top --batch --json {source:?} keys differ"
        );
    }
    // Measured fields carry values; the detail probes' are null on the
    // daemon's defaults, never 0.
    assert!(mine["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{mine}");
    assert!(
        mine["cow_faults"].is_null(),
        "cow_faults without its probe: {mine}"
    );
    assert!(
        mine["page_allocs"].is_null(),
        "page_allocs without its probe: {mine}"
    );
    // Swap counts come from the task iterator: measured on the defaults.
    assert!(
        mine["swap_out_pages"].as_u64().is_some(),
        "swap_out_pages on the defaults (task iterator): {mine}"
    );
    let fields = snap["fields"].as_array().expect("fields");
    let cow = fields
        .iter()
        .find(|f| f["key"] == "cow_faults" && f["scope"] == "process")
        .expect("cow_faults described");
    assert_eq!(cow["live"], false, "{cow}");
    assert_eq!(cow["sources"][0]["name"], "page_fault_user", "{cow}");
    let (_, exposition) = d.get("/metrics");
    let families: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut checked_absent = 0;
    for f in fields {
        let Some(metric) = f["metric"].as_str() else {
            continue;
        };
        if f["live"] == false {
            checked_absent += 1;
            assert!(
                !families.contains(metric),
                "{metric} is exported though none of its sources is live: {f}"
            );
        }
    }
    assert!(
        checked_absent >= 10,
        "only {checked_absent} unmeasured fields on defaults"
    );

    let (status, metrics) = d.get("/metrics");
    assert_eq!(status, 200);
    let pid = format!("pid=\"{}\"", w.pid);
    let rss = metric_value(&metrics, "memmon_process_rss_bytes", &[&pid])
        .unwrap_or_else(|| panic!("no resident series for the workload:\n{metrics}"));
    assert_within("resident bytes", rss as u64, vm_rss(w.pid), 0.05);
    let minflt =
        metric_value(&metrics, "memmon_process_minor_faults_total", &[&pid]).expect("minor faults");
    let kernel = proc_stat_field(w.pid, 10).expect("minflt");
    assert!(
        minflt as u64 >= 16384 && minflt as u64 <= kernel,
        "{minflt} vs kernel {kernel}"
    );
    let rss_series = metrics
        .lines()
        .filter(|l| l.starts_with("memmon_process_rss_bytes{"))
        .count();
    assert_eq!(rss_series, 5, "top_k 5 bounds the per-process series");
    assert!(
        metrics.contains("memmon_probe_attached{probe=\"process_exit\"} 1"),
        "{metrics}"
    );

    let (status, events) = d.get("/api/v1/events");
    assert_eq!(status, 200);
    let events: serde_json::Value = serde_json::from_str(&events).expect("events JSON");
    assert!(events["oom_kills"].is_array());
    assert_eq!(d.get("/nope").0, 404);
    let stderr = d.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
    w.finish();
}

#[test]
fn thousand_processes_stay_bounded_and_promtool_clean() {
    if !require_bpf("thousand_processes_stay_bounded_and_promtool_clean") {
        return;
    }
    let mut w = Workload::start(&["idle", "1000"]);
    let report = w.go();
    assert_eq!(report["pids"].as_array().map(Vec::len), Some(1000));
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, metrics) = d.get("/metrics");
    let (_, snap) = d.get("/api/v1/snapshot");
    let snap: serde_json::Value = serde_json::from_str(&snap).expect("JSON");
    let live = snap["processes"].as_array().map_or(0, Vec::len);
    assert!(live >= 1000, "daemon sees {live} processes");
    let series = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert!(series < 5000, "{series} series for {live} processes");
    promtool_check_metrics(&metrics);
    d.stop();
    w.finish();
}

#[test]
fn counters_survive_a_daemon_restart() {
    if !require_bpf("counters_survive_a_daemon_restart") {
        return;
    }
    let pin_dir = format!("/sys/fs/bpf/memmon-test-daemon-{}", std::process::id());
    let d = Daemon::start(&["--pin-dir", &pin_dir, "--interval", "0.5"]);
    // Some exits for the pinned statistics to count.
    let mut w = Workload::start(&["spawn", "200"]);
    w.go();
    w.finish();
    std::thread::sleep(Duration::from_millis(1200));
    let (_, before) = d.get("/metrics");
    let exits_before = metric_value(&before, "memmon_kernel_events_total", &["source=\"exit\""])
        .expect("exit events");
    assert!(exits_before >= 200.0, "{exits_before}");
    d.stop();

    let d = Daemon::start(&["--pin-dir", &pin_dir, "--interval", "0.5"]);
    std::thread::sleep(Duration::from_millis(1200));
    let (_, after) = d.get("/metrics");
    let exits_after = metric_value(&after, "memmon_kernel_events_total", &["source=\"exit\""])
        .expect("exit events");
    assert!(
        exits_after >= exits_before,
        "counter reset across restart: {exits_before} -> {exits_after}"
    );
    d.stop();
    let _ = std::fs::remove_dir_all(&pin_dir);
}

#[test]
fn sighup_reloads_the_config() {
    if !require_bpf("sighup_reloads_the_config") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("memmon.toml");
    std::fs::write(&cfg, "top_k = 3\ninterval_seconds = 0.5\npin = false\n").expect("write");
    // Enough processes for the larger top-K even on a bare machine (the
    // qemu guest runs little else).
    let mut idle = Workload::start(&["idle", "8"]);
    idle.go();
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    std::thread::sleep(Duration::from_millis(1000));
    let count = |d: &Daemon| {
        d.get("/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with("memmon_process_rss_bytes{"))
            .count()
    };
    assert_eq!(count(&d), 3);
    std::fs::write(&cfg, "top_k = 7\ninterval_seconds = 0.5\npin = false\n").expect("rewrite");
    d.memmon.signal(libc::SIGHUP);
    let mut n = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        n = count(&d);
        if n == 7 {
            break;
        }
    }
    assert_eq!(n, 7, "top_k change not applied by SIGHUP");
    d.stop();
    idle.finish();
}

#[test]
fn bad_config_and_busy_port_exit_2_before_loading_probes() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("memmon.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\ntop_k = \"many\"\n").expect("write");
    let out = Command::new(MEMMON)
        .args(["daemon", "--config", cfg.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("memmon.toml:2: key `top_k`"), "{stderr}");
    assert!(!stderr.contains("probes attached"));

    std::fs::write(&cfg, "colour = \"blue\"\n").expect("write");
    let out = Command::new(MEMMON)
        .args(["daemon", "--config", cfg.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("memmon.toml:1") && stderr.contains("colour"),
        "{stderr}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = Command::new(MEMMON)
        .args(["daemon", "--no-pin", "--listen", &addr])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );

    let out = Command::new(MEMMON)
        .args(["config", "--print-default"])
        .output()
        .expect("run");
    let default = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(&cfg, &default).expect("write default");
    let out = Command::new(MEMMON)
        .args(["config", "--check", cfg.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "the printed default must check clean: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[path = "common/kernel_setup.rs"]
mod kernel_setup;

#[test]
fn oom_kill_reaches_the_api_with_the_victims_history() {
    if !require_bpf("oom_kill_reaches_the_api_with_the_victims_history") {
        return;
    }
    const LIMIT: u64 = 64 << 20;
    let cg = kernel_setup::Memcg::create("daemon-oom", LIMIT);
    cg.write("memory.swappiness", "0");
    if cg.has("memory.memsw.limit_in_bytes") {
        cg.write("memory.memsw.limit_in_bytes", &LIMIT.to_string());
    }
    let d = Daemon::start(&["--no-pin", "--interval", "0.25"]);
    // Grows 1 MiB every 30 ms: ~2 s to the limit, watched all the way.
    let mut w = Workload::start(&["grow", "512", "30"]);
    cg.add(w.pid);
    let pid = w.pid;
    w.send_go();
    let status = w.child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "not OOM-killed: {status}"
    );
    let mut kill = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        let (_, body) = d.get("/api/v1/events");
        let events: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if let Some(k) = events["oom_kills"]
            .as_array()
            .and_then(|a| a.iter().find(|k| k["pid"].as_u64() == Some(u64::from(pid))))
        {
            kill = Some(k.clone());
            break;
        }
    }
    let kill = kill.expect("the OOM kill never reached /api/v1/events");
    assert_eq!(
        kill["cgroup"].as_str(),
        Some(cg.path_in_hierarchy().as_str()),
        "{kill}"
    );
    let history = kill["history"].as_array().expect("history");
    assert!(history.len() >= 3, "too little history: {kill}");
    let rss: Vec<u64> = history
        .iter()
        .filter_map(|h| h["rss_bytes"].as_u64())
        .collect();
    let last = *rss.last().expect("rss samples");
    assert!(
        last <= LIMIT + (4 << 20),
        "recorded rss {last} above the limit"
    );
    assert!(last > rss[0], "history does not show the growth: {rss:?}");
    let (_, metrics) = d.get("/metrics");
    assert!(metric_value(&metrics, "memmon_oom_kills_total", &[]).unwrap_or(0.0) >= 1.0);
    let stderr = d.stop();
    assert!(stderr.contains("OOM kill"), "not logged: {stderr}");
}

/// GET `path` with extra request headers over HTTP/1.0: (response head,
/// raw body bytes).
fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (String, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    (
        String::from_utf8_lossy(&raw[..split]).to_lowercase(),
        raw[split + 4..].to_vec(),
    )
}

/// What Prometheus sends on every scrape (2.x defaults).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn metrics_are_gzipped_and_speak_openmetrics_when_asked() {
    if !require_bpf("metrics_are_gzipped_and_speak_openmetrics_when_asked") {
        return;
    }
    let mut w = Workload::start(&["touch", "16384"]);
    w.go();
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    std::thread::sleep(Duration::from_secs(1));
    let pid = format!("pid=\"{}\"", w.pid);

    // gzip, Prometheus text: the body decompresses to the exposition.
    let (head, body) = get_with(&d.addr, "/metrics", &[("Accept-Encoding", "gzip")]);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
        .expect("a gzip body");
    assert!(
        body.len() * 3 < text.len(),
        "gzip saves: {} -> {}",
        text.len(),
        body.len()
    );
    let rss = metric_value(&text, "memmon_process_rss_bytes", &[&pid]).expect("rss series");
    assert_within("gzipped rss", rss as u64, vm_rss(w.pid), 0.05);
    promtool_check_metrics(&text);

    // OpenMetrics as Prometheus negotiates it, gzipped.
    let (head, body) = get_with(
        &d.addr,
        "/metrics",
        &[("Accept", PROMETHEUS_ACCEPT), ("Accept-Encoding", "gzip")],
    );
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let mut om = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut om)
        .expect("a gzip body");
    assert!(om.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let rss = metric_value(&om, "memmon_process_rss_bytes", &[&pid]).expect("rss series");
    assert_within("OpenMetrics rss", rss as u64, vm_rss(w.pid), 0.05);
    // Counter families are named without _total; their samples keep it.
    assert!(
        om.contains("# TYPE memmon_process_minor_faults counter\n"),
        "{om}"
    );
    let minflt =
        metric_value(&om, "memmon_process_minor_faults_total", &[&pid]).expect("minor faults");
    assert!(minflt as u64 <= proc_stat_field(w.pid, 10).expect("minflt"));
    // The same families in both formats.
    let families = |t: &str, strip: bool| -> BTreeSet<String> {
        t.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            // The forecasts come and go with the host's memory trend.
            .filter(|n| !n.contains("forecast") && !n.contains("growth"))
            .map(|n| {
                if strip {
                    n.trim_end_matches("_total").to_string()
                } else {
                    n.to_string()
                }
            })
            .collect()
    };
    assert_eq!(families(&text, true), families(&om, false));

    // No Accept-Encoding: plain text, no gzip.
    let (head, body) = get_with(&d.addr, "/metrics", &[]);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("memmon_process_rss_bytes"));
    d.stop();
    w.finish();
}
