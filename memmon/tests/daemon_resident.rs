//! Root integration test of the daemon's resident profile at its adaptive
//! period (`memmon daemon --profile`, `profile_period` auto): two C
//! programs (tests/fixtures/resident_leaks.c) leak 40 MiB each over 6 s,
//! one through glibc's malloc, one through an arena of its own; the
//! daemon must see them grow, sample them densely, and
//! `/api/v1/profile?kind=resident` must credit each leaking function with
//! the bytes the program reports it keeps, within 15%, and name the
//! adaptive period it sampled them at.

mod common;

use common::{
    c_fixture::{Program, build, bytes_through, folded},
    *,
};

/// MiB each program leaks, and over how many seconds.
const MIB: u64 = 40;
const SECONDS: &str = "6";

/// The lowest period of a header's `period LO to HI (adaptive)`, or its
/// `period N` when every page shown was sampled at one period.
fn lowest_period(head: &str) -> Option<u64> {
    let rest = head.split_once("period ")?.1;
    let first: String = rest.chars().take_while(char::is_ascii_digit).collect();
    first.parse().ok()
}

/// Waits until the daemon publishes the machine's fault rate (two passes:
/// its sampling is planned from rates from then on, not from its
/// start-up plan of one walk per ~1,000 faults), plus one planning
/// interval. A leak that starts in the daemon's first second is sampled
/// at the start-up plan until the next passes: a few samples of ~4 MiB
/// each, too coarse for 15%.
fn wait_planned(d: &Daemon) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = d.get("/api/v1/snapshot");
        let snap: serde_json::Value = serde_json::from_str(&body).expect("snapshot JSON");
        if snap["system"]["rates"]["pgfault"].as_f64().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never published the machine's fault rate"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
}

#[test]
fn daemon_resident_profile_estimates_growing_leaks_within_15_percent_at_an_adaptive_period() {
    let test =
        "daemon_resident_profile_estimates_growing_leaks_within_15_percent_at_an_adaptive_period";
    if !require_bpf(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = build(dir.path());
    let d = Daemon::start(&["--no-pin", "--interval", "0.5", "--profile"]);
    let mib = MIB.to_string();
    let mut programs = [
        (
            "leak_arena",
            Program::start(&exe, &["arena", &mib, SECONDS]),
        ),
        (
            "leak_glibc",
            Program::start(&exe, &["glibc", &mib, SECONDS]),
        ),
    ];
    // Published before they grow: the daemon sees each one's resident set
    // from its first pass on.
    for (_, p) in &programs {
        d.wait_published(p.pid);
    }
    wait_planned(&d);
    for (_, p) in programs.iter_mut() {
        p.send_go();
    }
    for (function, p) in programs.iter_mut() {
        let leaked = p.report()["leaked_bytes"].as_u64().expect("leaked_bytes");
        assert!(leaked >= MIB << 20, "{function}: the program kept {leaked}");
        let (status, text) = d.get(&format!(
            "/api/v1/profile?kind=resident&format=folded&pid={}",
            p.pid
        ));
        assert_eq!(status, 200, "{text}");
        let (head, stacks) = folded(&text);
        eprintln!(
            "{function}: {} of {leaked} bytes; {head}",
            bytes_through(&stacks, function)
        );
        assert!(
            head.starts_with("# memmon resident, period ") && head.contains("weight: bytes"),
            "the resident profile does not name its period and weight: {head}"
        );
        // The adaptive period: the header names the period (or range) its
        // pages were sampled at, and the growing process got the dense
        // end: far below the start-up plan's ~1,000 faults per walk and
        // the 260 of a process not boosted (a leak that faults fast
        // enough to pass 2,000 walks a second at one walk per 13 faults
        // is walked less often at the next drain: 26 to 117).
        let lowest =
            lowest_period(&head).unwrap_or_else(|| panic!("no period in the header: {head}"));
        assert!(
            (1..=127).contains(&lowest),
            "the leak was not sampled densely: {head}"
        );
        assert_within(
            &format!("resident bytes through {function}"),
            bytes_through(&stacks, function),
            leaked,
            0.15,
        );
        let heaviest = stacks
            .iter()
            .max_by_key(|(_, w)| *w)
            .and_then(|(f, _)| f.last().cloned())
            .unwrap_or_default();
        assert_eq!(&heaviest, function, "the heaviest stack:\n{text}");
    }
    d.stop();
}
