//! The rules, one file per question (size and trend, limits, where it
//! grows, pressure, layout); each reads the [`Ctx`] and adds figures and
//! findings. Thresholds come from `thresholds.rs` only.

pub mod growth_kind;
pub mod layout;
pub mod limits;
pub mod pressure;
pub mod size;

use super::{
    evidence::{Evidence, PROCESS_INDEX, c, cgroup_key, process_key},
    finding::{Finding, Item, Severity},
    series,
    thresholds::Unit,
};
use crate::model::fields::PROCESS_FIELDS;

/// What the rules read, and what they write.
pub struct Ctx<'a> {
    /// The evidence.
    pub ev: &'a Evidence,
    /// Figures, in order.
    pub figures: Vec<Item>,
    /// Findings, in rule order (sorted worst first at the end).
    pub findings: Vec<Finding>,
    /// Values the rules wanted and could not have, one line each.
    pub not_measured: Vec<String>,
    /// The target's size grew by more than `growth.min_bytes` in the
    /// window.
    pub growing: bool,
    /// The process the kernel would kill first in the cgroup (highest
    /// oom_score), as (pid, comm, oom_score, members scored).
    pub first_to_die: Option<(u32, String, f64, usize)>,
}

impl<'a> Ctx<'a> {
    /// A context over `ev`.
    pub fn new(ev: &'a Evidence) -> Self {
        let mut ctx = Ctx {
            ev,
            figures: Vec::new(),
            findings: Vec::new(),
            not_measured: Vec::new(),
            growing: false,
            first_to_die: None,
        };
        let (_, pts, _) = size::size_series(&ctx);
        ctx.growing = series::change(&pts)
            .is_some_and(|d| d >= super::thresholds::value(super::thresholds::key::GROWTH_MIN));
        let ranked = by_oom_score(&ev.members);
        ctx.first_to_die = ranked
            .first()
            .map(|(score, m)| (m.pid, m.comm.clone(), *score, ranked.len()));
        ctx
    }

    /// The severity a finding about the target's cgroup has for the
    /// target: as is for a cgroup, for a process that grows, or for the
    /// one the kernel would kill first; else information only (a quiet
    /// process is not what fails, nor what would be killed), with the
    /// reason to add to the title.
    pub fn for_target(&self, severity: Severity) -> (Severity, String) {
        let Some(pid) = self.ev.pid else {
            return (severity, String::new());
        };
        match &self.first_to_die {
            _ if self.growing || severity == Severity::Info => (severity, String::new()),
            Some((first, _, _, _)) if *first == pid => (severity, String::new()),
            Some((first, comm, _, _)) => (
                Severity::Info,
                format!(
                    " (its cgroup's; this process is steady, pid {first} ({comm}) would be killed first)"
                ),
            ),
            None => (severity, String::new()),
        }
    }

    /// The process value at [`super::evidence::p`] position `i`, over time.
    pub fn proc_series(&self, i: usize) -> Vec<(f64, f64)> {
        series::points(
            self.ev
                .frames
                .iter()
                .map(|f| (f.unix_ms, f.process.and_then(|p| p.get(i)))),
        )
    }

    /// The cgroup value at [`c`] position `i`, over time. A value of the
    /// full detail (memory.stat, events, PSI, limits) is dated when it was
    /// read (the frame's time less `memory_detail_age_seconds`), once: a
    /// reading carried forward to later frames is not a new sample (a
    /// counter would seem to stand still).
    pub fn cg_series(&self, i: usize) -> Vec<(f64, f64)> {
        let detail = is_detail(i);
        let age_i = c("memory_detail_age_seconds", None);
        let mut last: Option<u64> = None;
        series::points(self.ev.frames.iter().filter_map(|f| {
            let g = f.cgroup?;
            if !detail {
                return Some((f.unix_ms, g.get(i)));
            }
            let age = g.get(age_i).map_or(0, |a| (a * 1000.0) as u64);
            let t = f.unix_ms.saturating_sub(age);
            if last.is_some_and(|l| t < l + DETAIL_SAME_READ_MS) {
                return None;
            }
            last = Some(t);
            Some((t, g.get(i)))
        }))
    }

    /// A system value over time.
    pub fn sys_series(
        &self,
        get: impl Fn(&super::evidence::SystemPoint) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        series::points(
            self.ev
                .frames
                .iter()
                .map(|f| (f.unix_ms, f.system.as_ref().and_then(&get))),
        )
    }

    /// The newest process value at position `i`.
    pub fn proc_now(&self, i: usize) -> Option<f64> {
        self.ev.frames.iter().rev().find_map(|f| f.process?.get(i))
    }

    /// The newest cgroup value at position `i`.
    pub fn cg_now(&self, i: usize) -> Option<f64> {
        self.ev.frames.iter().rev().find_map(|f| f.cgroup?.get(i))
    }

    /// The window's length, seconds.
    pub fn window_secs(&self) -> f64 {
        match (self.ev.frames.first(), self.ev.frames.last()) {
            (Some(a), Some(b)) => b.unix_ms.saturating_sub(a.unix_ms) as f64 / 1000.0,
            _ => 0.0,
        }
    }

