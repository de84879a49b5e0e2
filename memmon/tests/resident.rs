//! Root integration tests of the resident mode (`memmon leaks` without
//! --exact) on the real kernel, against three C programs the test builds
//! with gcc (tests/fixtures/resident_leaks.c): one leaking through glibc's
//! malloc, one through a jemalloc-style arena of its own (a large mmap
//! carved by hand, plus an extent it fills and purges with MADV_DONTNEED),
//! and one that frees all it allocates. The leakers' functions must come
//! first with the bytes the programs report they keep (within 15%), the
//! freeing and purging stacks must fall to near zero, and memmon must have
//! loaded no uprobe program. The pprof is decoded against profile.proto
//! and read by `go tool pprof -top`, which must name the leaker with the
//! weight memmon wrote.

mod common;

use std::{path::Path, process::Command, time::Duration};

use common::{
    c_fixture::{Program, build, bytes_through, folded},
    *,
};

/// MiB each program leaks, purges or churns through per round.
const MIB: u64 = 40;

fn start(exe: &Path, mode: &str) -> Program {
    Program::start(exe, &[mode, &MIB.to_string()])
}

/// Runs `memmon leaks --pid ... ARGS` around the programs: attaches, lets
/// each go, waits for two page checks, stops it. Returns the reports and
/// memmon's stderr.
fn leaks_around(programs: &mut [Program], args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let mut cmd: Vec<String> = vec!["leaks".into()];
    for p in programs.iter() {
        cmd.extend(["--pid".into(), p.pid.to_string()]);
    }
    cmd.extend(["--interval".into(), "0.2".into()]);
    cmd.extend(args.iter().map(|a| a.to_string()));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let m = Memmon::start(&cmd);
    // The resident mode traps on no allocation call: memmon loaded no
    // uprobe (uprobe programs are BPF_PROG_TYPE_KPROBE, 2).
    let types = prog_types(m.child.id());
    assert!(
        !types.is_empty(),
        "memmon holds no BPF program: the check proves nothing"
    );
    assert!(
        !types.contains(&2),
        "memmon loaded a kprobe/uprobe program in the resident mode: {types:?}"
    );
    let reports: Vec<serde_json::Value> = programs.iter_mut().map(Program::go).collect();
    std::thread::sleep(Duration::from_millis(800));
    m.signal(libc::SIGINT);
    let (_, stderr) = m.output();
    eprintln!("memmon stderr:\n{stderr}");
    (reports, stderr)
}

/// The BPF program types process `pid` holds (from its fds' fdinfo).
fn prog_types(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo");
    for e in dir.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(t) = text
            .lines()
            .find_map(|l| l.strip_prefix("prog_type:"))
            .and_then(|t| t.trim().parse().ok())
        {
            out.push(t);
        }
    }
    out
}

/// Folded lines (header checked, then skipped): (frames root first, bytes).
fn folded_stacks(text: &str) -> Vec<(Vec<String>, u64)> {
    let (head, stacks) = folded(text);
    assert!(
        head.starts_with("# memmon resident, period ")
            && head.contains("/proc/PID/pagemap")
            && head.contains("weight: bytes"),
        "the folded output does not name its source, period and weight: {head}"
    );
    stacks
}

