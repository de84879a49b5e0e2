//! How the model makes a post-mortem ([`super::incident::Incident`]): an
//! OOM kill or a userspace SIGKILL applied begins one with what the model
//! held just before (the victim, the cgroup's last reading, the system's
//! PSI, the trigger the kernel names); [`Model::complete_incidents`], at
//! the end of the same pass (after the cgroups and the system were read
//! again), adds the readings after the kill, the histories, the fastest
//! grower and the findings of a minute before.

use std::{collections::HashMap, sync::Arc};

use super::{
    Model, Now, ProcessKey,
    history::CgroupHistorySample,
    incident::{self, CgroupAtKill, Incident, Kill, Pending, PsiReading, Sender, Trigger, Victim},
};

/// Kills begun and not completed kept at most (a caller that applies
/// samples without completing them, such as `memmon snapshot`, holds no
/// more than this).
const MAX_PENDING: usize = 64;

/// bytes in a kB.
const KB: u64 = 1024;

impl Model {
    /// Begins the post-mortem of `kill` (`known`: the model's process for
    /// each pid of this sample's kills). A SIGKILL beyond
    /// [`incident::SIGKILLS_PER_MINUTE`] is counted, not assembled.
    pub(super) fn begin_incident(&mut self, kill: Kill, known: &HashMap<u32, ProcessKey>) {
        if self.pending_incidents.len() >= MAX_PENDING {
            self.incidents_skipped += 1;
            return;
        }
        let (pid, boot_ns) = match &kill {
            Kill::Oom(k) => (k.pid, k.boot_ns),
            Kill::Signal(s) => (s.target_pid, s.boot_ns),
        };
        if let Kill::Signal(_) = kill {
            let minute_ago = boot_ns.saturating_sub(60_000_000_000);
            while self
                .sigkill_incidents
                .front()
                .is_some_and(|t| *t < minute_ago)
            {
                self.sigkill_incidents.pop_front();
            }
            if self.sigkill_incidents.len() >= incident::SIGKILLS_PER_MINUTE {
                self.incidents_skipped += 1;
                return;
            }
            self.sigkill_incidents.push_back(boot_ns);
        }
        let p = known.get(&pid).and_then(|k| self.processes.get(k));
        let mem = p.and_then(|p| p.memory.as_ref());
        let (victim, cgroup, kernel_trigger) = match &kill {
            Kill::Oom(k) => {
                let rss = [k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb];
                let victim = Victim {
                    pid: k.pid,
                    comm: k.comm.clone(),
                    uid: Some(k.uid),
                    cgroup: k.cgroup.clone(),
                    rss_bytes: Some(rss.iter().sum::<u64>() * KB),
                    anon_rss_bytes: Some(k.anon_rss_kb * KB),
                    file_rss_bytes: Some(k.file_rss_kb * KB),
                    shmem_rss_bytes: Some(k.shmem_rss_kb * KB),
                    rss_source: Some("oom:mark_victim".into()),
                    swap_bytes: mem.and_then(|m| m.swap),
                    oom_score: mem.and_then(|m| m.oom_score),
                    oom_score_adj: Some(i64::from(k.oom_score_adj)),
                };
                let cgroup = match k.constraint {
                    Some("memcg") => k.constraint_cgroup.clone().or_else(|| k.cgroup.clone()),
                    _ => k.cgroup.clone(),
                };
                let killer_is_kthread = self
                    .live
                    .get(&k.killer_pid)
                    .and_then(|key| self.processes.get(key))
                    .is_some_and(|p| p.vm_bytes == Some(0));
                (
                    victim,
                    cgroup,
                    incident::kernel_trigger(k, killer_is_kthread),
                )
            }
            Kill::Signal(s) => {
                let victim = Victim {
                    pid: s.target_pid,
                    comm: s.target_comm.clone(),
                    uid: p.and_then(|p| p.uid),
                    cgroup: s.target_cgroup.clone(),
                    rss_bytes: s.target_rss_bytes,
                    rss_source: s.target_rss_bytes.map(|_| "last sample".into()),
                    swap_bytes: s.target_swap_bytes,
                    oom_score: s.target_oom_score,
                    oom_score_adj: mem.and_then(|m| m.oom_score_adj),
                    ..Default::default()
                };
                (victim, s.target_cgroup.clone(), None)
            }
        };
        let cgroup_before = cgroup.as_deref().and_then(|path| {
            let st = self.cgroups.get(path)?;
            Some(CgroupHistorySample::from_sample(
                self.last_pass_unix_ms,
                &st.sample,
            ))
        });
        let psi_before = self
            .system
            .as_ref()
            .and_then(|s| s.sample.psi.as_ref())
            .map(PsiReading::from);
        self.pending_incidents.push(Pending {
            kill,
            victim,
            cgroup,
            cgroup_before,
            psi_before,
            kernel_trigger,
        });
    }

