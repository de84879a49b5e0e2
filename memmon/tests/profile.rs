//! Root integration tests of `memmon profile` and `memmon leaks` on the real
//! kernel: the workload's named functions (`touch_gamma`, `touch_delta`,
//! `leak_alpha`, `churn_beta`, built with frame pointers) must carry the
//! share of the sampled weight that the workload itself reports it made;
//! the pprof output is decoded against profile.proto's field numbers
//! (declared again here, independently of memmon's writer); a binary that
//! lives only in another mount namespace still gets its symbols.

mod common;

use std::{path::Path, time::Duration};

use common::*;
use prost::Message as _;

/// `name` is `function` or `path::function` (Rust names are demangled
/// with their module path).
fn is_fn(name: &str, function: &str) -> bool {
    name == function
        || name
            .strip_suffix(function)
            .is_some_and(|h| h.ends_with("::"))
}

/// Sum of weights of folded lines that go through `function`, and of all.
fn folded_share(folded: &str, function: &str) -> (f64, i64) {
    let mut total = 0i64;
    let mut hit = 0i64;
    let mut lines = folded.lines();
    let head = lines.next().unwrap_or_default();
    assert!(
        head.starts_with("# memmon ") && head.contains("period") && head.contains("source:"),
        "the folded output does not open with its header: {head}"
    );
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let (stack, weight) = line.rsplit_once(' ').expect("folded line has a weight");
        let w: i64 = weight.parse().expect("folded weight is a number");
        total += w;
        if stack.split(';').any(|f| is_fn(f, function)) {
            hit += w;
        }
    }
    assert!(total > 0, "folded output has no weight:\n{folded}");
    (hit as f64 / total as f64, total)
}

/// Runs `memmon ARGS` around `workload` (started, told to go, its report
/// read), then SIGINT: returns (the workload's report, memmon's stdout).
fn around<S: AsRef<str>>(workload: &mut Workload, args: &[S]) -> (serde_json::Value, String) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let m = Memmon::start(&args);
    let report = workload.go();
    // Let the last samples land; memmon reads the maps after SIGINT.
    std::thread::sleep(Duration::from_millis(200));
    m.signal(libc::SIGINT);
    let (stdout, stderr) = m.output();
    eprintln!("memmon stderr:\n{stderr}");
    (report, stdout)
}

/// Starts the two-function fault workload and profiles it into `out`.
fn profile_stacks(format: &str, out: &Path) -> serde_json::Value {
    let mut w = Workload::start(&["stacks", "200", "20"]);
    let mut args = profile_args(w.pid, 1, format, out);
    args.extend(["--event", "faults"].map(String::from));
    let (report, _) = around(&mut w, &args);
    w.finish();
    report
}

