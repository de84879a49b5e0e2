//! Root integration tests of the daemon's continuous profile
//! (`memmon daemon --profile`, `/api/v1/profile`) on the real kernel: the
//! workload's `touch_gamma` (200 MiB) and `touch_delta` (20 MiB) must get
//! their shares of the served pprof, the sampled weight must match the
//! process's minor faults in /proc/PID/stat, a cgroup query must find the
//! same stacks, bad queries are 400s naming the fix, and a daemon without
//! --profile says how to turn it on.

mod common;

use common::*;

/// Faults per sample in these tests: the one-shot test's period, so the
/// shares have the same statistics (~880 samples for 220 MiB).
const PERIOD: u64 = 64;

/// `name` is `function` or `path::function`.
fn is_fn(name: &str, function: &str) -> bool {
    name == function
        || name
            .strip_suffix(function)
            .is_some_and(|h| h.ends_with("::"))
}

/// GET a profile: the decoded pprof (after checking the status, content
/// type and gzip magic).
fn get_profile(d: &Daemon, query: &str) -> pprof::Profile {
    get_profile_at(d, "/api/v1/profile", query)
}

/// The same from `path`.
fn get_profile_at(d: &Daemon, path: &str, query: &str) -> pprof::Profile {
    let (status, head, body) = http_get_bytes(&d.addr, &format!("{path}?{query}"));
    assert_eq!(
        status,
        200,
        "{query}: {head}\n{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-encoding"),
        "the pprof body is gzipped itself, not as a transfer encoding: {head}"
    );
    assert!(
        body.starts_with(&[0x1f, 0x8b]),
        "the body is not gzipped ({} bytes)",
        body.len()
    );
    pprof::decode(&body)
}

/// (total weight, weight through touch_gamma, through touch_delta).
fn weights(p: &pprof::Profile) -> (i64, i64, i64) {
    let (mut total, mut gamma, mut delta) = (0, 0, 0);
    for sample in &p.sample {
        assert_eq!(sample.value.len(), 2, "one value per sample type");
        assert_eq!(
            sample.value[1],
            sample.value[0] * PERIOD as i64,
            "weight = samples x period"
        );
        let names = p.names(sample);
        total += sample.value[1];
        if names.iter().any(|n| is_fn(n, "touch_gamma")) {
            gamma += sample.value[1];
        }
        if names.iter().any(|n| is_fn(n, "touch_delta")) {
            delta += sample.value[1];
        }
    }
    (total, gamma, delta)
}

