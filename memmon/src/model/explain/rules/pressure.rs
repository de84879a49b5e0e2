//! Pressure: major faults, swap in and out, reclaim stall time, refaults
//! (pages read back soon after eviction) and PSI, per second over the
//! window; swap-in or refaults past their thresholds are thrashing; and
//! memory.high throttling. The system's PSI and swap counters are shown
//! for context but judge only the machine, never one process.

use super::{Ctx, bytes, pct};
use crate::model::explain::{
    evidence::{c, p},
    finding::{Finding, Item, Severity},
    series,
    thresholds::{Unit, key, value},
};

/// One rate and where it came from.
#[derive(Clone)]
struct Rate {
    value: Option<f64>,
    source: String,
}

fn proc_rate(ctx: &mut Ctx, k: &str) -> Rate {
    let i = p(k);
    let measured = ctx.pmeasured(i);
    Rate {
        value: series::rate(&ctx.proc_series(i)).filter(|_| measured),
        source: ctx.psrc(i),
    }
}

fn cg_rate(ctx: &Ctx, k: &str, label: Option<&str>) -> Rate {
    let i = c(k, label);
    Rate {
        value: series::rate(&ctx.cg_series(i)),
        source: ctx.csrc(i),
    }
}

/// Adds the pressure figures and findings.
pub fn run(ctx: &mut Ctx) {
    let process = ctx.ev.is_process();
    let (major, swap_in, swap_out, stall) = if process {
        (
            proc_rate(ctx, "major_faults"),
            proc_rate(ctx, "swap_in_pages"),
            proc_rate(ctx, "swap_out_pages"),
            proc_rate(ctx, "reclaim_stall_seconds"),
        )
    } else {
        (
            cg_rate(ctx, "major_faults", None),
            cg_rate(ctx, "swap_in_pages", None),
            cg_rate(ctx, "swap_out_pages", None),
            cg_rate(ctx, "reclaim_stall_seconds", None),
        )
    };
    let ra = cg_rate(ctx, "memory_stat_events", Some("workingset_refault_anon"));
    let rf = cg_rate(ctx, "memory_stat_events", Some("workingset_refault_file"));
    let refaults = Rate {
        value: match (ra.value, rf.value) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        },
        source: "memory.stat workingset_refault_anon + workingset_refault_file".into(),
    };
    let cg_some = cg_rate(ctx, "memory_pressure_seconds", Some("some"));
    let cg_full = cg_rate(ctx, "memory_pressure_seconds", Some("full"));
    let sys_some = series::rate(&ctx.sys_series(|s| s.psi_some_us.map(|u| u as f64 / 1e6)));
    let sys_full = series::rate(&ctx.sys_series(|s| s.psi_full_us.map(|u| u as f64 / 1e6)));
    let sys_pswpin = series::rate(&ctx.sys_series(|s| s.pswpin.map(|v| v as f64)));
    let high = cg_rate(ctx, "memory_events", Some("high"));
    let cg_psi = cg_some.value.is_some();
    let (some, full, psi_src) = if cg_psi {
        (cg_some.value, cg_full.value, cg_some.source.clone())
    } else {
        (
            sys_some,
            sys_full,
            "/proc/pressure/memory (system-wide: this cgroup has no memory.pressure)".to_string(),
        )
    };

    ctx.figure(
        "major faults",
        major.value,
        Unit::PerSecond,
        major.source.clone(),
    );
    ctx.figure(
        "swap-in",
        swap_in.value,
        Unit::PerSecond,
        format!("pages, {}", swap_in.source),
    );
    ctx.figure(
        "swap-out",
        swap_out.value,
        Unit::PerSecond,
        format!("pages, {}", swap_out.source),
    );
    ctx.figure(
        "swap-in, whole system",
        sys_pswpin,
        Unit::PerSecond,
        "pages, /proc/vmstat pswpin".into(),
    );
    ctx.figure(
        "reclaim stall",
        stall.value,
        Unit::SecondsPerSecond,
        stall.source.clone(),
    );
    if ctx.ev.cgroup.is_some() {
        ctx.figure(
            "refaults",
            refaults.value,
            Unit::PerSecond,
            refaults.source.clone(),
        );
    }
    ctx.figure("PSI some", some, Unit::Ratio, psi_src.clone());
    ctx.figure("PSI full", full, Unit::Ratio, psi_src.clone());

    let over = |r: &Rate, k: usize| r.value.is_some_and(|v| v >= value(k));
    let item = |what: &str, r: &Rate, unit: Unit, k: Option<usize>| {
        let it = Item::new(what, r.value, unit, r.source.clone());
        match k {
            Some(k) if r.value.is_some_and(|v| v >= value(k)) => it.crossing(k),
            _ => it,
        }
    };
    let psi_items = || {
        vec![
            Item::new("PSI some", some, Unit::Ratio, psi_src.clone()),
            Item::new("PSI full", full, Unit::Ratio, psi_src.clone()),
        ]
    };
    let stall_sev = if over(&stall, key::STALL_CRIT) {
        Some(Severity::Critical)
    } else if over(&stall, key::STALL_WARN) {
        Some(Severity::Warning)
    } else {
        None
    };
    let swap_next = vec![
        "raise the memory limit (memory.max; v1 memory.limit_in_bytes) so the working set fits"
            .into(),
        "or lower vm.swappiness (v1: the cgroup's memory.swappiness) to keep anonymous pages in"
            .into(),
        "or shrink the working set".into(),
    ];
    // Swap-ins a process waits for are major faults: the rss_stat probe's
    // count of swap entries released is net of swap-outs batched on the
    // same CPU (under thrashing it sees a fraction), so a process thrashes
    // when it takes major faults while the system swaps in (or its cgroup
    // refaults), or when that count alone is over the threshold.
    let sys_in = Rate {
        value: sys_pswpin,
        source: "/proc/vmstat pswpin".into(),
    };
    let waits = over(&major, key::MAJOR_FAULTS);
    let thrashing = over(&swap_in, key::SWAP_IN)
        || (waits && (over(&sys_in, key::SWAP_IN) || over(&refaults, key::REFAULTS)))
        || (!process && over(&refaults, key::REFAULTS));
    if thrashing {
        let mut evidence = vec![
            item(
                "major faults",
                &major,
                Unit::PerSecond,
                Some(key::MAJOR_FAULTS),
            ),
            item(
                "swap-in, whole system",
                &sys_in,
                Unit::PerSecond,
                Some(key::SWAP_IN),
            ),
            item("refaults", &refaults, Unit::PerSecond, Some(key::REFAULTS)),
            item(
                if process {
                    "swap entries released"
                } else {
                    "swap entries released by its processes"
                },
                &swap_in,
                Unit::PerSecond,
                Some(key::SWAP_IN),
            ),
            item("swap-out", &swap_out, Unit::PerSecond, None),
            item(
                "reclaim stall",
                &stall,
                Unit::SecondsPerSecond,
                Some(key::STALL_WARN),
            ),
        ];
        evidence.extend(psi_items());
        let how = if over(&swap_in, key::SWAP_IN) {
            let s = swap_in.value.unwrap_or(0.0);
            format!("{s:.0} pages/s swapped back in ({}/s)", bytes(s * 4096.0))
        } else if waits && over(&sys_in, key::SWAP_IN) {
            format!(
                "{:.0} major faults/s while the system swaps in {:.0} pages/s",
                major.value.unwrap_or(0.0),
                sys_in.value.unwrap_or(0.0)
            )
        } else {
            format!(
                "{:.0} evicted pages/s read back (refaults)",
                refaults.value.unwrap_or(0.0)
            )
        };
        let stalled = stall.value.map_or(String::new(), |s| {
            format!(", {} of the time stalled in reclaim", pct(s))
        });
        ctx.findings.push(Finding {
            id: "thrashing".into(),
            severity: stall_sev
                .unwrap_or(Severity::Warning)
                .max(Severity::Warning),
            title: format!("Thrashing: {how}{stalled}"),
            evidence,
            next: swap_next.clone(),
        });
    } else {
        if let Some(severity) = stall_sev {
            let mut evidence = vec![
                item(
                    "reclaim stall",
                    &stall,
                    Unit::SecondsPerSecond,
                    Some(key::STALL_WARN),
                ),
                item("swap-out", &swap_out, Unit::PerSecond, None),
                item("major faults", &major, Unit::PerSecond, None),
            ];
            evidence.extend(psi_items());
            let s = stall.value.unwrap_or(0.0);
            ctx.findings.push(Finding {
                id: "reclaim_stalls".into(),
                severity,
                title: format!("Stalled in memory reclaim {} of the time", pct(s)),
                evidence,
                next: vec![
                    "raise the memory limit (or memory.high); it reclaims to make room on every allocation".into(),
                    "or drop page cache it does not need (fadvise DONTNEED, smaller buffers)".into(),
                ],
            });
        }
        if over(&swap_out, key::SWAP_OUT) {
            let v = swap_out.value.unwrap_or(0.0);
            ctx.findings.push(Finding {
                id: "swapping_out".into(),
                severity: Severity::Warning,
                title: format!("Swapping out {v:.0} pages/s ({}/s)", bytes(v * 4096.0)),
                evidence: vec![
                    item("swap-out", &swap_out, Unit::PerSecond, Some(key::SWAP_OUT)),
                    item("swap-in", &swap_in, Unit::PerSecond, None),
                ],
                next: swap_next.clone(),
            });
        }
        if over(&major, key::MAJOR_FAULTS) {
            let v = major.value.unwrap_or(0.0);
            ctx.findings.push(Finding {
                id: "major_faults".into(),
                severity: Severity::Warning,
                title: format!(
                    "{v:.0} major faults/s: it waits for disk or swap to read its memory"
                ),
                evidence: vec![
                    item(
                        "major faults",
                        &major,
                        Unit::PerSecond,
                        Some(key::MAJOR_FAULTS),
                    ),
                    item("swap-in", &swap_in, Unit::PerSecond, None),
                ],
                next: vec![
                    "give it memory for its working set (the limit, or the machine)".into(),
                    match ctx.ev.pid {
                        Some(pid) => {
                            format!("memmon profile --pid {pid} -d 30   (where it faults)")
                        }
                        None => "memmon profile --cgroup PATH -d 30   (where it faults)".into(),
                    },
                ],
            });
        }
    }
    // The cgroup's own PSI judges it (the system's would blame a quiet
    // process for its neighbours).
    let psi_high = cg_psi
        && (some.is_some_and(|s| s >= value(key::PSI_SOME))
            || full.is_some_and(|f| f >= value(key::PSI_FULL)));
    let covered = ctx
        .findings
        .iter()
        .any(|f| f.id == "thrashing" || f.id == "reclaim_stalls");
    if psi_high && !covered {
        let mut evidence = vec![
            Item::new("PSI some", some, Unit::Ratio, psi_src.clone()),
            Item::new("PSI full", full, Unit::Ratio, psi_src.clone()),
        ];
        if some.is_some_and(|s| s >= value(key::PSI_SOME)) {
            evidence[0] = evidence[0].clone().crossing(key::PSI_SOME);
        }
        if full.is_some_and(|f| f >= value(key::PSI_FULL)) {
            evidence[1] = evidence[1].clone().crossing(key::PSI_FULL);
        }
        ctx.push_cgroup_finding(Finding {
            id: "memory_pressure".into(),
            severity: Severity::Warning,
            title: format!(
                "Memory pressure: some task stalled {} of the time (full {})",
                pct(some.unwrap_or(0.0)),
                full.map_or("-".into(), pct)
            ),
            evidence,
            next: vec!["give the cgroup more memory; see its swap and reclaim figures".into()],
        });
    }
    if high.value.is_some_and(|r| r > value(key::HIGH_THROTTLE)) {
        let hi = ctx.cg_now(c("memory_limit_bytes", Some("high")));
        ctx.push_cgroup_finding(Finding {
            id: "memory_high_throttling".into(),
            severity: Severity::Warning,
            title: format!(
                "Throttled over memory.high ({}): {:.1} times/s",
                hi.map_or("?".into(), bytes),
                high.value.unwrap_or(0.0)
            ),
            evidence: vec![
                item(
                    "memory.high events",
                    &high,
                    Unit::PerSecond,
                    Some(key::HIGH_THROTTLE),
                ),
                Item::new("memory.high", hi, Unit::Bytes, "memory.high"),
            ],
            next: vec![
                "raise memory.high, or accept the slowdown (memory.high doing its job)".into(),
            ],
        });
    }
}
