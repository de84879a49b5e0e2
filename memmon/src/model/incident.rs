//! The post-mortem of a kill (an OOM kill, or a SIGKILL from userspace):
//! who died and what it held, the cgroup's limit and usage, what triggered
//! it (the task the kernel says was allocating, else the fastest grower,
//! named as an inference), the last minutes of the victim and its cgroup
//! from the flight recorder, memory.events and PSI around the kill, the
//! cgroup's top growth stacks (daemon `--profile`), and the findings
//! `memmon explain` would have given a minute before. Pure: assembled from
//! the model when the kill is applied ([`Pending`]) and completed after
//! the same pass has read the cgroups and the system again.

use serde::{Deserialize, Serialize};

use super::{
    OomKill, SignalKill,
    history::{CgroupHistorySample, HistorySample, Ring},
    published::OomCandidate,
};

/// Incidents the model keeps in memory (the store keeps every one).
pub const RECENT: usize = 32;
/// SIGKILL post-mortems assembled per minute at most (a `kill -9` of a
/// whole process group must not flood the store); the rest are counted.
pub const SIGKILLS_PER_MINUTE: usize = 30;
/// The window the fastest grower is measured over, ms.
pub const GROWER_WINDOW_MS: u64 = 60_000;
/// How long before the kill the findings are taken, ms.
pub const FINDINGS_BEFORE_MS: u64 = 60_000;
/// How much history those findings judge (as `memmon explain`'s default
/// `--window`), ms.
pub const FINDINGS_WINDOW_MS: u64 = 120_000;

/// The `kind` of an OOM kill's incident.
pub const OOM_KILL: &str = "oom_kill";
/// The `kind` of a userspace SIGKILL's incident.
pub const SIGKILL: &str = "sigkill";

/// One post-mortem.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Incident {
    /// `<unix seconds of the kill>-<victim pid>`.
    pub id: String,
    /// `oom_kill` or `sigkill`.
    pub kind: String,
    /// Time of the kill, Unix ms (from the kernel's timestamp).
    pub unix_ms: u64,
    /// Time of the kill, ns since boot (CLOCK_BOOTTIME).
    pub boot_ns: u64,
    /// Who died.
    pub victim: Victim,
    /// What limit the OOM kill hit: `memcg`, `global`, `cpuset`,
    /// `mempolicy` (None: a SIGKILL, or no source could tell).
    pub constraint: Option<String>,
    /// Who says so: `oom_control`, `page_counter`, `memory.events`.
    pub constraint_source: Option<String>,
    /// The memory cgroup of the incident: the one whose limit an OOM kill
    /// hit, else the victim's.
    pub cgroup: Option<CgroupAtKill>,
    /// What made the kernel kill (OOM kills only).
    pub trigger: Option<Trigger>,
    /// The process of the cgroup (the machine, for a global OOM) whose
    /// resident set grew the most in the minute before the kill.
    pub grower: Option<Grower>,
    /// Who sent the SIGKILL (SIGKILL incidents only).
    pub sender: Option<Sender>,
    /// The next processes the kernel would have killed, by oom_score.
    pub runner_ups: Vec<OomCandidate>,
    /// The victim's samples before the kill, oldest first.
    pub victim_history: Vec<HistorySample>,
    /// The cgroup's samples before the kill, oldest first.
    pub cgroup_history: Vec<CgroupHistorySample>,
    /// The cgroup's files and the system's PSI just before and just after.
    pub around: Around,
    /// The cgroup's heaviest page-fault stacks in the minute before (None:
    /// the daemon runs without `--profile`).
    pub growth_stacks: Option<GrowthStacks>,
    /// What `memmon explain` would have said about the victim a minute
    /// before the kill: its report (`model::explain::Report`) as JSON, so
    /// this record does not tie the model's incidents to the engine, which
    /// reads publications, which carry incidents. None: no history of the
    /// victim then (the daemon adds it:
    /// `pipeline::IncidentExtras::findings_before`).
    pub findings_before: Option<serde_json::Value>,
}

