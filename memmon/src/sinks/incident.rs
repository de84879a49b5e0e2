//! Post-mortems as people read them: one incident in full (`memmon explain
//! --oom`), a table of incidents (`memmon incidents`) and one line each
//! (`top`'s events pane). Text fits [`WIDTH`] columns; a value not
//! measured shows `-`.

use crate::model::{
    explain::{Report, Severity},
    history::{CgroupHistorySample, HistorySample},
    incident::{Incident, Summary},
};

use super::columns::human_bytes;

/// Columns the text fits.
pub const WIDTH: usize = 100;
/// Width of the label column.
const LABEL: usize = 12;

/// Unix ms as RFC 3339 UTC (seconds).
fn time(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms),
    )
    .to_string()
}

fn bytes(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| human_bytes(b as f64))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// `text` wrapped at word boundaries to `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let need = if line.is_empty() {
            word.chars().count()
        } else {
            line.chars().count() + 1 + word.chars().count()
        };
        if need > width && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        // A single word longer than the line (a long cgroup path) is cut.
        while line.chars().count() > width {
            let head: String = line.chars().take(width).collect();
            let tail: String = line.chars().skip(width).collect();
            lines.push(head);
            line = tail;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Appends `text` under `label`, wrapped to [`WIDTH`].
fn row(out: &mut String, label: &str, text: &str) {
    for (n, l) in wrap(text, WIDTH - LABEL).into_iter().enumerate() {
        let label = if n == 0 { label } else { "" };
        out.push_str(&format!("{label:<LABEL$}{l}\n"));
    }
}

/// The kind as a title.
fn kind_title(kind: &str) -> &str {
    match kind {
        "oom_kill" => "OOM kill",
        "sigkill" => "SIGKILL",
        other => other,
    }
}

/// A few samples of a series at fixed times before the kill (5 min, 2 min,
/// 1 min, 30 s, 10 s, the last): `-120s 40.0M  -60s 90.0M ...`.
fn trail<T: Copy>(
    samples: &[T],
    at: u64,
    time_of: impl Fn(&T) -> u64,
    value: impl Fn(&T) -> Option<u64>,
) -> Option<String> {
    let mut picked: Vec<(u64, u64)> = Vec::new();
    for back in [300_000u64, 120_000, 60_000, 30_000, 10_000, 0] {
        let want = at.saturating_sub(back);
        // The first sample at or after the point (the last one for 0).
        let s = if back == 0 {
            samples.iter().rev().find(|s| value(s).is_some())
        } else {
            samples
                .iter()
                .find(|s| time_of(s) >= want && value(s).is_some())
        };
        if let Some(s) = s
            && let Some(v) = value(s)
            && picked.last().is_none_or(|(t, _)| *t < time_of(s))
        {
            picked.push((time_of(s), v));
        }
    }
    if picked.is_empty() {
        return None;
    }
    Some(
        picked
            .iter()
            .map(|(t, v)| {
                format!(
                    "-{} {}",
                    seconds(at.saturating_sub(*t)),
                    human_bytes(*v as f64)
                )
            })
            .collect::<Vec<_>>()
            .join("  "),
    )
}

/// A span of ms as seconds: one decimal under 10 s (`0.4s`, `12s`).
fn seconds(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// `a → b` of a counter (either side `-` when unknown).
fn change(a: Option<u64>, b: Option<u64>) -> String {
    format!("{} → {}", opt(a), opt(b))
}

/// One incident in full.
pub fn text(i: &Incident) -> String {
    let mut out = String::new();
    let mut head = format!("{} {} at {}", kind_title(&i.kind), i.id, time(i.unix_ms));
    if let Some(c) = &i.constraint {
        head.push_str(&format!(
            " ({c} limit{})",
            i.constraint_source
                .as_deref()
                .map_or(String::new(), |s| format!(", says {s}"))
        ));
    }
    for l in wrap(&head, WIDTH) {
        out.push_str(&l);
        out.push('\n');
    }
    let v = &i.victim;
    row(
        &mut out,
        "victim",
        &format!(
            "pid {} ({}) in {}, uid {}",
            v.pid,
            v.comm,
            v.cgroup.as_deref().unwrap_or("-"),
            opt(v.uid)
        ),
    );
    let mut rss = format!("RSS at death {}", bytes(v.rss_bytes));
    if v.anon_rss_bytes.is_some() {
        rss.push_str(&format!(
            " (anon {}, file {}, shmem {})",
            bytes(v.anon_rss_bytes),
            bytes(v.file_rss_bytes),
            bytes(v.shmem_rss_bytes)
        ));
    }
    if let Some(s) = &v.rss_source {
        rss.push_str(&format!(" [{s}]"));
    }
    rss.push_str(&format!("; swap {}", bytes(v.swap_bytes)));
    row(&mut out, "", &rss);
    row(
        &mut out,
        "",
        &format!(
            "oom_score {} (last sample), oom_score_adj {}",
            opt(v.oom_score),
            opt(v.oom_score_adj)
        ),
    );
    match &i.cgroup {
        Some(c) => row(
            &mut out,
            "cgroup",
            &format!(
                "{}: usage {} of limit {}{} [{}]",
                c.path,
                bytes(c.usage_bytes),
                bytes(c.limit_bytes),
                c.limit
                    .as_deref()
                    .map_or(String::new(), |l| format!(" ({l})")),
                c.source
            ),
        ),
        None => row(&mut out, "cgroup", "- (not known)"),
    }
    if let Some(t) = &i.trigger {
        row(
            &mut out,
            "trigger",
            &format!(
                "pid {} ({}) in {} [{}]: {}",
                t.pid,
                t.comm,
                t.cgroup.as_deref().unwrap_or("-"),
                t.basis,
                t.why
            ),
        );
    } else if i.kind == "oom_kill" {
        row(
            &mut out,
            "trigger",
            "- (the kernel's record names no allocator in the cgroup, and no process of it \
             grew in the minute before)",
        );
    }
    if let Some(s) = &i.sender {
        row(
            &mut out,
            "sender",
            &format!(
                "pid {} ({}) in {}",
                s.pid,
                s.comm,
                s.cgroup.as_deref().unwrap_or("-")
            ),
        );
    }
    if let Some(g) = &i.grower {
        row(
            &mut out,
            "grower",
            &format!(
                "pid {} ({}) grew {} in {} ({}/s), the most in {} [inferred from history]",
                g.pid,
                g.comm,
                human_bytes(g.grew_bytes.max(0) as f64),
                seconds((g.seconds * 1000.0) as u64),
                human_bytes(g.bytes_per_second.max(0.0)),
                if i.constraint.as_deref() == Some("memcg") || i.kind == "sigkill" {
                    "the cgroup"
                } else {
                    "the machine"
                }
            ),
        );
    }
    if !i.runner_ups.is_empty() {
        let next: Vec<String> = i
            .runner_ups
            .iter()
            .map(|c| format!("pid {} ({}) oom_score {}", c.pid, c.comm, c.oom_score))
            .collect();
        row(&mut out, "next", &next.join("; "));
    }
    if let Some(t) = trail(
        &i.victim_history,
        i.unix_ms,
        |s: &HistorySample| s.unix_ms,
        |s| s.rss_bytes,
    ) {
        row(&mut out, "victim RSS", &t);
    }
    if let Some(t) = trail(
        &i.cgroup_history,
        i.unix_ms,
        |s: &CgroupHistorySample| s.unix_ms,
        |s| s.usage_bytes,
    ) {
        row(&mut out, "cgroup use", &t);
    }
    around(&mut out, i);
    stacks(&mut out, i);
    let report = i
        .findings_before
        .as_ref()
        .and_then(|v| serde_json::from_value::<Report>(v.clone()).ok());
    match &report {
        Some(r) => {
            let at = time(r.span.to_unix_ms);
            if r.findings.iter().all(|f| f.severity < Severity::Warning) {
                row(
                    &mut out,
                    "findings",
                    &format!("at {at}, a minute before: no problem found"),
                );
            } else {
                row(
                    &mut out,
                    "findings",
                    &format!("at {at}, a minute before (`--json` has their evidence):"),
                );
            }
            for f in r
                .findings
                .iter()
                .filter(|f| f.severity >= Severity::Warning)
            {
                row(
                    &mut out,
                    "",
                    &format!("{:<8} {}", f.severity.label(), f.title),
                );
            }
        }
        None => row(
            &mut out,
            "findings",
            "a minute before: - (no history of the victim then)",
        ),
    }
    out
}

/// memory.events and PSI around the kill.
fn around(out: &mut String, i: &Incident) {
    let a = &i.around;
    let (b, f) = (a.cgroup_before.as_ref(), a.cgroup_after.as_ref());
    if b.is_some() || f.is_some() {
        let get = |s: Option<&CgroupHistorySample>, k: fn(&CgroupHistorySample) -> Option<u64>| {
            s.and_then(k)
        };
        let mut parts = vec![
            format!(
                "oom_kill {}",
                change(get(b, |s| s.oom_kills), get(f, |s| s.oom_kills))
            ),
            format!(
                "limit hits {}",
                change(get(b, |s| s.limit_hits), get(f, |s| s.limit_hits))
            ),
        ];
        if get(b, |s| s.high_events)
            .or(get(f, |s| s.high_events))
            .is_some()
        {
            parts.push(format!(
                "high {}",
                change(get(b, |s| s.high_events), get(f, |s| s.high_events))
            ));
        }
        parts.push(format!(
            "usage {} → {}",
            bytes(get(b, |s| s.usage_bytes)),
            bytes(get(f, |s| s.usage_bytes))
        ));
        row(out, "events", &parts.join(", "));
        if let (Some(x), Some(y)) = (
            get(b, |s| s.psi_some_total_us),
            get(f, |s| s.psi_some_total_us),
        ) {
            let secs = f
                .map_or(0, |f| f.unix_ms)
                .saturating_sub(b.map_or(0, |b| b.unix_ms));
            row(
                out,
                "",
                &format!(
                    "cgroup PSI: {:.2} s stalled (some) in the {:.1} s around the kill",
                    y.saturating_sub(x) as f64 / 1e6,
                    secs as f64 / 1000.0
                ),
            );
        }
    }
    if let (Some(x), Some(y)) = (&a.system_psi_before, &a.system_psi_after) {
        row(
            out,
            if b.is_some() || f.is_some() {
                ""
            } else {
                "events"
            },
            &format!(
                "system PSI some avg10 {:.2}% → {:.2}%, full avg10 {:.2}% → {:.2}%, {:.2} s \
                 stalled (some) around the kill",
                x.some_avg10,
                y.some_avg10,
                x.full_avg10,
                y.full_avg10,
                y.some_total_us.saturating_sub(x.some_total_us) as f64 / 1e6
            ),
        );
    }
}

/// The growth stacks.
fn stacks(out: &mut String, i: &Incident) {
    let Some(g) = &i.growth_stacks else {
        row(
            out,
            "stacks",
            "- (the daemon ran without --profile: no growth stacks)",
        );
        return;
    };
    if g.stacks.is_empty() {
        row(
            out,
            "stacks",
            &format!(
                "no page fault of the cgroup sampled in the {} s before (one in {} faults is)",
                g.seconds, g.period
            ),
        );
        return;
    }
    row(
        out,
        "stacks",
        &format!(
            "the cgroup's page faults in the {} s before: {} sampled (one in {})",
            g.seconds, g.total_faults, g.period
        ),
    );
    for s in &g.stacks {
        row(
            out,
            "",
            &format!(
                "{:5.1}% {:>9}  {}",
                s.share * 100.0,
                s.faults,
                s.frames.join(" < ")
            ),
        );
    }
}

/// A table of incidents, oldest first: one line of figures each, then
/// its cgroup and what caused it.
pub fn table(list: &[Summary]) -> String {
    let mut out = format!(
        "{:<18} {:<20} {:<8} {:>7} {:<16} {:>6} {:>6}\n",
        "ID", "TIME", "KIND", "PID", "COMM", "RSS", "LIMIT"
    );
    for s in list {
        out.push_str(&format!(
            "{:<18} {:<20} {:<8} {:>7} {:<16} {:>6} {:>6}\n",
            s.id,
            time(s.unix_ms),
            s.kind,
            s.pid,
            s.comm,
            bytes(s.rss_bytes),
            bytes(s.limit_bytes),
        ));
        let detail = format!("in {}; {}", s.cgroup.as_deref().unwrap_or("-"), by(s));
        for l in wrap(&detail, WIDTH - 19) {
            out.push_str(&format!("{:<19}{l}\n", ""));
        }
    }
    out
}

/// `trigger pid (comm) [basis]` or `sender pid (comm)`.
fn by(s: &Summary) -> String {
    match (s.by.as_deref(), s.by_basis.as_deref()) {
        (Some(b), Some("sender")) => format!("sender {b}"),
        (Some(b), Some(basis)) => format!("trigger {b} [{basis}]"),
        (Some(b), None) => b.to_string(),
        (None, _) => "-".into(),
    }
}

/// One line for `top`'s events pane.
pub fn event_line(s: &Summary) -> String {
    format!(
        "{} of pid {} ({}) in {}{}, RSS {}; {}; memmon explain --oom {}",
        kind_title(&s.kind),
        s.pid,
        s.comm,
        s.cgroup.as_deref().unwrap_or("-"),
        s.limit_bytes.map_or(String::new(), |l| format!(
            " (limit {})",
            human_bytes(l as f64)
        )),
        bytes(s.rss_bytes),
        by(s),
        s.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::{
        CgroupAtKill, Grower, GrowthStack, GrowthStacks, Trigger, Victim,
    };

    fn incident() -> Incident {
        Incident {
            id: "1733512345-4321".into(),
            kind: "oom_kill".into(),
            unix_ms: 1_733_512_345_000,
            victim: Victim {
                pid: 4321,
                comm: "idle-holder".into(),
                uid: Some(0),
                cgroup: Some(format!("/kubepods/burstable/pod{}", "a".repeat(90))),
                rss_bytes: Some(180 << 20),
                anon_rss_bytes: Some(178 << 20),
                file_rss_bytes: Some(2 << 20),
                shmem_rss_bytes: Some(0),
                rss_source: Some("oom:mark_victim".into()),
                swap_bytes: None,
                oom_score: Some(1700),
                oom_score_adj: Some(1000),
            },
            constraint: Some("memcg".into()),
            constraint_source: Some("page_counter".into()),
            cgroup: Some(CgroupAtKill {
                path: "/i27b-test".into(),
                limit: Some("max".into()),
                limit_bytes: Some(256 << 20),
                usage_bytes: Some(256 << 20),
                source: "kernel at the kill".into(),
            }),
            trigger: Some(Trigger {
                pid: 4400,
                comm: "grower".into(),
                cgroup: Some("/i27b-test".into()),
                basis: "kernel".into(),
                why: "it was charging memory to /i27b-test when its limit was hit \
                      (oom:mark_victim ran in it)"
                    .into(),
            }),
            grower: Some(Grower {
                pid: 4400,
                comm: "grower".into(),
                cgroup: Some("/i27b-test".into()),
                grew_bytes: 100 << 20,
                seconds: 10.0,
                bytes_per_second: (10 << 20) as f64,
            }),
            victim_history: (0..10)
                .map(|t| HistorySample {
                    unix_ms: 1_733_512_345_000 - (10 - t) * 1000,
                    rss_bytes: Some(180 << 20),
                    ..Default::default()
                })
                .collect(),
            growth_stacks: Some(GrowthStacks {
                seconds: 60,
                period: 64,
                total_faults: 51200,
                stacks: vec![GrowthStack {
                    faults: 46080,
                    share: 0.9,
                    frames: vec!["touch_gamma".into(), "run".into(), "main".into()],
                }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_post_mortem_fits_100_columns_and_names_everything() {
        let t = text(&incident());
        for l in t.lines() {
            assert!(
                l.chars().count() <= WIDTH,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        for needle in [
            "OOM kill 1733512345-4321 at 2024-12-06T19:12:25Z (memcg limit, says page_counter)",
            "victim      pid 4321 (idle-holder)",
            "RSS at death 180M (anon 178M, file 2.00M, shmem 0B) [oom:mark_victim]",
            "oom_score 1700 (last sample), oom_score_adj 1000",
            "cgroup      /i27b-test: usage 256M of limit 256M (max) [kernel at the kill]",
            "trigger     pid 4400 (grower) in /i27b-test [kernel]",
            "grower      pid 4400 (grower) grew 100M in 10s (10.0M/s)",
            "victim RSS  -10s 180M  -1.0s 180M",
            "90.0%     46080  touch_gamma < run < main",
            "stacks      the cgroup's page faults in the 60 s before: 51200 sampled",
            "findings    a minute before: - (no history of the victim then)",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
        let line = event_line(&incident().summary());
        assert!(
            line.contains("OOM kill of pid 4321 (idle-holder) in /i27b-test (limit 256M)")
                && line.contains("trigger 4400 (grower) [kernel]")
                && line.ends_with("memmon explain --oom 1733512345-4321"),
            "{line}"
        );
        let table = table(&[incident().summary()]);
        assert!(table.lines().all(|l| l.chars().count() <= WIDTH), "{table}");
        assert!(
            table.contains("1733512345-4321    2024-12-06T19:12:25Z oom_kill    4321")
                && table.contains("in /i27b-test; trigger 4400 (grower) [kernel]"),
            "{table}"
        );
    }

    #[test]
    fn the_findings_of_a_minute_before_show_warnings_and_worse() {
        use crate::model::explain::{
            Finding, Report, Severity,
            finding::{Span, Subject},
        };
        let finding = |id: &str, severity, title: &str| Finding {
            id: id.into(),
            severity,
            title: title.into(),
            evidence: Vec::new(),
            next: Vec::new(),
        };
        let report = Report {
            subject: Subject {
                kind: "process".into(),
                pid: Some(4321),
                comm: None,
                cgroup: None,
                unit: None,
                gone: false,
            },
            span: Span {
                source: "daemon".into(),
                from_unix_ms: 1_733_512_165_000,
                to_unix_ms: 1_733_512_285_000,
                samples: 60,
            },
            figures: Vec::new(),
            findings: vec![
                finding(
                    "oom_forecast",
                    Severity::Critical,
                    "OOM in 70 s at this growth",
                ),
                finding("rss_now", Severity::Info, "RSS 120M"),
            ],
            worst: Severity::Critical,
            not_measured: Vec::new(),
        };
        let mut i = incident();
        i.findings_before = serde_json::to_value(&report).ok();
        let t = text(&i);
        assert!(
            t.contains("findings    at 2024-12-06T19:11:25Z, a minute before")
                && t.contains("CRITICAL OOM in 70 s at this growth")
                && !t.contains("RSS 120M"),
            "{t}"
        );
        i.findings_before = serde_json::to_value(Report {
            findings: vec![finding("rss_now", Severity::Info, "RSS 120M")],
            worst: Severity::Info,
            ..report
        })
        .ok();
        assert!(
            text(&i).contains("a minute before: no problem found"),
            "{}",
            text(&i)
        );
    }

    #[test]
    fn unmeasured_values_show_a_dash_and_a_missing_profile_says_so() {
        let mut i = incident();
        i.victim.rss_bytes = None;
        i.growth_stacks = None;
        i.cgroup = None;
        let t = text(&i);
        assert!(t.contains("RSS at death -"), "{t}");
        assert!(t.contains("cgroup      - (not known)"), "{t}");
        assert!(t.contains("without --profile"), "{t}");
    }
}