/// `memmon profile` of process `pid` at period 64, its event open one
/// 100 ms slot in `slots` (1: always), written as `format` to `out`.
fn profile_args(pid: u32, slots: u64, format: &str, out: &Path) -> Vec<String> {
    [
        "profile",
        "--pid",
        &pid.to_string(),
        "--period",
        "64",
        "--slots",
        &slots.to_string(),
        "--format",
        format,
        "-o",
        out.to_str().expect("utf-8 temp path"),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn profile_faults_give_touch_gamma_its_share_in_folded_stacks() {
    if !require_bpf("profile_faults_give_touch_gamma_its_share_in_folded_stacks") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("faults.folded");
    let report = profile_stacks("folded", &out);
    let folded = std::fs::read_to_string(&out).expect("folded output written");
    let (gamma, total) = folded_share(&folded, "touch_gamma");
    let (delta, _) = folded_share(&folded, "touch_delta");
    // The workload's own count of the faults it took (getrusage-like minflt
    // delta from /proc/self/stat) bounds the sampled weight: sampling is
    // one in 64 faults, each sample weighing 64.
    let minflt = report["minflt"].as_u64().expect("minflt");
    let pages = report["gamma_pages"].as_u64().expect("gamma_pages")
        + report["delta_pages"].as_u64().expect("delta_pages");
    assert!(
        minflt >= pages,
        "workload reports {minflt} faults for {pages} pages"
    );
    assert_within("sampled fault weight", total as u64, minflt, 0.15);
    assert!(
        (0.85..=0.95).contains(&gamma),
        "touch_gamma has {:.1}% of the sampled weight (want 85-95%); folded:\n{folded}",
        gamma * 100.0
    );
    assert!(
        (0.05..=0.13).contains(&delta),
        "touch_delta has {:.1}% (want ~9%)",
        delta * 100.0
    );
    // Whole stacks: touch_gamma's caller chain up to main is walked.
    assert!(
        folded
            .lines()
            .any(|l| l.contains("main;") && l.contains("touch_gamma")),
        "no stack from main to touch_gamma:\n{folded}"
    );
}

use common::pprof as proto;

#[test]
fn profile_pprof_decodes_and_names_the_same_functions() {
    if !require_bpf("profile_pprof_decodes_and_names_the_same_functions") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("faults.pb");
    profile_stacks("pprof", &out);
    let bytes = std::fs::read(&out).expect("pprof output written");
    let p = proto::Profile::decode(bytes.as_slice()).expect("decodes as profile.proto Profile");
    let s = |i: i64| -> &str {
        p.string_table
            .get(usize::try_from(i).expect("string index >= 0"))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("string index {i} outside the table"))
    };
    assert_eq!(s(0), "", "string_table[0] must be empty");
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(types, vec![("samples", "count"), ("page_faults", "count")]);
    assert_eq!(p.period, 64);
    let fn_name = |id: u64| {
        p.function
            .iter()
            .find(|f| f.id == id)
            .map(|f| s(f.name))
            .unwrap_or_else(|| panic!("function id {id} missing"))
    };
    let loc_names = |id: u64| -> Vec<&str> {
        p.location
            .iter()
            .find(|l| l.id == id)
            .unwrap_or_else(|| panic!("location id {id} missing"))
            .line
            .iter()
            .map(|l| fn_name(l.function_id))
            .collect()
    };
    let (mut total, mut gamma, mut delta) = (0i64, 0i64, 0i64);
    for sample in &p.sample {
        assert_eq!(sample.value.len(), 2, "one value per sample type");
        assert_eq!(
            sample.value[1],
            sample.value[0] * 64,
            "weight = samples x period"
        );
        let names: Vec<&str> = sample
            .location_id
            .iter()
            .flat_map(|id| loc_names(*id))
            .collect();
        total += sample.value[1];
        if names.iter().any(|n| is_fn(n, "touch_gamma")) {
            gamma += sample.value[1];
        }
        if names.iter().any(|n| is_fn(n, "touch_delta")) {
            delta += sample.value[1];
        }
    }
    let share = gamma as f64 / total as f64;
    assert!(
        (0.85..=0.95).contains(&share),
        "pprof: touch_gamma {:.1}% of {total} faults",
        share * 100.0
    );
    assert!(delta > 0, "pprof names no touch_delta");
}

#[test]
fn profile_svg_flame_graph_is_drawn() {
    if !require_bpf("profile_svg_flame_graph_is_drawn") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("faults.svg");
    profile_stacks("svg", &out);
    let svg = std::fs::read_to_string(&out).expect("svg written");
    assert!(
        svg.starts_with("<?xml"),
        "not an SVG: {}",
        &svg[..svg.len().min(200)]
    );
    assert!(svg.contains("<svg"), "no <svg> element");
    assert!(
        svg.contains("touch_gamma"),
        "the flame graph has no touch_gamma frame"
    );
    assert!(
        svg.contains("touch_delta"),
        "the flame graph has no touch_delta frame"
    );
}

#[test]
fn leaks_credit_leak_alpha_and_not_churn_beta() {
    if !require_bpf("leaks_credit_leak_alpha_and_not_churn_beta") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("leaks.folded");
    let mut w = Workload::start(&["leaks", "64", "1024"]);
    let pid = w.pid.to_string();
    let (report, _) = around(
        &mut w,
        &[
            "leaks",
            "--exact",
            "--pid",
            &pid,
            "--sample-rate",
            "1",
            "--format",
            "folded",
            "-o",
            out.to_str().expect("utf-8 temp path"),
        ],
    );
    w.finish();
    let folded = std::fs::read_to_string(&out).expect("folded output written");
    let leaked = report["leaked_bytes"].as_u64().expect("leaked_bytes");
    assert_eq!(leaked, 64 << 20);
    let (alpha, total) = folded_share(&folded, "leak_alpha");
    let (beta, _) = folded_share(&folded, "churn_beta");
    assert!(
        alpha >= 0.90,
        "leak_alpha holds {:.1}% of {total} outstanding bytes (want >= 90%):\n{folded}",
        alpha * 100.0
    );
    assert!(
        beta <= 0.02,
        "churn_beta holds {:.1}% (want <= 2%)",
        beta * 100.0
    );
    // What leak_alpha holds is what the workload kept (4 KiB blocks, each
    // traced exactly).
    let alpha_bytes = (alpha * total as f64) as u64;
    assert_within("bytes through leak_alpha", alpha_bytes, leaked, 0.01);
}

/// More distinct live stacks than the kernel's stack-trace map had buckets
/// (8192 in the daemon; `leaks` and `profile` had 16384, which loses
/// about 2500 of 12000 to bucket collisions): every one keeps its frames.
#[test]
fn leaks_keep_the_frames_of_more_distinct_stacks_than_a_stack_id_table_has_buckets() {
    const PATHS: u64 = 12_000;
    if !require_bpf(
        "leaks_keep_the_frames_of_more_distinct_stacks_than_a_stack_id_table_has_buckets",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("many.folded");
    let mut w = Workload::start(&["many-stacks", &PATHS.to_string()]);
    let pid = w.pid.to_string();
    let m = Memmon::start(&[
        "leaks",
        "--exact",
        "--pid",
        &pid,
        "--sample-rate",
        "1",
        "--format",
        "folded",
        "-o",
        out.to_str().expect("utf-8 temp path"),
    ]);
    let report = w.go();
    std::thread::sleep(Duration::from_millis(200));
    m.signal(libc::SIGINT);
    let (_, stderr) = m.output();
    w.finish();
    eprintln!("memmon stderr:\n{stderr}");
    assert_eq!(report["stacks"].as_u64(), Some(PATHS));
    let kept = report["kept_bytes"].as_u64().expect("kept_bytes");
    assert_eq!(kept, PATHS * 64);
    let folded = std::fs::read_to_string(&out).expect("folded output written");
    let mut paths = std::collections::HashSet::new();
    let mut leaf_bytes = 0u64;
    for line in folded
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (stack, weight) = line.rsplit_once(' ').expect("folded line has a weight");
        assert!(stack != "[no stack]", "a stack lost its frames: {line}");
        let frames: Vec<&str> = stack.split(';').collect();
        if !frames.iter().any(|f| is_fn(f, "leak_leaf")) {
            continue;
        }
        leaf_bytes += weight.parse::<u64>().expect("folded weight is a number");
        let path: Vec<&str> = frames
            .iter()
            .copied()
            .filter(|f| is_fn(f, "path_zero") || is_fn(f, "path_one"))
            .collect();
        assert_eq!(path.len(), 14, "a path not walked whole: {line}");
        assert!(paths.insert(path), "one path on two lines: {line}");
    }
    assert_eq!(
        paths.len() as u64,
        PATHS,
        "distinct stacks through leak_leaf (each of the workload's paths once)"
    );
    assert_eq!(leaf_bytes, kept, "bytes through leak_leaf");
    assert!(
        !stderr.contains("could not be walked or stored"),
        "memmon lost stacks:\n{stderr}"
    );
}

#[test]
fn leaks_refuses_a_process_without_a_shared_allocator_with_the_reason() {
    if !require_bpf("leaks_refuses_a_process_without_a_shared_allocator_with_the_reason") {
        return;
    }
    // The kernel thread kthreadd (pid 2) maps nothing.
    let out = std::process::Command::new(MEMMON)
        .args(["leaks", "--exact", "--pid", "2", "--duration", "0"])
        .output()
        .expect("run memmon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "memmon leaks on kthreadd succeeded");
    assert!(
        stderr.contains("maps no shared allocator library"),
        "unclear message: {stderr}"
    );
}

#[test]
fn profile_symbolizes_a_binary_only_inside_another_mount_namespace() {
    if !require_bpf("profile_symbolizes_a_binary_only_inside_another_mount_namespace") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hidden = dir.path().join("ns-only");
    std::fs::create_dir(&hidden).expect("mkdir");
    let out = dir.path().join("ns.folded");
    // In a private mount namespace: a tmpfs over `hidden`, the workload
    // copied into it and exec'ed from there. Outside, `hidden` stays empty.
    let script = format!(
        "mount -t tmpfs memmon-test {h} && cp {w} {h}/workload-in-ns && exec {h}/workload-in-ns stacks 100 10",
        h = hidden.display(),
        w = workload()
    );
    let mut w = Workload::start_under(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "--",
        ],
        &[],
    );
    let exe = std::fs::read_link(format!("/proc/{}/exe", w.pid)).expect("exe link");
    assert!(exe.starts_with(&hidden), "workload runs {}", exe.display());
    assert!(
        !exe.exists(),
        "{} is visible outside the namespace: the test would prove nothing",
        exe.display()
    );
    let args = profile_args(w.pid, 1, "folded", &out);
    around(&mut w, &args);
    w.finish();
    let folded = std::fs::read_to_string(&out).expect("folded output written");
    let (gamma, _) = folded_share(&folded, "touch_gamma");
    assert!(
        (0.85..=0.95).contains(&gamma),
        "touch_gamma has {:.1}% in the namespaced process:\n{folded}",
        gamma * 100.0
    );
}

#[test]
fn profile_in_time_slots_weighs_the_faults_of_the_closed_slots_too() {
    if !require_bpf("profile_in_time_slots_weighs_the_faults_of_the_closed_slots_too") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("slots.folded");
    // A storm of three seconds, however fast the machine: fifteen cycles
    // of 200 ms (the event open 100 ms of each), so the part of a cycle
    // the storm ends in moves its open share by a few percent at most (a
    // storm of four fixed rounds lasted 0.7 s here: three cycles and a
    // half, and once missed by 17%).
    let mut w = Workload::start(&["fault-storm-for", "128", "3"]);
    let args = profile_args(w.pid, 2, "folded", &out);
    let (report, _) = around(&mut w, &args);
    w.finish();
    let folded = std::fs::read_to_string(&out).expect("folded output written");
    let head = folded.lines().next().unwrap_or_default();
    assert!(
        head.contains("one 100 ms slot in 2"),
        "the header does not say the event was open one slot in 2: {head}"
    );
    let (storm, total) = folded_share(&folded, "fault_storm");
    assert!(
        storm > 0.5,
        "fault_storm has {:.1}% of the weight:\n{folded}",
        storm * 100.0
    );
    // The kernel's count of the storm's faults (minflt from
    // /proc/self/stat, read by the workload): the samples of the open
    // slots, each weighing the period × the time sampled over the time
    // open, add up to it.
    let minflt = report["minflt"].as_u64().expect("minflt");
    assert_within(
        "sampled fault weight, event open one slot in 2",
        total as u64,
        minflt,
        0.15,
    );
}

#[test]
fn profile_brk_and_mmap_weigh_what_is_still_grown_or_mapped() {
    if !require_bpf("profile_brk_and_mmap_weigh_what_is_still_grown_or_mapped") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for event in ["brk", "mmap"] {
        let out = dir.path().join(format!("{event}.folded"));
        let mut w = Workload::start(&["growth", "256", "64", "256"]);
        let pid = w.pid.to_string();
        let (report, _) = around(
            &mut w,
            &[
                "profile",
                "--pid",
                &pid,
                "--event",
                event,
                "--format",
                "folded",
                "-o",
                out.to_str().expect("utf-8 temp path"),
            ],
        );
        // The kernel's own view of the break after the growth.
        let stat = std::fs::read_to_string(format!("/proc/{}/maps", w.pid)).expect("maps");
        w.finish();
        let folded = std::fs::read_to_string(&out).expect("folded output written");
        let through = |f: &str| -> i64 {
            folded
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| {
                    l.split(';')
                        .any(|fr| is_fn(fr.split(' ').next().unwrap_or(fr), f))
                })
                .map(|l| {
                    l.rsplit_once(' ')
                        .map_or(0, |(_, w)| w.parse::<i64>().unwrap_or(0))
                })
                .sum()
        };
        if event == "brk" {
            let grown = report["brk_grow_bytes"].as_u64().expect("brk_grow_bytes");
            assert_eq!(grown, 256 * 4096, "the workload's break did not grow");
            assert!(stat.contains("[heap]"), "no [heap] after brk growth");
            assert_eq!(
                through("brk_theta") as u64,
                grown,
                "brk bytes through brk_theta:\n{folded}"
            );
        } else {
            let kept = report["kept_bytes"].as_u64().expect("kept_bytes");
            assert_eq!(kept, 64 << 20);
            assert_eq!(
                through("map_zeta") as u64,
                kept,
                "mapped bytes through map_zeta:\n{folded}"
            );
            // map_eta unmapped all it mapped: nothing left on its stack.
            assert_eq!(through("map_eta"), 0, "map_eta still charged:\n{folded}");
        }
    }
}
