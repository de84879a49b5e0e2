//! The query of `/api/v1/profile`: `seconds=N` (1 to the window, default
//! [`DEFAULT_SECONDS`]), at most one of `pid=P` or `cgroup=PATH`
//! (percent-decoded), `kind=faults|resident` (default faults) and
//! `format=pprof|folded|svg` (default pprof). Every error names the key
//! and the fix.

use crate::model::profile_window::{Filter, WINDOW_SECONDS};

/// Seconds a request without `seconds=` covers.
pub const DEFAULT_SECONDS: u64 = 10;

/// Which profile a query asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Page faults by stack over the seconds asked for (growth).
    #[default]
    Faults,
    /// Memory still resident by first-touch stack, with its growth over
    /// the seconds asked for.
    Resident,
}

/// How the profile is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Gzipped pprof protobuf.
    #[default]
    Pprof,
    /// Folded stacks (text).
    Folded,
    /// An SVG flame graph.
    Svg,
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileQuery {
    /// Seconds to cover.
    pub seconds: u64,
    /// Whose samples.
    pub filter: Filter,
    /// Which profile.
    pub kind: Kind,
    /// How it is written.
    pub format: Format,
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
    /// kind not a profile.
    #[error(
        "kind={0} is not a profile: give kind=faults (page faults by stack) or kind=resident \
         (memory still resident by stack)"
    )]
    Kind(String),
    /// format not an output.
    #[error("format={0} is not an output: give format=pprof, format=folded or format=svg")]
    Format(String),
    /// kind or format twice.
    #[error("{0} is given twice: give it once")]
    Twice(&'static str),
    /// An unknown key.
    #[error(
        "unknown query key `{0}`: /api/v1/profile takes seconds=N, pid=P or cgroup=PATH, \
         kind=faults|resident and format=pprof|folded|svg"
    )]
    Unknown(String),
}

/// Parses the query string (without the `?`).
pub fn parse(query: Option<&str>) -> Result<ProfileQuery, QueryError> {
    let mut seconds = None;
    let mut filter = Filter::All;
    let mut kind = None;
    let mut format = None;
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
            "kind" => {
                let k = match value.as_str() {
                    "faults" => Kind::Faults,
                    "resident" => Kind::Resident,
                    _ => return Err(QueryError::Kind(value)),
                };
                if kind.replace(k).is_some() {
                    return Err(QueryError::Twice("kind"));
                }
            }
            "format" => {
                let f = match value.as_str() {
                    "pprof" => Format::Pprof,
                    "folded" => Format::Folded,
                    "svg" => Format::Svg,
                    _ => return Err(QueryError::Format(value)),
                };
                if format.replace(f).is_some() {
                    return Err(QueryError::Twice("format"));
                }
            }
            other => {
                return Err(QueryError::Unknown(other.to_string()));
            }
        }
    }
    Ok(ProfileQuery {
        seconds: seconds.unwrap_or(DEFAULT_SECONDS),
        filter,
        kind: kind.unwrap_or_default(),
        format: format.unwrap_or_default(),
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
                filter: Filter::All,
                kind: Kind::Faults,
                format: Format::Pprof,
            })
        );
        assert_eq!(
            parse(Some("pid=42&seconds=30")),
            Ok(ProfileQuery {
                seconds: 30,
                filter: Filter::Pid(42),
                kind: Kind::Faults,
                format: Format::Pprof,
            })
        );
        assert_eq!(
            parse(Some("cgroup=%2Fsystem.slice%2Fa.service")).map(|q| q.filter),
            Ok(Filter::Cgroup("/system.slice/a.service".into()))
        );
        let q = parse(Some("kind=resident&format=folded")).expect("valid");
        assert_eq!((q.kind, q.format), (Kind::Resident, Format::Folded));
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
        let e = err(Some("kind=heap")).expect_err("unknown kind");
        assert!(e.contains("kind=resident"), "{e}");
        let e = err(Some("format=json")).expect_err("unknown format");
        assert!(e.contains("format=folded"), "{e}");
        let e = err(Some("kind=faults&kind=faults")).expect_err("twice");
        assert!(e.contains("kind is given twice"), "{e}");
        let e = err(Some("pid=1&cgroup=/a")).expect_err("both");
        assert!(e.contains("not both"), "{e}");
        let e = err(Some("cgroup=a")).expect_err("relative");
        assert!(e.contains("starting with /"), "{e}");
        let e = err(Some("cgroup=%zz")).expect_err("bad escape");
        assert!(e.contains("percent"), "{e}");
    }
}
