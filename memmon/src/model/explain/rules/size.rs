//! Size and trend: RSS, PSS, USS and swap now (a cgroup: usage, working
//! set, swap), the growth per minute over the window and its shape; steady
//! growth past `growth.steady_warn` is a warning, a step or a sawtooth is
//! told as such.

use super::{Ctx, bytes};
use crate::model::explain::{
    evidence::{c, p},
    finding::{Finding, Item, Severity},
    series::{self, Shape},
    thresholds::{Unit, key, value},
};

/// The size series the target is judged by: (what, series, source).
pub fn size_series(ctx: &Ctx) -> (String, Vec<(f64, f64)>, String) {
    if ctx.ev.is_process() {
        let i = p("rss_bytes");
        ("RSS".into(), ctx.proc_series(i), ctx.psrc(i))
    } else {
        let i = c("memory_usage_bytes", None);
        let s = ctx.cg_series(i);
        if s.is_empty() {
            let j = c("rss_bytes", None);
            ("RSS of its processes".into(), ctx.cg_series(j), ctx.csrc(j))
        } else {
            ("usage".into(), s, ctx.csrc(i))
        }
    }
}

/// Adds the size figures and the trend findings.
pub fn run(ctx: &mut Ctx) {
    if ctx.ev.is_process() {
        for (what, k) in [
            ("RSS", "rss_bytes"),
            ("PSS", "pss_bytes"),
            ("USS", "uss_bytes"),
            ("swap", "swap_bytes"),
        ] {
            let i = p(k);
            let v = ctx.proc_now(i).filter(|_| ctx.pmeasured(i));
            let src = ctx.psrc(i);
            ctx.figure(what, v, Unit::Bytes, src);
        }
    } else {
        for (what, k) in [
            ("usage", "memory_usage_bytes"),
            ("working set", "memory_working_set_bytes"),
            ("swap", "memory_swap_bytes"),
        ] {
            let i = c(k, None);
            let v = ctx.cg_now(i);
            let src = ctx.csrc(i);
            ctx.figure(what, v, Unit::Bytes, src);
        }
        let n = c("processes", None);
        let v = ctx.cg_now(n);
        ctx.figure("processes", v, Unit::Count, "/proc/PID/cgroup".into());
    }
    let (what, pts, src) = size_series(ctx);
    let slope = series::slope(&pts);
    let shape = series::shape(&pts);
    let window = ctx.window_secs();
    ctx.figure(
        &format!("{what} growth"),
        slope,
        Unit::BytesPerSecond,
        format!(
            "Theil-Sen slope of {src} over {window:.0} s ({} samples)",
            pts.len()
        ),
    );
    let pid = ctx.ev.pid;
    let next_find = |pid: Option<u32>| match pid {
        Some(pid) => vec![
            format!("memmon leaks --pid {pid} -d 30   (outstanding allocations by stack)"),
            format!("memmon profile --pid {pid} --event all -d 30   (stacks that grow it)"),
        ],
        None => {
            vec!["memmon explain PID for its largest process (`memmon snapshot` lists them)".into()]
        }
    };
    let growth = Item::new(
        format!("{what} growth"),
        slope,
        Unit::BytesPerSecond,
        format!("Theil-Sen slope of {src}"),
    );
    let span = Item::new(
        format!("{what} change over the window"),
        series::change(&pts),
        Unit::Bytes,
        format!(
            "{src}, first to last of {} samples over {window:.0} s",
            pts.len()
        ),
    );
    match (shape, slope) {
        (Shape::Steady, Some(s)) if s >= value(key::GROWTH_STEADY) => {
            let mut evidence = vec![growth.crossing(key::GROWTH_STEADY), span];
            // The kernel's charge of the same growth, for a process.
            if ctx.ev.is_process() {
                let u = c("memory_usage_bytes", None);
                let cg = ctx.cg_series(u);
                if let Some(cs) = series::slope(&cg) {
                    evidence.push(Item::new(
                        "its cgroup's usage growth",
                        Some(cs),
                        Unit::BytesPerSecond,
                        format!("Theil-Sen slope of {}", ctx.csrc(u)),
                    ));
                }
            }
            ctx.findings.push(Finding {
                id: "steady_growth".into(),
                severity: Severity::Warning,
                title: format!(
                    "Steady growth: {what} +{}/min over the last {window:.0} s",
                    bytes(s * 60.0)
                ),
                evidence,
                next: next_find(pid),
            });
        }
        (Shape::Step, _) => {
            let (at, jump) = pts
                .windows(2)
                .map(|w| (w[1].0, w[1].1 - w[0].1))
                .fold((0.0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
            ctx.findings.push(Finding {
                id: "step_growth".into(),
                severity: Severity::Info,
                title: format!(
                    "A step: {what} rose {} at once, {at:.0} s into the window",
                    bytes(jump)
                ),
                evidence: vec![
                    Item::new(
                        "largest rise between two samples",
                        Some(jump),
                        Unit::Bytes,
                        src.clone(),
                    )
                    .crossing(key::STEP_SHARE),
                    span,
                ],
                next: vec![
                    "look at what it did at that moment (a load, a cache fill, a burst); \
                     it is a trend only if it repeats"
                        .into(),
                ],
            });
        }
        (Shape::Sawtooth, _) => {
            let (lo, hi) = pts
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &(_, v)| (l.min(v), h.max(v)));
            ctx.findings.push(Finding {
                id: "sawtooth".into(),
                severity: Severity::Info,
                title: format!(
                    "Sawtooth: {what} grows and falls back between {} and {}",
                    bytes(lo),
                    bytes(hi)
                ),
                evidence: vec![
                    Item::new(format!("{what} low"), Some(lo), Unit::Bytes, src.clone()),
                    Item::new(format!("{what} high"), Some(hi), Unit::Bytes, src.clone())
                        .crossing(key::SAWTOOTH_DROP),
                ],
                next: vec!["size its limit for the peaks, not the mean".into()],
            });
        }
        _ => {}
    }
    ctx.figures.push(Item::words(
        format!("{what} shape"),
        shape.describe(),
        format!("{} samples of {src}", pts.len()),
    ));
}
