//! `memmon explain`'s output: a [`Report`] as text that fits 100 columns
//! (the target, its figures, then the findings worst first with their
//! evidence and what to do next, or "no problem found"), or as JSON.

use crate::model::explain::{
    finding::{Item, Report, Severity},
    rules::{bytes, duration},
    thresholds::{self, Unit},
};

/// Columns the text fits in.
pub const WIDTH: usize = 100;

/// A value in its unit, for people; "not measured" when it was not.
pub fn value(item: &Item) -> String {
    if let Some(t) = &item.text {
        return t.clone();
    }
    let Some(v) = item.value else {
        return "not measured".into();
    };
    format_value(v, item.unit)
}

fn format_value(v: f64, unit: Unit) -> String {
    let num = |x: f64| {
        if x.abs() >= 100.0 || x.fract() == 0.0 {
            format!("{x:.0}")
        } else if x.abs() >= 10.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.2}")
        }
    };
    match unit {
        Unit::Bytes => bytes(v),
        Unit::BytesPerSecond => format!("{}/s ({}/min)", bytes(v), bytes(v * 60.0)),
        Unit::PerSecond => format!("{}/s", num(v)),
        Unit::Seconds => duration(v),
        Unit::SecondsPerSecond => format!("{} s/s ({:.0}% of the time)", num(v), v * 100.0),
        Unit::Ratio => format!("{:.1}%", v * 100.0),
        Unit::Count | Unit::Score => format!("{v:.0}"),
    }
}

/// Word-wraps `text` to [`WIDTH`], the first line after `first` and the
/// rest after `indent` spaces.
fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let mut line = first.to_string();
    let mut width = line.chars().count();
    let mut fresh = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let w = word.chars().count();
        if !fresh && width + 1 + w > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            width = indent;
            fresh = true;
        }
        if !fresh {
            line.push(' ');
            width += 1;
        }
        line.push_str(word);
        width += w;
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn time(ms: u64) -> String {
    crate::store::time::format(ms)
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.subject;
    let who = match (s.pid, &s.cgroup) {
        (Some(pid), Some(cg)) => format!(
            "pid {pid} ({}) in memory cgroup {cg}",
            s.comm.as_deref().unwrap_or("?")
        ),
        (Some(pid), None) => format!("pid {pid} ({})", s.comm.as_deref().unwrap_or("?")),
        (None, Some(cg)) => format!("memory cgroup {cg}"),
        (None, None) => "?".into(),
    };
    let unit = s
        .unit
        .as_deref()
        .map_or(String::new(), |u| format!(" (unit {u})"));
    let gone = if s.gone {
        if s.pid.is_some() {
            " - exited before the end of the window"
        } else {
            " - removed before the end of the window"
        }
    } else {
        ""
    };
    wrap(
        &mut out,
        "",
        2,
        &format!("memmon explain: {who}{unit}{gone}"),
    );
    let sp = &r.span;
    let secs = sp.to_unix_ms.saturating_sub(sp.from_unix_ms) as f64 / 1000.0;
    wrap(
        &mut out,
        "",
        2,
        &format!(
            "{} evidence, {} sample(s) over {secs:.0} s, {} to {}",
            sp.source,
            sp.samples,
            time(sp.from_unix_ms),
            time(sp.to_unix_ms)
        ),
    );
    out.push('\n');
    let name_w = r
        .figures
        .iter()
        .map(|f| f.what.chars().count())
        .max()
        .unwrap_or(0)
        .min(22);
    for f in &r.figures {
        let head = format!("  {:<name_w$}  {}", f.what, value(f));
        let name_w = name_w.max(f.what.chars().count());
        let head_w = head.chars().count();
        if head_w + 4 + f.source.chars().count() <= WIDTH {
            out.push_str(&format!("{head}  ({})\n", f.source));
        } else {
            out.push_str(&head);
            out.push('\n');
            wrap(
                &mut out,
                &" ".repeat(name_w + 6),
                name_w + 6,
                &format!("({})", f.source),
            );
        }
    }
    out.push('\n');
    if r.findings.iter().all(|f| f.severity == Severity::Info) {
        out.push_str("No problem found.\n");
        if !r.findings.is_empty() {
            out.push('\n');
        }
    }
    for f in &r.findings {
        let label = format!("{:<10}", f.severity.label());
        wrap(&mut out, &label, 10, &f.title);
        for e in &f.evidence {
            let crossed = e.threshold.as_ref().map_or(String::new(), |t| {
                let shown = thresholds::THRESHOLDS
                    .iter()
                    .find(|x| x.key == t.key)
                    .map_or(format_value(t.value, e.unit), thresholds::display_value);
                format!(" [threshold {} = {shown}]", t.key)
            });
            wrap(
                &mut out,
                "          - ",
                14,
                &format!("{}: {}{crossed}; from {}", e.what, value(e), e.source),
            );
        }
        for n in &f.next {
            wrap(&mut out, "          next: ", 16, n);
        }
        out.push('\n');
    }
    if !r.not_measured.is_empty() {
        wrap(&mut out, "", 2, "Not measured here:");
        for n in &r.not_measured {
            wrap(&mut out, "  - ", 4, n);
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The report as JSON (the same findings, for tooling).
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::explain::finding::{Finding, Span, Subject};

    fn report(findings: Vec<Finding>) -> Report {
        Report {
            subject: Subject {
                kind: "process".into(),
                pid: Some(42),
                comm: Some("worker".into()),
                cgroup: Some(
                    "/a/very/long/cgroup/path/that/goes/on/and/on/system.slice/worker.service"
                        .into(),
                ),
                unit: Some("worker.service".into()),
                gone: false,
            },
            span: Span {
                source: "live".into(),
                from_unix_ms: 1_764_644_400_000,
                to_unix_ms: 1_764_644_410_000,
                samples: 11,
            },
            figures: vec![
                Item::new("RSS", Some(3.0 * 1048576.0), Unit::Bytes, "/proc/PID/stat"),
                Item::new("PSS", None, Unit::Bytes, "/proc/PID/smaps_rollup"),
            ],
            worst: findings
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Info),
            findings,
            not_measured: vec!["cow_faults: not measured (needs page_fault_user)".into()],
        }
    }

    #[test]
    fn text_fits_100_columns_and_says_what_was_not_measured() {
        let long = "word ".repeat(60);
        let r = report(vec![Finding {
            id: "x".into(),
            severity: Severity::Critical,
            title: long.clone(),
            evidence: vec![
                Item::new(
                    "growth",
                    Some(3.0 * 1048576.0),
                    Unit::BytesPerSecond,
                    long.clone(),
                )
                .crossing(thresholds::key::GROWTH_STEADY),
            ],
            next: vec![long],
        }]);
        let t = text(&r);
        for line in t.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(t.contains("CRITICAL"), "{t}");
        assert!(
            t.contains("[threshold growth.steady_warn = 0.1 MiB/s]"),
            "{t}"
        );
        assert!(t.contains("PSS") && t.contains("not measured"), "{t}");
        assert!(!t.contains("No problem found"), "{t}");
    }

    #[test]
    fn a_quiet_report_says_so_with_its_figures() {
        let t = text(&report(Vec::new()));
        assert!(t.contains("No problem found."), "{t}");
        assert!(t.contains("3.0 MiB"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&json(&report(Vec::new()))).expect("json");
        assert_eq!(j["worst"], "info");
        assert!(
            j["figures"][1]["value"].is_null(),
            "unmeasured is null, not 0"
        );
    }
}
