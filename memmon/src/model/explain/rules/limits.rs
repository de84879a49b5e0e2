//! Limits: the charged cgroup's usage against its hard limit, the working
//! set, the time-to-OOM forecast (the cgroup's, else the machine's), limit
//! hits and OOM kills in the window, and who the kernel would kill first
//! (the highest oom_score among the cgroup's processes).

use super::{Ctx, bytes, duration, pct};
use crate::model::explain::{
    evidence::{c, p},
    finding::{Finding, Item, Severity},
    series,
    thresholds::{Unit, key, value},
};
use crate::model::forecast;

/// Adds the limit figures and findings.
pub fn run(ctx: &mut Ctx) {
    let cgroup = ctx.ev.cgroup.clone();
    let limit_i = c("memory_limit_bytes", Some("effective_max"));
    let max_i = c("memory_limit_bytes", Some("max"));
    let (limit, limit_src) = match ctx.cg_now(limit_i) {
        Some(l) => (Some(l), ctx.csrc(limit_i)),
        None => (ctx.cg_now(max_i), ctx.csrc(max_i)),
    };
    let usage_i = c("memory_usage_bytes", None);
    let ws_i = c("memory_working_set_bytes", None);
    let usage = ctx.cg_now(usage_i);
    let ws = ctx.cg_now(ws_i);
    if ctx.ev.is_process() {
        match &cgroup {
            Some(_) => {
                let src = ctx.csrc(usage_i);
                ctx.figure("cgroup usage", usage, Unit::Bytes, src);
            }
            None => ctx.figures.push(Item::words(
                "memory cgroup",
                "not known",
                "/proc/PID/cgroup",
            )),
        }
    }
    if cgroup.is_some() {
        match limit {
            Some(l) => ctx.figure("cgroup limit", Some(l), Unit::Bytes, limit_src.clone()),
            None if ctx.ev.frames.iter().any(|f| f.cgroup.is_some()) => ctx
                .figures
                .push(Item::words("cgroup limit", "none", limit_src.clone())),
            None => {}
        }
    }
    let pid = ctx.ev.pid;
    let raise = |v1: Option<bool>| match v1 {
        Some(true) => "raise memory.limit_in_bytes of the cgroup".to_string(),
        Some(false) => "raise memory.max of the cgroup".to_string(),
        None => "raise the cgroup's memory.max (v1 memory.limit_in_bytes)".to_string(),
    };
    let v1 = ctx.v1();
    let cg_name = cgroup.clone().unwrap_or_default();

    // Working set against the limit.
    if let (Some(l), Some(w)) = (limit, ws.or(usage)) {
        let ratio = w / l;
        let sev = if ratio >= value(key::WS_CRIT) {
            Some((Severity::Critical, key::WS_CRIT))
        } else if ratio >= value(key::WS_WARN) {
            Some((Severity::Warning, key::WS_WARN))
        } else {
            None
        };
        if let Some((severity, k)) = sev {
            ctx.push_cgroup_finding(Finding {
                id: "near_limit".into(),
                severity,
                title: format!(
                    "Working set at {} of the cgroup's limit ({} of {})",
                    pct(ratio),
                    bytes(w),
                    bytes(l)
                ),
                evidence: vec![
                    Item::new(
                        "working set / limit",
                        Some(ratio),
                        Unit::Ratio,
                        format!("{} / {}", ctx.csrc(ws_i), limit_src),
                    )
                    .crossing(k),
                    Item::new("usage", usage, Unit::Bytes, ctx.csrc(usage_i)),
                    Item::new("working set", ws, Unit::Bytes, ctx.csrc(ws_i)),
                    Item::new("limit", Some(l), Unit::Bytes, limit_src.clone()),
                ],
                next: vec![
                    raise(v1),
                    "or shrink what it keeps resident (caches, pools)".into(),
                ],
            });
        }
    }

    // The forecast: the model's (as published then), else from the window.
    let fc_i = c("oom_forecast_seconds", None);
    let gr_i = c("unreclaimable_growth_bytes_per_second", None);
    let un_i = c("memory_unreclaimable_bytes", None);
    let mut fc = ctx.cg_now(fc_i).map(|s| (s, ctx.csrc(fc_i)));
    let mut growth = ctx.cg_now(gr_i);
    if fc.is_none() && limit.is_some() {
        let pts = ctx.cg_series(un_i);
        let slope = series::slope(&pts);
        if let (Some(s), Some(&(_, now))) = (slope, pts.last())
            && let Some(secs) =
                forecast::seconds_to_limit(Some(s), limit.map(|l| l as u64), now as u64)
        {
            fc = Some((
                secs,
                format!("Theil-Sen slope of {} over the window", ctx.csrc(un_i)),
            ));
            growth = Some(s);
        }
    }
    let system_fc = if limit.is_none() {
        ctx.ev
            .frames
            .iter()
            .rev()
            .find_map(|f| f.system?.oom_forecast_seconds)
    } else {
        None
    };
    let judged = fc
        .clone()
        .map(|(s, src)| (s, src, true))
        .or(system_fc.map(|s| {
            (
                s,
                "memmon's system forecast: Theil-Sen slope of RAM + swap in use (/proc/meminfo)"
                    .to_string(),
                false,
            )
        }));
    if let Some((secs, src, in_cgroup)) = judged {
        // The machine's forecast is about the machine: it is this target's
        // problem only if the target grows.
        let machine_quiet = !in_cgroup && !ctx.growing;
        let sev = if machine_quiet {
            None
        } else if secs <= value(key::FORECAST_CRIT) {
            Some((Severity::Critical, key::FORECAST_CRIT))
        } else if secs <= value(key::FORECAST_WARN) {
            Some((Severity::Warning, key::FORECAST_WARN))
        } else {
            None
        };
        ctx.figure(
            if in_cgroup {
                "time to OOM (cgroup)"
            } else {
                "time to OOM (machine)"
            },
            Some(secs),
            Unit::Seconds,
            src.clone(),
        );
        if let Some((severity, k)) = sev {
            let mut evidence =
                vec![Item::new("time to OOM", Some(secs), Unit::Seconds, src).crossing(k)];
            let title = if in_cgroup {
                evidence.push(Item::new(
                    "unreclaimable growth",
                    growth,
                    Unit::BytesPerSecond,
                    ctx.csrc(gr_i),
                ));
                evidence.push(Item::new(
                    "unreclaimable now",
                    ctx.cg_now(un_i),
                    Unit::Bytes,
                    ctx.csrc(un_i),
                ));
                evidence.push(Item::new("limit", limit, Unit::Bytes, limit_src.clone()));
                format!(
                    "OOM kill in about {}: unreclaimable memory grows {}/s toward the {} limit of {cg_name}",
                    duration(secs),
                    growth.map_or("?".into(), bytes),
                    limit.map_or("?".into(), bytes)
                )
            } else {
                format!(
                    "The machine runs out of RAM + swap in about {}",
                    duration(secs)
                )
            };
            let mut next = Vec::new();
            if let Some(pid) = pid {
                next.push(format!("memmon leaks --pid {pid} -d 30   (is it a leak?)"));
            }
            next.push(if in_cgroup {
                raise(v1)
            } else {
                "add RAM or swap, or stop the grower".into()
            });
            ctx.push_cgroup_finding(Finding {
                id: "oom_forecast".into(),
                severity,
                title,
                evidence,
                next,
            });
        }
    }

    // Limit hits and OOM kills in the window.
    let (hits_i, hits_what) = match v1 {
        Some(true) => (c("memory_events", Some("failcnt")), "failed charges"),
        _ => (c("memory_events", Some("max")), "charges over memory.max"),
    };
    let hits = ctx.cg_series(hits_i);
    if let Some(r) = series::rate(&hits)
        && r > value(key::LIMIT_HITS)
    {
        let n = series::change(&hits).unwrap_or(0.0);
        ctx.push_cgroup_finding(Finding {
            id: "limit_hits".into(),
            severity: Severity::Warning,
            title: format!(
                "Hit its limit: {n:.0} {hits_what} in the window ({r:.1}/s), each one reclaiming first"
            ),
            evidence: vec![
                Item::new(hits_what, Some(r), Unit::PerSecond, ctx.csrc(hits_i))
                    .crossing(key::LIMIT_HITS),
                Item::new("limit", limit, Unit::Bytes, limit_src.clone()),
            ],
            next: vec![
                raise(v1),
                "or set memory.high a little below memory.max (v2) to throttle before reclaim"
                    .into(),
            ],
        });
    }
    let kills_i = c("memory_events", Some("oom_kill"));
    let kills = ctx.cg_series(kills_i);
    if let Some(n) = series::change(&kills)
        && n > value(key::OOM_KILLS)
    {
        ctx.push_cgroup_finding(Finding {
            id: "oom_kills".into(),
            severity: Severity::Critical,
            title: format!("{n:.0} OOM kill(s) in {cg_name} in the window"),
            evidence: vec![
                Item::new("OOM kills", Some(n), Unit::Count, ctx.csrc(kills_i))
                    .crossing(key::OOM_KILLS),
            ],
            next: vec![
                "memmon incidents   (the post-mortem of each kill)".into(),
                raise(v1),
            ],
        });
    }

    rank(ctx);
}

