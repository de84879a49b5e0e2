//! The findings engine behind `memmon explain` (and the findings of an OOM
//! post-mortem): a pure function from [`Evidence`] — one target's points
//! over a window, and what is known at its end — to a [`Report`] of
//! findings, worst first, each with its evidence (value, source, the
//! threshold it crossed) and what to do next. No I/O and no clock: "now"
//! is the last sample's time, so the same evidence gives the same report
//! live, from a recording or from a daemon's history.

pub mod evidence;
pub mod finding;
pub mod history;
pub mod rules;
pub mod series;
#[cfg(test)]
mod tests;
pub mod thresholds;

pub use evidence::{Builder, Evidence, Frame, Target};
pub use finding::{Finding, Item, Report, Severity};

/// Judges `ev`: every rule, findings sorted worst first (rule order within
/// a severity).
pub fn explain(ev: &Evidence) -> Report {
    let mut ctx = rules::Ctx::new(ev);
    rules::size::run(&mut ctx);
    rules::limits::run(&mut ctx);
    rules::growth_kind::run(&mut ctx);
    rules::pressure::run(&mut ctx);
    rules::layout::run(&mut ctx);
    let rules::Ctx {
        figures,
        mut findings,
        mut not_measured,
        ..
    } = ctx;
    not_measured.extend(ev.notes.iter().cloned());
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    let (from, to) = match (ev.frames.first(), ev.frames.last()) {
        (Some(a), Some(b)) => (a.unix_ms, b.unix_ms),
        _ => (0, 0),
    };
    Report {
        subject: finding::Subject {
            kind: if ev.is_process() { "process" } else { "cgroup" }.into(),
            pid: ev.pid,
            comm: ev.comm.clone(),
            cgroup: ev.cgroup.clone(),
            unit: ev.unit.clone(),
            gone: ev.gone,
        },
        span: finding::Span {
            source: ev.source.clone(),
            from_unix_ms: from,
            to_unix_ms: to,
            samples: ev.frames.len(),
        },
        figures,
        findings,
        worst,
        not_measured,
    }
}
