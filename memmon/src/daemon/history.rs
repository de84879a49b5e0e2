//! `/api/v1/history?pid=N | cgroup=PATH | unit=NAME [&seconds=S]`: the
//! target's recent points from the daemon's history
//! (`model::explain::history`) as publication-shaped frames (the
//! `/api/v1/snapshot` keys, only the values the findings engine reads),
//! then the latest publication's rows of the target and of its cgroup's
//! processes (with every field, the sources and the system view), and,
//! with `--profile`, the target's heaviest growth stacks. `memmon explain
//! --connect` judges exactly this.

use serde_json::{Value, json};

use super::profile_query::{Format, Kind, ProfileQuery, decode};
use crate::model::{
    explain::{
        Target,
        evidence::{GrowthStack, under},
        history::History,
    },
    profile_window::Filter,
    published::Published,
};

/// The path.
pub const HISTORY_PATH: &str = "/api/v1/history";
/// Growth stacks in an answer.
pub const STACKS: usize = 5;

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Whose history.
    pub target: Target,
    /// Seconds back from now.
    pub seconds: u64,
}

/// Parses the query (without `?`); `kept` is the history's span, the
/// default and the most `seconds` can ask for.
pub fn parse(query: Option<&str>, kept: u64) -> Result<HistoryQuery, String> {
    let mut target = None;
    let mut seconds = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(raw).ok_or_else(|| {
            format!("`{key}`: the value `{raw}` is not valid percent-encoded UTF-8")
        })?;
        let t = match key {
            "seconds" => {
                let s = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| {
                        format!(
                            "seconds={value}: give whole seconds from 1 (the daemon keeps {kept})"
                        )
                    })?;
                seconds = Some(s.min(kept.max(1)));
                continue;
            }
            "pid" => Target::Pid(value.parse::<u32>().ok().filter(|p| *p > 0).ok_or_else(
                || format!("pid={value} is not a process id: give a number >= 1, e.g. pid=1234"),
            )?),
            "cgroup" if value.starts_with('/') => Target::Cgroup(value),
            "cgroup" => {
                return Err(format!(
                    "cgroup={value}: give the cgroup's path as /api/v1/snapshot names it, starting \
                     with /, e.g. cgroup=/system.slice/foo.service"
                ));
            }
            "unit" if !value.is_empty() => Target::Unit(value),
            "unit" => return Err("unit=: give a unit name, e.g. unit=nginx.service".into()),
            other => {
                return Err(format!(
                    "unknown query key `{other}`: {HISTORY_PATH} takes pid=P, cgroup=PATH or \
                     unit=NAME, and seconds=N"
                ));
            }
        };
        if target.replace(t).is_some() {
            return Err("give one of pid=P, cgroup=PATH or unit=NAME, once".into());
        }
    }
    Ok(HistoryQuery {
        target: target.ok_or_else(|| {
            format!("{HISTORY_PATH} needs pid=P, cgroup=PATH or unit=NAME (e.g. ?pid=1234)")
        })?,
        seconds: seconds.unwrap_or(kept),
    })
}

/// The profile query for the target's growth stacks (None: no cgroup known
/// for a unit).
pub fn stacks_query(q: &HistoryQuery, history: &History) -> Option<ProfileQuery> {
    let filter = match &q.target {
        Target::Pid(p) => Filter::Pid(*p),
        t => Filter::Cgroup(history.path_of(t)?),
    };
    Some(ProfileQuery {
        seconds: q
            .seconds
            .clamp(1, crate::model::profile_window::WINDOW_SECONDS),
        filter,
        kind: Kind::Faults,
        format: Format::Pprof,
    })
}

/// The answer: history frames, then the latest publication's frame.
pub fn answer(
    history: &History,
    latest: &Published,
    q: &HistoryQuery,
    stacks: Result<Vec<GrowthStack>, String>,
) -> Value {
    let now = latest.unix_ms;
    let from = now.saturating_sub(q.seconds.saturating_mul(1000));
    let mut frames: Vec<Value> = history
        .frames(&q.target, from, now)
        .into_iter()
        .filter(|f| f.unix_ms < now && !(f.processes.is_empty() && f.cgroups.is_empty()))
        .map(|f| {
            json!({
                "unix_ms": f.unix_ms,
                "processes": f.processes,
                "cgroups": f.cgroups,
                "system": f.system.map(|s| s.to_json()),
            })
        })
        .collect();
    frames.push(latest_frame(history, latest, &q.target));
    let (stacks, missing) = match stacks {
        Ok(s) => (s, None),
        Err(why) => (Vec::new(), Some(why)),
    };
    json!({
        "history_seconds": history.seconds(),
        "frames": frames,
        "stacks": stacks,
        "stacks_missing": missing,
    })
}

/// The latest publication, cut to the target, its cgroup and the cgroup's
/// processes.
fn latest_frame(history: &History, p: &Published, target: &Target) -> Value {
    let path = match target {
        Target::Pid(pid) => p
            .processes
            .iter()
            .find(|r| r.pid == *pid)
            .and_then(|r| r.cgroup.clone()),
        Target::Cgroup(c) => Some(crate::model::explain::evidence::normalize(c)),
        Target::Unit(u) => p
            .cgroups
            .iter()
            .filter(|c| c.names.unit.as_deref() == Some(u.as_str()))
            .max_by_key(|c| c.cgroup.len())
            .map(|c| c.cgroup.clone())
            .or_else(|| history.path_of(target)),
    };
    let rows: Vec<&crate::model::ProcessView> = p
        .processes
        .iter()
        .map(|r| &**r)
        .filter(|r| {
            matches!(target, Target::Pid(pid) if r.pid == *pid)
                || path
                    .as_deref()
                    .is_some_and(|path| r.cgroup.as_deref().is_some_and(|c| under(c, path)))
        })
        .collect();
    let cgroups: Vec<_> = p
        .cgroups
        .iter()
        .filter(|c| path.as_deref() == Some(c.cgroup.as_str()))
        .collect();
    json!({
        "unix_ms": p.unix_ms,
        "processes": rows,
        "cgroups": cgroups,
        "system": p.system,
        "fields": p.fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_their_errors() {
        assert_eq!(
            parse(Some("pid=42&seconds=30"), 300),
            Ok(HistoryQuery {
                target: Target::Pid(42),
                seconds: 30
            })
        );
        assert_eq!(
            parse(Some("cgroup=%2Fa%2Fb"), 300).map(|q| q.target),
            Ok(Target::Cgroup("/a/b".into()))
        );
        assert_eq!(
            parse(Some("unit=x.service&seconds=9999"), 300).map(|q| q.seconds),
            Ok(300)
        );
        for (bad, needle) in [
            ("", "needs pid=P"),
            ("pid=0", "pid=0"),
            ("cgroup=a", "starting with /"),
            ("pid=1&unit=a", "once"),
            ("secs=3&pid=1", "`secs`"),
            ("seconds=0&pid=1", "seconds=0"),
        ] {
            let e = parse(Some(bad), 300).expect_err(bad);
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
