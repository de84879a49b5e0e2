//! Unit tests of the engine on constructed evidence: the rows a
//! publication would hold, through the [`Builder`], judged by [`explain`].

use super::{
    evidence::{Builder, CGROUP_INDEX, PROCESS_INDEX, SystemPoint, Target, c},
    explain,
    finding::Severity,
};
use crate::model::{
    fields::{CGROUP_FIELDS, N_CGROUP},
    published::{CgroupView, OomCandidate},
    view::{ProcessView, field_index},
};

const MIB: f64 = 1024.0 * 1024.0;
const CG: &str = "/memmon-test-leak";

fn row(pid: u32, comm: &str, values: &[(&str, f64)]) -> ProcessView {
    let mut v = ProcessView {
        pid,
        comm: comm.into(),
        start_time_ticks: 100,
        cgroup: Some(CG.into()),
        ..Default::default()
    };
    for (k, x) in values {
        v.values.set(field_index(k), Some(*x));
    }
    v
}

fn cgroup(values: &[((&str, Option<&str>), f64)]) -> CgroupView {
    let mut out = CgroupView {
        cgroup: CG.into(),
        names: Default::default(),
        gone: false,
        oom_candidate: None,
        values: [None; N_CGROUP],
    };
    for ((k, l), x) in values {
        out.values[super::evidence::cgroup_field_index(k, *l)] = Some(*x);
    }
    out
}

/// A leaker at 3 MiB/s beside a quiet process, in a 256 MiB v1 memcg,
/// sampled once a second for 10 s.
fn leak_scenario(target: Target) -> super::Evidence {
    let mut b = Builder::new(target, "test");
    for i in 0..=10u64 {
        let t = i as f64;
        let leak = 20.0 * MIB + 3.0 * MIB * t;
        let rows = [
            row(
                10,
                "leaker",
                &[
                    ("rss_bytes", leak),
                    ("rss_anon_bytes", leak - MIB),
                    ("rss_file_bytes", MIB),
                    ("brk_grow_bytes", 3.0 * MIB * t),
                    ("brk_shrink_bytes", 0.0),
                    ("mmap_anon_bytes", 0.0),
                    ("oom_score", 400.0 + 10.0 * t),
                    ("major_faults", 0.0),
                ],
            ),
            row(
                11,
                "quiet",
                &[
                    ("rss_bytes", 8.0 * MIB),
                    ("rss_anon_bytes", 7.0 * MIB),
                    ("oom_score", 30.0),
                    ("major_faults", 0.0),
                ],
            ),
        ];
        let usage = leak + 8.0 * MIB;
        let cg = cgroup(&[
            (("memory_usage_bytes", None), usage),
            (("memory_working_set_bytes", None), usage),
            (("memory_unreclaimable_bytes", None), usage - MIB),
            (("memory_limit_bytes", Some("max")), 256.0 * MIB),
            (("memory_limit_bytes", Some("effective_max")), 256.0 * MIB),
            (("memory_events", Some("failcnt")), 0.0),
            (("memory_events", Some("oom_kill")), 0.0),
            (
                ("oom_forecast_seconds", None),
                (256.0 * MIB - usage) / (3.0 * MIB),
            ),
            (("unreclaimable_growth_bytes_per_second", None), 3.0 * MIB),
            (("memory_stat_bytes", Some("anon")), usage - MIB),
        ]);
        b.push(
            1_000_000 + i * 1000,
            rows.iter(),
            &[cg],
            Some(SystemPoint::default()),
            None,
        );
    }
    b.finish().expect("evidence")
}

