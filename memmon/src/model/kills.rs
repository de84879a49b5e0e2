//! OOM kills and SIGKILLs as the model keeps them: each with what the
//! model knew of its victim (cgroup, memory, recent history, the
//! runner-ups by oom_score), counted by cause.

use std::collections::{BTreeMap, VecDeque};

use super::{Model, OomKill, SignalKill, incident, oom};
use crate::fast_hash::FastMap;
use crate::sample::{KillSignalRecord, OomRecord};

/// OOM kills the model remembers (newest last).
const RECENT_OOMS: usize = 256;

impl Model {
    /// Recent OOM kills, oldest first.
    pub fn recent_ooms(&self) -> &VecDeque<OomKill> {
        &self.recent_ooms
    }

    /// OOM kills seen since start.
    pub fn oom_kills_total(&self) -> u64 {
        self.oom_kills_total
    }

    /// Recent SIGKILLs (other than the OOM killer's), oldest first.
    pub fn recent_sigkills(&self) -> &VecDeque<SignalKill> {
        &self.recent_sigkills
    }

    /// Kills since start by cause (`oom`, `sigkill`, `kernel`).
    pub fn kills_total(&self) -> &BTreeMap<&'static str, u64> {
        &self.kills_total
    }

    /// The OOM kills and SIGKILLs of one sample, in kernel order (the OOM
    /// killer's own SIGKILL is its OOM kill).
    pub(super) fn apply_kills(
        &mut self,
        ooms: Vec<OomRecord>,
        kill_signals: Vec<KillSignalRecord>,
    ) {
        let known = self.last_known(
            ooms.iter()
                .map(|r| r.event.victim_pid)
                .chain(kill_signals.iter().map(|r| r.signal.target_pid)),
        );
        let mut oom_victims = Vec::new();
        for record in ooms {
            self.oom_kills_total += 1;
            *self.kills_total.entry("oom").or_default() += 1;
            if self.recent_ooms.len() == RECENT_OOMS {
                self.recent_ooms.pop_front();
            }
            let mut kill = OomKill::from_record(record, self.page_size());
            // A dying victim's /proc names the root cgroup, a dead one's
            // none: the last scan knows where it lived.
            if let Some(cg) = known
                .get(&kill.pid)
                .and_then(|k| self.processes.get(k))
                .and_then(|p| p.cgroup.clone())
            {
                kill.cgroup = Some(cg);
            }
            self.explain_oom(&mut kill);
            kill.history = self.recorder.history_of(kill.pid);
            oom_victims.push(kill.pid);
            self.begin_incident(incident::Kill::Oom(Box::new(kill.clone())), &known);
            self.recent_ooms.push_back(kill);
        }
        for r in kill_signals {
            // The OOM killer's own SIGKILL is the OOM kill above.
            if oom::is_oom_killers_sigkill(r.signal.code, r.signal.target_pid, |pid| {
                oom_victims.contains(&pid) || self.recent_ooms.iter().any(|k| k.pid == pid)
            }) {
                continue;
            }
            let cause = oom::sigkill_cause(r.signal.code);
            *self.kills_total.entry(cause).or_default() += 1;
            let target = known
                .get(&r.signal.target_pid)
                .and_then(|k| self.processes.get(k));
            let mem = target.and_then(|p| p.memory.as_ref());
            let target_cgroup = r
                .target_cgroup
                .clone()
                .or_else(|| target.and_then(|p| p.cgroup.clone()));
            let mut kill = SignalKill::from_record(r, cause, target.and_then(|p| p.rss_bytes));
            kill.target_cgroup = target_cgroup;
            kill.target_swap_bytes = mem.and_then(|m| m.swap);
            kill.target_oom_score = mem.and_then(|m| m.oom_score);
            kill.history = self.recorder.history_of(kill.target_pid);
            if cause == "sigkill" {
                self.begin_incident(incident::Kill::Signal(Box::new(kill.clone())), &known);
            }
            if self.recent_sigkills.len() == RECENT_OOMS {
                self.recent_sigkills.pop_front();
            }
            self.recent_sigkills.push_back(kill);
        }
    }

    /// Adds to an OOM kill what the model knew before it: the runner-up
    /// candidates by oom_score in the scope of the limit that was hit (the
    /// memcg for a memcg OOM, else the machine).
    fn explain_oom(&self, kill: &mut OomKill) {
        let scope = match kill.constraint {
            // The killer's memcg lies inside the one whose limit was hit.
            Some("memcg") => kill
                .constraint_cgroup
                .clone()
                .or_else(|| kill.killer_memcg.clone()),
            _ => None,
        };
        let prefix = scope.as_deref().map(|s| s.trim_end_matches('/'));
        let mut candidates: Vec<oom::OomCandidate> = self
            .processes
            .values()
            .filter(|p| !p.exited && p.key.pid != kill.pid)
            .filter(|p| {
                prefix.is_none_or(|pre| {
                    p.cgroup
                        .as_deref()
                        .is_some_and(|c| c == pre || c.starts_with(&format!("{pre}/")))
                })
            })
            .filter_map(|p| {
                Some(oom::OomCandidate {
                    pid: p.key.pid,
                    comm: p.comm.clone(),
                    oom_score: p.memory.as_ref()?.oom_score?,
                })
            })
            .collect();
        candidates.sort_by(|a, b| b.oom_score.cmp(&a.oom_score).then(a.pid.cmp(&b.pid)));
        candidates.truncate(3);
        kill.runner_ups = candidates;
    }

    /// Per cgroup, the live process with the highest oom_score.
    pub fn oom_candidates(&self) -> FastMap<String, oom::OomCandidate> {
        let mut out: FastMap<String, oom::OomCandidate> = FastMap::default();
        for p in self.processes.values().filter(|p| !p.exited) {
            let (Some(cg), Some(score)) = (
                p.cgroup.as_ref(),
                p.memory.as_ref().and_then(|m| m.oom_score),
            ) else {
                continue;
            };
            let better = out.get(cg).is_none_or(|c| score > c.oom_score);
            if better {
                out.insert(
                    cg.clone(),
                    oom::OomCandidate {
                        pid: p.key.pid,
                        comm: p.comm.clone(),
                        oom_score: score,
                    },
                );
            }
        }
        out
    }
}
