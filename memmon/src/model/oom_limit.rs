//! Which limit an OOM kill hit, decoded from what the kernel recorded at
//! the kill: its own `struct oom_control` (the `oom_constraint` probe), or
//! the page counters of the killing task's memory cgroup and its
//! ancestors (`oom_kill`). Pure: the collector resolves the memcg ids the
//! record names, and reads cgroup v2's `memory.events` where the record
//! tells nothing.

use memmon_common::{
    OomEvent,
    events::{
        OOM_CONTROL_READ, OOM_MEMCG, OOM_MEMCG_ID, OOM_MEMSW, OOM_PATH_MEMSW, OOM_PATH_READ,
        constraint,
    },
};

use crate::sample::{OomLimit, OomRecord};

/// The limit `r`'s kill hit: the kernel's record decoded
/// ([`kernel_limit`]), else what `memory.events` told the collector.
pub fn limit_of(r: &OomRecord, page_size: u64) -> Option<OomLimit> {
    kernel_limit(&r.event, page_size, r.memsw_limit, |id| {
        r.memcg_paths
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, path)| path.clone())
    })
    .or_else(|| r.events_limit.clone())
}

/// A page counter's `max` at or past `PAGE_COUNTER_MAX` (`LONG_MAX /
/// PAGE_SIZE`): no limit.
fn unlimited(max_pages: u64, page_size: u64) -> bool {
    max_pages >= (i64::MAX as u64) / page_size.max(1)
}

/// How close to its limit a page counter must be at an OOM kill to be the
/// one that was hit: a memcg OOM starts with less than the failed charge
/// (at most 8 pages) left, and other tasks may uncharge before the victim
/// is marked; 1% of the limit, and at least one charge batch (64 pages).
fn at_limit(usage_pages: u64, max_pages: u64) -> bool {
    max_pages.saturating_sub(usage_pages) <= (max_pages / 100).max(64)
}

