//! The Prometheus sink's tests over whole publications.

use prometheus::proto::MetricFamily;

use super::*;
use crate::model::{ProcessView, fields::N_CGROUP, view::idx};

/// Render settings of these tests: top 5 by RSS, `max_cgroups` cgroups.
fn settings(max_cgroups: usize) -> RenderSettings {
    RenderSettings {
        top_k: 5,
        top_by: "rss".into(),
        max_cgroups,
        last_scrape_seconds: 0.0,
    }
}

/// The exposition text of `fams`.
fn text_of(fams: &[MetricFamily]) -> String {
    String::from_utf8(encode(fams).expect("encodes")).expect("utf-8")
}

fn view(pid: u32, comm: &str, rss: u64) -> ProcessView {
    let mut v = ProcessView {
        pid,
        comm: comm.into(),
        cgroup: Some("/a\"b\\c\nd".into()),
        ..Default::default()
    };
    v.values.set(idx::RSS, Some(rss as f64));
    v.values.set(idx::VM, Some((rss + 1) as f64));
    v
}

#[test]
fn top_k_bounds_process_series_and_escapes_labels() {
    let p = Published {
        processes: (0..100)
            .map(|i| std::sync::Arc::new(view(i, "we\"ird\n\\name", u64::from(i) * 4096)))
            .collect(),
        ..Default::default()
    };
    let s = settings(10);
    let fams = families(&p, &s, &mut CgroupAdmission::default());
    let rss = fams
        .iter()
        .find(|f| f.name() == "memmon_process_rss_bytes")
        .expect("rss family");
    assert_eq!(rss.get_metric().len(), 5);
    let text = text_of(&fams);
    assert!(text.contains(r#"comm="we\"ird\n\\name""#), "{text}");
    assert!(text.contains(r#"pid="99""#));
    assert!(!text.contains(r#"pid="94""#));
}

/// OOM kill counters exist only while the probes that count them are
/// attached: never a 0 that means "not seen".
#[test]
fn kill_counters_are_absent_without_their_probes() {
    let s = settings(10);
    let text = |probes: &[&str]| {
        let mut p = Published::default();
        p.live.probes = probes.iter().map(|n| n.to_string()).collect();
        p.oom_kills_total = 2;
        p.kills_total.insert("oom", 2);
        p.incidents_total.insert("oom_kill", 2);
        let fams = families(&p, &s, &mut CgroupAdmission::default());
        text_of(&fams)
    };
    let none = text(&[]);
    assert!(!none.contains("memmon_oom_kills_total"), "{none}");
    assert!(!none.contains("memmon_kills_total{"), "{none}");
    let oom = text(&["oom_kill"]);
    assert!(oom.contains("memmon_oom_kills_total 2"), "{oom}");
    assert!(
        oom.contains(r#"memmon_kills_total{cause="oom"} 2"#),
        "{oom}"
    );
    assert!(!oom.contains(r#"cause="sigkill""#), "{oom}");
    assert!(!none.contains("memmon_incidents_total{"), "{none}");
    assert!(
        oom.contains(r#"memmon_incidents_total{kind="oom_kill"} 2"#)
            && !oom.contains(r#"kind="sigkill""#),
        "{oom}"
    );
    let both = text(&["oom_kill", "kill_signal"]);
    assert!(
        both.contains(r#"memmon_incidents_total{kind="sigkill"} 0"#),
        "{both}"
    );
}

/// The names a cgroup path carries are one info series per admitted
/// cgroup, to join on `cgroup`; none for paths that name nothing or
/// for cgroups past the cap.
#[test]
fn cgroup_names_are_an_info_series() {
    use crate::{
        model::published::CgroupView,
        sample::cgroup::{CgroupNames, QosClass},
    };
    let view = |path: &str, names: CgroupNames| CgroupView {
        cgroup: path.into(),
        names,
        gone: false,
        oom_candidate: None,
        values: [None; N_CGROUP],
    };
    let pod = "/kubepods.slice/kubepods-burstable.slice/\
               kubepods-burstable-pod0d3c4f7e_1a2b_4c5d_8e9f_0a1b2c3d4e5f.slice/\
               cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
    let p = Published {
        cgroups: vec![
            view("/plain", CgroupNames::default()),
            view(
                pod,
                CgroupNames {
                    unit: Some("cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope".into()),
                    pod_uid: Some("0d3c4f7e-1a2b-4c5d-8e9f-0a1b2c3d4e5f".into()),
                    container_id: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into()),
                    qos: Some(QosClass::Burstable),
                },
            ),
            view(
                "/system.slice/nginx.service",
                CgroupNames {
                    unit: Some("nginx.service".into()),
                    ..Default::default()
                },
            ),
        ],
        ..Default::default()
    };
    let s = settings(2);
    let fams = families(&p, &s, &mut CgroupAdmission::default());
    let text = text_of(&fams);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("memmon_cgroup_info{"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    for want in [
        "pod_uid=\"0d3c4f7e-1a2b-4c5d-8e9f-0a1b2c3d4e5f\"",
        "container_id=\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
        "qos=\"burstable\"",
        "unit=\"cri-containerd-",
    ] {
        assert!(lines[0].contains(want), "{want} missing: {}", lines[0]);
    }
    assert!(lines[0].ends_with(" 1"), "{}", lines[0]);
}

/// Pod churn: a cgroup the model released (absent from the
/// publication) gives its place to a new one, which gets its own
/// series instead of `other`; held ones keep theirs.
#[test]
fn released_cgroups_give_their_series_to_new_ones() {
    use crate::model::published::CgroupView;
    let publication = |paths: &[&str]| Published {
        cgroups: paths
            .iter()
            .map(|p| CgroupView {
                cgroup: (*p).into(),
                names: Default::default(),
                gone: false,
                oom_candidate: None,
                values: [Some(1.0); N_CGROUP],
            })
            .collect(),
        ..Default::default()
    };
    let s = settings(2);
    let mut adm = CgroupAdmission::default();
    let labels = |p: &Published, adm: &mut CgroupAdmission| {
        let fams = families(p, &s, adm);
        let text = text_of(&fams);
        let mut l: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("memmon_cgroup_") && !l.starts_with("memmon_cgroup_info"))
            .filter_map(|l| Some(l.split("cgroup=\"").nth(1)?.split('"').next()?.to_string()))
            .collect();
        l.sort();
        l.dedup();
        l
    };
    assert_eq!(
        labels(&publication(&["/pod-0", "/pod-1"]), &mut adm),
        ["/pod-0", "/pod-1"]
    );
    // Full: a third cgroup is summed as other while both are held.
    assert_eq!(
        labels(&publication(&["/pod-0", "/pod-1", "/pod-2"]), &mut adm),
        ["/pod-0", "/pod-1", "other"]
    );
    // Churn: each pod released in turn, the next one takes its place.
    for i in 2..50 {
        let (old, new) = (format!("/pod-{}", i - 1), format!("/pod-{i}"));
        let got = labels(&publication(&["/pod-0", &old, &new]), &mut adm);
        assert!(got.contains(&old) && !got.contains(&new), "{got:?}");
        let got = labels(&publication(&["/pod-0", &new]), &mut adm);
        assert_eq!(got, ["/pod-0".to_string(), new.clone()], "pod {i}");
    }
}

#[test]
fn cgroups_past_the_cap_fold_into_other_and_stay() {
    let mut adm = CgroupAdmission::default();
    assert_eq!(adm.label("/a", 2), "/a");
    assert_eq!(adm.label("/b", 2), "/b");
    assert_eq!(adm.label("/c", 2), "other");
    assert_eq!(adm.label("/a", 2), "/a");
}

/// The system catalog's fields land in their families, each labeled by
/// its kernel name (per node with a `node` label); fields the kernel does
/// not have are absent.
#[test]
fn system_fields_follow_the_catalog() {
    let mut sample = crate::sample::system::SystemSample::default();
    sample.meminfo.insert("MemTotal".into(), 1000);
    sample.meminfo.insert("NotInTheCatalog".into(), 5);
    sample.vmstat.insert("pgfault".into(), 7);
    let node: std::collections::BTreeMap<String, u64> =
        [("numa_hit".to_string(), 3), ("MemFree".to_string(), 4096)].into();
    sample.nodes.insert(0, node);
    let view = crate::model::system::SystemView::next(None, sample, std::time::Instant::now());
    let p = Published {
        system: Some(view),
        ..Default::default()
    };
    let text = text_of(&families(
        &p,
        &settings(10),
        &mut CgroupAdmission::default(),
    ));
    for want in [
        r#"memmon_system_memory_bytes{field="MemTotal"} 1000"#,
        r#"memmon_system_vmstat_total{counter="pgfault"} 7"#,
        r#"memmon_node_numa_events_total{node="0",counter="numa_hit"} 3"#,
        r#"memmon_node_memory_free_bytes{node="0"} 4096"#,
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("NotInTheCatalog"), "{text}");
    assert!(!text.contains(r#"field="MemFree""#), "{text}");
}