#[test]
fn resident_mode_ranks_the_glibc_and_arena_leakers_first_and_freed_memory_falls_away() {
    let test = "resident_mode_ranks_the_glibc_and_arena_leakers_first_and_freed_memory_falls_away";
    if !require_bpf(test) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = build(dir.path());
    let out = dir.path().join("resident.folded");
    let mut programs = vec![
        start(&exe, "glibc"),
        start(&exe, "arena"),
        start(&exe, "free"),
    ];
    let (reports, _) = leaks_around(
        &mut programs,
        &["--format", "folded", "-o", out.to_str().expect("utf-8")],
    );
    let text = std::fs::read_to_string(&out).expect("folded output");
    let stacks = folded_stacks(&text);
    let glibc = reports[0]["leaked_bytes"].as_u64().expect("leaked_bytes");
    let arena = reports[1]["leaked_bytes"].as_u64().expect("leaked_bytes");
    let purged = reports[1]["purged_bytes"].as_u64().expect("purged_bytes");
    let round = reports[2]["round_bytes"].as_u64().expect("round_bytes");
    let touched = reports[2]["touched_bytes"].as_u64().expect("touched_bytes");
    assert_eq!(glibc, MIB << 20);
    assert!(arena >= MIB << 20, "the arena kept {arena}");
    assert_eq!(purged, MIB << 20);
    assert_eq!(touched, 8 * round, "the freeing program's rounds");
    assert_within(
        "resident bytes through leak_glibc",
        bytes_through(&stacks, "leak_glibc"),
        glibc,
        0.15,
    );
    assert_within(
        "resident bytes through leak_arena",
        bytes_through(&stacks, "leak_arena"),
        arena,
        0.15,
    );
    // The two heaviest stacks are the leakers'.
    let mut ranked = stacks.clone();
    ranked.sort_by_key(|(_, w)| std::cmp::Reverse(*w));
    let top: Vec<&str> = ranked
        .iter()
        .take(2)
        .map(|(f, _)| f.last().map(String::as_str).unwrap_or(""))
        .collect();
    assert!(
        top.contains(&"leak_glibc") && top.contains(&"leak_arena"),
        "the two heaviest stacks end in {top:?}:\n{text}"
    );
    // Freed and purged memory left the profile: near zero against what
    // those stacks touched (8 rounds of MIB MiB, MIB MiB purged); glibc
    // may keep what its trim threshold allows at the heap's top.
    let freed = bytes_through(&stacks, "churn_free");
    assert!(
        freed <= round / 8,
        "churn_free still holds {freed} bytes of {touched} it freed:\n{text}"
    );
    let purged_left = bytes_through(&stacks, "churn_arena");
    assert!(
        purged_left <= purged / 50,
        "churn_arena still holds {purged_left} bytes of {purged} it purged:\n{text}"
    );
}

#[test]
fn resident_pprof_is_read_by_go_tool_pprof_with_the_weight_memmon_wrote() {
    let test = "resident_pprof_is_read_by_go_tool_pprof_with_the_weight_memmon_wrote";
    if !require_bpf(test) {
        return;
    }
    let go = Command::new("go").arg("version").output();
    if !go.is_ok_and(|o| o.status.success()) {
        skip(
            test,
            "no `go` (Debian golang-go; `cargo xtask setup` installs it)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = build(dir.path());
    let out = dir.path().join("resident.pb");
    let mut programs = vec![start(&exe, "glibc")];
    let (reports, _) = leaks_around(
        &mut programs,
        &["--format", "pprof", "-o", out.to_str().expect("utf-8")],
    );
    let leaked = reports[0]["leaked_bytes"].as_u64().expect("leaked_bytes");
    let bytes = std::fs::read(&out).expect("pprof written");
    let p = pprof::decode(&bytes);
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (p.s(t.r#type), p.s(t.unit)))
        .collect();
    assert_eq!(
        types,
        vec![("samples", "count"), ("resident_space", "bytes")],
        "sample types: resident bytes, so Parca and Pyroscope show memory"
    );
    assert!(p.period >= 1, "no period: {}", p.period);
    let mut through = 0i64;
    for s in &p.sample {
        if p.names(s).contains(&"leak_glibc") {
            through += s.value[1];
        }
    }
    assert_within(
        "pprof bytes through leak_glibc",
        u64::try_from(through).expect(">= 0"),
        leaked,
        0.15,
    );
    // go tool pprof, in bytes: its flat column for leak_glibc is what
    // memmon wrote.
    let top = Command::new("go")
        .args(["tool", "pprof", "-top", "-unit=B", "-nodecount=5"])
        .arg(&out)
        .output()
        .expect("run go tool pprof");
    let text = String::from_utf8_lossy(&top.stdout);
    let err = String::from_utf8_lossy(&top.stderr);
    assert!(top.status.success(), "go tool pprof failed: {err}");
    assert!(
        text.contains("Type: resident_space"),
        "pprof does not show resident_space:\n{text}\n{err}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_end().ends_with(" leak_glibc"))
        .unwrap_or_else(|| panic!("go tool pprof -top names no leak_glibc:\n{text}"));
    let flat: i64 = row
        .split_whitespace()
        .next()
        .and_then(|f| f.strip_suffix('B'))
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no byte figure in {row:?}"));
    assert_eq!(flat, through, "go tool pprof's flat bytes for leak_glibc");
}
