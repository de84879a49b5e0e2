//! What `memmon explain` answers: findings (severity, title, the evidence
//! with its source and the threshold it crossed, what to do next), worst
//! first, and the target's figures. Serializable both ways: `--json`
//! prints a [`Report`], and a stored one (an incident's) reads back.

use serde::{Deserialize, Serialize};

use super::thresholds::{self, Unit};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A figure worth knowing; nothing wrong.
    Info,
    /// Something is wrong or will be: look at it.
    Warning,
    /// Failing now or within minutes.
    Critical,
}

impl Severity {
    /// `INFO`, `WARNING`, `CRITICAL`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A threshold an item crossed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crossed {
    /// The threshold's key (see `memmon explain --thresholds`).
    pub key: String,
    /// Its value, in the item's unit.
    pub value: f64,
}

/// One number behind a finding (or a figure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// What it is, e.g. `RSS growth`.
    pub what: String,
    /// The value; `None` when it was not measured (never 0 for that).
    pub value: Option<f64>,
    /// Its unit.
    pub unit: Unit,
    /// Where it comes from: the /proc or cgroup file, the probe, or how it
    /// was derived.
    pub source: String,
    /// The threshold it crossed, if it is the reason for the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Crossed>,
    /// A value in words (a shape, a rank) where a number does not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Item {
    /// An item without a threshold.
    pub fn new(
        what: impl Into<String>,
        value: Option<f64>,
        unit: Unit,
        source: impl Into<String>,
    ) -> Self {
        Item {
            what: what.into(),
            value,
            unit,
            source: source.into(),
            threshold: None,
            text: None,
        }
    }

    /// A value in words.
    pub fn words(
        what: impl Into<String>,
        text: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Item {
            text: Some(text.into()),
            ..Item::new(what, None, Unit::Count, source)
        }
    }

    /// The same item, marked as crossing threshold `i`.
    pub fn crossing(mut self, i: usize) -> Self {
        let t = thresholds::at(i);
        self.threshold = Some(Crossed {
            key: t.key.to_string(),
            value: t.value,
        });
        self
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// A stable id for scripts (`steady_growth`, `oom_forecast`, ...).
    pub id: String,
    /// How bad.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// The numbers behind it.
    pub evidence: Vec<Item>,
    /// What to do next: commands or settings.
    pub next: Vec<String>,
}

/// What was explained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// `process` or `cgroup`.
    pub kind: String,
    /// The process, for a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its command name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The memory cgroup (the process's, or the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The systemd unit the cgroup names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The process exited (or the cgroup was removed) in the window.
    #[serde(default)]
    pub gone: bool,
}

/// The time the evidence spans.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Where the evidence came from: `live`, `store`, `daemon`.
    pub source: String,
    /// First sample, Unix ms.
    pub from_unix_ms: u64,
    /// Last sample, Unix ms (the report's "now").
    pub to_unix_ms: u64,
    /// Samples of the target in the window.
    pub samples: usize,
}

/// Everything `explain` says about one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The target.
    pub subject: Subject,
    /// The window.
    pub span: Span,
    /// The target's figures now (shown whatever was found).
    pub figures: Vec<Item>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
    /// The worst severity found (`info` when nothing is wrong).
    pub worst: Severity,
    /// What was not measured, and why (e.g. a probe not attached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<String>,
}

impl Report {
    /// True when nothing at warning or worse was found.
    pub fn quiet(&self) -> bool {
        self.worst < Severity::Warning
    }

    /// The exit status `memmon explain` returns: 0 nothing at warning or
    /// worse, 3 the worst is a warning, 4 the worst is critical (1 and 2
    /// stay the runtime and usage errors of every command).
    pub fn exit_code(&self) -> u8 {
        match self.worst {
            Severity::Info => 0,
            Severity::Warning => 3,
            Severity::Critical => 4,
        }
    }

    /// The finding with this id.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}
