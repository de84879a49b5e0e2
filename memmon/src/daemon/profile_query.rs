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

/// A query /api/v1/profile cannot answer (a 400 with this text).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Bad percent-encoding.
    #[error("`{key}`: the value `{raw}` is not valid percent-encoded UTF-8")]
    Encoding {
        /// The key.
        key: String,
        /// Its raw value.
        raw: String,
    },
    /// seconds out of the window.
    #[error(
        "seconds={0} is out of range: give whole seconds from 1 to {WINDOW_SECONDS} (the window \
         the daemon keeps)"
    )]
    Seconds(String),
    /// seconds twice.
    #[error("seconds is given twice: give it once")]
    SecondsTwice,
    /// pid not a process id.
    #[error("pid={0} is not a process id: give a number >= 1, e.g. pid=1234")]
    Pid(String),
    /// cgroup not a path.
    #[error(
        "cgroup={0}: give the cgroup's path as /api/v1/snapshot names it, starting with /, e.g. \
         cgroup=/system.slice/foo.service"
    )]
    Cgroup(String),
    /// Both filters, or one twice.
    #[error("give one of pid=P or cgroup=PATH, not both (nor one twice)")]
    TwoFilters,
    /// An unknown key.
    #[error("unknown query key `{0}`: /api/v1/profile takes seconds=N, and pid=P or cgroup=PATH")]
    Unknown(String),
}

/// Parses the query string (without the `?`).
pub fn parse(query: Option<&str>) -> Result<ProfileQuery, QueryError> {
    let mut seconds = None;
    let mut filter = Filter::All;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(raw).ok_or_else(|| QueryError::Encoding {
            key: key.to_string(),
            raw: raw.to_string(),
        })?;
        match key {
            "seconds" => {
                let s = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=WINDOW_SECONDS).contains(s))
                    .ok_or_else(|| QueryError::Seconds(value.clone()))?;
                if seconds.replace(s).is_some() {
                    return Err(QueryError::SecondsTwice);
                }
            }
            "pid" => {
                let pid = value
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| QueryError::Pid(value.clone()))?;
                set(&mut filter, Filter::Pid(pid))?;
            }
            "cgroup" => {
                if !value.starts_with('/') {
                    return Err(QueryError::Cgroup(value));
                }
                set(&mut filter, Filter::Cgroup(value))?;
            }
            other => {
                return Err(QueryError::Unknown(other.to_string()));
            }
        }
    }
    Ok(ProfileQuery {
        seconds: seconds.unwrap_or(DEFAULT_SECONDS),
        filter,
    })
}

fn set(filter: &mut Filter, new: Filter) -> Result<(), QueryError> {
    if *filter != Filter::All {
        return Err(QueryError::TwoFilters);
    }
    *filter = new;
    Ok(())
}

/// Percent-decodes `s` (`+` stays a plus: paths, not form data).
fn decode(s: &str) -> Option<String> {
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

    /// `parse` with the error as its message.
    fn err(q: Option<&str>) -> Result<ProfileQuery, String> {
        parse(q).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = err(Some("pid=abc")).expect_err("not a number");
        assert!(e.contains("pid=abc") && e.contains(">= 1"), "{e}");
        let e = err(Some("seconds=0")).expect_err("out of range");
        assert!(e.contains("1 to 60"), "{e}");
        let e = err(Some("seconds=61")).expect_err("out of range");
        assert!(e.contains("seconds=61"), "{e}");
        let e = err(Some("secs=5")).expect_err("unknown key");
        assert!(e.contains("`secs`") && e.contains("seconds=N"), "{e}");
        let e = err(Some("pid=1&cgroup=/a")).expect_err("both");
        assert!(e.contains("not both"), "{e}");
        let e = err(Some("cgroup=a")).expect_err("relative");
        assert!(e.contains("starting with /"), "{e}");
        let e = err(Some("cgroup=%zz")).expect_err("bad escape");
        assert!(e.contains("percent"), "{e}");
    }
}