    /// Completes the incidents this sample's kills began (the cgroups and
    /// the system were read after the kills), given the clocks of the
    /// sample (the kernel's timestamps are on the boot clock).
    pub(super) fn complete_incidents(&mut self, now: Now) {
        let pending = std::mem::take(&mut self.pending_incidents);
        for p in pending {
            let done = self.complete(p, now.unix_ms, now.boot_ns);
            self.completed_incidents.push(done);
        }
    }

    /// The incidents completed since the last call, for what the model
    /// cannot add (the daemon's growth stacks, the findings of a minute
    /// before); hand them back with [`Model::push_incidents`].
    pub fn take_completed_incidents(&mut self) -> Vec<Incident> {
        std::mem::take(&mut self.completed_incidents)
    }

    fn complete(&self, p: Pending, now_unix_ms: u64, now_boot_ns: u64) -> Incident {
        let boot_ns = match &p.kill {
            Kill::Oom(k) => k.boot_ns,
            Kill::Signal(s) => s.boot_ns,
        };
        let unix_ms = incident::unix_ms_of(boot_ns, now_unix_ms, now_boot_ns);
        let after = p.cgroup.as_deref().and_then(|path| {
            let st = self.cgroups.get(path)?;
            Some(CgroupHistorySample::from_sample(now_unix_ms, &st.sample))
        });
        let last_reading = |path: &str| CgroupAtKill {
            path: path.to_string(),
            limit: Some("max".into()),
            limit_bytes: p.cgroup_before.and_then(|b| b.limit_bytes),
            usage_bytes: p.cgroup_before.and_then(|b| b.usage_bytes),
            source: "last reading".into(),
        };
        let (kind, constraint, constraint_source, cgroup, runner_ups, sender) = match &p.kill {
            Kill::Oom(k) => {
                let from_kernel = k.constraint == Some("memcg") && k.limit_bytes.is_some();
                let cgroup = p.cgroup.as_deref().map(|path| {
                    if from_kernel {
                        CgroupAtKill {
                            path: path.to_string(),
                            limit: k.constraint_limit.map(str::to_string),
                            limit_bytes: k.limit_bytes,
                            usage_bytes: k.usage_bytes,
                            source: match k.constraint_source {
                                Some("memory.events") => "memory.events (read after the kill)",
                                _ => "kernel at the kill",
                            }
                            .into(),
                        }
                    } else {
                        last_reading(path)
                    }
                });
                (
                    incident::OOM_KILL,
                    k.constraint.map(str::to_string),
                    k.constraint_source.map(str::to_string),
                    cgroup,
                    k.runner_ups.clone(),
                    None,
                )
            }
            Kill::Signal(s) => (
                incident::SIGKILL,
                None,
                None,
                p.cgroup.as_deref().map(last_reading),
                Vec::new(),
                Some(Sender {
                    pid: s.sender_pid,
                    comm: s.sender_comm.clone(),
                    cgroup: s.sender_cgroup.clone(),
                }),
            ),
        };
        // The grower's scope: the cgroup whose limit was hit (or the
        // SIGKILL target's); the machine for a global OOM.
        let scope = match (&p.kill, constraint.as_deref()) {
            (Kill::Oom(_), Some("memcg")) | (Kill::Signal(_), _) => p.cgroup.as_deref(),
            _ => None,
        };
        let grower = self.fastest_grower(&p.victim, scope, unix_ms, now_unix_ms, now_boot_ns);
        let trigger = match (&p.kill, p.kernel_trigger, &grower) {
            (Kill::Signal(_), ..) => None,
            (_, Some(t), _) => Some(t),
            (_, None, Some(g)) => Some(Trigger {
                pid: g.pid,
                comm: g.comm.clone(),
                cgroup: g.cgroup.clone(),
                basis: "inferred".into(),
                why: format!(
                    "it grew the most in {} in the {:.0} s before (+{} MiB); the kernel's record \
                     names no allocator inside the cgroup",
                    scope.unwrap_or("the machine"),
                    g.seconds,
                    g.grew_bytes >> 20
                ),
            }),
            _ => None,
        };
        let victim_ring = self.recorder.ring_of(p.victim.pid);
        let cgroup_ring = p
            .cgroup
            .as_deref()
            .and_then(|c| self.recorder.cgroup_ring(c));
        Incident {
            id: incident::id(unix_ms, p.victim.pid),
            kind: kind.into(),
            unix_ms,
            boot_ns,
            constraint,
            constraint_source,
            cgroup,
            trigger,
            grower,
            sender,
            runner_ups,
            victim_history: victim_ring.map(|r| r.until(unix_ms)).unwrap_or_default(),
            cgroup_history: cgroup_ring.map(|r| r.until(unix_ms)).unwrap_or_default(),
            around: incident::Around {
                cgroup_before: p.cgroup_before,
                cgroup_after: after,
                system_psi_before: p.psi_before,
                system_psi_after: self
                    .system
                    .as_ref()
                    .and_then(|s| s.sample.psi.as_ref())
                    .map(PsiReading::from),
            },
            growth_stacks: None,
            findings_before: None,
            victim: p.victim,
        }
    }

