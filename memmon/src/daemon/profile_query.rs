//! The query of `/api/v1/profile`: `seconds=N` (1 to the window, default
//! [`DEFAULT_SECONDS`]) and at most one of `pid=P` or `cgroup=PATH`
//! (percent-decoded). Every error names the key and the fix.

use crate::model::profile_window::{Filter, WINDOW_SECONDS};

/// Seconds a request without `seconds=` covers.
pub const DEFAULT_SECONDS: u64 = 10;

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileQuery {
    /// Seconds to cover.
    pub seconds: u64,
    /// Whose samples.
    pub filter: Filter,
}

/// Parses the query string (without the `?`).
pub fn parse(query: Option<&str>) -> Result<ProfileQuery, String> {
    let mut seconds = None;
    let mut filter = Filter::All;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(raw).ok_or_else(|| {
            format!("`{key}`: the value `{raw}` is not valid percent-encoded UTF-8")
        })?;
        match key {
            "seconds" => {
                let s = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=WINDOW_SECONDS).contains(s))
                    .ok_or_else(|| {
                        format!(
                            "seconds={value} is out of range: give whole seconds from 1 to \
                             {WINDOW_SECONDS} (the window the daemon keeps)"
                        )
                    })?;
                if seconds.replace(s).is_some() {
                    return Err("seconds is given twice: give it once".into());
                }
            }
            "pid" => {
                let pid = value
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        format!(
                            "pid={value} is not a process id: give a number >= 1, e.g. pid=1234"
                        )
                    })?;
                set(&mut filter, Filter::Pid(pid))?;
            }
            "cgroup" => {
                if !value.starts_with('/') {
                    return Err(format!(
                        "cgroup={value}: give the cgroup's path as /api/v1/snapshot names it, \
                         starting with /, e.g. cgroup=/system.slice/foo.service"
                    ));
                }
                set(&mut filter, Filter::Cgroup(value))?;
            }
            other => {
                return Err(format!(
                    "unknown query key `{other}`: /api/v1/profile takes seconds=N, and pid=P or \
                     cgroup=PATH"
                ));
            }
        }
    }
    Ok(ProfileQuery {
        seconds: seconds.unwrap_or(DEFAULT_SECONDS),
        filter,
    })
}

fn set(filter: &mut Filter, new: Filter) -> Result<(), String> {
    if *filter != Filter::All {
        return Err("give one of pid=P or cgroup=PATH, not both (nor one twice)".into());
    }
    *filter = new;
    Ok(())
}

/// Percent-decodes `s` (`+` stays a plus: paths, not form data).
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_filters() {
        assert_eq!(
            parse(None),
            Ok(ProfileQuery {
                seconds: DEFAULT_SECONDS,
                filter: Filter::All
            })
        );
        assert_eq!(
            parse(Some("pid=42&seconds=30")),
            Ok(ProfileQuery {
                seconds: 30,
                filter: Filter::Pid(42)
            })
        );
        assert_eq!(
            parse(Some("cgroup=%2Fsystem.slice%2Fa.service")).map(|q| q.filter),
            Ok(Filter::Cgroup("/system.slice/a.service".into()))
        );
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = parse(Some("pid=abc")).expect_err("not a number");
        assert!(e.contains("pid=abc") && e.contains(">= 1"), "{e}");
        let e = parse(Some("seconds=0")).expect_err("out of range");
        assert!(e.contains("1 to 60"), "{e}");
        let e = parse(Some("seconds=61")).expect_err("out of range");
        assert!(e.contains("seconds=61"), "{e}");
        let e = parse(Some("secs=5")).expect_err("unknown key");
        assert!(e.contains("`secs`") && e.contains("seconds=N"), "{e}");
        let e = parse(Some("pid=1&cgroup=/a")).expect_err("both");
        assert!(e.contains("not both"), "{e}");
        let e = parse(Some("cgroup=a")).expect_err("relative");
        assert!(e.contains("starting with /"), "{e}");
        let e = parse(Some("cgroup=%zz")).expect_err("bad escape");
        assert!(e.contains("percent"), "{e}");
    }
}
