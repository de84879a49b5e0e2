//! `memmon events` output: one line per event, JSON (`--json`, one object
//! per line with a `type` key) or readable text.

use serde::Serialize;

use crate::{
    model::OomKill,
    sample::probe_status::{ProbeState, ProbeStatus},
};

/// A probe's state as streamed (at start, and whenever it changes).
#[derive(Serialize)]
struct ProbeLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    status: &'a ProbeStatus,
}

/// Events the kernel could not deliver since the last report.
#[derive(Serialize)]
struct LostLine {
    #[serde(rename = "type")]
    kind: &'static str,
    oom_events_lost: u64,
    exit_events_lost: u64,
}

fn json<T: Serialize>(v: &T) -> String {
    // Plain structs of strings and integers always serialize.
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"type\":\"error\",\"error\":\"{e}\"}}"))
}

/// An OOM kill as one line.
pub fn oom_kill(k: &OomKill, as_json: bool) -> String {
    if as_json {
        return json(k);
    }
    format!(
        "oom_kill pid={} comm={} anon_rss={}kB file_rss={}kB shmem_rss={}kB total_vm={}kB \
         pgtables={}kB uid={} oom_score_adj={} cgroup={} killer={}/{} ({}) constraint={}{} \
         limit={} usage={}",
        k.pid,
        k.comm,
        k.anon_rss_kb,
        k.file_rss_kb,
        k.shmem_rss_kb,
        k.total_vm_kb,
        k.pgtables_kb,
        k.uid,
        k.oom_score_adj,
        k.cgroup.as_deref().unwrap_or("?"),
        k.killer_pid,
        k.killer_tid,
        k.killer_comm,
        k.constraint.unwrap_or("-"),
        k.constraint_cgroup
            .as_deref()
            .map_or(String::new(), |c| format!(" ({c})")),
        k.limit_bytes
            .map_or("-".into(), |b| format!("{}kB", b / 1024)),
        k.usage_bytes
            .map_or("-".into(), |b| format!("{}kB", b / 1024)),
    )
}

/// A SIGKILL as one line.
pub fn sigkill(k: &crate::model::SignalKill, as_json: bool) -> String {
    if as_json {
        return json(k);
    }
    format!(
        "sigkill ({}) sender={} ({}) in {} target={} ({}) in {} rss={} swap={}",
        k.cause,
        k.sender_pid,
        k.sender_comm,
        k.sender_cgroup.as_deref().unwrap_or("?"),
        k.target_pid,
        k.target_comm,
        k.target_cgroup.as_deref().unwrap_or("?"),
        k.target_rss_bytes
            .map_or("-".into(), |b| format!("{}kB", b / 1024)),
        k.target_swap_bytes
            .map_or("-".into(), |b| format!("{}kB", b / 1024)),
    )
}

/// A probe state as one line.
pub fn probe_status(s: &ProbeStatus, as_json: bool) -> String {
    if as_json {
        return json(&ProbeLine {
            kind: "probe_status",
            status: s,
        });
    }
    let (word, reason) = match &s.state {
        ProbeState::Attached => ("attached", ""),
        ProbeState::Unavailable { reason } => ("unavailable", reason.as_str()),
        ProbeState::Disabled { reason } => ("disabled", reason.as_str()),
    };
    format!("probe {} {word} ({}) {reason}", s.name, s.attach_point)
}

/// Ring-buffer losses as one line.
pub fn lost(oom: u64, exit: u64, as_json: bool) -> String {
    if as_json {
        return json(&LostLine {
            kind: "events_lost",
            oom_events_lost: oom,
            exit_events_lost: exit,
        });
    }
    format!("events lost (ring buffer full): oom={oom} exit={exit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_line_is_one_json_object_with_a_type() {
        let k = OomKill {
            constraint: Some("memcg"),
            constraint_source: Some("oom_control"),
            constraint_cgroup: Some("/x".into()),
            constraint_limit: Some("max"),
            limit_bytes: Some(64 << 20),
            usage_bytes: None,
            runner_ups: Vec::new(),
            history: Vec::new(),
            kind: "oom_kill",
            boot_ns: 1,
            pid: 7,
            comm: "hog".into(),
            uid: 0,
            oom_score_adj: 0,
            total_vm_kb: 10,
            anon_rss_kb: 65_000,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            pgtables_kb: 4,
            cgroup: Some("/x".into()),
            killer_memcg: Some("/x".into()),
            killer_pid: 7,
            killer_tid: 7,
            killer_comm: "hog".into(),
            killer_cgroup_id: 1,
        };
        let line = oom_kill(&k, true);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["type"], "oom_kill");
        assert_eq!(v["anon_rss_kb"], 65_000);
        assert_eq!(v["constraint_source"], "oom_control");
        assert_eq!(v["constraint_limit"], "max");
        assert!(v["usage_bytes"].is_null(), "not measured: null, never 0");
        let text = oom_kill(&k, false);
        assert!(text.contains("pid=7 comm=hog"), "{text}");
        assert!(
            text.contains("constraint=memcg (/x) limit=65536kB usage=-"),
            "{text}"
        );
    }
}