#[test]
fn a_leaker_gets_steady_growth_the_forecast_and_first_to_be_killed() {
    let ev = leak_scenario(Target::Pid(10));
    let r = explain(&ev);
    let growth = r.finding("steady_growth").expect("steady growth");
    assert_eq!(growth.severity, Severity::Warning);
    let rate = growth.evidence[0].value.expect("rate");
    assert!((rate - 3.0 * MIB).abs() < 0.01 * MIB, "{rate}");
    assert_eq!(
        growth.evidence[0]
            .threshold
            .as_ref()
            .map(|t| t.key.as_str()),
        Some("growth.steady_warn")
    );
    let fc = r.finding("oom_forecast").expect("forecast");
    assert_eq!(fc.severity, Severity::Critical, "{fc:?}");
    let secs = fc.evidence[0].value.expect("seconds");
    // 256 - (50 + 8) MiB at 3 MiB/s.
    assert!((secs - 66.0).abs() < 1.0, "{secs}");
    let rank = r.finding("oom_rank").expect("rank");
    assert!(
        rank.title.contains("kill this process first"),
        "{}",
        rank.title
    );
    assert_eq!(rank.evidence[0].value, Some(1.0));
    let wig = r.finding("where_it_grows").expect("where");
    assert!(wig.title.contains("anonymous memory"), "{}", wig.title);
    assert!(
        wig.title.contains("heap via brk 3.0 MiB/s"),
        "{}",
        wig.title
    );
    assert_eq!(r.worst, Severity::Critical);
    assert_eq!(r.exit_code(), 4);
    // Worst first.
    assert_eq!(r.findings[0].severity, Severity::Critical);
}

#[test]
fn a_quiet_process_beside_it_has_no_problem() {
    let ev = leak_scenario(Target::Pid(11));
    let r = explain(&ev);
    assert!(r.quiet(), "{:#?}", r.findings);
    assert_eq!(r.exit_code(), 0);
    // Its cgroup's forecast is still told, as information, naming the
    // process that would go.
    let fc = r.finding("oom_forecast").expect("forecast told");
    assert_eq!(fc.severity, Severity::Info);
    assert!(
        fc.title.contains("pid 10 (leaker) would be killed first"),
        "{}",
        fc.title
    );
    assert!(r.finding("steady_growth").is_none());
    let rss = r
        .figures
        .iter()
        .find(|f| f.what == "RSS")
        .expect("RSS figure");
    assert_eq!(rss.value, Some(8.0 * MIB));
}

#[test]
fn the_cgroup_target_names_who_dies_first() {
    let ev = leak_scenario(Target::Cgroup(CG.into()));
    let r = explain(&ev);
    assert!(r.finding("steady_growth").is_some());
    assert_eq!(
        r.finding("oom_forecast").map(|f| f.severity),
        Some(Severity::Critical)
    );
    let rank = r.finding("oom_rank").expect("rank");
    assert!(rank.title.contains("pid 10 (leaker)"), "{}", rank.title);
    // By unit name too (the last path component).
    let ev = leak_scenario(Target::Unit("memmon-test-leak".into()));
    assert_eq!(ev.cgroup.as_deref(), Some(CG));
}

#[test]
fn a_missing_target_says_what_exists() {
    let mut b = Builder::new(Target::Cgroup("/nope".into()), "test");
    b.push(1, std::iter::empty(), &[cgroup(&[])], None, None);
    let e = b.finish().expect_err("not found").to_string();
    assert!(e.contains("/nope") && e.contains(CG), "{e}");
    let b = Builder::new(Target::Pid(1), "test");
    assert!(b.finish().is_err());
}

#[test]
fn thrashing_reports_swap_in_and_reclaim_stall() {
    let mut b = Builder::new(Target::Pid(10), "test");
    for i in 0..=5u64 {
        let t = i as f64;
        let r = row(
            10,
            "thrash",
            &[
                ("rss_bytes", 60.0 * MIB),
                ("swap_in_pages", 5000.0 * t),
                ("swap_out_pages", 5100.0 * t),
                ("reclaim_stall_seconds", 0.3 * t),
                ("major_faults", 5000.0 * t),
                ("oom_score", 900.0),
            ],
        );
        b.push(
            2_000_000 + i * 1000,
            [r].iter(),
            &[cgroup(&[(("memory_limit_bytes", Some("max")), 64.0 * MIB)])],
            Some(SystemPoint {
                psi_some_us: Some(i * 400_000),
                psi_full_us: Some(i * 200_000),
                pswpin: Some(i * 5000),
                ..Default::default()
            }),
            None,
        );
    }
    let r = explain(&b.finish().expect("evidence"));
    let f = r.finding("thrashing").expect("thrashing");
    assert_eq!(f.severity, Severity::Critical, "0.3 s/s of stall");
    let get = |what: &str| {
        f.evidence
            .iter()
            .find(|i| i.what == what)
            .and_then(|i| i.value)
            .unwrap_or_else(|| panic!("{what} in {f:?}"))
    };
    assert!((get("swap entries released") - 5000.0).abs() < 1.0);
    assert!((get("swap-in, whole system") - 5000.0).abs() < 1.0);
    assert!((get("reclaim stall") - 0.3).abs() < 1e-9);
    assert!((get("PSI some") - 0.4).abs() < 1e-9);
    assert!(
        f.evidence
            .iter()
            .any(|i| i.what == "PSI some" && i.source.contains("system-wide"))
    );
}