/// Who the kernel would kill first in the cgroup, and where the target
/// ranks.
fn rank(ctx: &mut Ctx) {
    let Some(cg) = ctx.ev.cgroup.clone() else {
        return;
    };
    let scored = super::by_oom_score(&ctx.ev.members);
    if scored.is_empty() {
        return;
    }
    let n = scored.len();
    let (top_score, top) = (scored[0].0, scored[0].1);
    let src = "/proc/PID/oom_score of each process in the cgroup".to_string();
    match ctx.ev.pid {
        Some(pid) => {
            let own = ctx.proc_now(p("oom_score"));
            let Some(r) = scored.iter().position(|(_, m)| m.pid == pid) else {
                ctx.figures.push(Item::words(
                    "OOM kill rank",
                    "not known (its oom_score was not read)",
                    src,
                ));
                return;
            };
            let rank = r + 1;
            let title = if rank == 1 {
                format!(
                    "The kernel would kill this process first in {cg}: oom_score {top_score:.0}, \
                     the highest of {n}"
                )
            } else {
                format!(
                    "OOM kill rank {rank} of {n} in {cg}: pid {} ({}) would go first (oom_score {top_score:.0})",
                    top.pid, top.comm
                )
            };
            ctx.figures.push(Item::words(
                "OOM kill rank",
                format!("{rank} of {n}"),
                src.clone(),
            ));
            ctx.findings.push(Finding {
                id: "oom_rank".into(),
                severity: Severity::Info,
                title,
                evidence: vec![
                    Item {
                        text: Some(format!("{rank} of {n}")),
                        ..Item::new("rank by oom_score", Some(rank as f64), Unit::Count, src)
                    },
                    Item::new("oom_score", own, Unit::Score, "/proc/PID/oom_score"),
                    Item::new(
                        "oom_score_adj",
                        ctx.proc_now(p("oom_score_adj")),
                        Unit::Score,
                        "/proc/PID/oom_score_adj",
                    ),
                ],
                next: vec![
                    "to protect it: lower its /proc/PID/oom_score_adj (or OOMScoreAdjust= in its unit)"
                        .into(),
                ],
            });
        }
        None => {
            ctx.findings.push(Finding {
                id: "oom_rank".into(),
                severity: Severity::Info,
                title: format!(
                    "The kernel would kill pid {} ({}) first in {cg}: oom_score {top_score:.0}, the highest of {n}",
                    top.pid, top.comm
                ),
                evidence: vec![
                    Item::new("oom_score", Some(top_score), Unit::Score, src),
                    Item::new("its RSS", top.rss, Unit::Bytes, "/proc/PID/stat"),
                ],
                next: vec![format!("memmon explain {}", top.pid)],
            });
        }
    }
}