/// The process killed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Victim {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Owner uid, when known.
    pub uid: Option<u32>,
    /// Memory cgroup path.
    pub cgroup: Option<String>,
    /// Resident set at death, bytes (OOM: the kernel's record at the kill;
    /// SIGKILL: its last sample).
    pub rss_bytes: Option<u64>,
    /// Anonymous resident memory at the kill, bytes (OOM kills).
    pub anon_rss_bytes: Option<u64>,
    /// File-backed resident memory at the kill, bytes (OOM kills).
    pub file_rss_bytes: Option<u64>,
    /// Shared-memory resident memory at the kill, bytes (OOM kills).
    pub shmem_rss_bytes: Option<u64>,
    /// Where `rss_bytes` comes from: `oom:mark_victim` or `last sample`.
    pub rss_source: Option<String>,
    /// Swap at its last sample, bytes.
    pub swap_bytes: Option<u64>,
    /// /proc/PID/oom_score at its last sample.
    pub oom_score: Option<i64>,
    /// oom_score_adj (the kernel's record for OOM kills).
    pub oom_score_adj: Option<i64>,
}

/// The cgroup's limit and usage at the kill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CgroupAtKill {
    /// Memory cgroup path.
    pub path: String,
    /// Which limit: `max` or `memsw_max` (as
    /// `memmon_cgroup_memory_limit_bytes` labels them).
    pub limit: Option<String>,
    /// The limit, bytes.
    pub limit_bytes: Option<u64>,
    /// Its usage, bytes.
    pub usage_bytes: Option<u64>,
    /// Where both come from: `kernel at the kill` (the page counter the
    /// oom probe read), `memory.events` (read after), or `last reading`
    /// (the cgroup's files just before).
    pub source: String,
}

/// The task behind an OOM kill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trigger {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Its memory cgroup, when known.
    pub cgroup: Option<String>,
    /// `kernel` (oom:mark_victim ran in this task, charging memory inside
    /// the cgroup whose limit was hit, or allocating in a global OOM) or
    /// `inferred` (the fastest grower: the kernel's task was not an
    /// allocator of the cgroup, or unknown).
    pub basis: String,
    /// Why, in a sentence.
    pub why: String,
}

/// The fastest grower before the kill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grower {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Its memory cgroup, when known.
    pub cgroup: Option<String>,
    /// Resident set growth over `seconds`, bytes.
    pub grew_bytes: i64,
    /// Seconds the growth spans (at most a minute).
    pub seconds: f64,
    /// Growth per second.
    pub bytes_per_second: f64,
}

/// The SIGKILL's sender.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sender {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Its memory cgroup, when known.
    pub cgroup: Option<String>,
}

/// The cgroup's files and the system's PSI just before and just after the
/// kill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Around {
    /// The cgroup's last reading before the kill.
    pub cgroup_before: Option<CgroupHistorySample>,
    /// Its first reading after.
    pub cgroup_after: Option<CgroupHistorySample>,
    /// /proc/pressure/memory before.
    pub system_psi_before: Option<PsiReading>,
    /// /proc/pressure/memory after.
    pub system_psi_after: Option<PsiReading>,
}

/// One /proc/pressure/memory reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsiReading {
    /// `some avg10`, percent.
    pub some_avg10: f64,
    /// `some avg60`, percent.
    pub some_avg60: f64,
    /// `full avg10`, percent.
    pub full_avg10: f64,
    /// `some total`, µs.
    pub some_total_us: u64,
    /// `full total`, µs.
    pub full_total_us: u64,
}

impl From<&crate::sample::system::Psi> for PsiReading {
    fn from(p: &crate::sample::system::Psi) -> Self {
        PsiReading {
            some_avg10: p.some_avg10,
            some_avg60: p.some_avg60,
            full_avg10: p.full_avg10,
            some_total_us: p.some_total_us,
            full_total_us: p.full_total_us,
        }
    }
}

/// The cgroup's heaviest page-fault stacks before the kill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrowthStacks {
    /// Seconds the samples cover.
    pub seconds: u64,
    /// Faults per sample.
    pub period: u64,
    /// All the cgroup's sampled faults.
    pub total_faults: i64,
    /// Heaviest first.
    pub stacks: Vec<GrowthStack>,
}

