//! `cargo xtask bench --only stacks-guest`: the malloc storm alone, beside
//! `memmon leaks` (default rate and rate 1) and beside bcc's `memleak -p
//! PID` (Debian bpfcc-tools, its defaults), inside the qemu guest that
//! `vm-test` boots on Debian 12's 6.1 kernel: bcc compiles its program
//! against the running kernel's headers, which the host's kernel lacks, and
//! the guest's kernel has a `linux-headers` package. The host installs it
//! and links it where bcc looks (`/lib/modules/VERSION/build` and
//! `source` in the unpacked kernel's modules, which become the guest's);
//! the guest runs this xtask again (`stacks-guest-inner`, on the host's
//! root through 9p), which writes its figures to a JSON file the host
//! turns into the section. TCG: absolute times are an emulator's, only
//! ratios between configurations of the same boot mean anything.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    Ctx, Section,
    stacks::{Peer, malloc_round, verdict},
    stats,
};
use crate::{cmd, kernels, packages, vm_test};

/// The storm's size in the guest: TCG runs it ~10x slower, and a trapped
/// call far more.
const GUEST_PAIRS: u64 = 100_000;
/// Interleaved rounds in the guest.
const GUEST_ROUNDS: usize = 2;
/// The configurations, in the order each round runs them.
const PEERS: [Peer; 4] = [
    Peer::Alone,
    Peer::LeaksDefault,
    Peer::LeaksRate1,
    Peer::Memleak,
];

/// Host side: boots the guest, runs the storms there, returns section 11b.
pub fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut actions = Vec::new();
    packages::ensure(&["bpfcc-tools"], &mut actions)?;
    let vng = vm_test::ensure_vm()?;
    let kernel = kernels::find("6.1").context("the matrix has no 6.1 kernel")?;
    let image = kernel.ensure()?;
    let release = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .with_context(|| format!("{} is not named vmlinuz-RELEASE", image.display()))?
        .to_string();
    let headers = format!("linux-headers-{release}");
    packages::ensure(&[headers.as_str()], &mut actions)?;
    link_headers(&image, &release)?;
    let out = cmd::workspace().join("target/bench-guest");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let xtask = std::env::current_exe().context("this xtask's path")?;
    let rounds = if ctx.quick { 1 } else { GUEST_ROUNDS };
    let pairs = if ctx.quick {
        GUEST_PAIRS / 4
    } else {
        GUEST_PAIRS
    };
    let o = out.display();
    std::fs::write(
        out.join("guest.sh"),
        format!(
            "#!/bin/sh\n# Written by `cargo xtask bench --only stacks-guest`.\n\
             exec >{o}/guest.log 2>&1\n\
             mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
             mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing\n\
             mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug\n\
             uname -r >{o}/release\n\
             ls -l /lib/modules/$(uname -r)/\n\
             # bcc's fallback when the build tree is not found (CONFIG_IKHEADERS=m).\n\
             modprobe kheaders || true\n\
             export HOME=/tmp\n\
             {} stacks-guest-inner {o} {pairs} {rounds}\n\
             echo \"inner exited $?\"\n\
             echo finished >{o}/done\n",
            xtask.display()
        ),
    )?;
    let started = Instant::now();
    vm_test::boot(
        &vng,
        &image,
        &out,
        Duration::from_secs(90 * 60),
        "guest.sh",
        "done",
    )?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let text = std::fs::read_to_string(out.join("result.json")).with_context(|| {
        format!(
            "the guest wrote no result.json; see {}/guest.log",
            out.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).context("result.json")?;
    section(&v, &release, pairs, rounds, minutes)
}

/// Links the headers package where bcc looks for a kernel's build tree, in
/// the unpacked kernel's module directory (the guest's /lib/modules).
fn link_headers(image: &Path, release: &str) -> anyhow::Result<()> {
    let root = image
        .parent()
        .and_then(Path::parent)
        .context("kernel image has no root")?;
    let modules = [root.join("lib/modules"), root.join("usr/lib/modules")]
        .into_iter()
        .map(|d| d.join(release))
        .find(|d| d.is_dir())
        .with_context(|| format!("no modules of {release} under {}", root.display()))?;
    let common = release.replace("-amd64", "-common");
    for (name, target) in [
        ("build", format!("/usr/src/linux-headers-{release}")),
        ("source", format!("/usr/src/linux-headers-{common}")),
    ] {
        let link = modules.join(name);
        if !Path::new(&target).is_dir() {
            bail!("{target} is missing after installing linux-headers-{release}");
        }
        if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(&target)) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {} to {target}", link.display()))?;
    }
    Ok(())
}