    /// The process of `scope` (None: the machine) that grew the most in
    /// the minute up to the kill at `kill_ms`: from its first sample of
    /// that minute (0 when born in it) to the victim's size at death, or
    /// another's size as read in this pass (a process born and grown
    /// between two samples is still seen).
    fn fastest_grower(
        &self,
        victim: &Victim,
        scope: Option<&str>,
        kill_ms: u64,
        now_unix_ms: u64,
        now_boot_ns: u64,
    ) -> Option<incident::Grower> {
        let tps = self.host.map_or(100, |h| h.ticks_per_second).max(1);
        let candidates = self.processes.values().filter_map(|p| {
            let cgroup = p.cgroup.as_deref();
            if let Some(scope) = scope
                && !cgroup.is_some_and(|c| incident::within(c, scope))
            {
                return None;
            }
            let to = if p.key.pid == victim.pid {
                (kill_ms, victim.rss_bytes?)
            } else if p.exited {
                return None;
            } else {
                (now_unix_ms, p.rss_bytes?)
            };
            let born_ms = (p.key.start_time_ticks > 0).then(|| {
                let boot_ns = p.key.start_time_ticks.saturating_mul(1_000_000_000) / tps;
                incident::unix_ms_of(boot_ns, now_unix_ms, now_boot_ns)
            });
            let ring = self.recorder.ring(&p.key);
            let from = incident::growth_start(ring, born_ms, kill_ms)?;
            Some(incident::Growth {
                pid: p.key.pid,
                comm: &p.comm,
                cgroup,
                from,
                to,
            })
        });
        incident::fastest_grower(candidates, scope)
    }

    /// The processes the model holds in `cgroup` or below it (live, and
    /// those that exited in this pass), with their cgroup.
    pub fn members_of(&self, cgroup: &str) -> Vec<(u32, String)> {
        self.processes
            .values()
            .filter_map(|p| {
                let c = p.cgroup.as_deref()?;
                incident::within(c, cgroup).then(|| (p.key.pid, c.to_string()))
            })
            .collect()
    }

    /// Keeps completed incidents (the newest [`incident::RECENT`]) and
    /// counts them by kind.
    pub fn push_incidents(&mut self, done: Vec<Incident>) {
        for i in done {
            let kind = if i.kind == incident::OOM_KILL {
                incident::OOM_KILL
            } else {
                incident::SIGKILL
            };
            *self.incidents_total.entry(kind).or_default() += 1;
            if self.incidents.len() == incident::RECENT {
                self.incidents.pop_front();
            }
            self.incidents.push_back(Arc::new(i));
        }
    }
}