/// One stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrowthStack {
    /// Faults (samples × period): pages it touched first.
    pub faults: i64,
    /// Share of the cgroup's sampled faults.
    pub share: f64,
    /// Innermost user frames, leaf first.
    pub frames: Vec<String>,
}

/// A short form of an incident (`/api/v1/incidents`, the snapshot's
/// `incidents`, `memmon incidents`, `top`'s events pane): the same keys as
/// the incident's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// See [`Incident::id`].
    pub id: String,
    /// See [`Incident::kind`].
    pub kind: String,
    /// See [`Incident::unix_ms`].
    pub unix_ms: u64,
    /// The victim's pid.
    pub pid: u32,
    /// The victim's comm.
    pub comm: String,
    /// The incident's cgroup (see [`Incident::cgroup`]).
    pub cgroup: Option<String>,
    /// Its limit, bytes.
    pub limit_bytes: Option<u64>,
    /// The victim's resident set at death, bytes.
    pub rss_bytes: Option<u64>,
    /// The trigger (OOM) or the sender (SIGKILL): `pid (comm)`.
    pub by: Option<String>,
    /// `kernel`, `inferred` or `sender`.
    pub by_basis: Option<String>,
}

impl Incident {
    /// Its short form.
    pub fn summary(&self) -> Summary {
        let (by, by_basis) = match (&self.trigger, &self.sender) {
            (Some(t), _) => (
                Some(format!("{} ({})", t.pid, t.comm)),
                Some(t.basis.clone()),
            ),
            (None, Some(s)) => (
                Some(format!("{} ({})", s.pid, s.comm)),
                Some("sender".to_string()),
            ),
            _ => (None, None),
        };
        Summary {
            id: self.id.clone(),
            kind: self.kind.clone(),
            unix_ms: self.unix_ms,
            pid: self.victim.pid,
            comm: self.victim.comm.clone(),
            cgroup: self
                .cgroup
                .as_ref()
                .map(|c| c.path.clone())
                .or_else(|| self.victim.cgroup.clone()),
            limit_bytes: self.cgroup.as_ref().and_then(|c| c.limit_bytes),
            rss_bytes: self.victim.rss_bytes,
            by,
            by_basis,
        }
    }
}

/// What the kill record itself says, before the pass completes it.
#[derive(Clone, Debug)]
pub enum Kill {
    /// An OOM kill.
    Oom(Box<OomKill>),
    /// A SIGKILL from userspace.
    Signal(Box<SignalKill>),
}

/// An incident begun when its kill was applied: what the model held then
/// (the last readings before the kill), completed at the end of the pass.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The kill.
    pub kill: Kill,
    /// The victim as the model last knew it.
    pub victim: Victim,
    /// The incident's cgroup path.
    pub cgroup: Option<String>,
    /// Its last reading before the kill.
    pub cgroup_before: Option<CgroupHistorySample>,
    /// The system's PSI before the kill.
    pub psi_before: Option<PsiReading>,
    /// The trigger the kernel names, when it does.
    pub kernel_trigger: Option<Trigger>,
}

/// True when `path` is `scope` or below it.
pub fn within(path: &str, scope: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    scope.is_empty() || path == scope || path.starts_with(&format!("{scope}/"))
}

