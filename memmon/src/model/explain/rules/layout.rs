//! Layout: the share of anonymous memory in transparent huge pages, NUMA
//! pages per node and the share remote to the CPUs the process ran on,
//! and copy-on-write faults after fork.

use super::{Ctx, bytes, pct};
use crate::model::explain::{
    evidence::{c, p},
    finding::{Finding, Item, Severity},
    series,
    thresholds::{Unit, key, value},
};

/// Adds the layout figures and findings.
pub fn run(ctx: &mut Ctx) {
    thp(ctx);
    if ctx.ev.is_process() {
        numa(ctx);
        cow(ctx);
    }
}

fn thp(ctx: &mut Ctx) {
    let (huge, anon, src) = if ctx.ev.is_process() {
        let (h, a) = (p("anon_huge_bytes"), p("rss_anon_bytes"));
        (
            ctx.proc_now(h),
            ctx.proc_now(a),
            format!("{} / {}", ctx.psrc(h), ctx.psrc(a)),
        )
    } else {
        let (h, a) = (
            c("memory_stat_bytes", Some("anon_thp")),
            c("memory_stat_bytes", Some("anon")),
        );
        (
            ctx.cg_now(h),
            ctx.cg_now(a),
            format!("{} / {}", ctx.csrc(h), ctx.csrc(a)),
        )
    };
    // No huge pages is 0% whatever the anonymous size's source says.
    let share = match (huge, anon) {
        (Some(h), Some(a)) if a > 0.0 => Some((h / a).min(1.0)),
        (Some(0.0), _) => Some(0.0),
        _ => None,
    };
    ctx.figure(
        "THP share of anonymous memory",
        share,
        Unit::Ratio,
        src.clone(),
    );
    if let (Some(s), Some(a)) = (share, anon)
        && a >= value(key::THP_MIN_ANON)
        && s < value(key::THP_LOW)
    {
        ctx.findings.push(Finding {
            id: "thp_low".into(),
            severity: Severity::Info,
            title: format!(
                "Only {} of {} anonymous memory is in huge pages",
                pct(s),
                bytes(a)
            ),
            evidence: vec![
                Item::new("THP share", Some(s), Unit::Ratio, src).crossing(key::THP_LOW),
                Item::new("anonymous memory", Some(a), Unit::Bytes, "rss_anon_bytes")
                    .crossing(key::THP_MIN_ANON),
            ],
            next: vec![
                "madvise(MADV_HUGEPAGE) its heap, or set /sys/kernel/mm/transparent_hugepage/enabled to always".into(),
            ],
        });
    }
}

fn numa(ctx: &mut Ctx) {
    let i = p("numa_local_ratio");
    let local = ctx.proc_now(i);
    let src = format!(
        "{} (pages on the nodes of the CPUs its threads ran on)",
        ctx.psrc(i)
    );
    let pages = ctx.ev.numa_pages.clone();
    let per_node = pages.as_ref().map(|m| {
        m.iter()
            .map(|(n, pg)| format!("node{n} {}", bytes(*pg as f64 * 4096.0)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let Some(local) = local else {
        // One node (numa_maps is not read there) is no finding.
        if ctx.ev.sources.live("process", "numa_local_ratio") == Some(false) {
            ctx.figures.push(Item::words(
                "NUMA",
                "one node (or numa_maps not read): not judged",
                ctx.psrc(i),
            ));
        }
        return;
    };
    let remote = 1.0 - local;
    ctx.figure("NUMA remote share", Some(remote), Unit::Ratio, src.clone());
    if let Some(n) = &per_node {
        ctx.figures.push(Item::words(
            "NUMA pages per node",
            n.clone(),
            "/proc/PID/numa_maps",
        ));
    }
    let rss = ctx.proc_now(p("rss_bytes")).unwrap_or(0.0);
    if remote >= value(key::NUMA_REMOTE) && rss >= value(key::NUMA_MIN_RSS) {
        let most = pages
            .as_ref()
            .and_then(|m| m.iter().max_by_key(|(_, pg)| **pg).map(|(n, _)| *n));
        let pid = ctx.ev.pid.unwrap_or(0);
        let mut next = Vec::new();
        if let Some(m) = most {
            next.push(format!(
                "run it where its memory is: numactl --cpunodebind={m} --membind={m} COMMAND"
            ));
            next.push(format!(
                "or move its pages to its CPUs' node: migratepages {pid} {m} NODE"
            ));
        } else {
            next.push(
                "bind CPUs and memory together: numactl --cpunodebind=N --membind=N COMMAND".into(),
            );
        }
        next.push("or let the kernel move it: sysctl kernel.numa_balancing=1".into());
        let mut evidence = vec![
            Item::new("remote share", Some(remote), Unit::Ratio, src).crossing(key::NUMA_REMOTE),
            Item::new("RSS", Some(rss), Unit::Bytes, ctx.psrc(p("rss_bytes"))),
        ];
        if let Some(n) = per_node {
            evidence.push(Item::words("pages per node", n, "/proc/PID/numa_maps"));
        }
        ctx.findings.push(Finding {
            id: "numa_remote".into(),
            severity: Severity::Warning,
            title: format!(
                "{} of its memory is on a NUMA node remote to the CPUs it runs on",
                pct(remote)
            ),
            evidence,
            next,
        });
    }
}

fn cow(ctx: &mut Ctx) {
    let i = p("cow_faults");
    if !ctx.pmeasured(i) {
        return;
    }
    let rate = series::rate(&ctx.proc_series(i));
    let src = ctx.psrc(i);
    ctx.figure("copy-on-write faults", rate, Unit::PerSecond, src.clone());
    if let Some(r) = rate.filter(|r| *r >= value(key::COW)) {
        ctx.findings.push(Finding {
            id: "copy_on_write".into(),
            severity: Severity::Warning,
            title: format!(
                "Copy-on-write: {r:.0} faults/s ({}/s copied) after fork",
                bytes(r * 4096.0)
            ),
            evidence: vec![
                Item::new("copy-on-write faults", Some(r), Unit::PerSecond, src).crossing(key::COW),
            ],
            next: vec![
                "fork less (posix_spawn, a pre-forked pool), or MADV_DONTFORK / MADV_WIPEONFORK large buffers".into(),
            ],
        });
    }
}