#[test]
fn numa_remote_memory_is_found() {
    let mut b = Builder::new(Target::Pid(10), "test");
    for i in 0..3u64 {
        let mut r = row(
            10,
            "remote",
            &[("rss_bytes", 128.0 * MIB), ("numa_local_ratio", 0.02)],
        );
        r.numa_pages = Some([(0, 640), (1, 32_000)].into_iter().collect());
        b.push(3_000_000 + i * 1000, [r].iter(), &[], None, None);
    }
    let r = explain(&b.finish().expect("evidence"));
    let f = r.finding("numa_remote").expect("numa finding");
    assert_eq!(f.severity, Severity::Warning);
    assert!((f.evidence[0].value.expect("share") - 0.98).abs() < 1e-9);
    assert!(f.next[0].contains("--membind=1"), "{:?}", f.next);
}

#[test]
fn unmeasured_values_are_not_zero() {
    let mut b = Builder::new(Target::Pid(10), "test");
    for i in 0..3u64 {
        let r = row(10, "x", &[("rss_bytes", 10.0 * MIB)]);
        b.push(4_000_000 + i * 1000, [r].iter(), &[], None, None);
    }
    let r = explain(&b.finish().expect("evidence"));
    let pss = r.figures.iter().find(|f| f.what == "PSS").expect("PSS");
    assert_eq!(pss.value, None);
    let cow = r.figures.iter().find(|f| f.what == "copy-on-write faults");
    assert!(cow.is_none_or(|f| f.value.is_none()));
    assert!(r.quiet());
}

#[test]
fn points_keep_catalog_fields_and_survive_json() {
    // Every point key is a catalog field (a wrong one fails to build), and
    // a cgroup read back from JSON keeps the point's values.
    assert_eq!(PROCESS_INDEX.len(), super::evidence::NP);
    assert_eq!(CGROUP_INDEX.len(), super::evidence::NC);
    let mut cg = cgroup(&[
        (("memory_usage_bytes", None), 5.0 * MIB),
        (("memory_limit_bytes", Some("max")), 64.0 * MIB),
        (("memory_events", Some("failcnt")), 7.0),
    ]);
    cg.oom_candidate = Some(OomCandidate {
        pid: 3,
        comm: "a".into(),
        oom_score: 9,
    });
    let j = serde_json::to_value(&cg).expect("json");
    let back = CgroupView::from_json(&j).expect("reads back");
    assert_eq!(back, cg);
    assert_eq!(
        super::evidence::CgroupPoint::from_view(&back).get(c("memory_events", Some("failcnt"))),
        Some(7.0)
    );
    assert_eq!(CGROUP_FIELDS.len(), N_CGROUP);
}

#[test]
fn a_reused_pid_keeps_only_the_newest_process() {
    let mut b = Builder::new(Target::Pid(10), "test");
    for i in 0..6u64 {
        let mut r = row(10, "x", &[("rss_bytes", (i as f64) * MIB)]);
        r.start_time_ticks = if i < 3 { 100 } else { 200 };
        b.push(5_000_000 + i * 1000, [r].iter(), &[], None, None);
    }
    let ev = b.finish().expect("evidence");
    assert_eq!(ev.frames.len(), 3);
}