/// The trigger an OOM kill's record names: the task oom:mark_victim ran
/// in (`killer`), when it charged memory where the limit was hit (its
/// memcg inside the constraint cgroup; any task for a global OOM). None
/// when it is a kernel thread or outside that cgroup (a write to
/// memory.max, a remote charge): then the trigger is inferred.
pub fn kernel_trigger(k: &OomKill, killer_is_kernel_thread: bool) -> Option<Trigger> {
    if k.killer_pid == 0 || killer_is_kernel_thread {
        return None;
    }
    let scope = match k.constraint {
        Some("memcg") => Some(k.constraint_cgroup.as_deref()?),
        Some(_) => None,
        None => return None,
    };
    let why = match scope {
        Some(scope) => {
            let killer_cg = k.killer_memcg.as_deref()?;
            if !within(killer_cg, scope) {
                return None;
            }
            if k.killer_pid == k.pid {
                format!(
                    "the victim itself was charging memory to {scope} when its limit was hit \
                     (oom:mark_victim ran in it)"
                )
            } else {
                format!(
                    "it was charging memory to {scope} when its limit was hit (oom:mark_victim \
                     ran in it)"
                )
            }
        }
        None => format!(
            "it was allocating when the machine ran out of memory ({}; oom:mark_victim ran in it)",
            k.constraint.unwrap_or("global")
        ),
    };
    Some(Trigger {
        pid: k.killer_pid,
        comm: k.killer_comm.clone(),
        cgroup: k.killer_memcg.clone(),
        basis: "kernel".into(),
        why,
    })
}

/// A process's resident set at two moments, for [`fastest_grower`].
#[derive(Clone, Debug, PartialEq)]
pub struct Growth<'a> {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: &'a str,
    /// Its memory cgroup.
    pub cgroup: Option<&'a str>,
    /// (Unix ms, bytes) at the start: its first sample of the window, or
    /// 0 when it was born in the window.
    pub from: (u64, u64),
    /// (Unix ms, bytes) at the end: at the kill (the victim), else as read
    /// in the pass that saw the kill.
    pub to: (u64, u64),
}

/// Where a process's growth over the window that ends at `until_ms`
/// starts: 0 at its birth when it was born in the window, else its first
/// sample at or after the window's start; None when neither is known.
pub fn growth_start(
    ring: Option<&Ring<HistorySample>>,
    born_ms: Option<u64>,
    until_ms: u64,
) -> Option<(u64, u64)> {
    let from = until_ms.saturating_sub(GROWER_WINDOW_MS);
    if let Some(born) = born_ms
        && born >= from
    {
        return Some((born, 0));
    }
    ring?
        .until(until_ms)
        .into_iter()
        .find(|s| s.unix_ms >= from)
        .and_then(|s| Some((s.unix_ms, s.rss_bytes?)))
}

/// The process of `candidates` inside `scope` (None: every one) whose
/// resident set grew the most; None when none grew.
pub fn fastest_grower<'a>(
    candidates: impl IntoIterator<Item = Growth<'a>>,
    scope: Option<&str>,
) -> Option<Grower> {
    let mut best: Option<Grower> = None;
    for c in candidates {
        if let Some(scope) = scope
            && !c.cgroup.is_some_and(|cg| within(cg, scope))
        {
            continue;
        }
        let grew = c.to.1 as i64 - c.from.1 as i64;
        // At least a millisecond: a process born in the pass of the kill.
        let seconds = c.to.0.saturating_sub(c.from.0).max(1) as f64 / 1000.0;
        if grew <= 0 {
            continue;
        }
        if best.as_ref().is_none_or(|g| grew > g.grew_bytes) {
            best = Some(Grower {
                pid: c.pid,
                comm: c.comm.to_string(),
                cgroup: c.cgroup.map(str::to_string),
                grew_bytes: grew,
                seconds,
                bytes_per_second: grew as f64 / seconds,
            });
        }
    }
    best
}

/// The incident id of a kill of `pid` at Unix ms `unix_ms`.
pub fn id(unix_ms: u64, pid: u32) -> String {
    format!("{}-{pid}", unix_ms / 1000)
}