#[test]
fn daemon_profile_serves_touch_gamma_its_share_and_the_kernels_fault_count() {
    if !require_bpf("daemon_profile_serves_touch_gamma_its_share_and_the_kernels_fault_count") {
        return;
    }
    let period = PERIOD.to_string();
    let d = Daemon::start(&[
        "--no-pin",
        "--interval",
        "0.5",
        "--profile",
        "--profile-period",
        &period,
    ]);
    // Started after the daemon: every fault of the workload's life is in
    // the window.
    let mut w = Workload::start(&["stacks", "200", "20"]);
    let cgroup = d.wait_published(w.pid);
    let report = w.go();
    // The kernel's count for the whole process (it is still alive: it
    // waits for stdin to close), start-up included, like the profile.
    let minflt = proc_stat_field(w.pid, 10).expect("minflt in /proc/PID/stat");
    let pages = report["gamma_pages"].as_u64().expect("gamma_pages")
        + report["delta_pages"].as_u64().expect("delta_pages");
    assert!(minflt >= pages, "{minflt} faults for {pages} pages");

    let p = get_profile(&d, &format!("pid={}&seconds=60", w.pid));
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (p.s(t.r#type), p.s(t.unit)))
        .collect();
    assert_eq!(types, vec![("samples", "count"), ("page_faults", "count")]);
    assert_eq!(p.period, PERIOD as i64);
    let (total, gamma, delta) = weights(&p);
    eprintln!(
        "pid {}: {total} sampled faults (gamma {gamma}, delta {delta}); /proc minflt {minflt}",
        w.pid
    );
    assert!(total > 0, "no samples for pid {}", w.pid);
    // Sampling is one in PERIOD faults per CPU, of every process: the
    // workload's ~880 expected samples have a standard deviation of ~3.4%,
    // plus at most one period per CPU of phase (0.2%); 15% is > 4 sigma,
    // the same bound as the one-shot `memmon profile` test.
    assert_within(
        "sampled fault weight vs /proc/PID/stat minflt",
        total as u64,
        minflt,
        0.15,
    );
    let share = gamma as f64 / total as f64;
    assert!(
        (0.85..=0.95).contains(&share),
        "touch_gamma has {:.1}% of {total} faults (want 85-95%)",
        share * 100.0
    );
    assert!(delta > 0, "no touch_delta in the profile");

    // The cgroup the snapshot names holds the same touch_gamma stacks (the
    // workload touches nothing more after its report).
    let encoded = cgroup.replace('/', "%2F");
    let by_cgroup = get_profile(&d, &format!("cgroup={encoded}&seconds=60"));
    let (cg_total, cg_gamma, _) = weights(&by_cgroup);
    eprintln!("cgroup {cgroup}: {cg_total} sampled faults (gamma {cg_gamma})");
    assert_eq!(
        cg_gamma, gamma,
        "cgroup {cgroup}: touch_gamma weight differs from the pid's"
    );
    assert!(
        cg_total >= total,
        "cgroup {cgroup} has less than its process"
    );

    // Bad queries: 400 with the problem and the fix.
    for (query, needle) in [
        ("pid=abc", "pid=abc"),
        ("seconds=0", "1 to 60"),
        ("seconds=600", "seconds=600"),
        ("color=red", "`color`"),
        ("pid=1&cgroup=/", "not both"),
    ] {
        let (status, body) = d.get(&format!("/api/v1/profile?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(needle), "{query}: {body}");
    }
    // The resident profile: what touch_gamma made resident and the
    // process still holds (it keeps its mappings until it exits), in bytes.
    let resident = get_profile_at(&d, "/api/v1/profile/resident", &format!("pid={}", w.pid));
    let types: Vec<(&str, &str)> = resident
        .sample_type
        .iter()
        .map(|t| (resident.s(t.r#type), resident.s(t.unit)))
        .collect();
    assert_eq!(
        types,
        vec![("samples", "count"), ("resident_space", "bytes")]
    );
    let through = |p: &pprof::Profile, f: &str| -> i64 {
        p.sample
            .iter()
            .filter(|s| p.names(s).iter().any(|n| is_fn(n, f)))
            .map(|s| s.value[1])
            .sum()
    };
    let gamma_bytes = report["gamma_pages"].as_u64().expect("gamma_pages") * 4096;
    let resident_gamma = through(&resident, "touch_gamma");
    eprintln!("resident: touch_gamma {resident_gamma} bytes of {gamma_bytes} touched");
    // ~800 sampled pages: sigma ~3.5%, 15% is > 4 sigma.
    assert_within(
        "resident bytes through touch_gamma",
        u64::try_from(resident_gamma).expect(">= 0"),
        gamma_bytes,
        0.15,
    );
    assert!(
        through(&resident, "touch_delta") > 0,
        "no touch_delta resident"
    );
    let (status, folded) = d.get(&format!(
        "/api/v1/profile?kind=resident&format=folded&pid={}",
        w.pid
    ));
    assert_eq!(status, 200, "{folded}");
    assert!(
        folded.starts_with("# memmon resident, period 64; source: page-fault samples"),
        "the folded resident profile does not name its source: {folded}"
    );
    let folded_gamma: i64 = folded
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && l.split(';')
                    .any(|f| is_fn(f.split(' ').next().unwrap_or(f), "touch_gamma"))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, w)| w.parse::<i64>().ok()))
        .sum();
    assert_eq!(folded_gamma, resident_gamma, "folded and pprof disagree");

    // Once the process is gone its samples stay for the window, and keep
    // the names cached while it lived: still a whole profile, no error.
    let pid = w.pid;
    w.finish();
    // Its resident pages went with it.
    let gone = get_profile_at(&d, "/api/v1/profile/resident", &format!("pid={pid}"));
    assert_eq!(
        through(&gone, "touch_gamma"),
        0,
        "touch_gamma still resident after its process exited"
    );
    let after = get_profile(&d, &format!("pid={pid}&seconds=60"));
    let (after_total, after_gamma, _) = weights(&after);
    assert_eq!(after_gamma, gamma, "touch_gamma after the exit");
    assert!(
        after_total >= total,
        "{after_total} < {total} after the exit"
    );
    d.stop();
}

#[test]
fn daemon_without_profile_says_how_to_turn_it_on() {
    if !require_bpf("daemon_without_profile_says_how_to_turn_it_on") {
        return;
    }
    let d = Daemon::start(&["--no-pin", "--interval", "0.5"]);
    let (status, body) = d.get("/api/v1/profile?seconds=10");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--profile"), "{body}");
    assert!(body.contains("MEMMON_PROFILE"), "{body}");
    d.stop();
}