/// The limit the kernel says an OOM kill hit, read at the kill (`None`
/// when it was not): the kernel's own `struct oom_control` where the
/// `oom_constraint` kprobe ran (source `oom_control`: its `memcg`, set
/// only for a memcg OOM, with that memcg's page counter, else its
/// `constraint`: global, cpuset, mempolicy); else the page counters of the
/// killing task's memcg and its ancestors (source `page_counter`): the
/// deepest one at its limit ([`at_limit`]) is the memcg OOM's, none at its
/// limit is a global OOM. `memsw`: cgroup v1, whose memory+swap counter is
/// a limit of its own (on v2 that slot counts swap alone). The memcg id is
/// resolved with `resolve`.
pub fn kernel_limit(
    e: &OomEvent,
    page_size: u64,
    memsw: bool,
    resolve: impl FnOnce(u64) -> Option<String>,
) -> Option<OomLimit> {
    let limited = |max: u64| !unlimited(max, page_size);
    let memcg = |id: Option<u64>, hit: Option<(u64, u64, &'static str)>, source| OomLimit {
        constraint: "memcg",
        source,
        cgroup: id.and_then(resolve),
        limit: hit.map(|(_, _, name)| name),
        limit_bytes: hit.map(|(_, max, _)| max.saturating_mul(page_size)),
        usage_bytes: hit.map(|(usage, _, _)| usage.saturating_mul(page_size)),
    };
    let global = |constraint, source| OomLimit {
        constraint,
        source,
        cgroup: None,
        limit: None,
        limit_bytes: None,
        usage_bytes: None,
    };
    if e.flags & OOM_CONTROL_READ != 0 {
        if e.flags & OOM_MEMCG == 0 {
            let constraint = match e.constraint {
                constraint::NONE => "global",
                constraint::CPUSET => "cpuset",
                constraint::MEMORY_POLICY => "mempolicy",
                _ => return None,
            };
            return Some(global(constraint, "oom_control"));
        }
        let memory = limited(e.memory_max_pages).then_some((
            e.memory_usage_pages,
            e.memory_max_pages,
            "max",
        ));
        let memsw = (memsw && e.flags & OOM_MEMSW != 0 && limited(e.memsw_max_pages)).then_some((
            e.memsw_usage_pages,
            e.memsw_max_pages,
            "memsw_max",
        ));
        let headroom = |(usage, max, _): (u64, u64, &str)| max.saturating_sub(usage);
        let hit = match (memory, memsw) {
            (Some(m), Some(s)) if headroom(s) < headroom(m) => Some(s),
            (m, s) => m.or(s),
        };
        let id = (e.flags & OOM_MEMCG_ID != 0).then_some(e.oom_memcg_id);
        return Some(memcg(id, hit, "oom_control"));
    }
    if e.flags & OOM_PATH_READ == 0 || e.path_levels == 0 {
        return None;
    }
    let memsw = memsw && e.flags & OOM_PATH_MEMSW != 0;
    let levels = e.path.iter().take(e.path_levels as usize);
    for level in levels {
        let hit = if limited(level.max_pages) && at_limit(level.usage_pages, level.max_pages) {
            Some((level.usage_pages, level.max_pages, "max"))
        } else if memsw
            && limited(level.memsw_max_pages)
            && at_limit(level.memsw_usage_pages, level.memsw_max_pages)
        {
            Some((level.memsw_usage_pages, level.memsw_max_pages, "memsw_max"))
        } else {
            None
        };
        if hit.is_some() {
            return Some(memcg(
                (level.id != 0).then_some(level.id),
                hit,
                "page_counter",
            ));
        }
    }
    Some(global("global", "page_counter"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::test_oom_event as oom_event;

    /// The kernel's oom_control decides: its memcg (with the counter that
    /// was at its limit), else its constraint; nothing when it was not
    /// read, never a guess.
    #[test]
    fn the_kernels_oom_control_decides_the_constraint() {
        use memmon_common::events::{OOM_CONTROL_READ, OOM_MEMCG, OOM_MEMCG_ID, OOM_MEMSW};
        let page = 4096;
        let unlimited = (i64::MAX as u64) / page;
        let mut e = oom_event("box");
        assert_eq!(
            kernel_limit(&e, page, true, |_| None),
            None,
            "not read: no guess"
        );
        // A global OOM started by a task whose memcg has a limit: global.
        e.flags |= OOM_CONTROL_READ;
        e.constraint = memmon_common::events::constraint::NONE;
        let l = kernel_limit(&e, page, true, |_| panic!("no memcg to resolve")).expect("read");
        assert_eq!(
            (l.constraint, l.source, l.cgroup),
            ("global", "oom_control", None)
        );
        e.constraint = memmon_common::events::constraint::CPUSET;
        assert_eq!(
            kernel_limit(&e, page, true, |_| None).map(|l| l.constraint),
            Some("cpuset")
        );
        // A memcg OOM: 64 MiB limit, usage at the kill 64 MiB minus 3 pages.
        e.flags |= OOM_MEMCG | OOM_MEMCG_ID;
        e.constraint = memmon_common::events::constraint::MEMCG;
        e.oom_memcg_id = 77;
        e.memory_max_pages = 16384;
        e.memory_usage_pages = 16381;
        let l = kernel_limit(&e, page, true, |id| (id == 77).then(|| "/box".to_string()))
            .expect("read");
        assert_eq!(l.constraint, "memcg");
        assert_eq!(l.cgroup.as_deref(), Some("/box"));
        assert_eq!((l.limit, l.limit_bytes), (Some("max"), Some(64 << 20)));
        assert_eq!(l.usage_bytes, Some((64 << 20) - 3 * 4096));
        // v1 memsw: an unlimited memory counter, memory+swap at its limit.
        e.flags |= OOM_MEMSW;
        e.memory_max_pages = unlimited;
        e.memsw_max_pages = 8192;
        e.memsw_usage_pages = 8190;
        let l = kernel_limit(&e, page, true, |_| None).expect("read");
        assert_eq!(
            (l.limit, l.limit_bytes),
            (Some("memsw_max"), Some(32 << 20))
        );
        assert_eq!(l.cgroup, None, "an id that does not resolve");
        // Both limited: the one with less headroom was hit.
        e.memory_max_pages = 16384;
        e.memory_usage_pages = 9000;
        let limit =
            |e: &OomEvent, memsw| kernel_limit(e, page, memsw, |_| None).and_then(|l| l.limit);
        assert_eq!(limit(&e, true), Some("memsw_max"));
        // On v2 that slot counts swap alone (swap.max 0 is no memory limit).
        assert_eq!(limit(&e, false), Some("max"));
        e.memory_usage_pages = 16384;
        assert_eq!(limit(&e, true), Some("max"));
    }

    /// Without the kprobe, the page counters of the killer's memcg path at
    /// the kill decide: the deepest at its limit, else global (a limited
    /// memcg well below its limit does not make a memcg OOM).
    #[test]
    fn the_page_counters_at_the_kill_decide_without_oom_control() {
        use memmon_common::events::{MemcgLevel, OOM_PATH_MEMSW, OOM_PATH_READ};
        let page = 4096;
        let unlimited = (i64::MAX as u64) / page;
        let level = |id, usage, max| MemcgLevel {
            id,
            usage_pages: usage,
            max_pages: max,
            memsw_usage_pages: usage,
            memsw_max_pages: unlimited,
        };
        let mut e = oom_event("box");
        e.flags |= OOM_PATH_READ;
        // The killer's memcg (64 MiB limit) at 2.25 MiB, its parent
        // unlimited, the root: a global OOM.
        e.path_levels = 3;
        e.path[0] = level(10, 576, 16384);
        e.path[1] = level(11, 100_000, unlimited);
        e.path[2] = level(1, 200_000, unlimited);
        let l = kernel_limit(&e, page, false, |_| panic!("nothing to resolve")).expect("read");
        assert_eq!((l.constraint, l.source), ("global", "page_counter"));
        // The memcg at its limit (64 pages short: a charge batch).
        e.path[0].usage_pages = 16384 - 64;
        let l = kernel_limit(&e, page, false, |id| Some(format!("/id-{id}"))).expect("read");
        assert_eq!(
            (l.constraint, l.cgroup.as_deref()),
            ("memcg", Some("/id-10"))
        );
        assert_eq!(
            (l.limit_bytes, l.usage_bytes),
            (Some(64 << 20), Some((64 << 20) - (64 << 12)))
        );
        // Its parent's limit was hit, not its own.
        e.path[0].usage_pages = 8000;
        e.path[1].max_pages = 100_050;
        let l = kernel_limit(&e, page, false, |id| Some(format!("/id-{id}"))).expect("read");
        assert_eq!(l.cgroup.as_deref(), Some("/id-11"));
        // v1 memory+swap at its limit, the memory counter below.
        e.path[1].max_pages = unlimited;
        e.flags |= OOM_PATH_MEMSW;
        e.path[0].memsw_usage_pages = 16380;
        e.path[0].memsw_max_pages = 16384;
        let l = kernel_limit(&e, page, true, |id| Some(format!("/id-{id}"))).expect("read");
        assert_eq!(
            (l.cgroup.as_deref(), l.limit),
            (Some("/id-10"), Some("memsw_max"))
        );
        // ... which on v2 is swap alone: not a memory limit.
        let l = kernel_limit(&e, page, false, |_| None).expect("read");
        assert_eq!(l.constraint, "global");
        // Nothing read: nothing said.
        e.flags &= !OOM_PATH_READ;
        assert_eq!(kernel_limit(&e, page, true, |_| None), None);
    }
}