/// The Unix time of a kernel timestamp, given the clocks now.
pub fn unix_ms_of(boot_ns: u64, now_unix_ms: u64, now_boot_ns: u64) -> u64 {
    now_unix_ms.saturating_sub(now_boot_ns.saturating_sub(boot_ns) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom(constraint: Option<&'static str>, killer_memcg: &str, killer: u32) -> OomKill {
        OomKill {
            kind: "oom_kill",
            boot_ns: 0,
            pid: 7,
            comm: "victim".into(),
            uid: 0,
            oom_score_adj: 0,
            total_vm_kb: 0,
            anon_rss_kb: 0,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            pgtables_kb: 0,
            cgroup: Some("/pod/a".into()),
            killer_memcg: Some(killer_memcg.into()),
            killer_pid: killer,
            killer_tid: killer,
            killer_comm: "grower".into(),
            killer_cgroup_id: 0,
            constraint,
            constraint_source: Some("page_counter"),
            constraint_cgroup: Some("/pod".into()),
            constraint_limit: Some("max"),
            limit_bytes: Some(256 << 20),
            usage_bytes: Some(256 << 20),
            runner_ups: Vec::new(),
            history: Vec::new(),
        }
    }

    #[test]
    fn the_kernel_names_the_trigger_only_from_inside_the_cgroup() {
        let t = kernel_trigger(&oom(Some("memcg"), "/pod/b", 9), false).expect("inside");
        assert_eq!((t.pid, t.basis.as_str()), (9, "kernel"));
        assert!(t.why.contains("charging memory to /pod"), "{}", t.why);
        // A write to memory.max from outside, a kernel thread, no
        // constraint known: inferred instead.
        assert!(kernel_trigger(&oom(Some("memcg"), "/system.slice", 9), false).is_none());
        assert!(kernel_trigger(&oom(Some("memcg"), "/pod/b", 9), true).is_none());
        assert!(kernel_trigger(&oom(None, "/pod/b", 9), false).is_none());
        let g = kernel_trigger(&oom(Some("global"), "/x", 9), false).expect("global");
        assert!(g.why.contains("machine ran out"), "{}", g.why);
        let own = kernel_trigger(&oom(Some("memcg"), "/pod/a", 7), false).expect("itself");
        assert!(own.why.contains("the victim itself"), "{}", own.why);
        assert!(!within("/podx", "/pod") && within("/pod/x", "/pod/") && within("/a", "/"));
    }

    #[test]
    fn the_fastest_grower_of_the_scope_over_the_last_minute() {
        let ring = |rss: &[(u64, u64)]| {
            let mut r = Ring::default();
            for &(t, b) in rss {
                r.push(HistorySample {
                    unix_ms: t * 1000,
                    rss_bytes: Some(b << 20),
                    ..Default::default()
                });
            }
            r
        };
        let until = 130_000;
        // Grew 100 MiB long ago, flat in the last minute.
        let old = ring(&[(0, 0), (10, 100), (70, 100), (130, 100)]);
        assert_eq!(
            growth_start(Some(&old), Some(0), until),
            Some((70_000, 100 << 20))
        );
        // Born 2 s before the kill, never sampled: from 0 at its birth.
        assert_eq!(growth_start(None, Some(128_000), until), Some((128_000, 0)));
        assert_eq!(growth_start(None, Some(0), until), None, "unknown start");
        let g = |pid, cgroup, from: (u64, u64), to_mib: u64| Growth {
            pid,
            comm: "x",
            cgroup: Some(cgroup),
            from: (from.0 * 1000, from.1 << 20),
            to: (until, to_mib << 20),
        };
        let grower = fastest_grower(
            [
                g(1, "/pod/a", (70, 100), 100),
                // 40 MiB in the last minute.
                g(2, "/pod/b", (70, 10), 50),
                // Born at 128 s, 74 MiB by the kill: the spike.
                g(4, "/pod/b", (128, 0), 74),
                // 90 MiB, outside the scope.
                g(3, "/other", (70, 0), 90),
            ],
            Some("/pod"),
        )
        .expect("a grower");
        assert_eq!((grower.pid, grower.grew_bytes), (4, 74 << 20));
        assert!((grower.seconds - 2.0).abs() < 1e-9);
        let any = fastest_grower([g(3, "/other", (70, 0), 90)], None);
        assert_eq!(any.map(|g| g.pid), Some(3));
        assert!(fastest_grower([g(1, "/a", (70, 100), 100)], None).is_none());
    }

    #[test]
    fn ids_and_kernel_times() {
        assert_eq!(id(1_733_512_345_678, 42), "1733512345-42");
        // Killed 2.5 s before now.
        assert_eq!(unix_ms_of(7_500_000_000, 100_000, 10_000_000_000), 97_500);
    }
}