    /// Where process value `i` comes from: its live sources (from the
    /// publication), else the catalog's.
    pub fn psrc(&self, i: usize) -> String {
        let key = process_key(i);
        let names: Vec<String> = match self.ev.sources.names("process", key) {
            Some(n) if !n.is_empty() => n.to_vec(),
            _ => PROCESS_FIELDS[PROCESS_INDEX[i]]
                .sources
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
        };
        names
            .iter()
            .map(|n| source_name(n))
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// True unless the publication said process value `i` had no live
    /// source (then it is noted as not measured, once).
    pub fn pmeasured(&mut self, i: usize) -> bool {
        let key = process_key(i);
        if self.ev.sources.live("process", key) == Some(false) {
            let line = format!("{key}: not measured (needs {})", self.psrc(i));
            if !self.not_measured.contains(&line) {
                self.not_measured.push(line);
            }
            return false;
        }
        true
    }

    /// True when the cgroup is read through cgroup v1 (it has v1's
    /// memory.failcnt), false on v2 (memory.events max); None unknown.
    pub fn v1(&self) -> Option<bool> {
        if self.cg_now(c("memory_events", Some("failcnt"))).is_some() {
            Some(true)
        } else if self.cg_now(c("memory_events", Some("max"))).is_some() {
            Some(false)
        } else {
            None
        }
    }

    /// The file (or derivation) cgroup value `i` comes from, in the
    /// cgroup version's own names.
    pub fn csrc(&self, i: usize) -> String {
        let v1 = self.v1();
        let pick = |one: &str, two: &str| match v1 {
            Some(true) => one.to_string(),
            Some(false) => two.to_string(),
            None => format!("{two} (v1 {one})"),
        };
        let label = super::evidence::CGROUP_KEYS[i].1;
        match (cgroup_key(i), label) {
            ("memory_usage_bytes", _) => pick("memory.usage_in_bytes", "memory.current"),
            ("memory_working_set_bytes", _) => format!(
                "{} - memory.stat inactive_file",
                pick("memory.usage_in_bytes", "memory.current")
            ),
            ("memory_unreclaimable_bytes", _) => pick(
                "memory.stat anon + shmem",
                "memory.stat anon + shmem + kernel (slab, stacks, page tables, percpu)",
            ),
            ("memory_swap_bytes", _) => pick(
                "memory.memsw.usage_in_bytes - memory.usage_in_bytes",
                "memory.swap.current",
            ),
            ("memory_limit_bytes", Some("max")) => pick("memory.limit_in_bytes", "memory.max"),
            ("memory_limit_bytes", Some("effective_max")) => pick(
                "memory.stat hierarchical_memory_limit",
                "memory.max of the cgroup and its ancestors",
            ),
            ("memory_limit_bytes", Some(l)) => format!("memory.{}", l.replace('_', ".")),
            ("memory_stat_bytes" | "memory_stat_events", Some(item)) => {
                format!("memory.stat {item}")
            }
            ("memory_events", Some("failcnt")) => "memory.failcnt".into(),
            ("memory_events", Some("oom_kill")) => {
                pick("memory.oom_control oom_kill", "memory.events oom_kill")
            }
            ("memory_events", Some(e)) => format!("memory.events {e}"),
            ("memory_pressure_seconds", Some(kind)) => format!("memory.pressure {kind} total"),
            ("oom_forecast_seconds" | "unreclaimable_growth_bytes_per_second", _) => format!(
                "memmon's forecast: Theil-Sen slope of {} over up to 120 s",
                self.csrc(c("memory_unreclaimable_bytes", None))
            ),
            ("rss_bytes", _) => "sum of its processes' RSS (/proc/PID/stat)".into(),
            (key, _) => match self.ev.sources.names("cgroup", key) {
                Some(n) if !n.is_empty() => format!(
                    "its processes' {key} ({})",
                    n.iter()
                        .map(|n| source_name(n))
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
                _ => key.to_string(),
            },
        }
    }

    /// Adds a finding about the target's cgroup, its severity as
    /// [`Ctx::for_target`] sets it.
    pub fn push_cgroup_finding(&mut self, mut f: Finding) {
        let (severity, why) = self.for_target(f.severity);
        f.severity = severity;
        f.title.push_str(&why);
        self.findings.push(f);
    }

    /// Adds a figure.
    pub fn figure(&mut self, what: &str, value: Option<f64>, unit: Unit, source: String) {
        self.figures.push(Item::new(what, value, unit, source));
    }
}

/// The members whose oom_score was read, the kernel's first choice first
/// (highest score; the lower pid on a tie).
pub fn by_oom_score(members: &[super::evidence::Member]) -> Vec<(f64, &super::evidence::Member)> {
    let mut scored: Vec<_> = members
        .iter()
        .filter_map(|m| Some((m.oom_score?, m)))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.pid.cmp(&b.1.pid)));
    scored
}

/// A source as people read it: a file as is, the task iterator with what
/// it reads, a probe as a probe.
pub fn source_name(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else if name == "iter/task" {
        "/proc/PID/stat values via iter/task".to_string()
    } else {
        format!("probe {name}")
    }
}

/// Two detail readings dated closer than this are the same read.
const DETAIL_SAME_READ_MS: u64 = 500;

/// True for the cgroup values read with the full detail (not the usage and
/// swap read every pass, the process totals or memmon's own forecast).
fn is_detail(i: usize) -> bool {
    !matches!(
        super::evidence::CGROUP_KEYS[i].0,
        "memory_usage_bytes"
            | "memory_swap_bytes"
            | "memory_working_set_bytes"
            | "rss_bytes"
            | "processes"
            | "major_faults"
            | "swap_in_pages"
            | "swap_out_pages"
            | "reclaim_stall_seconds"
            | "oom_forecast_seconds"
            | "unreclaimable_growth_bytes_per_second"
            | "memory_detail_age_seconds"
    )
}

/// `KiB`/`MiB`/`GiB` with one decimal, for titles.
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b.abs();
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    let sign = if b < 0.0 { "-" } else { "" };
    if u == 0 {
        format!("{sign}{x:.0} B")
    } else {
        format!("{sign}{x:.1} {}", UNITS[u])
    }
}

/// A duration for titles: `45 s`, `3m20s`, `2h05m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// A share as a percentage for titles.
pub fn pct(r: f64) -> String {
    format!("{:.0}%", r * 100.0)
}
