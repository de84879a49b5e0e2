//! Kill records in the log. An OOM kill is a warning, each one. A SIGKILL
//! that is not the OOM killer's (container runtimes, systemd's stop
//! timeouts, `kill -9`: routine on a busy host) is an info line, the first
//! [`SIGKILL_LINES`] in a minute one by one, then one summary line a
//! minute at most with how many more came and from whom. The log is the
//! only thing thinned: every record stays in /api/v1/events, the store and
//! `memmon events`.

use std::{collections::BTreeMap, time::Duration, time::Instant};

use crate::log_limit::LineBudget;
use crate::model::{OomKill, SignalKill};

/// SIGKILL lines written one by one per minute.
pub const SIGKILL_LINES: u32 = 5;

/// Senders named in a summary.
const TOP_SENDERS: usize = 3;

/// The SIGKILL lines' budget and what it held back.
#[derive(Debug)]
pub struct KillLog {
    budget: LineBudget,
    /// Held-back kills by sender comm, since the last summary.
    held_by_sender: BTreeMap<String, u64>,
}

impl Default for KillLog {
    fn default() -> Self {
        KillLog {
            budget: LineBudget::new(Duration::from_secs(60), SIGKILL_LINES),
            held_by_sender: BTreeMap::new(),
        }
    }
}

impl KillLog {
    /// Logs the new SIGKILL records of a pass (oldest first) and, once a
    /// minute at most, the summary of those held back.
    pub fn sigkills<'a>(&mut self, kills: impl IntoIterator<Item = &'a SignalKill>, now: Instant) {
        for k in kills {
            if self.budget.note(now) {
                tracing::info!(
                    cause = k.cause,
                    sender_pid = k.sender_pid,
                    sender_comm = %k.sender_comm,
                    sender_cgroup = k.sender_cgroup.as_deref().unwrap_or("?"),
                    target_pid = k.target_pid,
                    target_comm = %k.target_comm,
                    target_cgroup = k.target_cgroup.as_deref().unwrap_or("?"),
                    target_rss_bytes = k.target_rss_bytes,
                    "SIGKILL"
                );
            } else {
                *self
                    .held_by_sender
                    .entry(k.sender_comm.to_string())
                    .or_default() += 1;
            }
        }
        if let Some(held) = self.budget.summary(now) {
            let senders = summary_of_senders(&std::mem::take(&mut self.held_by_sender));
            tracing::info!(
                held,
                senders = %senders,
                "{held} more SIGKILLs in the last minute, not logged one by one (by {senders}); \
                 every one is in /api/v1/events, the store and `memmon events`"
            );
        }
    }
}

/// `comm ×N, ...` for the senders with the most kills.
fn summary_of_senders(by_sender: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = by_sender.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = v
        .iter()
        .take(TOP_SENDERS)
        .map(|(comm, n)| format!("{comm} ×{n}"))
        .collect();
    let others: u64 = v.iter().skip(TOP_SENDERS).map(|(_, n)| **n).sum();
    if others > 0 {
        parts.push(format!("others ×{others}"));
    }
    parts.join(", ")
}

/// One OOM kill: a warning, always.
pub fn oom_kill(kill: &OomKill) {
    let trail: Vec<String> = kill
        .history
        .iter()
        .map(|h| {
            h.rss_bytes
                .map_or("-".into(), |b| format!("{}MiB", b >> 20))
        })
        .collect();
    tracing::warn!(
        pid = kill.pid,
        comm = %kill.comm,
        cgroup = kill.cgroup.as_deref().unwrap_or("?"),
        constraint = kill.constraint.unwrap_or("?"),
        constraint_source = kill.constraint_source.unwrap_or("?"),
        constraint_cgroup = kill.constraint_cgroup.as_deref().unwrap_or("-"),
        limit_bytes = kill.limit_bytes,
        usage_bytes = kill.usage_bytes,
        anon_rss_kb = kill.anon_rss_kb,
        rss_history = %trail.join(" "),
        "OOM kill"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_named_by_count_then_the_rest_summed() {
        let mut m = BTreeMap::new();
        for (c, n) in [
            ("containerd", 40),
            ("systemd", 7),
            ("bash", 2),
            ("kill", 1),
            ("x", 1),
        ] {
            m.insert(c.to_string(), n);
        }
        assert_eq!(
            summary_of_senders(&m),
            "containerd ×40, systemd ×7, bash ×2, others ×2"
        );
        assert_eq!(summary_of_senders(&BTreeMap::new()), "");
    }
}