/// Guest side (`xtask stacks-guest-inner OUT PAIRS ROUNDS`): the storms,
/// interleaved, into OUT/result.json.
pub fn inner(out: &Path, pairs: u64, rounds: usize) -> anyhow::Result<()> {
    let ctx = Ctx {
        memmon: cmd::binary("memmon", true),
        workload: cmd::binary("memmon-workload", true),
        rounds,
        quick: false,
        cgroup_scan: PathBuf::new(),
        baseline: None,
    };
    let dir = out.join("work");
    std::fs::create_dir_all(&dir)?;
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
    let mut err: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
    let mut reported: Vec<Vec<u64>> = vec![Vec::new(); PEERS.len()];
    let mut kept_all = Vec::new();
    for round in 0..rounds {
        for (i, p) in PEERS.iter().enumerate() {
            let (t, kept, rep) = malloc_round(&ctx, *p, pairs, &dir, None)
                .with_context(|| format!("round {round}, {}", p.label()))?;
            eprintln!(
                "guest: round {round} {}: {t:.1} ns/pair, kept {kept}, reported {rep:?}",
                p.label()
            );
            ns[i].push(t);
            kept_all.push(kept);
            if let Some(r) = rep {
                reported[i].push(r);
                err[i].push((r as f64 - kept as f64) / kept as f64 * 100.0);
            }
        }
    }
    let configs: Vec<serde_json::Value> = PEERS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            serde_json::json!({
                "label": p.label(),
                "ns": ns[i],
                "err_pct": err[i],
                "reported": reported[i],
            })
        })
        .collect();
    let doc = serde_json::json!({ "configs": configs, "kept": kept_all });
    std::fs::write(out.join("result.json"), serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default()
}

fn section(
    v: &serde_json::Value,
    release: &str,
    pairs: u64,
    rounds: usize,
    minutes: f64,
) -> anyhow::Result<Section> {
    let configs = v["configs"].as_array().context("result.json: configs")?;
    if configs.len() != PEERS.len() {
        bail!("result.json has {} configurations", configs.len());
    }
    let medians: Vec<f64> = configs
        .iter()
        .map(|c| stats::summarize(&floats(&c["ns"])).map(|s| s.median))
        .collect::<Option<_>>()
        .context("a configuration has no rounds")?;
    let base = medians[0];
    let peer_slow = stats::slowdown_pct(medians[3], base);
    let kept = v["kept"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let mut rows = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let ns = floats(&c["ns"]);
        let s = stats::summarize(&ns).context("no rounds")?;
        let slow = stats::slowdown_pct(s.median, base);
        let e = stats::summarize(&floats(&c["err_pct"]));
        let within = e
            .as_ref()
            .is_some_and(|e| e.min.abs().max(e.max.abs()) <= 5.0);
        let target = match PEERS[i] {
            Peer::LeaksRate1 => format!(
                "{}; {}",
                verdict(slow <= peer_slow, "<= memleak's slowdown"),
                verdict(within, "outstanding within 5% every round")
            ),
            Peer::LeaksDefault => format!(
                "{}; {}",
                verdict(slow < peer_slow / 10.0, "< 1/10 of memleak's slowdown"),
                verdict(within, "outstanding within 5% every round")
            ),
            _ => String::new(),
        };
        rows.push(vec![
            PEERS[i].label(),
            format!("{:.0}", s.median),
            format!("{:.0}–{:.0}", s.min, s.max),
            if i == 0 {
                "—".into()
            } else {
                format!("{:.1}×", s.median / base)
            },
            e.map(|e| format!("{:+.2}% ({:+.1}…{:+.1})", e.median, e.min, e.max))
                .unwrap_or_else(|| "—".into()),
            target,
        ]);
    }
    Ok(Section {
        title: "11b. The leak finder beside bcc's memleak, in the qemu guest".into(),
        what: format!(
            "Group `cargo xtask bench --only stacks-guest` (xtask/src/bench/stacks_guest.rs), one boot of Debian \
             12's kernel {release} under qemu TCG (2 vCPUs, no KVM here) on the host's root, {minutes:.0} min \
             in all: `memmon-workload malloc-storm {pairs}` ({pairs} malloc/free pairs of 16 B–64 KiB, one \
             block in 64 kept: {kept} bytes, the true figure) alone, beside `memmon leaks --pid PID` at its \
             default rate and at 1, and beside bcc's `memleak-bpfcc -p PID` (bpfcc-tools, its defaults: every \
             allocation traced, top 10 stacks every 5 s; it compiles against `linux-headers-{release}`, which \
             the host installs and links as the guest's /lib/modules/{release}/build), {rounds} interleaved \
             rounds, medians. Under TCG every instruction and every trap is emulated, so absolute ns/pair \
             are not this machine's: compare only the ratios to \"alone\" within this table. \"Outstanding vs \
             true\": what each reports still allocated (memleak: the sum of its last top-10 report, taken \
             after the storm) against the workload's own total."
        ),
        header: vec![
            "configuration",
            "median ns/pair (TCG)",
            "min–max",
            "time vs alone",
            "outstanding vs true",
            "target",
        ],
        rows,
        notes: vec![{
            let rate = super::stacks::DEFAULT_RATE;
            let blocks = pairs / 64;
            format!(
                "The default rate tracks one allocation in {rate}: of the storm's {blocks} kept blocks about {} are \
             tracked and scaled up, so each round's outstanding total is off by about {:.0}% (one standard \
             error) by chance alone; the host's 4 M-pair storm (§11) keeps 40 times as many. Under TCG the \
             BPF programs' own instructions are emulated as well as the traps, so the work inside the programs \
             (memmon: a walk into a 1016-byte buffer, a hash of it and map updates per tracked call) weighs \
             more against the traps than on the host, where rate 1 is cheaper than the bpftrace peer.",
                blocks / rate,
                100.0 / ((blocks / rate).max(1) as f64).sqrt(),
            )
        }],
    })
}
